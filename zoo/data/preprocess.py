"""Preprocessing a corpus: train the tokenizer(s) on (a sample of) the training split, then encode every split in
chunks into flat id files, `zoo.data.cache` keeps the result. Memory stays flat in the corpus size: lines are
streamed, and only the per-pair index (line number, lengths: 24 bytes a pair) grows with it. A training split of
more than one chunk is encoded by a pool of processes, one per core.
"""
from __future__ import annotations

import json
import os
import random
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import chain, islice
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from zoo.data.text import DataError, TextSplit, Triple, sides
from zoo.data.tokenizer import KINDS, Tokenizer

CHUNK = 50_000  # pairs encoded at a time
EMPTY_LINES = ("drop", "error")


class DataWarning(UserWarning):
    """Input that was cleaned on the way in: empty or overlong lines dropped, a stale cache rebuilt."""


@dataclass(frozen=True)
class Settings:
    """How text becomes ids: the tokenizer (`kind`, `vocab_size`, `joint`, `min_frequency`, `lowercase`) and the
    cleaning. `max_len` (tokens, either side) filters the training split only: evaluation splits are scored whole.
    With `lowercase` the tokenizer folds case, as the text the Multi30k papers train on is lowercased: the model
    reads and writes lowercase (zoo.translate too, from the tokenizer in the checkpoint), and its translations are
    scored against case-folded references (sacreBLEU's signature then reads case:lc)."""

    kind: str = "bpe"
    vocab_size: int = 8000
    joint: bool = True
    min_frequency: int = 2
    tokenizer_sample: int | None = 100_000  # pairs the tokenizer learns from: a seeded sample of larger corpora
    max_len: int | None = None
    empty_lines: str = "drop"
    lowercase: bool = False

    def __post_init__(self):
        if not isinstance(self.lowercase, bool):
            raise ValueError(f"lowercase ({self.lowercase!r}) must be true or false")
        if self.kind not in KINDS:
            raise ValueError(f"tokenizer kind {self.kind!r} is not one of {list(KINDS)}")
        if self.min_frequency < 1:
            raise ValueError(f"min_frequency ({self.min_frequency}) must be >= 1")
        if self.empty_lines not in EMPTY_LINES:
            raise ValueError(f"empty_lines {self.empty_lines!r} is not one of {list(EMPTY_LINES)}")
        if self.max_len is not None and self.max_len < 1:
            raise ValueError(f"max_len ({self.max_len}) must be >= 1 or null")
        if self.tokenizer_sample is not None and self.tokenizer_sample < 1:
            raise ValueError(f"tokenizer_sample ({self.tokenizer_sample}) must be >= 1 or null")
        if self.vocab_size < 5:
            raise ValueError(f"vocab_size ({self.vocab_size}) must be >= 5")


def build(splits: dict[str, TextSplit], out: Path, settings: Settings) -> dict:
    """Tokenizer(s) and id files of every split in `out`; returns the counts of each split and the time taken."""
    missing = {"train", "val"} - set(splits)
    if missing or len(splits) < 3:
        raise ValueError(f"a corpus needs train, val and at least one test split; got {sorted(splits)}")
    train, start = splits["train"], time.perf_counter()
    sample = None if settings.tokenizer_sample is None else sample_pairs(train.read(), settings.tokenizer_sample)

    def lines(side: str) -> Iterator[str]:
        return sides(train.read() if sample is None else iter(sample), side)

    options = {"kind": settings.kind, "vocab_size": settings.vocab_size, "min_frequency": settings.min_frequency,
               "lowercase": settings.lowercase}
    if settings.joint:
        src_tok = tgt_tok = Tokenizer.train(lines("both"), **options)
        src_tok.save(out / "tokenizer.json")
    else:
        src_tok, tgt_tok = Tokenizer.train(lines("src"), **options), Tokenizer.train(lines("tgt"), **options)
        src_tok.save(out / "src.tokenizer.json")
        tgt_tok.save(out / "tgt.tokenizer.json")
    trained = time.perf_counter()
    stats = {name: encode_split(name, split, src_tok, tgt_tok, out, settings) for name, split in splits.items()}
    return {"splits": stats, "seconds": {"tokenizer": trained - start, "encoding": time.perf_counter() - trained}}


def sample_pairs(pairs: Iterator[Triple], k: int) -> list[Triple]:
    """A seeded uniform sample of k pairs of a stream (reservoir sampling), in stream order. Tokenizers learn from
    it, as SentencePiece's `input_sentence_size` has them do: the library counts every word of every line it is
    given, the costliest step of preprocessing a large corpus, while 100k pairs (200k sentences, millions of words)
    settle the statistics of the 8k-piece vocabularies used here. Raise it with `vocab_size`."""
    rng, sample = random.Random(f"tokenizer-sample-{k}"), []
    for i, pair in enumerate(pairs):
        if i < k:
            sample.append(pair)
        elif (j := rng.randrange(i + 1)) < k:
            sample[j] = pair
    return sorted(sample)


