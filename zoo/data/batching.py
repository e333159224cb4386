"""Batches built by a token budget from length-sorted pools (as fairseq's `max_tokens` and OpenNMT's
`batch_type: tokens`): sentences of similar length share a batch, so little of it is padding, and every batch holds
about the same number of tokens whatever the sentence lengths."""
from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor


class TokenBudgetBatchSampler:
    """Yields lists of example indices. A batch's cost is its padded size, rows x (longest source + longest
    target); it stays within `max_tokens` (a single longer example gets a batch of its own).

    With `shuffle`, examples are shuffled, cut into pools of `pool_size`, sorted by length inside each pool,
    and the batches themselves shuffled: different batches each epoch, yet little padding. Each pass over the
    sampler is the next epoch (Lightning calls `set_epoch` on samplers, not on batch samplers); `set_epoch` sets
    it explicitly. Without `shuffle`, batches come in length order, for evaluation."""

    def __init__(self, lengths: Sequence[tuple[int, int]], *, max_tokens: int, shuffle: bool, seed: int = 0,
                 pool_size: int = 10_000):
        if max_tokens < 1:
            raise ValueError(f"max_tokens ({max_tokens}) must be >= 1")
        self.lengths, self.max_tokens, self.shuffle, self.seed, self.pool_size = (
            lengths, max_tokens, shuffle, seed, pool_size)
        self.epoch = 0
        in_order = self._make_batches(list(range(len(lengths))), random.Random(seed))
        self._batches = None if shuffle else in_order  # evaluation batches never change
        self._len = len(in_order)  # shuffled epochs differ by a batch or two at most

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _make_batches(self, order: list[int], rng: random.Random) -> list[list[int]]:
        pools = [order[i:i + self.pool_size] for i in range(0, len(order), self.pool_size)]
        batches = []
        for pool in pools:
            batch, src_max, tgt_max = [], 0, 0
            for i in sorted(pool, key=lambda i: self.lengths[i]):
                s, t = self.lengths[i]
                new_src, new_tgt = max(src_max, s), max(tgt_max, t)
                if batch and (len(batch) + 1) * (new_src + new_tgt) > self.max_tokens:
                    batches.append(batch)
                    batch, new_src, new_tgt = [], s, t
                batch.append(i)
                src_max, tgt_max = new_src, new_tgt
            batches.append(batch)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        if self._batches is not None:
            return iter(self._batches)
        rng = random.Random(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        return iter(self._make_batches(order, rng))

    def __len__(self) -> int:
        return self._len


def collate(examples: list[tuple[int, list[int], list[int]]], *, pad_id: int, bos_id: int,
            eos_id: int) -> dict[str, Tensor]:
    """(index, source ids, target ids) examples -> a padded batch; tgt_in = BOS + target, tgt_out = target + EOS."""
    B = len(examples)
    S = max(len(s) for _, s, _ in examples)
    T = max(len(t) for _, _, t in examples) + 1
    src = torch.full((B, S), pad_id, dtype=torch.long)  # (B, S)
    tgt_in = torch.full((B, T), pad_id, dtype=torch.long)  # (B, T)
    tgt_out = torch.full((B, T), pad_id, dtype=torch.long)  # (B, T)
    for row, (_, s, t) in enumerate(examples):
        src[row, : len(s)] = torch.tensor(s)
        tgt_in[row, : len(t) + 1] = torch.tensor([bos_id, *t])
        tgt_out[row, : len(t) + 1] = torch.tensor([*t, eos_id])
    index = torch.tensor([i for i, _, _ in examples])  # (B,) positions in the split, to restore its order
    return {"src": src, "src_mask": src != pad_id, "tgt_in": tgt_in, "tgt_out": tgt_out, "index": index}
