"""A sweep's runs side by side: `report.md` and plots in the sweep directory, and a comparison run in the sweep's
wandb group. Written at the end of every `python run.py -m ...` (the `ReportCallback` in conf/config.yaml), and on
demand:

    python -m zoo.report SWEEP_DIR

Runs are grouped by architecture (`results.json`'s "model"); a group's figures are the mean ± standard deviation over
its seeds. Differences in BLEU are tested with sacrebleu's paired bootstrap resampling (Koehn 2004) on the runs that
share a seed, each architecture against the one with the best mean BLEU.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest

from zoo import plots
from zoo.tracking import offline_throughout

ORDER = ("gru", "attention", "transformer")  # the history this zoo tells; other labels follow, sorted


class ReportError(Exception):
    """A sweep directory that holds nothing to report."""


IGNORED = {"seed", "model", "experiment"}  # the seed is what a group averages over; the model is the label


def group_name(run: dict, varying: set[str]) -> str:
    """The architecture, plus every command-line setting that differs between the sweep's runs (other than the
    seed): `-m model=transformer model.net.dropout=0.1,0.3` gives two groups, not one with a false ± std."""
    extra = [o for o in run.get("overrides", []) if o.partition("=")[0] in varying]
    return " ".join([run["model"], *extra])


def load_runs(sweep_dir: Path) -> tuple[dict[str, list[dict]], list[Path]]:
    """Every run's results under `sweep_dir`, grouped (by architecture and any varied setting) and sorted by seed,
    and the job directories that failed: no results.json beside the job's error.txt or its .hydra/ (a job killed
    from outside, by SLURM's time limit or the OOM killer, leaves no error.txt)."""
    found = []
    for path in sorted(sweep_dir.rglob("results.json")):
        with open(path) as f:
            found.append(json.load(f))
    jobs = {p.parent for pattern in ("error.txt", ".hydra") for p in sweep_dir.rglob(pattern)}
    failed = sorted(job for job in jobs if not (job / "results.json").exists())
    if not found:
        raise ReportError(f"no results.json under {sweep_dir}" + (f" ({len(failed)} failed jobs)" if failed else ""))
    data = {(r["data"], tuple(r["test_splits"])) for r in found}
    if len(data) > 1:
        raise ReportError(f"the runs under {sweep_dir} are on different data ({', '.join(sorted(d for d, _ in data))}); "
                          "report each data set's runs separately")
    settings = [dict(o.partition("=")[::2] for o in r.get("overrides", [])) for r in found]  # key -> value
    varying = {k for k in set().union(*settings) - IGNORED if len({s.get(k) for s in settings}) > 1}
    runs: dict[str, list[dict]] = {}
    for r in found:
        runs.setdefault(group_name(r, varying), []).append(r)
    order = sorted(runs, key=lambda m: (ORDER.index(m) if m in ORDER else len(ORDER), m))
    return {m: sorted(runs[m], key=lambda r: r["seed"]) for m in order}, failed


def spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single run)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def fmt(values: list[float], digits: int = 1, scale: float = 1.0) -> str:
    mean, std = spread([v * scale for v in values])
    return f"{mean:,.{digits}f} ± {std:,.{digits}f}" if len(values) > 1 else f"{mean:,.{digits}f}"


def main_table(runs: dict[str, list[dict]], split: str) -> list[str]:
    rows = ["| model | params | runs | BLEU | chrF | exact match % | train tok/s | decode tok/s greedy / beam "
            "| peak memory MB | MFU % | wall s |", "|" + "---|" * 11]
    for model, rs in runs.items():
        def get(*keys: str) -> list[float]:
            values = []
            for r in rs:
                for key in keys:
                    r = r[key]
                values.append(r)
            return values
        rows.append(f"| {model} | {rs[0]['params']:,} | {len(rs)} | {fmt(get(split, 'bleu'))} "
                    f"| {fmt(get(split, 'chrf'))} | {fmt(get(split, 'exact_match'))} "
                    f"| {fmt(get('train', 'tokens_per_s'), 0)} "
                    f"| {fmt(get('decode', 'greedy_tokens_per_s'), 0)} / {fmt(get('decode', 'beam_tokens_per_s'), 0)} "
                    f"| {fmt(get('memory', 'peak_mb'), 0)} | {fmt(get('train', 'mfu'), 1, 100)} "
                    f"| {fmt(get('train', 'wall_s'), 0)} |")
    return rows


def splits_table(runs: dict[str, list[dict]], splits: list[str]) -> list[str]:
    rows = ["| model | " + " | ".join(f"{s} BLEU | {s} exact %" for s in splits) + " |",
            "|---|" + "---|---|" * len(splits)]
    for model, rs in runs.items():
        cells = [f"{fmt([r[s]['bleu'] for r in rs])} | {fmt([r[s]['exact_match'] for r in rs])}" for s in splits]
        rows.append(f"| {model} | " + " | ".join(cells) + " |")
    return rows