def encode_pairs(pairs: list[Triple], src_tok: Tokenizer, tgt_tok: Tokenizer, max_len: int | None) -> tuple:
    """Line numbers, ids and lengths of the pairs that fit in `max_len`, and the line numbers of those that do not."""
    line_numbers = np.array([n for n, _, _ in pairs], np.int64)  # (N,)
    src_ids, src_len = src_tok.encode_lines([s for _, s, _ in pairs])
    tgt_ids, tgt_len = tgt_tok.encode_lines([t for _, _, t in pairs])
    if max_len is None:
        return line_numbers, src_ids, src_len, tgt_ids, tgt_len, []
    fits = (src_len <= max_len) & (tgt_len <= max_len)  # (N,)
    src_ids, tgt_ids = src_ids[np.repeat(fits, src_len)], tgt_ids[np.repeat(fits, tgt_len)]
    return line_numbers[fits], src_ids, src_len[fits], tgt_ids, tgt_len[fits], line_numbers[~fits].tolist()


_worker_args: tuple = ()  # in a worker process of the pool below: its own tokenizers (and memos) and max_len


def _start_worker(src_json: str, tgt_json: str, max_len: int | None) -> None:
    global _worker_args
    _worker_args = (Tokenizer.from_str(src_json), Tokenizer.from_str(tgt_json), max_len)


def _encode_in_worker(pairs: list[Triple]) -> tuple:
    return encode_pairs(pairs, *_worker_args)


def worker_pool(processes: int, src_tok: Tokenizer, tgt_tok: Tokenizer, max_len: int | None):
    """Forked workers: they start at once and need no importable __main__ (spawned ones re-run the caller's
    script). The library's own threads stay off in them: it checks TOKENIZERS_PARALLELISM when forked."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        return get_context("fork").Pool(processes, _start_worker, (src_tok.tok.to_str(), tgt_tok.tok.to_str(), max_len))
    finally:
        if before is None:
            del os.environ["TOKENIZERS_PARALLELISM"]
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def nonempty_chunks(split: TextSplit, settings: Settings, empty_at: list[int], texts: list | None,
                    bar: tqdm) -> Iterator[list[Triple]]:
    """`split` in chunks of CHUNK pairs, without pairs that have an empty side (their line numbers go to
    `empty_at`; with empty_lines="error" the first one is an error); kept text goes to `texts` if given."""
    pairs = split.read()
    while chunk := list(islice(pairs, CHUNK)):
        bar.update(len(chunk))
        kept = [(n, s, t) for n, s, t in chunk if s.strip() and t.strip()]
        if len(kept) < len(chunk):
            n, s, t = next(p for p in chunk if not (p[1].strip() and p[2].strip()))
            if settings.empty_lines == "error":
                side, file = ("source", split.src_name) if not s.strip() else ("target", split.tgt_name)
                raise DataError(f"{file}:{n}: empty {side} line (data.preprocess.empty_lines=drop skips them)")
            empty_at.extend(n for n, s, t in chunk if not (s.strip() and t.strip()))
        if texts is not None:
            texts.extend((s, t) for _, s, t in kept)
        if kept:
            yield kept


def encode_split(name: str, split: TextSplit, src_tok: Tokenizer, tgt_tok: Tokenizer, out: Path,
                 settings: Settings) -> dict:
    """Encode one split into `out`, a chunk of pairs at a time; returns its counts. A training split of more
    than one chunk is encoded by a pool of processes, one per core, chunks in order."""
    dtype = np.uint16 if max(len(src_tok), len(tgt_tok)) <= 2**16 else np.uint32
    evaluation = name != "train"
    max_len = None if evaluation else settings.max_len
    index, texts, empty_at, long_at = [], [] if evaluation else None, [], []  # line numbers of dropped pairs
    with open(out / f"{name}.src", "wb") as src_file, open(out / f"{name}.tgt", "wb") as tgt_file, \
            tqdm(desc=f"tokenizing {name}", unit=" pairs", leave=False) as bar, ExitStack() as stack:
        chunks = nonempty_chunks(split, settings, empty_at, texts, bar)
        first = next(chunks, [])
        cores = len(os.sched_getaffinity(0))
        if evaluation or len(first) < CHUNK or cores < 2:
            encoded = (encode_pairs(c, src_tok, tgt_tok, max_len) for c in chain([first], chunks) if c)
        else:
            pool = stack.enter_context(worker_pool(cores, src_tok, tgt_tok, max_len))
            encoded = pool.imap(_encode_in_worker, chain([first], chunks))
        for line_numbers, src_ids, src_len, tgt_ids, tgt_len, too_long in encoded:
            long_at.extend(too_long)
            src_file.write(src_ids.astype(dtype).tobytes())
            tgt_file.write(tgt_ids.astype(dtype).tobytes())
            index.append(np.stack([line_numbers, src_len, tgt_len], 1))  # (N, 3)
    index = np.concatenate(index) if index else np.zeros((0, 3), np.int64)
    if len(index) == 0:
        raise DataError(f"{split.where}: no usable pairs ({len(empty_at)} with an empty side, {len(long_at)} longer "
                        f"than max_len)")
    np.save(out / f"{name}.index.npy", index)
    if evaluation:
        (out / f"{name}.text.json").write_text(json.dumps(texts, ensure_ascii=False))
    for dropped, why in ((empty_at, "with an empty side"), (long_at, f"longer than max_len={settings.max_len} tokens")):
        if dropped:
            shown = ", ".join(map(str, dropped[:5])) + (", ..." if len(dropped) > 5 else "")
            warnings.warn(f"{split.where}: dropped {len(dropped)} pairs {why} (lines {shown})", DataWarning,
                          stacklevel=3)
    return {"pairs": len(index), "src_tokens": int(index[:, 1].sum()), "tgt_tokens": int(index[:, 2].sum()),
            "dtype": np.dtype(dtype).name, "dropped_empty": len(empty_at), "dropped_long": len(long_at)}


