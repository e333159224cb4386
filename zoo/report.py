"""A sweep's runs side by side: `report.md`, plots and `explorer.html` (zoo/explorer) in the sweep directory, and
a comparison run in the sweep's wandb group. Written at the end of every `python run.py -m ...` (the `ReportCallback`
in conf/config.yaml), and on demand:

    python -m zoo.report SWEEP_DIR

Runs are grouped by architecture (`results.json`'s "model"); a group's score is the mean ± standard deviation over
its seeds beside each seed's own value, beam search beside greedy decoding. Every pair of groups is tested on each
seed the two share (zoo/stats.py); the tables are zoo/tables.py. Results written before a figure was measured report
without it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hydra.experimental.callback import Callback

from zoo import plots, results
from zoo.errors import UserError
from zoo.explorer import write_explorer
from zoo.models import architectures
from zoo.results import Results
from zoo.scan_tables import scan_tables
from zoo.stats import significance
from zoo.tables import (beyond_training, convergence, cost_table, exposure_table, header, length_table,
                        main_table, splits_table)

ORDER = tuple(a.name for a in architectures())  # the history this zoo tells (each architecture's registered order)


class ReportError(UserError):
    """A sweep directory that holds nothing to report."""


# The seed is what a group averages over; the model is the label; a resumed run ends where the uninterrupted one would
IGNORED = {"seed", "model", "experiment", "ckpt_path"}


def settings(run: Results) -> dict[str, str]:
    """The run's command-line settings, key -> value, less a time budget that did not stop it (a cap that a run
    stopped early under, or resumed under, did not change what it trained)."""
    given = dict(o.partition("=")[::2] for o in run.get("overrides", []))
    if not run.get("train", {}).get("out_of_time", True):
        given.pop("train_seconds", None)
    return given


def group_name(run: Results, varying: set[str]) -> str:
    """The architecture, plus every command-line setting that differs between the sweep's runs (other than the
    seed): `-m model=transformer model.net.dropout=0.1,0.3` gives two groups, not one with a false ± std."""
    extra = [f"{k}={v}" for k, v in settings(run).items() if k in varying]
    return " ".join([run["model"], *extra])


def varied(found: list[Results]) -> set[str]:
    """The command-line settings (other than the seed and the model) that differ between the runs."""
    given = [settings(r) for r in found]
    return {k for k in set().union(*given) - IGNORED if len({s.get(k) for s in given}) > 1}


def load_runs(sweep_dir: Path) -> tuple[dict[str, list[Results]], list[Path]]:
    """Every run's results under `sweep_dir`, grouped (by architecture and any varied setting) and sorted by seed,
    and the job directories that failed: no results.json beside the job's error.txt or its .hydra/ (a job killed
    from outside, by SLURM's time limit or the OOM killer, leaves no error.txt)."""
    paths = sorted([*sweep_dir.rglob("results.json"), *sweep_dir.rglob("results.json.gz")])  # (.gz: recorded)
    found = [results.load(p) for p in paths]  # (a file that is not a run's results is named, with its first fault)
    jobs = {p.parent for pattern in ("error.txt", ".hydra") for p in sweep_dir.rglob(pattern)}
    failed = sorted(job for job in jobs if not {job / "results.json", job / "results.json.gz"} & set(paths))
    if not found:
        raise ReportError(f"no results.json under {sweep_dir}" + (f" ({len(failed)} failed jobs)" if failed else ""))
    data = {(r["data"], tuple(r["test_splits"])) for r in found}
    if len(data) > 1:
        raise ReportError(f"the runs under {sweep_dir} are on different data ({', '.join(sorted(d for d, _ in data))}); "
                          "report each data set's runs separately")
    varying = varied(found)
    runs: dict[str, list[Results]] = {}
    for r in found:
        runs.setdefault(group_name(r, varying), []).append(r)
    def place(group: str) -> tuple:  # by architecture in the zoo's order, then by label
        arch = plots.architecture(runs[group][0])
        return ORDER.index(arch) if arch in ORDER else len(ORDER), group
    order = sorted(runs, key=place)
    return {m: sorted(runs[m], key=lambda r: r["seed"]) for m in order}, failed


