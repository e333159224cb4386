"""The preprocessing cache: `prepare` returns a directory holding a corpus's tokenizers and ids, built by
`zoo.data.preprocess` unless an intact one exists; `Corpus.load` memory-maps it.

A cache directory is named by a hash of the inputs (the source's fingerprint: file names, sizes and content hashes,
or generator settings) and the preprocessing settings, so a changed input or setting gets a new cache. It is
built in a temporary directory and renamed into place when complete, under a file lock, so processes that start at
once (DDP ranks, parallel jobs) build it once; `meta.json` records the sizes and sha256 of every file, so a
truncated or corrupt cache is detected, reported and rebuilt.

Layout of a cache directory:
    meta.json                          settings, counts, timings, file sizes and checksums (written last)
    tokenizer.json | src.tokenizer.json, tgt.tokenizer.json
    {split}.src, {split}.tgt           all ids of a side end to end (uint16, or uint32 for large vocabularies)
    {split}.index.npy                  (N, 3) int64: line number, source length, target length
    {split}.text.json                  source and target text of the evaluation splits, for scoring
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.data import preprocess
from zoo.data.preprocess import DataWarning, Settings
from zoo.data.text import Source, sha256
from zoo.data.tokenizer import Tokenizer

VERSION = 1


def cache_dir_for(root: Path, name: str, fingerprint: dict, settings: Settings) -> Path:
    blob = json.dumps({"version": VERSION, "inputs": fingerprint, "settings": vars(settings)}, sort_keys=True)
    return Path(root) / f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def problem_with(path: Path) -> str | None:
    """Why the cache at `path` cannot be used, or None when it is complete and intact."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError) as e:
        return f"meta.json unreadable ({e.__class__.__name__})"
    if meta.get("version") != VERSION:
        return f"made by cache version {meta.get('version')}, this is version {VERSION}"
    for name, (size, digest) in meta["files"].items():
        file = path / name
        if not file.is_file() or file.stat().st_size != size:
            return f"{name} is missing or has the wrong size"
        if sha256(file) != digest:
            return f"{name} does not match its checksum"
    return None


def prepare(source: Source, root: Path, settings: Settings) -> Path:
    """The cache directory of `source` under `root`, built unless an intact one exists. Safe to call from several
    processes at once (DDP ranks, parallel jobs): one builds under a lock while the others wait, then reuse it."""
    path = cache_dir_for(root, type(source).__name__.lower(), source.fingerprint(), settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f"{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            problem = problem_with(path)
            if problem is None:
                return path
            warnings.warn(f"rebuilding the data cache {path}: {problem}", DataWarning, stacklevel=2)
            shutil.rmtree(path)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f"{path.name}.tmp-"))
        try:
            built = preprocess.build(source.text_splits(), tmp, settings)  # its module's: tests replace it
            meta = {"version": VERSION, "settings": vars(settings), **built}
            meta["files"] = {f.name: (f.stat().st_size, sha256(f)) for f in sorted(tmp.iterdir())}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            os.replace(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def memmap(file: Path, dtype: str) -> np.ndarray:
    if file.stat().st_size == 0:  # numpy cannot map an empty file
        return np.zeros(0, dtype)
    return np.memmap(file, dtype=dtype, mode="r")


@dataclass
class SplitIds:
    """One split's ids, memory-mapped: pair i is src[src_start[i]:src_start[i + 1]], likewise tgt."""

    src: np.ndarray
    tgt: np.ndarray
    src_start: np.ndarray  # (N + 1,)
    tgt_start: np.ndarray  # (N + 1,)
    lines: np.ndarray  # (N,) line numbers in the input

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray, np.ndarray]:
        return (i, self.src[self.src_start[i]:self.src_start[i + 1]].astype(np.int64),
                self.tgt[self.tgt_start[i]:self.tgt_start[i + 1]].astype(np.int64))

    @property
    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        return np.diff(self.src_start), np.diff(self.tgt_start)


@dataclass
class Corpus:
    """A loaded cache: tokenizers, ids of every split, texts of the evaluation splits, and the counts."""

    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    ids: dict[str, SplitIds]
    texts: dict[str, list[tuple[str, str]]]
    stats: dict[str, dict]

    @classmethod
    def load(cls, path: Path) -> Corpus:
        meta = json.loads((path / "meta.json").read_text())
        if (path / "tokenizer.json").exists():
            src_tok = tgt_tok = Tokenizer.load(path / "tokenizer.json")
        else:
            src_tok, tgt_tok = Tokenizer.load(path / "src.tokenizer.json"), Tokenizer.load(path / "tgt.tokenizer.json")
        ids, texts = {}, {}
        for name, stats in meta["splits"].items():
            index = np.load(path / f"{name}.index.npy")  # (N, 3): line number, source length, target length
            starts = [np.concatenate([[0], np.cumsum(index[:, k])]) for k in (1, 2)]  # (N + 1,) each
            src, tgt = (memmap(path / f"{name}.{side}", stats["dtype"]) for side in ("src", "tgt"))
            ids[name] = SplitIds(src, tgt, starts[0], starts[1], index[:, 0])
            if name != "train":
                texts[name] = [tuple(p) for p in json.loads((path / f"{name}.text.json").read_text())]
        return cls(src_tok, tgt_tok, ids, texts, meta["splits"])
