"""Batches built by a token budget from length-sorted pools (as fairseq's `max_tokens` and OpenNMT's
`batch_type: tokens`): sentences of similar length share a batch, so little of it is padding, and every batch holds
about the same number of tokens whatever the sentence lengths."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor


class TokenBudgetBatchSampler:
    """Yields lists of example indices. A batch's cost is its padded size, rows x (longest source + longest
    target); it stays within `max_tokens` (a single longer example gets a batch of its own), and within
    `max_sentences` rows where that is given (fairseq's --batch-size beside --max-tokens; with a large `max_tokens`,
    batches of a fixed number of sentences, as most papers before fairseq trained).

    With `shuffle`, examples are shuffled, cut into pools of `pool_size`, sorted by length inside each pool,
    and the batches themselves shuffled: different batches each epoch, yet little padding (a `pool_size` of one
    batch's sentences makes each batch a random draw instead, lengths mixed). Each pass over the
    sampler is the next epoch, unless `epoch_of` says which (the data module hands it the trainer's: Lightning
    calls `set_epoch` on samplers, not on batch samplers); `set_epoch` sets it explicitly, and `resume` continues an
    epoch part-way. Without `shuffle`, batches come in length order, for evaluation.

    Under DDP each of `num_replicas` processes builds the same batches (same seed and epoch) and takes every
    `num_replicas`-th from its `rank`: disjoint shares, every example once per epoch. The largest batches are
    halved until the count divides evenly, so every rank takes the same number of steps."""

    def __init__(self, src_lengths: Sequence[int], tgt_lengths: Sequence[int], *, max_tokens: int, shuffle: bool,
                 max_sentences: int | None = None, seed: int = 0, pool_size: int = 100_000, num_replicas: int = 1,
                 rank: int = 0):
        if max_tokens < 1:
            raise ValueError(f"max_tokens ({max_tokens}) must be >= 1")
        if max_sentences is not None and max_sentences < 1:
            raise ValueError(f"max_sentences ({max_sentences}) must be >= 1 or None")
        if pool_size < 1:
            raise ValueError(f"pool_size ({pool_size}) must be >= 1")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank ({rank}) must lie in [0, num_replicas ({num_replicas}))")
        if len(src_lengths) != len(tgt_lengths):
            raise ValueError(f"{len(src_lengths)} source lengths but {len(tgt_lengths)} target lengths")
        self.src_len, self.tgt_len = np.asarray(src_lengths, np.int64), np.asarray(tgt_lengths, np.int64)
        self.max_tokens, self.max_sentences = max_tokens, max_sentences or len(src_lengths) + 1
        self.shuffle, self.seed, self.pool_size = shuffle, seed, pool_size
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        self.epoch_of: Callable[[], int] | None = None  # the trainer's epoch, when a trainer iterates this
        self._resume_at: tuple[int, int] | None = None
        in_order = self._make_batches(np.arange(len(self.src_len)), np.random.default_rng(seed))
        self._batches = None if shuffle else in_order[rank::num_replicas]  # evaluation batches never change
        self._len = len(in_order) // num_replicas  # shuffled epochs differ by a batch or two at most

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume(self, epoch: int, taken: int) -> None:
        """Continue a run that stopped after taking `taken` batches of `epoch`: that epoch's pass skips them."""
        self._resume_at = (epoch, taken)

    def _make_batches(self, order: np.ndarray, rng: np.random.Generator) -> list[list[int]]:
        batches = []
        for start in range(0, len(order), self.pool_size):
            pool = order[start:start + self.pool_size]
            pool = pool[np.lexsort((self.tgt_len[pool], self.src_len[pool]))]  # by source, then target length
            batch, src_max, tgt_max = [], 0, 0
            for i, s, t in zip(pool.tolist(), self.src_len[pool].tolist(), self.tgt_len[pool].tolist()):
                new_src, new_tgt = max(src_max, s), max(tgt_max, t)
                if batch and ((len(batch) + 1) * (new_src + new_tgt) > self.max_tokens
                              or len(batch) == self.max_sentences):
                    batches.append(batch)
                    batch, new_src, new_tgt = [], s, t
                batch.append(i)
                src_max, tgt_max = new_src, new_tgt
            if batch:
                batches.append(batch)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        while len(batches) % self.num_replicas:
            largest = max(range(len(batches)), key=lambda b: len(batches[b]))
            if len(batches[largest]) < 2:
                raise ValueError(f"{len(order)} examples cannot be shared evenly by {self.num_replicas} processes")
            half = len(batches[largest]) // 2
            batches[largest:largest + 1] = [batches[largest][:half], batches[largest][half:]]
        return batches

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of `epoch` (the same every epoch without `shuffle`)."""
        if self._batches is not None:
            return self._batches
        rng = np.random.default_rng([self.seed, epoch])
        return self._make_batches(rng.permutation(len(self.src_len)), rng)[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        if self.epoch_of is not None:
            self.epoch = self.epoch_of()
        epoch, self.epoch = self.epoch, self.epoch + 1
        skip = self._resume_at[1] if self._resume_at and self._resume_at[0] == epoch else 0
        self._resume_at = None
        return iter(self.batches(epoch)[skip:])

    def __len__(self) -> int:
        return self._len

    def padding_efficiency(self, epoch: int = 0) -> float:
        """Real tokens / all tokens (real and padding) in this rank's batches of `epoch`."""
        real = padded = 0
        for batch in self.batches(epoch):
            src, tgt = self.src_len[batch], self.tgt_len[batch]
            real += int(src.sum() + tgt.sum())
            padded += len(batch) * int(src.max() + tgt.max())
        return real / padded if padded else 1.0


def collate(examples: list[tuple[int, Sequence[int], Sequence[int]]], *, pad_id: int, bos_id: int,
            eos_id: int, pad_to_multiple: int = 1) -> dict[str, Tensor]:
    """(index, source ids, target ids) examples -> a padded batch; tgt_in = BOS + target, tgt_out = target + EOS.
    The source and target lengths are padded up to a multiple of `pad_to_multiple` (as Hugging Face's
    `pad_to_multiple_of`): the models ignore padding, so what they compute is the same, but batches then come in
    a few shapes only, which is what a compiled model with static shapes (and CUDA graphs) needs."""
    if pad_to_multiple < 1:
        raise ValueError(f"pad_to_multiple ({pad_to_multiple}) must be >= 1")
    B = len(examples)
    S = round_up(max(len(s) for _, s, _ in examples), pad_to_multiple)
    T = round_up(max(len(t) for _, _, t in examples) + 1, pad_to_multiple)
    src = torch.full((B, S), pad_id, dtype=torch.long)  # (B, S)
    tgt_in = torch.full((B, T), pad_id, dtype=torch.long)  # (B, T)
    tgt_out = torch.full((B, T), pad_id, dtype=torch.long)  # (B, T)
    for row, (_, s, t) in enumerate(examples):
        s, t = torch.as_tensor(s, dtype=torch.long), torch.as_tensor(t, dtype=torch.long)
        src[row, : len(s)] = s
        tgt_in[row, 0], tgt_in[row, 1 : len(t) + 1] = bos_id, t
        tgt_out[row, : len(t)], tgt_out[row, len(t)] = t, eos_id
    index = torch.tensor([i for i, _, _ in examples])  # (B,) positions in the split, to restore its order
    return {"src": src, "src_mask": src != pad_id, "tgt_in": tgt_in, "tgt_out": tgt_out, "index": index}


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple
