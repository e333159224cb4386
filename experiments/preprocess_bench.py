"""Preprocessing benchmark: tokenizer training plus encoding of a synthetic corpus of N sentence pairs into the id
cache (pairs/s, peak RSS, at two corpus sizes to show that memory does not grow with the corpus), and the padding
efficiency of token-budget batching against fixed-size random batches on Multi30k.

    python experiments/preprocess_bench.py [--pairs 1000000] [--multi30k ../shared/data/multi30k]

Each preprocessing run is a fresh child process, so its peak RSS is its own. Results go to
experiments/results/preprocess/ (bench.json and bench.md, with the machine, date and command).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from zoo.data.batching import TokenBudgetBatchSampler
from zoo.data.multi30k import Multi30k
from zoo.data.parallel import ParallelText
from zoo.data.preprocess import Corpus, Settings, prepare
from zoo.data.toy import ToyTranslation

SETTINGS = Settings(kind="bpe", vocab_size=8000, joint=True, max_len=200)


def write_corpus(folder: Path, n: int) -> ParallelText:
    """n training pairs of the embedded task's language pair (3-50 words), plus 1,000 for val and test."""
    splits = ToyTranslation(n_train=n, n_val=1000, n_test=1000, n_test_long=1).splits()
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
    corpus = Corpus.load(prepare(source, Path(cache), SETTINGS))
    seconds = time.perf_counter() - start
    ids_mb = sum(split.src.nbytes + split.tgt.nbytes for split in corpus.ids.values()) / 2**20
    print(json.dumps({"seconds": seconds, "pairs": corpus.stats["train"]["pairs"], "ids_mb": ids_mb,
                      "tokens": sum(s["src_tokens"] + s["tgt_tokens"] for s in corpus.stats.values())}))


def preprocess(n: int, workdir: Path) -> dict:
    folder = workdir / f"corpus-{n}"
    folder.mkdir()
    source = write_corpus(folder, n)
    (folder / "source.json").write_text(json.dumps({"train": source.train, "val": source.val, "test": source.test}))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run([sys.executable, __file__, "--child", str(folder), str(workdir / f"cache-{n}")],
                         check=True, capture_output=True, text=True).stdout
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = json.loads(out.strip().splitlines()[-1])
    total = n + 2000
    return {"train_pairs": n, "total_pairs": total, "seconds": result["seconds"],
            "pairs_per_s": total / result["seconds"], "tokens": result["tokens"], "ids_mb": result["ids_mb"],
            "peak_rss_mb": max(peak, before) / 2**10}


def padding(multi30k: Path, workdir: Path, max_tokens: int, batch_size: int) -> dict:
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
    parser.add_argument("--multi30k", default="../shared/data/multi30k")
    parser.add_argument("--out", default="experiments/results/preprocess")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [preprocess(n, Path(tmp)) for n in (args.small, args.pairs)]
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
             "| training pairs | seconds | pairs/s | tokens | ids on disk (MB) | peak RSS (MB) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['train_pairs']:,} | {r['seconds']:.1f} | {r['pairs_per_s']:,.0f} | {r['tokens']:,} "
              f"| {r['ids_mb']:.0f} | {r['peak_rss_mb']:.0f} |" for r in runs]
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
