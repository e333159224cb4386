"""Preprocessing, done once per corpus and tokenizer setting: train the tokenizer(s) on the training split, encode
every split in chunks, and keep the ids on disk as flat arrays that later runs (and every DDP rank) memory-map.

A cache directory is named by a hash of the inputs (the source's fingerprint: file names, sizes and modification
times, or generator settings) and the preprocessing settings, so a changed input or setting gets a new cache. It is
built in a temporary directory and renamed into place when complete; `meta.json` records the sizes and sha256 of
every file, so a truncated or corrupt cache is detected, reported and rebuilt. Memory stays flat in the corpus size:
lines are streamed, and only the per-pair index (line number, lengths: 24 bytes a pair) grows with it.

Layout of a cache directory:
    meta.json                          settings, counts, file sizes and checksums (written last)
    tokenizer.json | src.tokenizer.json, tgt.tokenizer.json
    {split}.src, {split}.tgt           all ids of a side end to end (uint16, or uint32 for large vocabularies)
    {split}.index.npy                  (N, 3) int64: line number, source length, target length
    {split}.text.json                  source and target text of the evaluation splits, for scoring
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from zoo.data.text import DataError, TextSplit
from zoo.data.tokenizer import Tokenizer, lines_of

VERSION = 1
CHUNK = 50_000  # pairs encoded at a time
EMPTY_LINES = ("drop", "error")


class DataWarning(UserWarning):
    """Input that was cleaned on the way in: empty or overlong lines dropped, a stale cache rebuilt."""


@dataclass(frozen=True)
class Settings:
    """How text becomes ids. `max_len` (subword tokens, either side) filters the training split only: evaluation
    splits are scored whole."""

    kind: str = "bpe"
    vocab_size: int = 8000
    joint: bool = True
    min_frequency: int = 2
    max_len: int | None = None
    empty_lines: str = "drop"

    def __post_init__(self):
        if self.empty_lines not in EMPTY_LINES:
            raise ValueError(f"empty_lines {self.empty_lines!r} is not one of {list(EMPTY_LINES)}")
        if self.max_len is not None and self.max_len < 1:
            raise ValueError(f"max_len ({self.max_len}) must be >= 1 or null")
        if self.vocab_size < 5:
            raise ValueError(f"vocab_size ({self.vocab_size}) must be >= 5")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


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


def prepare(source, root: Path, settings: Settings) -> Path:
    """The cache directory of `source` under `root`, built unless an intact one exists."""
    path = cache_dir_for(root, type(source).__name__.lower(), source.fingerprint(), settings)
    if path.exists():
        problem = problem_with(path)
        if problem is None:
            return path
        warnings.warn(f"rebuilding the data cache {path}: {problem}", DataWarning, stacklevel=2)
        shutil.rmtree(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        build(source.text_splits(), tmp, settings)
        os.replace(tmp, path)
    except OSError:
        if problem_with(path) is not None:  # unless another process finished the same cache first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def build(splits: dict[str, TextSplit], out: Path, settings: Settings) -> None:
    missing = {"train", "val"} - set(splits)
    if missing or len(splits) < 3:
        raise ValueError(f"a corpus needs train, val and at least one test split; got {sorted(splits)}")
    train = splits["train"]
    options = {"kind": settings.kind, "vocab_size": settings.vocab_size, "min_frequency": settings.min_frequency}
    if settings.joint:
        src_tok = tgt_tok = Tokenizer.train(lines_of(train.read(), "both"), **options)
        src_tok.save(out / "tokenizer.json")
    else:
        src_tok = Tokenizer.train(lines_of(train.read(), "src"), **options)
        tgt_tok = Tokenizer.train(lines_of(train.read(), "tgt"), **options)
        src_tok.save(out / "src.tokenizer.json")
        tgt_tok.save(out / "tgt.tokenizer.json")
    stats = {name: encode_split(name, split, src_tok, tgt_tok, out, settings) for name, split in splits.items()}
    files = {f.name: (f.stat().st_size, sha256(f)) for f in sorted(out.iterdir())}
    meta = {"version": VERSION, "settings": vars(settings), "splits": stats, "files": files}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))


def encode_split(name: str, split: TextSplit, src_tok: Tokenizer, tgt_tok: Tokenizer, out: Path,
                 settings: Settings) -> dict:
    """Encode one split into `out`; returns its counts."""
    dtype = np.uint16 if max(len(src_tok), len(tgt_tok)) <= 2**16 else np.uint32
    index, texts, empty, long = [], [], [], []
    evaluation = name != "train"
    pairs = split.read()
    with open(out / f"{name}.src", "wb") as src_file, open(out / f"{name}.tgt", "wb") as tgt_file, \
            tqdm(desc=f"tokenizing {name}", unit=" pairs", leave=False) as bar:
        while chunk := list(islice(pairs, CHUNK)):
            bar.update(len(chunk))
            kept = []
            for n, s, t in chunk:
                if s.strip() and t.strip():
                    kept.append((n, s, t))
                elif settings.empty_lines == "error":
                    raise DataError(f"{split.where}, line {n}: empty {'source' if not s.strip() else 'target'} line")
                else:
                    empty.append(n)
            if not kept:
                continue
            lines = np.array([n for n, _, _ in kept], np.int64)  # (N,)
            src_ids, src_len = src_tok.encode_lines([s for _, s, _ in kept])
            tgt_ids, tgt_len = tgt_tok.encode_lines([t for _, _, t in kept])
            if settings.max_len is not None and not evaluation:
                fits = (src_len <= settings.max_len) & (tgt_len <= settings.max_len)  # (N,)
                long.extend(lines[~fits].tolist())
                src_ids, tgt_ids = src_ids[np.repeat(fits, src_len)], tgt_ids[np.repeat(fits, tgt_len)]
                lines, src_len, tgt_len = lines[fits], src_len[fits], tgt_len[fits]
            src_file.write(src_ids.astype(dtype).tobytes())
            tgt_file.write(tgt_ids.astype(dtype).tobytes())
            index.append(np.stack([lines, src_len, tgt_len], 1))  # (N, 3)
            if evaluation:
                texts.extend((s, t) for _, s, t in kept)
    index = np.concatenate(index) if index else np.zeros((0, 3), np.int64)
    if len(index) == 0:
        raise DataError(f"{split.where}: no usable pairs (empty lines: {len(empty)}, longer than max_len: {len(long)})")
    np.save(out / f"{name}.index.npy", index)
    if evaluation:
        (out / f"{name}.text.json").write_text(json.dumps(texts, ensure_ascii=False))
    for lines, what in ((empty, "empty"), (long, f"longer than max_len={settings.max_len} tokens")):
        if lines:
            shown = ", ".join(map(str, lines[:5])) + (", ..." if len(lines) > 5 else "")
            warnings.warn(f"{split.where}: dropped {len(lines)} pairs with {what} lines (line {shown})",
                          DataWarning, stacklevel=3)
    return {"pairs": len(index), "src_tokens": int(index[:, 1].sum()), "tgt_tokens": int(index[:, 2].sum()),
            "dtype": np.dtype(dtype).name, "dropped_empty": len(empty), "dropped_long": len(long)}


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
            index = np.load(path / f"{name}.index.npy")

            def side(suffix: str, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                file = path / f"{name}.{suffix}"
                flat = (np.memmap(file, dtype=stats["dtype"], mode="r") if file.stat().st_size
                        else np.zeros(0, stats["dtype"]))  # numpy cannot map an empty file
                return flat, np.concatenate([[0], np.cumsum(lengths)])

            (src, src_start), (tgt, tgt_start) = side("src", index[:, 1]), side("tgt", index[:, 2])
            ids[name] = SplitIds(src, tgt, src_start, tgt_start, index[:, 0])
            if name != "train":
                texts[name] = [tuple(p) for p in json.loads((path / f"{name}.text.json").read_text())]
        return cls(src_tok, tgt_tok, ids, texts, meta["splits"])
