"""Which precision trains faster on this CPU: each default model (conf/model/) timed in fp32 and in bf16 autocast,
side by side in one process, on the embedded task's training batches as a run draws them:

    python experiments/precision.py                    # gru, attention, transformer; 40 batches a pass
    python experiments/precision.py --models transformer --batches 80
    python experiments/precision.py data.source.n_train=2000   # any override of the run config (conf/)

A run's token-budget batches come in many shapes (rows x source length x target length), so most of its matrix
products have a shape the process has not multiplied before. bf16 products go through oneDNN, which builds a kernel
for each new shape; fp32 products do not. So each model is timed three ways over the same batches: bf16 on shapes
new to the process ("bf16, new shapes": what a run sees), fp32, and bf16 again on those same shapes ("bf16, shapes
seen": what experiments/bench.py times, after its warm-up pass; fully seen only while oneDNN's cache, 1,024 kernels
by default, holds a pass's worth). zoo.resolvers.cpu_precision's rule was decided from these. Each step is forward,
the model's label-smoothed loss, backward and a fused Adam update (no gradient clipping).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import torch
from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import compose_config, real_tokens  # noqa: E402  (this folder's: the run config, tokens as runs count them)
from zoo.metrics import device_name  # noqa: E402
from zoo.module import label_smoothed_nll  # noqa: E402
from zoo.resolvers import cpu_precision  # noqa: E402


def tokens_per_s(net, batches: list[dict], *, pad_id: int, epsilon: float, bf16: bool) -> float:
    """Real (unpadded) source and target tokens per second of training `net` once over `batches`."""
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4, fused=True)
    tokens = real_tokens(batches, pad_id)
    start = time.perf_counter()
    for b in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(b["src"], b["src_mask"], b["tgt_in"])  # (B, T, V)
        label_smoothed_nll(logits, b["tgt_out"], pad_id=pad_id, epsilon=epsilon).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="gru,attention,transformer")
    parser.add_argument("--batches", type=int, default=40, help="training batches a pass")
    parser.add_argument("--out", type=Path, default=Path("precision.json"))
    parser.add_argument("overrides", nargs="*", help="overrides of the run config, e.g. data.cache_dir=/tmp/cache")
    args = parser.parse_args()
    if args.out.exists():
        sys.exit(f"error: {args.out} already exists; choose another --out")
    results: dict = {"device": device_name(torch.device("cpu")), "torch": torch.__version__,
                     "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": sys.argv,
                     "batches": args.batches, "cpu_precision": cpu_precision(), "models": {}}
    print(f"{results['device']}; torch {torch.__version__}; {args.batches} batches a pass; trainer=cpu picks "
          f"{results['cpu_precision']} here", flush=True)
    print(f"{'model':<12} {'fp32':>10} {'bf16, new shapes':>18} {'bf16, shapes seen':>18}   tokens/s (bf16 / fp32)")
    for name in args.models.split(","):
        cfg = compose_config([f"model={name}", *args.overrides])
        dm = instantiate(cfg.data)
        dm.setup()
        loader = iter(dm.loader("train", shuffle=True))
        warm_up, batches = next(loader), [next(loader) for _ in range(args.batches)]
        pad = dm.tgt_tokenizer.pad_id
        torch.manual_seed(0)
        net = instantiate(cfg.model.net)(src_vocab_size=len(dm.src_tokenizer), tgt_vocab_size=len(dm.tgt_tokenizer),
                                         pad_id=pad)
        net.train()
        timed = partial(tokens_per_s, net, pad_id=pad, epsilon=cfg.model.label_smoothing)
        for bf16 in (False, True):  # one batch each: first calls, allocator, thread pool
            timed([warm_up], bf16=bf16)
        rate = {"bf16_new_shapes": timed(batches, bf16=True), "fp32": timed(batches, bf16=False),
                "bf16_shapes_seen": timed(batches, bf16=True)}
        results["models"][name] = rate
        new, seen = rate["bf16_new_shapes"], rate["bf16_shapes_seen"]
        print(f"{name:<12} {rate['fp32']:>10,.0f} {new:>10,.0f} ({new / rate['fp32']:.2f}×)"
              f" {seen:>10,.0f} ({seen / rate['fp32']:.2f}×)", flush=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
