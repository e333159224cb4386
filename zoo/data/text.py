"""Reading parallel text: aligned file pairs (plain or .gz) and two-column TSV files, one pair per line.

Every problem is reported as a `DataError` naming the file and the line, when it is met: a missing or empty file,
a damaged gzip file, invalid UTF-8, a control character, files of different lengths, a TSV row without exactly two
fields. Empty lines are passed on, with their line number, for the preprocessing to drop (and count) or refuse.
A byte-order mark that begins a file is dropped: it marks the encoding and is no part of the first line's text.

Control characters are refused, as invalid UTF-8 is, rather than dropped with their pair, as empty lines are: they
come from a damaged file or one in another encoding (UTF-16 reads as valid UTF-8 with a NUL every other byte), a
fault in the whole file rather than in one pair. Those that are whitespace to `str.split` and to the tokenizers
(tab, vertical tab, form feed, CR, U+001C-U+001F, NEL) are not refused: they separate words like spaces.
"""
from __future__ import annotations

import gzip
import hashlib
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Protocol

from zoo.errors import UserError

Triple = tuple[int, str, str]  # (line number from 1, source, target)
BOM = "\ufeff"
CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")  # category Cc, less what str.isspace() accepts


class DataError(UserError, ValueError):
    """Input data that cannot be used as it is; the message names the file and the line."""


@dataclass(frozen=True)
class TextSplit:
    """One split of a corpus. `read()` yields (line number, source, target) afresh each time; `src_name` and
    `tgt_name` name where each side comes from, for messages ("file:line")."""

    src_name: str
    tgt_name: str
    read: Callable[[], Iterator[Triple]]

    @property
    def where(self) -> str:
        return self.src_name if self.src_name == self.tgt_name else f"{self.src_name} / {self.tgt_name}"

    @classmethod
    def in_memory(cls, name: str, pairs: Sequence[tuple[str, str]]) -> TextSplit:
        return cls(name, name, lambda: ((i, s, t) for i, (s, t) in enumerate(pairs, 1)))

    @classmethod
    def from_files(cls, src: Path, tgt: Path) -> TextSplit:
        check_files([src, tgt])
        return cls(str(src), str(tgt), lambda: read_aligned(src, tgt))

    @classmethod
    def from_tsv(cls, path: Path) -> TextSplit:
        check_files([path])
        return cls(str(path), str(path), lambda: read_tsv(path))


class Source(Protocol):
    """A corpus: what the preprocessing cache is keyed by, and the text of its splits ("train", "val" and one or
    more test splits)."""

    def fingerprint(self) -> dict: ...

    def text_splits(self) -> dict[str, TextSplit]: ...


def check_files(paths: Sequence[Path]) -> None:
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise DataError(f"missing file{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    for p in paths:
        if Path(p).stat().st_size == 0:
            raise DataError(f"{p}: the file is empty")


def raw_lines(path: Path) -> Iterator[bytes]:
    """The lines of a plain or gzipped file as bytes; a damaged gzip file is a DataError naming it."""
    opener = gzip.open if str(path).endswith(".gz") else open
    n = 0
    try:
        with opener(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                yield raw
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}:{n + 1}: cannot read the file ({e})") from None
    if n == 0:
        raise DataError(f"{path}: the file is empty")


def read_lines(path: Path) -> Iterator[str]:
    """The lines of a UTF-8 text file, plain or gzipped, without their line endings or a leading byte-order mark."""
    for n, raw in enumerate(raw_lines(path), 1):
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}:{n}: invalid UTF-8 (byte {e.start + 1} of the line)") from None
        if n == 1:
            line = line.removeprefix(BOM)
        if control := CONTROL.search(line):
            code = ord(control.group())
            raise DataError(f"{path}:{n}: control character U+{code:04X} (character {control.start() + 1} of the "
                            f"line){'; is the file UTF-16?' if code == 0 else ''}")
        yield line


def read_aligned(src: Path, tgt: Path) -> Iterator[Triple]:
    for n, (s, t) in enumerate(zip_longest(read_lines(src), read_lines(tgt)), 1):
        if s is None or t is None:
            short, long = (src, tgt) if s is None else (tgt, src)
            raise DataError(f"{short} has {n - 1} lines but {long} has more: the files are not aligned"
                            f" (first unmatched line: {long}:{n})")
        yield n, s, t


def read_tsv(path: Path) -> Iterator[Triple]:
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            yield n, "", ""  # an empty line: dropped or refused like any other
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(f"{path}:{n}: expected 2 tab-separated fields (source, target), found {len(fields)}")
        yield n, fields[0], fields[1]


def count_lines(path: Path) -> int:
    return sum(1 for _ in raw_lines(path))


def sha256(path: Path) -> str:
    """The file's sha256, read in blocks (corpora can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def describe_files(paths: Sequence[Path]) -> list[list]:
    """What a cache key needs to know of input files: name, size and content hash (not where they live, so a moved
    or copied corpus keeps its cache; not their modification time, which copies do not keep)."""
    check_files(paths)
    return [[Path(p).name, Path(p).stat().st_size, sha256(Path(p))] for p in paths]


def sides(pairs: Iterator[Triple], side: str) -> Iterator[str]:
    """The source (side "src"), target ("tgt") or both ("both") lines of (line number, source, target) triples."""
    for _, src, tgt in pairs:
        if side != "tgt":
            yield src
        if side != "src":
            yield tgt
