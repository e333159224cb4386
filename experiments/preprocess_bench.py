"""Preprocessing benchmark: tokenizer training plus encoding of a synthetic corpus of N sentence pairs into the id
cache (pairs/s, peak RSS, at two corpus sizes to show that memory does not grow with the corpus; for sentences of
Multi30k's length and of WMT's), and the padding efficiency of token-budget batching against fixed-size random
batches on Multi30k.

    python experiments/preprocess_bench.py [--pairs 1000000] [--multi30k ../shared/data/multi30k]

The synthetic corpus is the embedded task's language pair with source lengths uniform in 3..max_len words
(--max-len 25: about 14 words a sentence, like Multi30k; 50: about 26, like WMT). Each preprocessing run is a fresh
child process; peak memory is the largest sum of resident memory (PSS) over it and its worker processes,
sampled every 20 ms. Results go to
experiments/results/preprocess/ (bench.json and bench.md, with the machine, date and command).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from zoo.data.parallel import ParallelText
from zoo.data.cache import Corpus, prepare
from zoo.data.preprocess import Settings
from zoo.data.toy import ToyTranslation

SETTINGS = Settings(kind="bpe", vocab_size=8000, joint=True, max_len=200)


def write_corpus(folder: Path, n: int, max_len: int) -> ParallelText:
    """n training pairs of the embedded task's language pair (3..max_len words), plus 1,000 for val and test."""
    splits = ToyTranslation(n_train=n, n_val=1000, n_test=1000, n_test_long=1, max_len=max_len).splits()
    files = {}
    for name in ("train", "val", "test"):
        files[name] = [str(folder / f"{name}.src"), str(folder / f"{name}.tgt")]
        with open(files[name][0], "w") as s, open(files[name][1], "w") as t:
            for src, tgt in splits[name]:
                s.write(src + "\n")
                t.write(tgt + "\n")
    return ParallelText(train=files["train"], val=files["val"], test=files["test"])


def child(folder: str, cache: str) -> None:
    """Preprocess the corpus in `folder`; print the timing as JSON (peak RSS is read by the parent)."""
    source = ParallelText(**json.loads((Path(folder) / "source.json").read_text()))
    start = time.perf_counter()
    path = prepare(source, Path(cache), SETTINGS)
    corpus = Corpus.load(path)
    seconds = time.perf_counter() - start
    phases = json.loads((path / "meta.json").read_text())["seconds"]
    ids_mb = sum(split.src.nbytes + split.tgt.nbytes for split in corpus.ids.values()) / 2**20
    print(json.dumps({"seconds": seconds, "phases": phases, "pairs": corpus.stats["train"]["pairs"], "ids_mb": ids_mb,
                      "tokens": sum(s["src_tokens"] + s["tgt_tokens"] for s in corpus.stats.values())}))


def tree_pss_mb(pid: int) -> float:
    """Memory of process `pid` and all its descendants, from /proc: the sum of their proportional set sizes (PSS),
    which counts a page shared by k forked processes 1/k times in each, so the sum is what the tree really holds."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, total = {pid}, 0.0
    while grown := {p for p, parent in parents.items() if parent in tree and p not in tree}:
        tree |= grown
    for p in tree:
        try:
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
            total += int(next(line for line in rollup.splitlines() if line.startswith("Pss:")).split()[1]) / 2**10
        except (OSError, StopIteration):
            continue
    return total


def preprocess(n: int, max_len: int, workdir: Path) -> dict:
    folder = workdir / f"corpus-{n}-{max_len}"
    folder.mkdir()
    source = write_corpus(folder, n, max_len)
    (folder / "source.json").write_text(json.dumps({"train": source.train, "val": source.val, "test": source.test}))
    child = subprocess.Popen([sys.executable, __file__, "--child", str(folder), str(workdir / f"cache-{n}-{max_len}")],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = 0.0
    while child.poll() is None:
        peak = max(peak, tree_pss_mb(child.pid))
        time.sleep(0.02)
    if child.returncode:
        raise RuntimeError(f"preprocessing {folder} failed with exit code {child.returncode}")
    result = json.loads(child.stdout.read().strip().splitlines()[-1])
    total = n + 2000
    words = sum(len(line.split()) for name in ("src", "tgt") for line in open(folder / f"train.{name}"))
    return {"train_pairs": n, "max_len": max_len, "words_per_sentence": words / (2 * n), "total_pairs": total,
            "seconds": result["seconds"], "tokenizer_s": result["phases"]["tokenizer"],
            "encoding_s": result["phases"]["encoding"], "pairs_per_s": total / result["seconds"],
            "encoding_pairs_per_s": total / result["phases"]["encoding"], "tokens": result["tokens"],
            "ids_mb": result["ids_mb"], "peak_memory_mb": peak}


def padding(multi30k: Path, workdir: Path, max_tokens: int, batch_size: int) -> dict:
    from zoo.data.batching import TokenBudgetBatchSampler  # here: the preprocessing children need no torch
    from zoo.data.multi30k import Multi30k

    corpus = Corpus.load(prepare(Multi30k(root=str(multi30k)), workdir / "m30k", Settings()))
    src, tgt = corpus.ids["train"].lengths
    tgt = tgt + 1  # BOS/EOS
    budget = TokenBudgetBatchSampler(src, tgt, max_tokens=max_tokens, shuffle=True).padding_efficiency()
    order = np.random.default_rng(0).permutation(len(src))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    real = sum(int(src[b].sum() + tgt[b].sum()) for b in batches)
    padded = sum(len(b) * int(src[b].max() + tgt[b].max()) for b in batches)
    return {"token_budget": budget, "max_tokens": max_tokens, "random_fixed_size": real / padded,
            "batch_size": batch_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000, help="the smaller corpus, for memory growth")
    parser.add_argument("--max-len", type=int, nargs="+", default=[25, 50], help="longest sentence, in words")
    parser.add_argument("--multi30k", default="../shared/data/multi30k")
    parser.add_argument("--out", default="experiments/results/preprocess")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [preprocess(n, max_len, Path(tmp)) for max_len in args.max_len for n in (args.small, args.pairs)]
        pad = padding(Path(args.multi30k), Path(tmp), max_tokens=4096, batch_size=128)
    results = {
        "command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python "
                   f"{platform.python_version()}", "settings": vars(SETTINGS), "preprocess": runs, "padding": pad,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=1))
    lines = [f"# Preprocessing benchmark\n\n`{results['command']}` on {results['machine']}, {results['date']}.\n",
             "| training pairs | words a sentence | seconds: all (tokenizer + encoding) | pairs/s: all (encoding) "
             "| tokens | ids on disk (MB) | peak memory (MB) |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['train_pairs']:,} | {r['words_per_sentence']:.1f} | {r['seconds']:.1f} ({r['tokenizer_s']:.1f} + "
              f"{r['encoding_s']:.1f}) | {r['pairs_per_s']:,.0f} ({r['encoding_pairs_per_s']:,.0f}) | {r['tokens']:,} "
              f"| {r['ids_mb']:.0f} | {r['peak_memory_mb']:.0f} |" for r in runs]
    lines += ["", f"Padding efficiency on Multi30k train (real tokens / all tokens): token budget {pad['max_tokens']} "
              f"from length-sorted pools {100 * pad['token_budget']:.1f}%, fixed {pad['batch_size']}-pair random "
              f"batches {100 * pad['random_fixed_size']:.1f}%."]
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:4])
    else:
        main()