def write_report(sweep_dir: Path) -> Path:
    """report.md and the plots, from every results.json under `sweep_dir`; returns the report's path."""
    runs, failed = load_runs(sweep_dir)
    first = next(iter(runs.values()))[0]
    split, splits = first["test_splits"][0], first["test_splits"]
    figures = plots.draw_all(runs, sweep_dir)
    lines = header(runs, sweep_dir)
    if failed:
        lines += [f"**{len(failed)} job(s) failed** (see their error.txt, or their log if killed without one): "
                  + ", ".join(f"`{p.relative_to(sweep_dir)}`" for p in failed), ""]
    lines += [f"## {split}", "", *main_table(runs, split), "", *cost_table(runs), "",
              "Train tok/s counts real source + target tokens; decode tok/s counts generated tokens. MFU is model "
              "FLOPs (3x the forward pass's matrix products, counted from each model's dimensions) per second over "
              "the measured peak. Peak memory is CUDA max allocated on a GPU, the process's peak RSS on a CPU.", "",
              "## Every test split", "", *splits_table(runs, splits), "",
              f"## BLEU by source length (tokens; the longest training source has "
              f"{plots.longest_training_source(runs)})", "", *length_table(runs, splits), ""]
    exposure = []
    for s in splits:  # every test split that measured it: test_long shows it beyond the training lengths
        exposure += [*table, ""] if (table := exposure_table(runs, s)) else []
    for title, section in (("Beyond the training lengths", beyond_training(runs, splits)),
                           ("SCAN: where exact matches are lost", scan_tables(runs, split)),
                           ("Exposure bias", exposure[:-1]),
                           ("Convergence", convergence(runs)), ("Is the difference real?", significance(runs, split))):
        if section:
            lines += [f"## {title}", "", *section, ""]
    lines += ["## Plots", ""] + [f"![{name}]({name})" for name in figures] + [""]
    path = sweep_dir / "report.md"
    path.write_text("\n".join(lines))
    try:
        write_explorer(runs, sweep_dir, path.read_text())
    except Exception as e:  # the report is written; a fault in the page must not lose the wandb run either
        print(f"warning: explorer.html was not written: {e}", file=sys.stderr)
    try:
        if any(r.get("wandb") for rs in runs.values() for r in rs):
            from zoo.tracking import log_comparison  # imports lightning and wandb: only for runs that used wandb
            log_comparison(runs, sweep_dir, figures)
            if all((r.get("wandb") or {}).get("mode") == "online" for rs in runs.values() for r in rs):
                from zoo.dashboard import save
                print(f"wandb workspace: {save(sweep_dir)}")
    except Exception as e:  # the report is written; a wandb problem (no login for online mode, ...) must not hide it
        print(f"warning: the wandb comparison run or workspace was not saved: {e}", file=sys.stderr)
    return path


class ReportCallback(Callback):
    """Writes the report when a sweep ends, then fails the sweep if any of its jobs failed."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        report(sweep_dir)
        _, failed = load_runs(sweep_dir)
        if failed:
            sys.exit(f"error: {len(failed)} job(s) of the sweep failed: " + ", ".join(map(str, failed)))


def report(sweep_dir: Path) -> None:
    """write_report, with a one-line error instead of a traceback when there is nothing to report or a results file
    is not a run's."""
    try:
        print(f"report: {write_report(sweep_dir)}")
    except UserError as e:
        sys.exit(f"error: {e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", type=Path, help="a sweep's directory (multirun/DATE/TIME)")
    report(parser.parse_args().sweep_dir)


if __name__ == "__main__":
    main()
