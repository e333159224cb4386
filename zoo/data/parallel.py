"""The user's own parallel text: each split either a pair of aligned files [source, target] (plain or .gz, one
sentence a line) or one TSV file (source<TAB>target). Missing val/test splits are split off the training data
deterministically: a seeded sample of its line numbers, the rest stays in training."""
from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from zoo.data.text import DataError, TextSplit, Triple, count_lines, describe_files


def split_of(spec: str | Sequence[str], name: str) -> TextSplit:
    if isinstance(spec, str):
        return TextSplit.from_tsv(Path(spec))
    if len(spec) != 2:
        raise DataError(f"data.source.{name} must be a TSV path or [source file, target file]; got {list(spec)}")
    return TextSplit.from_files(Path(spec[0]), Path(spec[1]))


def subset(split: TextSplit, lines: frozenset[int], keep: bool) -> TextSplit:
    """The pairs of `split` whose line number is (`keep`) or is not in `lines`; line numbers stay the file's."""
    def read() -> Iterator[Triple]:
        return ((n, s, t) for n, s, t in split.read() if (n in lines) == keep)
    return TextSplit(split.src_name, split.tgt_name, read)


@dataclass(frozen=True)
class ParallelText:
    train: str | Sequence[str]
    val: str | Sequence[str] | None = None
    test: str | Sequence[str] | None = None
    val_size: int = 1000  # pairs split off the training data when `val` is not given
    test_size: int = 1000
    seed: int = 0

    def __post_init__(self):
        for name in ("val_size", "test_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} ({getattr(self, name)}) must be >= 1")

    def fingerprint(self) -> dict:
        def describe(spec):
            return None if spec is None else describe_files([spec] if isinstance(spec, str) else spec)
        return {"train": describe(self.train), "val": describe(self.val), "test": describe(self.test),
                "val_size": self.val_size, "test_size": self.test_size, "seed": self.seed}

    def text_splits(self) -> dict[str, TextSplit]:
        train = split_of(self.train, "train")
        given = {name: split_of(spec, name) for name, spec in (("val", self.val), ("test", self.test)) if spec}
        wanted = {name: size for name, size in (("val", self.val_size), ("test", self.test_size)) if name not in given}
        if not wanted:
            return {"train": train, **given}
        first = Path(self.train if isinstance(self.train, str) else self.train[0])
        n = count_lines(first)
        if sum(wanted.values()) >= n:
            raise DataError(f"{first}: {n} lines cannot give {sum(wanted.values())} pairs to "
                            f"{' and '.join(wanted)} and keep some for training")
        drawn = random.Random(f"parallel-{self.seed}").sample(range(1, n + 1), sum(wanted.values()))
        held_out, start = {}, 0
        for name, size in wanted.items():
            held_out[name] = subset(train, frozenset(drawn[start:start + size]), True)
            start += size
        rest = subset(train, frozenset(drawn), False)
        return {"train": rest, **given, **held_out}
