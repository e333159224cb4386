"""The one data module: a source of text pairs -> tokenizers and ids (preprocessed once, cached on disk) ->
token-budget batches for every split, on one process or many."""
from __future__ import annotations

from functools import cached_property, partial
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from zoo.data.batching import TokenBudgetBatchSampler, collate
from zoo.data.cache import Corpus, SplitIds, prepare
from zoo.data.preprocess import Settings
from zoo.data.text import Source


class Sample:
    """A fixed subset of a split's pairs that loads like a split of its own (its `index` counts from 0)."""

    def __init__(self, split: SplitIds, rows: np.ndarray):
        self.split, self.rows = split, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray, np.ndarray]:
        _, src, tgt = self.split[int(self.rows[i])]
        return i, src, tgt

    @property
    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        return tuple(side[self.rows] for side in self.split.lengths)


class TranslationDataModule(L.LightningDataModule):
    """`source` is one of the zoo's corpora (`zoo.data.toy`, `scan`, `multi30k`, `parallel`): it has
    `fingerprint()` and `text_splits()` with "train", "val" and one or more test splits. `preprocess` holds the
    `zoo.data.preprocess.Settings` (kind, vocab_size, joint, min_frequency, max_len, empty_lines). `root` (the
    corpus's folder) and `split` (SCAN's simple or length) are the user's knobs for the source's config, which
    reads them as `${data.root}` and `${data.split}`; the results record them.

    `fit_size` training pairs, the same for every run of a corpus, make the split "fit": translated at every
    validation and at the end, it shows how well a model fits its own training data (0: none). Every batch's
    lengths are padded up to a multiple of `pad_to_multiple` (the run's speed.pad_to_multiple)."""

    def __init__(self, source: Source, *, preprocess: dict | None = None, cache_dir: str = ".cache/zoo",
                 root: str | None = None, split: str | None = None, max_tokens: int = 4096,
                 max_sentences: int | None = None, pool_size: int = 100_000, eval_max_tokens: int = 16384,
                 seed: int = 0, num_workers: int = 0, fit_size: int = 200, tgt_lang: str | None = None,
                 pad_to_multiple: int = 1):
        super().__init__()
        # the target language, for the Moses tokenizer of tokenized BLEU: the source's own (Multi30k's), else this
        self.tgt_lang = getattr(source, "tgt_lang", None) or tgt_lang or "en"
        self.source, self.settings, self.cache_dir = source, Settings(**(preprocess or {})), cache_dir
        self.root, self.split = root, split
        self.max_tokens, self.eval_max_tokens = max_tokens, eval_max_tokens
        self.max_sentences, self.pool_size = max_sentences, pool_size  # training batches only (TokenBudgetBatchSampler)
        self.seed, self.num_workers, self.fit_size = seed, num_workers, fit_size
        self.pad_to_multiple = pad_to_multiple  # every batch's lengths (collate); the run's speed.pad_to_multiple
        self.cache_path: Path | None = None
        self.corpus: Corpus | None = None
        self.train_sampler: TokenBudgetBatchSampler | None = None
        self._resume_at: dict | None = None

    def prepare_data(self) -> None:
        """Lightning calls it on one process per node under DDP, before `setup`; the other processes (and a data
        module used without a Trainer) prepare in `setup`. Once per process: inputs are hashed, the cache verified."""
        if self.cache_path is None:
            self.cache_path = prepare(self.source, self.cache_dir, self.settings)

    def setup(self, stage: str | None = None) -> None:
        if self.corpus is None:  # fit, validate and test share one corpus
            self.prepare_data()
            self.corpus = Corpus.load(self.cache_path)

    @property
    def src_tokenizer(self):
        return self.corpus.src_tokenizer

    @property
    def tgt_tokenizer(self):
        return self.corpus.tgt_tokenizer

    @cached_property
    def fit_sample(self) -> Sample | None:
        train = self.corpus.ids["train"]
        if not self.fit_size:
            return None
        rows = np.random.default_rng(0).choice(len(train), min(self.fit_size, len(train)), replace=False)
        return Sample(train, np.sort(rows))

    def split_ids(self, split: str) -> SplitIds | Sample:
        """The ids of an evaluation split, or of the "fit" sample of training pairs."""
        return self.fit_sample if split == "fit" else self.corpus.ids[split]

    @cached_property
    def texts(self) -> dict[str, list[tuple[str, str]]]:
        """Source and target text of the evaluation splits, and of the "fit" sample (decoded from its ids)."""
        if self.fit_sample is None:
            return self.corpus.texts
        fit = [(self.src_tokenizer.decode(src), self.tgt_tokenizer.decode(tgt)) for _, src, tgt in self.fit_sample]
        return {**self.corpus.texts, "fit": fit}

    @property
    def test_splits(self) -> list[str]:
        return [name for name in self.corpus.ids if name not in ("train", "val")]

    def sampler(self, split: str, *, shuffle: bool = False, num_replicas: int = 1,
                rank: int = 0) -> TokenBudgetBatchSampler:
        src_len, tgt_len = self.split_ids(split).lengths
        if not shuffle:  # evaluation: the largest batches that fit, in length order
            return TokenBudgetBatchSampler(src_len, tgt_len + 1, shuffle=False,  # + 1: BOS/EOS on the target
                                           max_tokens=self.eval_max_tokens, num_replicas=num_replicas, rank=rank)
        return TokenBudgetBatchSampler(src_len, tgt_len + 1, shuffle=True, max_tokens=self.max_tokens,
                                       max_sentences=self.max_sentences, pool_size=self.pool_size, seed=self.seed,
                                       num_replicas=num_replicas, rank=rank)

    def loader(self, split: str, *, shuffle: bool = False, distributed: bool = False) -> DataLoader:
        """Batches of `split`; with `distributed`, this process's share under the trainer's DDP (if any)."""
        shard = {}
        if distributed and self.trainer is not None:
            shard = {"num_replicas": self.trainer.world_size, "rank": self.trainer.global_rank}
        tok = self.tgt_tokenizer
        sampler = self.sampler(split, shuffle=shuffle, **shard)
        if split == "train" and shuffle and self.trainer is not None:
            self.train_sampler = sampler
            sampler.epoch_of = lambda: self.trainer.current_epoch
            if self._resume_at is not None:
                sampler.resume(**self._resume_at)
        return DataLoader(self.split_ids(split), batch_sampler=sampler, num_workers=self.num_workers,
                          collate_fn=partial(collate, pad_id=tok.pad_id, bos_id=tok.bos_id, eos_id=tok.eos_id,
                                             pad_to_multiple=self.pad_to_multiple))

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True, distributed=True)

    def state_dict(self) -> dict:
        """Where training stood in the epoch's batches, saved with every checkpoint (Lightning asks the data module
        for it): the epoch and how many of its batches the trainer had taken."""
        if self.train_sampler is None or self.trainer is None:
            return {}
        taken = self.trainer.fit_loop.epoch_loop.batch_progress.current.ready
        return {"epoch": self.trainer.current_epoch, "taken": taken}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self._resume_at = state
            if self.train_sampler is not None:
                self.train_sampler.resume(**state)

    def val_dataloader(self) -> list[DataLoader]:
        """The validation split, and the "fit" sample when there is one (Lightning's dataloader_idx 0 and 1)."""
        return [self.loader(split, distributed=True) for split in ("val", "fit")[: 1 + (self.fit_sample is not None)]]

    def summary(self) -> dict:
        """What the results record about the data: sizes, what preprocessing dropped, vocabularies, padding."""
        return {"root": self.root, "split": self.split, "tgt_lang": self.tgt_lang, "settings": vars(self.settings),
                "splits": self.corpus.stats,
                "src_vocab": len(self.src_tokenizer), "tgt_vocab": len(self.tgt_tokenizer),
                "padding_efficiency": self.sampler("train", shuffle=True).padding_efficiency()}
