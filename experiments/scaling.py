"""The cost table of Vaswani et al. 2017 (Table 1), measured: how each architecture's time and memory grow with the
sequence length n.

    python experiments/scaling.py                               # CPU: width 256, batch 8, n = 16 .. 1024
    python experiments/scaling.py --preset gpu --device cuda    # width 512, batch 64, n = 16 .. 4096

All three architectures at one width with one layer each way, the textbook table's comparison of one layer with
another (and about as many parameters); source and target both n tokens, n doubling. For each n it measures, in bf16
autocast (as runs train where the CPU has bf16 hardware without AMX, and on GPUs):
- a training step on B pairs: forward, label-smoothed loss, backward, fused Adam;
- greedy decoding of n tokens from n-token sources, EOS barred so that every row runs all n steps; the Transformer
  with its key/value cache (the zoo's `greedy_search`) and without it (the whole prefix recomputed at each step).
Times are per target token (each with its source token): a training step's over B·n, decoding's per generated token.
Time: after a warm-up, the median of --repeats runs, or of as many as fill a second (the preset's `fill`; up to 50),
or of one run where the warm-up took over 10 s. Memory: the most tensor memory the run holds at once above what was
allocated before it (model, optimizer state): the allocator's statistics on CUDA, `PeakMemory` on the CPU. FLOPs:
the models' own `forward_flops` and `decode_flops`. A length whose time or memory, extrapolated from the shorter
ones, would exceed --budget or the free memory is skipped, and so are the longer ones of that phase; so is one that
fails (and the script then exits with an error, after writing its results). Writes scaling.json (every figure),
scaling.md and scaling.png.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import time
import weakref
from datetime import datetime, timezone
from pathlib import Path

import psutil
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

sys.path.insert(0, str(Path(__file__).parent))
from references import recompute_greedy  # noqa: E402

from zoo.decoding import greedy_search  # noqa: E402
from zoo.metrics import device_name, matmul_peak_flops  # noqa: E402
from zoo.models import REGISTRY, EncoderDecoder, architectures  # noqa: E402
from zoo.module import label_smoothed_nll  # noqa: E402
from zoo.plots import scaling_figure  # noqa: E402

PAD, BOS, EOS = 0, 1, 2
PRESETS = {  # common width, batch rows, lengths, target vocabulary (and source), seconds allowed per measurement,
    # seconds that the timed runs of a short measurement fill at least
    "cpu": {"width": 256, "batch": 8, "lengths": [16 * 2**i for i in range(7)], "vocab": 1000, "budget": 90,
            "fill": 1.0},
    "gpu": {"width": 512, "batch": 64, "lengths": [16 * 2**i for i in range(9)], "vocab": 1000, "budget": 60,
            "fill": 1.0},
    "tiny": {"width": 32, "batch": 2, "lengths": [4, 8, 16], "vocab": 50, "budget": 60, "fill": 0.0},
}
LONG_RUN_S = 10  # a run this long is timed once: it varies little
# every registered architecture that says how to build it at one width (its class's at_width), in the zoo's order;
# a phase lists those whose theory has it (the RNNs cache nothing but a state, so "decode, no cache" is not theirs)
ARCHS = tuple(a.name for a in architectures() if a.cls.at_width.__func__ is not EncoderDecoder.at_width.__func__)
PHASES = {phase: tuple(arch for arch in ARCHS if REGISTRY[arch].cls.cost(phase, True) is not None)
          for phase in ("train", "decode", "decode, no cache")}


def build(arch: str, *, width: int, vocab: int, max_len: int) -> EncoderDecoder:
    """The architecture at one width D with one layer each way (its class's `at_width`)."""
    common = {"src_vocab_size": vocab, "tgt_vocab_size": vocab, "pad_id": PAD, "dropout": 0.1}
    return REGISTRY[arch].cls.at_width(width, max_len=max_len, **common)


def theory(arch: str, phase: str, explicit_attention: bool) -> tuple[int, int]:
    """Asymptotic exponents in n of (time per sequence, peak memory) at fixed width and batch (its class's `cost`)."""
    return REGISTRY[arch].cls.cost(phase, explicit_attention)


class PeakMemory(TorchDispatchMode):
    """The most bytes of tensor storage allocated inside the `with` block and alive at once: CUDA's
    max_memory_allocated, for the CPU, whose allocator keeps no statistics. It sees every tensor an operator returns,
    the backward pass's too; not scratch memory a kernel frees before it returns, nor tensors made before the block
    (an operator's output that shares an input's storage is not a new allocation)."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self.counted = WeakIdKeyDictionary()  # storages allocated inside the block

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {id(t.untyped_storage()) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and id(storage := t.untyped_storage()) not in inputs:
                self.count(storage)
        return out

    def count(self, storage) -> None:
        if storage in self.counted:
            return
        self.counted[storage] = nbytes = storage.nbytes()
        self.live += nbytes
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self.free, nbytes)

    def free(self, nbytes: int) -> None:
        self.live -= nbytes


class Bench:
    """Measures one architecture, phase and length at a time on `device`, with fresh random batches of B pairs."""

    def __init__(self, device: torch.device, *, width: int, batch: int, vocab: int, max_len: int, repeats: int,
                 fill: float = 1.0):
        self.device, self.width, self.batch, self.vocab, self.max_len = device, width, batch, vocab, max_len
        self.repeats, self.fill, self.parameters = repeats, fill, {}  # parameters: arch -> count, of those measured
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def seconds(self, run, repeats: int) -> float:
        """Median seconds of `run()` over `repeats` runs; the caller has warmed it up."""
        times = []
        for _ in range(repeats):
            self.sync()
            start = time.perf_counter()
            run()
            self.sync()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    def peak_bytes(self, run) -> int:
        """The most memory `run()` holds at once, above what was allocated before it."""
        if self.device.type == "cuda":
            self.sync()
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            run()
            self.sync()
            return torch.cuda.max_memory_allocated(self.device) - before
        with PeakMemory() as memory:
            run()
        return memory.peak

    def free_bytes(self) -> int:
        if self.device.type == "cuda":
            return torch.cuda.mem_get_info(self.device)[0]
        return psutil.virtual_memory().available

    def batch_of(self, n: int) -> dict:
        """B random pairs of n source and n target tokens, no padding."""
        src = torch.randint(EOS + 1, self.vocab, (self.batch, n), device=self.device)  # (B, n)
        tgt = torch.randint(EOS + 1, self.vocab, (self.batch, n), device=self.device)  # (B, n)
        bos = torch.full((self.batch, 1), BOS, device=self.device)
        return {"src": src, "src_mask": torch.ones_like(src, dtype=torch.bool),
                "tgt_in": torch.cat([bos, tgt[:, :-1]], 1), "tgt_out": tgt}  # (B, n) each

    def runner(self, net: EncoderDecoder, phase: str, n: int):
        """A no-argument function that runs `phase` once on a fresh batch of length n, and its FLOPs."""
        b = self.batch_of(n)
        if phase == "train":
            net.train()
            optimizer = torch.optim.Adam(net.parameters(), lr=1e-4, fused=True)

            def run():
                with self.autocast:
                    logits = net(b["src"], b["src_mask"], b["tgt_in"])  # (B, n, V)
                label_smoothed_nll(logits, b["tgt_out"], pad_id=PAD, epsilon=0.1).backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            return run, 3 * self.batch * int(net.forward_flops(n, n))  # the backward pass costs about 2x the forward

        net.eval()
        if phase == "decode":
            def run():
                with self.autocast:
                    out = greedy_search(net, b["src"], b["src_mask"], bos_id=BOS, eos_id=EOS, max_len_a=0.0,
                                        max_len_b=n)
                if any(len(row) != n for row in out):
                    raise RuntimeError(f"greedy search stopped before {n} tokens")
            return run, self.batch * int(net.decode_flops(n, n))

        def run():
            with torch.no_grad(), self.autocast:
                recompute_greedy(net, b["src"], b["src_mask"], bos_id=BOS, steps=n)
        prefixes = torch.arange(1, n + 1)  # the decoder reruns 1, 2, .. n target positions; the encoder runs once
        decoder = net.forward_flops(n, prefixes) - net.forward_flops(n, 0)  # (n,)
        return run, self.batch * int(net.forward_flops(n, 0) + decoder.sum())

    def measure(self, arch: str, phase: str, n: int) -> dict:
        torch.manual_seed(0)
        net = build(arch, width=self.width, vocab=self.vocab, max_len=self.max_len).to(self.device)
        self.parameters[arch] = sum(p.numel() for p in net.parameters())
        if phase != "train":
            with torch.no_grad():
                net.decoder.out.bias[EOS] = -1e4  # EOS never wins: every row decodes n tokens
        run, flops = self.runner(net, phase, n)
        start = time.perf_counter()
        run()  # warm-up: kernel choice, caches, the optimizer's state
        self.sync()
        warm_up = time.perf_counter() - start
        repeats = 1 if warm_up > LONG_RUN_S else max(self.repeats, min(50, math.ceil(self.fill / warm_up)))
        peak = self.peak_bytes(run)
        seconds = self.seconds(run, repeats)
        per_sequence = seconds / self.batch
        return {"arch": arch, "phase": phase, "n": n, "status": "ok", "runs": repeats, "seconds": seconds,
                "per_sequence_s": per_sequence, "per_token_s": per_sequence / n, "flops": flops,
                "flops_per_s": flops / seconds, "peak_bytes": peak}


def fit_exponent(points: list[tuple[float, float]]) -> float | None:
    """The least-squares slope of log y against log n over the upper half of the (n, y) points: the exponent k of
    y ~ n^k where the largest terms dominate."""
    upper = sorted(points)[len(points) // 2:]
    if len(upper) < 2:
        return None
    return statistics.linear_regression([math.log(n) for n, _ in upper], [math.log(y) for _, y in upper]).slope


def crossover(a: dict[int, float], b: dict[int, float]) -> dict:
    """Where a's and b's times per token cross, {n: time} each: the lengths at which the faster one changes,
    interpolated on the log-log lines between measured lengths; and which one is faster at either end."""
    lengths = sorted(set(a) & set(b))
    gaps = [math.log(a[n] / b[n]) for n in lengths]  # < 0: a faster
    crossings = [math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * g_lo / (g_lo - g_hi))
                 for lo, hi, g_lo, g_hi in zip(lengths, lengths[1:], gaps, gaps[1:]) if g_lo * g_hi < 0]
    return {"crossings": crossings, "lengths": [lengths[0], lengths[-1]] if lengths else [],
            "a_faster_at": [n for n, g in zip(lengths, gaps) if g < 0]}


def summarize(rows: list[dict], explicit_attention: bool) -> dict:
    """The fitted exponents beside the theory and the FLOP count, and the Transformer's crossovers with each other
    architecture (its decoding without the cache against theirs, which need none)."""
    ok = [r for r in rows if r["status"] == "ok"]
    exponents = {}
    for phase, archs in PHASES.items():
        for arch in archs:
            mine = [r for r in ok if r["arch"] == arch and r["phase"] == phase]
            time_k, memory_k = theory(arch, phase, explicit_attention)
            exponents[f"{arch}, {phase}"] = {
                "time": fit_exponent([(r["n"], r["per_sequence_s"]) for r in mine]),
                "flops": fit_exponent([(r["n"], r["flops"]) for r in mine]),
                "memory": fit_exponent([(r["n"], r["peak_bytes"]) for r in mine if r["peak_bytes"] > 0]),
                "theory_time": time_k, "theory_memory": memory_k}
    per_token = {(r["arch"], r["phase"]): {} for r in ok}
    for r in ok:
        per_token[r["arch"], r["phase"]][r["n"]] = r["per_token_s"]
    crossovers = {}
    for transformer_phase, rnn_phase in [("train", "train"), ("decode", "decode"), ("decode, no cache", "decode")]:
        for other in ARCHS:
            if other != "transformer" and {("transformer", transformer_phase), (other, rnn_phase)} <= set(per_token):
                crossovers[f"transformer {transformer_phase} vs {other} {rnn_phase}"] = crossover(
                    per_token["transformer", transformer_phase], per_token[other, rnn_phase])
    return {"exponents": exponents, "crossovers": crossovers}


def predicted_over(done: list[dict], exponents: tuple[int, int], n: int, budget: float, free: int,
                   repeats: int) -> str | None:
    """Why the measurement at n would not fit: time grows as over the last two lengths (at least linearly, at
    most as the theory says), memory as the theory says; a measurement is a warm-up, a memory pass and the timed
    runs, as `Bench.measure` does them."""
    if not done:
        return None
    last, time_k = done[-1], exponents[0]
    if len(done) > 1:
        recent = math.log(last["seconds"] / done[-2]["seconds"]) / math.log(last["n"] / done[-2]["n"])
        time_k = min(max(recent, 1.0), time_k)
    growth = n / last["n"]
    one = last["seconds"] * growth**time_k
    if one * (3 if one > LONG_RUN_S else repeats + 2) > budget:
        return f"over the time budget ({budget:.0f} s)"
    if last["peak_bytes"] * growth ** exponents[1] > 0.8 * free:
        return "over the free memory"
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=PRESETS, default="cpu")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (the median counts)")
    parser.add_argument("--lengths", type=int, nargs="+", help="instead of the preset's")
    parser.add_argument("--budget", type=float, help="seconds allowed per measurement, all its runs together")
    parser.add_argument("--out", type=Path, default=Path("scaling"), help="directory for the results")
    parser.add_argument("--redraw", type=Path, metavar="DIR", help="measure nothing: write DIR's scaling.md and "
                        "scaling.png again from its scaling.json")
    args = parser.parse_args(argv)
    if args.redraw:
        if not (args.redraw / "scaling.json").is_file():
            sys.exit(f"error: {args.redraw / 'scaling.json'} does not exist")
        write_views(json.loads((args.redraw / "scaling.json").read_text()), args.redraw)
        return
    preset = PRESETS[args.preset]
    lengths = sorted(args.lengths or preset["lengths"])
    budget = preset["budget"] if args.budget is None else args.budget
    if len(set(lengths)) != len(lengths) or lengths[0] < 2:
        parser.error(f"--lengths ({' '.join(map(str, lengths))}) must be different numbers, each at least 2")
    if args.repeats < 1:
        parser.error(f"--repeats ({args.repeats}) must be at least 1")
    if (args.out / "scaling.json").exists():
        sys.exit(f"error: {args.out / 'scaling.json'} already exists; choose another --out")
    code = commit()  # before measuring: what ran, whatever changes meanwhile
    device = torch.device(args.device)
    bench = Bench(device, width=preset["width"], batch=preset["batch"], vocab=preset["vocab"],
                  max_len=max(lengths), repeats=args.repeats, fill=preset["fill"])
    explicit_attention = device.type == "cpu"  # scaled_dot_product's default: the formula as written on the CPU
    print(f"{device_name(device)}; torch {torch.__version__}; width {bench.width}, batch {bench.batch}, "
          f"n = {', '.join(map(str, lengths))}", flush=True)
    peak_flops = matmul_peak_flops(device, torch.bfloat16)

    rows = []
    for phase, archs in PHASES.items():
        for arch in archs:
            done = []
            for n in lengths:
                skip = predicted_over(done, theory(arch, phase, explicit_attention), n, budget, bench.free_bytes(),
                                      args.repeats)
                if skip is None:
                    try:
                        row = bench.measure(arch, phase, n)
                    except torch.OutOfMemoryError:
                        skip = "out of memory"
                    except RuntimeError as e:  # recorded, so that one failure costs a GPU call no more than this
                        skip = f"failed: {str(e).splitlines()[0]}"
                if skip is not None:  # and so are the longer lengths
                    rows += [{"arch": arch, "phase": phase, "n": m, "status": f"skipped: {skip}"}
                             for m in lengths if m >= n]
                    print(f"{arch:<12} {phase:<17} n={n:<5} skipped, and longer ones: {skip}", flush=True)
                    break
                rows.append(row)
                done.append(row)
                print(f"{arch:<12} {phase:<17} n={n:<5} {row['seconds']:9.4f} s  {1e6 * row['per_token_s']:9.2f} "
                      f"us/token  {row['flops_per_s'] / 1e9:8.1f} GFLOP/s  {row['peak_bytes'] / 2**20:9.1f} MiB",
                      flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()

    record = {"rows": rows, **summarize(rows, explicit_attention), "parameters": bench.parameters,
              "settings": {"preset": args.preset, "width": bench.width, "batch": bench.batch, "vocab": bench.vocab,
                           "lengths": lengths, "repeats": args.repeats, "budget_s": budget,
                           "precision": "bf16 autocast",
                           "attention": "as written (n x n weights stored)" if explicit_attention
                           else "fused kernels (F.scaled_dot_product_attention)"},
              "machine": {"device": device_name(device), "torch": torch.__version__,
                          "python": platform.python_version(), "threads": torch.get_num_threads(),
                          "matmul_peak_gflops": peak_flops / 1e9},
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": code,
              "command": " ".join(["python", sys.argv[0], *(sys.argv[1:] if argv is None else argv)])}
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "scaling.json", "x") as f:
        json.dump(record, f, indent=1)
    write_views(record, args.out)
    failed = {}  # (arch, phase) -> the length that failed (the longer ones were skipped)
    for r in rows:
        if r["status"].startswith("skipped: failed"):
            failed.setdefault((r["arch"], r["phase"]), r["n"])
    if failed:
        where = "; ".join(f"{arch}, {phase} at n = {n}" for (arch, phase), n in failed.items())
        sys.exit(f"error: measurements failed ({where}); their errors are in {args.out / 'scaling.json'}")


def commit() -> str | None:
    """The code's git commit, marked "-dirty" with uncommitted changes; None outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        return git("rev-parse", "HEAD") + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def write_views(record: dict, out: Path) -> None:
    """scaling.md and scaling.png from the record; prints the table."""
    table = markdown(record)
    (out / "scaling.md").write_text(table)
    scaling_figure(record).savefig(out / "scaling.png", dpi=120, bbox_inches="tight")
    print(f"\n{table}\nscaling: {out}")


def markdown(record: dict) -> str:
    """The per-token times, the achieved FLOP rates and the peak memory by length, then the exponents and the
    crossovers: scaling.md, and the end of the printed output."""
    s, m = record["settings"], record["machine"]
    columns = [(arch, phase) for phase, archs in PHASES.items() for arch in archs]
    cells = {(r["arch"], r["phase"], r["n"]): r for r in record["rows"]}
    lines = [f"Scaling with sequence length: {m['device']}, torch {m['torch']}, {record['date'][:10]}.",
             f"`{record['command']}`: width {s['width']}, batch {s['batch']}, vocabulary {s['vocab']}, "
             f"{s['precision']}, attention {s['attention']}; the median of at least {s['repeats']} runs, or one run "
             "where the warm-up took over 10 s (`runs` in scaling.json).", ""]

    def table(title: str, value) -> None:
        lines.extend([f"**{title}**", "", "| n | " + " | ".join(f"{a}, {p}" for a, p in columns) + " |",
                      "|---:|" + "---:|" * len(columns)])
        for n in s["lengths"]:
            row = [cells.get((a, p, n), {"status": "-"}) for a, p in columns]
            lines.append(f"| {n} | " + " | ".join(value(r) if r["status"] == "ok" else "-" for r in row) + " |")
        lines.append("")

    table("Time per target token (µs): a training step's, each target token with its source token; decoding's, "
          "per generated token",
          lambda r: f"{1e6 * r['per_token_s']:.3g}")
    table(f"Achieved GFLOP/s (forward_flops; the matrix-multiply peak here is {m['matmul_peak_gflops']:,.0f})",
          lambda r: f"{r['flops_per_s'] / 1e9:.3g}")
    table("Peak memory above the model and optimizer state (MiB)", lambda r: f"{r['peak_bytes'] / 2**20:.3g}")
    fmt = lambda k: "-" if k is None else f"{k:.2f}"  # noqa: E731
    lines += ["**Exponents of n, fitted over the upper half of the lengths**", "",
              "| architecture, phase | time per sequence | FLOPs | theory | peak memory | theory |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, e in record["exponents"].items():
        lines.append(f"| {name} | {fmt(e['time'])} | {fmt(e['flops'])} | {e['theory_time']} | {fmt(e['memory'])} | "
                     f"{e['theory_memory']} |")
    lines += ["", "**Where the Transformer's time per token crosses the other architectures'**", ""]
    for name, c in record["crossovers"].items():
        lines.append(f"- {name}: {crossover_text(c)}")
    return "\n".join(lines) + "\n"


def crossover_text(c: dict) -> str:
    if not c["lengths"]:
        return "no common lengths"
    lo, hi = c["lengths"]
    if c["crossings"]:
        faster_short = "the Transformer" if lo in c["a_faster_at"] else "the other"
        where = f"at n ≈ {', '.join(f'{x:.0f}' for x in c['crossings'])} ({faster_short} is faster at n = {lo})"
        return where + ("; crossing back and forth: within noise of each other" if len(c["crossings"]) > 1 else "")
    return f"no crossing for n = {lo}..{hi}: the {'Transformer' if c['a_faster_at'] else 'other'} is faster throughout"


if __name__ == "__main__":
    main()
