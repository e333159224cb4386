"""Reading parallel text: aligned file pairs (plain or .gz) and two-column TSV files, one pair per line.

Every problem is reported as a `DataError` naming the file and the line, when it is met: a missing or empty file,
invalid UTF-8, files of different lengths, a TSV row without exactly two fields. Empty lines are passed on, with
their line number, for the preprocessing to drop (and count) or refuse.
"""
from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

Triple = tuple[int, str, str]  # (line number from 1, source, target)


class DataError(ValueError):
    """Input data that cannot be used as it is; the message names the file and the line."""


@dataclass(frozen=True)
class TextSplit:
    """One split of a corpus. `read()` yields (line number, source, target) afresh each time; `where` names its
    files in messages."""

    where: str
    read: Callable[[], Iterator[Triple]]

    @classmethod
    def in_memory(cls, where: str, pairs: Sequence[tuple[str, str]]) -> TextSplit:
        return cls(where, lambda: ((i, s, t) for i, (s, t) in enumerate(pairs, 1)))

    @classmethod
    def from_files(cls, src: Path, tgt: Path) -> TextSplit:
        check_files([src, tgt])
        return cls(f"{src} / {tgt}", lambda: read_aligned(src, tgt))

    @classmethod
    def from_tsv(cls, path: Path) -> TextSplit:
        check_files([path])
        return cls(str(path), lambda: read_tsv(path))


def check_files(paths: Sequence[Path]) -> None:
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise DataError(f"missing file{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    for p in paths:
        if Path(p).stat().st_size == 0:
            raise DataError(f"{p}: the file is empty")


def read_lines(path: Path) -> Iterator[str]:
    """The lines of a UTF-8 text file, plain or gzipped, without their line endings."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        n = 0
        for n, raw in enumerate(f, 1):
            try:
                yield raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{n}: invalid UTF-8 (byte {e.start + 1} of the line)") from None
        if n == 0:
            raise DataError(f"{path}: the file is empty")


def read_aligned(src: Path, tgt: Path) -> Iterator[Triple]:
    n = 0
    for n, (s, t) in enumerate(zip_longest(read_lines(src), read_lines(tgt)), 1):
        if s is None or t is None:
            short, long = (src, tgt) if s is None else (tgt, src)
            raise DataError(f"{short} has {n - 1} lines but {long} has more: the files are not aligned"
                            f" (first unmatched line: {long}:{n})")
        yield n, s, t


def read_tsv(path: Path) -> Iterator[Triple]:
    for n, line in enumerate(read_lines(path), 1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(f"{path}:{n}: expected 2 tab-separated fields (source, target), found {len(fields)}")
        yield n, fields[0], fields[1]


def count_lines(path: Path) -> int:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        n = sum(1 for _ in f)
    if n == 0:
        raise DataError(f"{path}: the file is empty")
    return n
