"""The one data module: any source of text pairs -> vocabularies -> token-budget batches for every split."""
from __future__ import annotations

from functools import partial

import lightning as L
from torch.utils.data import DataLoader

from zoo.data.batching import TokenBudgetBatchSampler, collate
from zoo.data.vocab import Vocab

EVAL_SPLITS = ("val", "test", "test_long")


class TranslationDataModule(L.LightningDataModule):
    """`source` is any object whose `splits()` returns {"train", "val", "test", "test_long"} -> [(src, tgt), ...]
    of whitespace-tokenized text; vocabularies are built from the training split only."""

    def __init__(self, source, *, max_tokens: int = 4096, eval_max_tokens: int = 16384, seed: int = 0,
                 num_workers: int = 0):
        super().__init__()
        self.source, self.max_tokens, self.eval_max_tokens = source, max_tokens, eval_max_tokens
        self.seed, self.num_workers = seed, num_workers
        self.texts: dict[str, list[tuple[str, str]]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.texts:  # fit, validate and test share one corpus
            return
        self.texts = self.source.splits()
        missing = {"train", *EVAL_SPLITS} - set(self.texts)
        if missing:
            raise ValueError(f"{type(self.source).__name__}.splits() lacks the splits {sorted(missing)}")
        self.src_vocab = Vocab.build(s for s, _ in self.texts["train"])
        self.tgt_vocab = Vocab.build(t for _, t in self.texts["train"])
        self.examples = {split: [(i, self.src_vocab.encode(s), self.tgt_vocab.encode(t))
                                 for i, (s, t) in enumerate(pairs)] for split, pairs in self.texts.items()}

    def loader(self, split: str, *, shuffle: bool = False) -> DataLoader:
        examples = self.examples[split]
        sampler = TokenBudgetBatchSampler([(len(s), len(t) + 1) for _, s, t in examples], shuffle=shuffle,
                                          max_tokens=self.max_tokens if shuffle else self.eval_max_tokens,
                                          seed=self.seed)
        v = self.tgt_vocab
        return DataLoader(examples, batch_sampler=sampler, num_workers=self.num_workers,
                          collate_fn=partial(collate, pad_id=v.pad_id, bos_id=v.bos_id, eos_id=v.eos_id))

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")