def length_table(runs: dict[str, list[dict]], splits: list[str]) -> list[str]:
    """BLEU by source-length bucket, every split's buckets side by side: the numbers behind bleu_by_length.png."""
    first = next(iter(runs.values()))[0]
    buckets = [(s, b["lo"], b["hi"]) for s in splits for b in first[s]["by_src_len"]]
    rows = ["| model | " + " | ".join(f"{lo}-{hi}" + ("" if s == splits[0] else f" ({s})") for s, lo, hi in buckets)
            + " |", "|---|" + "---|" * len(buckets),
            "| sentences | " + " | ".join(str(b["n"]) for s in splits for b in first[s]["by_src_len"]) + " |"]
    for model, rs in runs.items():
        cells = [fmt([plots.bucket_bleu(r, s, lo, hi) for r in rs], 0) for s, lo, hi in buckets]
        rows.append(f"| {model} | " + " | ".join(cells) + " |")
    return rows


def beyond_training(runs: dict[str, list[dict]], splits: list[str]) -> list[str]:
    """How much of its in-range BLEU each model keeps on the splits whose sources are all longer than any training
    source (the embedded task's test_long); nothing when there is no such split."""
    longest = plots.longest_training_source(runs)
    first = next(iter(runs.values()))[0]
    beyond = [s for s in splits[1:] if min(b["lo"] for b in first[s]["by_src_len"]) > longest]
    if not beyond:
        return []
    split = beyond[0]
    lo, hi = first[split]["by_src_len"][0], first[split]["by_src_len"][-1]
    rows = [f"| model | {splits[0]} BLEU | {split} BLEU | kept % | {lo['lo']}-{lo['hi']} | {hi['lo']}-{hi['hi']} |",
            "|---|---|---|---|---|---|"]
    kept = {}
    for model, rs in runs.items():
        kept[model] = spread([100 * r[split]["bleu"] / max(r[splits[0]]["bleu"], 1e-9) for r in rs])[0]
        rows.append(f"| {model} | {fmt([r[splits[0]]['bleu'] for r in rs])} | {fmt([r[split]['bleu'] for r in rs])} "
                    f"| {kept[model]:.0f} | {fmt([r[split]['by_src_len'][0]['bleu'] for r in rs], 0)} "
                    f"| {fmt([r[split]['by_src_len'][-1]['bleu'] for r in rs], 0)} |")
    best, worst = max(kept, key=kept.get), min(kept, key=kept.get)
    return [f"`{split}` holds sources of {lo['lo']}-{hi['hi']} tokens; the longest training source has {longest}. "
            f"Measured here, {best} keeps the most of its in-range BLEU beyond the training lengths "
            f"({kept[best]:.0f}%), {worst} the least ({kept[worst]:.0f}%).", "", *rows]


def significance(runs: dict[str, list[dict]], split: str, n_samples: int = 1000) -> list[str]:
    """Each architecture against the best one, seed by seed: the BLEU difference and its paired-bootstrap p-value
    (the chance that the difference comes from which sentences happened to be in the test set)."""
    best = max(runs, key=lambda m: spread([r[split]["bleu"] for r in runs[m]])[0])
    others = [m for m in runs if m != best]
    if not others:
        return []
    rows = [f"| seed | {best} BLEU | " + " | ".join(f"{m}: ΔBLEU (p)" for m in others) + " |",
            "|---|---|" + "---|" * len(others)]
    seeds = sorted(set.intersection(*({r["seed"] for r in rs} for rs in runs.values())))
    for seed in seeds:
        def hyps(model: str) -> list[str]:
            run = next(r for r in runs[model] if r["seed"] == seed)
            return [s["hypothesis"] for s in run[split]["samples"]]
        refs = [s["reference"] for s in next(r for r in runs[best] if r["seed"] == seed)[split]["samples"]]
        test = PairedTest([(m, hyps(m)) for m in (best, *others)], {"BLEU": BLEU()}, [refs], test_type="bs",
                          n_samples=n_samples)
        _, scores = test()
        base, *rest = scores["BLEU"]
        rows.append(f"| {seed} | {base.score:.1f} | "
                    + " | ".join(f"{r.score - base.score:+.1f} ({r.p_value:.3f})" for r in rest) + " |")
    return rows


