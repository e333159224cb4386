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
import torch

from zoo.data import preprocess
from zoo.data.preprocess import DataWarning, Settings
from zoo.data.text import DataError, Source, sha256
from zoo.data.tokenizer import Tokenizer

# Raised whenever the same inputs would be preprocessed differently (2: byte-order marks dropped, control characters
# refused), so that no cache made by the older code is reused.
VERSION = 2


# Settings added after caches were first built, and their defaults: at the default they are left out of a cache's
# name, so the caches (and the runs resumed on them) of the settings before them keep their names.
LATER_SETTINGS = {"lowercase": False}


def cache_dir_for(root: Path, name: str, fingerprint: dict, settings: Settings) -> Path:
    named = {k: v for k, v in vars(settings).items() if k not in LATER_SETTINGS or v != LATER_SETTINGS[k]}
    blob = json.dumps({"version": VERSION, "inputs": fingerprint, "settings": named}, sort_keys=True)
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

    def check_fits(self, source: Source, max_positions: int | None, *, max_len_a: float, max_len_b: int,
                   references_fed: bool = False) -> None:
        """Refuse, before any training, a pair that a model of `max_positions` positions (None: any) cannot take:
        a source longer than that; a target that with its BOS is longer, in train and val (the loss is
        teacher-forced), and in the test splits too with `references_fed` (oracle-length decoding and the
        exposure-bias measurement feed the model each reference's length or prefix); a translation whose length
        limit (max_len_a * source length + max_len_b, as decoding computes it) with its BOS is longer, in any split
        (evaluation splits are decoded whole, never filtered, and training pairs may be decoded too). The DataError
        names the first such line; `source` is read for the file names then, not before."""
        if max_positions is None:
            return
        for name, split in self.ids.items():
            src_len, tgt_len = split.lengths  # (N,) each
            limit = (torch.as_tensor(src_len) * max_len_a + max_len_b).long().numpy()  # (N,) as decoding.length_limits
            needs = {"source": src_len, "target": tgt_len + 1, "translation": limit + 1}  # positions each pair needs
            if name not in ("train", "val") and not references_fed:
                del needs["target"]  # a test target is only a reference here, never fed to the model
            over = np.logical_or.reduce([need > max_positions for need in needs.values()])  # (N,)
            if not over.any():
                continue
            i = int(over.argmax())
            what = next(what for what, need in needs.items() if need[i] > max_positions)
            text = source.text_splits()[name]
            where = f"{text.tgt_name if what == 'target' else text.src_name}:{split.lines[i]}"
            S, T, L = int(src_len[i]), int(tgt_len[i]), int(limit[i])
            problem = {"source": f"the source has {S} tokens",
                       "target": f"the target has {T} tokens, {T + 1} with BOS",
                       "translation": f"its {S} source tokens allow a translation of {L} tokens (decode.max_len_a "
                                      f"* {S} + decode.max_len_b), {L + 1} with BOS"}[what]
            fix = ("data.preprocess.max_len drops long training pairs" if name == "train" else
                   f"{name} is scored whole, so shorten or remove the line"
                   + (", or lower decode.max_len_a or decode.max_len_b" if what == "translation" else ""))
            more = f" (and {over.sum() - 1} more pairs of {name})" if over.sum() > 1 else ""
            raise DataError(f"{where}: {problem}, more than the model's max_positions ({max_positions}){more}; {fix}")