def write_report(sweep_dir: Path) -> Path:
    """report.md and the plots, from every results.json under `sweep_dir`; returns the report's path."""
    runs, failed = load_runs(sweep_dir)
    first = next(iter(runs.values()))[0]
    split, splits = first["test_splits"][0], first["test_splits"]
    figures = plots.draw_all(runs, sweep_dir)
    lines = [f"# {', '.join(runs)} on {first['data']}", "",
             f"{sum(map(len, runs.values()))} runs in `{sweep_dir}`, on {first['device']['name']} "
             f"({first['device']['precision']}, measured matrix-multiply peak "
             f"{first['device']['matmul_peak_gflops']:,.0f} GFLOP/s). Figures are mean ± standard deviation over "
             f"seeds; BLEU is sacreBLEU on detokenized text (`{first[split]['signature']}`), "
             f"beam size {first['decoding']['beam_size']}.", ""]
    if failed:
        lines += [f"**{len(failed)} job(s) failed** (see their error.txt, or their log if killed without one): "
                  + ", ".join(f"`{p.relative_to(sweep_dir)}`" for p in failed), ""]
    lines += [f"## {split}", "", *main_table(runs, split), "",
              "Train tok/s counts real source + target tokens; decode tok/s counts generated tokens. MFU is model "
              "FLOPs (3x the forward pass's matrix products, counted from each model's dimensions) per second over "
              "the measured peak. Peak memory is CUDA max allocated on a GPU, the process's peak RSS on a CPU.", "",
              "## Every test split", "", *splits_table(runs, splits), "",
              f"## BLEU by source length (tokens; the longest training source has "
              f"{plots.longest_training_source(runs)})", "",
              *length_table(runs, splits), ""]
    beyond = beyond_training(runs, splits)
    if beyond:
        lines += ["## Beyond the training lengths", "", *beyond, ""]
    sig = significance(runs, split)
    if sig:
        lines += ["## Is the difference real?", "",
                  f"Paired bootstrap resampling (sacrebleu, 1000 samples) on `{split}`: each architecture against "
                  "the best, on runs with the same seed. p < 0.05 means the gap is unlikely to be an accident of "
                  "which sentences the test set holds; it says nothing about variation between seeds, which the "
                  "± above shows.", "", *sig, ""]
    lines += ["## Plots", ""] + [f"![{name}]({name})" for name in figures] + [""]
    path = sweep_dir / "report.md"
    path.write_text("\n".join(lines))
    try:
        log_comparison(runs, sweep_dir, figures)
    except Exception as e:  # the report is written; a wandb problem (no login for online mode, ...) must not hide it
        print(f"warning: the wandb comparison run was not logged: {e}", file=sys.stderr)
    return path


def log_comparison(runs: dict[str, list[dict]], sweep_dir: Path, figures: list[str]) -> None:
    """A "report" run in the sweep's wandb group, with the table and the cross-architecture charts."""
    identities = [r["wandb"] for rs in runs.values() for r in rs if r.get("wandb")]
    if not identities:
        return
    # the sweep's own group, when runs of another sweep were copied in beside its own
    identity = next((i for i in identities if i["group"] == str(sweep_dir)), identities[0])
    import wandb

    offline_throughout(identity["mode"])
    run = wandb.init(project=identity["project"], group=identity["group"], name="report", job_type="report",
                     mode=identity["mode"], dir=str(sweep_dir), reinit="finish_previous")
    columns = ["model", "seed", "params", "bleu", "chrf", "exact_match", "train_tokens_per_s",
               "greedy_tokens_per_s", "beam_tokens_per_s", "peak_mb", "mfu"]
    split = next(iter(runs.values()))[0]["test_splits"][0]
    table = wandb.Table(columns=columns, data=[
        [m, r["seed"], r["params"], r[split]["bleu"], r[split]["chrf"], r[split]["exact_match"],
         r["train"]["tokens_per_s"], r["decode"]["greedy_tokens_per_s"], r["decode"]["beam_tokens_per_s"],
         r["memory"]["peak_mb"], r["train"]["mfu"]] for m, rs in runs.items() for r in rs])
    run.log({"runs": table, **{f"{metric} by model": wandb.plot.bar(table, "model", metric, title=metric)
                               for metric in ("bleu", "train_tokens_per_s", "beam_tokens_per_s", "mfu")},
             **{f"plots/{name}": wandb.Image(str(sweep_dir / name)) for name in figures}})
    run.finish()


class ReportCallback(Callback):
    """Writes the report when a sweep ends, then fails the sweep if any of its jobs failed."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        report(sweep_dir)
        _, failed = load_runs(sweep_dir)
        if failed:
            sys.exit(f"error: {len(failed)} job(s) of the sweep failed: " + ", ".join(map(str, failed)))


def report(sweep_dir: Path) -> None:
    """write_report, with a one-line error instead of a traceback when there is nothing to report."""
    try:
        print(f"report: {write_report(sweep_dir)}")
    except ReportError as e:
        sys.exit(f"error: {e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", type=Path, help="a sweep's directory (multirun/DATE/TIME)")
    report(parser.parse_args().sweep_dir)


if __name__ == "__main__":
    main()
