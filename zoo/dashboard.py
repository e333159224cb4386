"""A sweep's saved wandb workspace: its runs grouped as the report groups them (by architecture, and by any setting
the sweep varied), coloured as in the report's figures, with panels for test BLEU over seeds, BLEU by source length
(in range and beyond), validation BLEU against training time, throughput, MFU, peak memory and the report's images.
Built with wandb-workspaces, the library wandb keeps for building its UI from code. A sweep logs offline by default,
so upload it first, then build its workspace:

    wandb sync SWEEP_DIR/*/wandb/offline-run-* SWEEP_DIR/wandb/offline-run-*   # the runs, then the report run
    python -m zoo.dashboard SWEEP_DIR [--entity NAME]                           # saves the workspace, prints its URL

A sweep run online (`WANDB_MODE=online python run.py -m ...`) saves its workspace at the end by itself. Nothing is
contacted before `save`: `--dry-run` prints the panels instead (and the tests build the workspace offline).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from matplotlib.colors import to_hex

from zoo import plots
from zoo.errors import UserError
from zoo.report import load_runs, settings, varied
from zoo.results import Results
from zoo.tracking import bucket_metric

SPREAD = {"groupby_aggfunc": "mean", "groupby_rangefunc": "stddev"}  # a group's bar or line: mean ± std over seeds


class DashboardError(UserError):
    """A sweep whose runs did not log to wandb, or logged to more than one project."""


def where(runs: dict[str, list[Results]], sweep_dir: Path) -> tuple[str | None, str, list[str]]:
    """The wandb entity (None where the runs did not record it), project and groups the sweep's runs logged to:
    its own group, and those of runs copied in from other sweeps."""
    identities = [r.get("wandb") for rs in runs.values() for r in rs]
    if not all(identities):
        raise DashboardError(f"runs under {sweep_dir} did not log to wandb (logger=csv?): there is nothing to show")
    places = {(i.get("entity"), i["project"]) for i in identities}
    if len(places) > 1:
        raise DashboardError(f"the runs under {sweep_dir} logged to {len(places)} wandb projects: "
                             + ", ".join(f"{e or '(default entity)'}/{p}" for e, p in sorted(places, key=str)))
    (entity, project), = places
    return entity, project, sorted({i["group"] for i in identities})


def grouping(runs: dict[str, list[Results]]) -> list:
    """The runs' grouping keys, as the report groups them (zoo/report.py: `group_name`): the architecture's label
    (wandb's job type), then each setting the sweep varied, as the config value it set (model.net.dropout) or, for a
    config group (decode=..., +ablation=...), the choice each run logged under `choices`."""
    found = [r for rs in runs.values() for r in rs]
    chosen = set().union(*(r.get("choices", {}) for r in found))
    keys = [k.lstrip("+") for k in sorted(varied(found))]
    return [ws.Metric("JobType"), *(ws.Config(f"choices.{k}" if k in chosen else k) for k in keys)]


def group_colors(runs: dict[str, list[Results]]) -> dict:
    """Each group's colour in the report's figures, keyed as wandb's grouped runs are: by the job type, and where
    the sweep varied settings, by the path of the job type and the group's value of each."""
    colors, keys = plots.palette(runs), sorted(varied([r for rs in runs.values() for r in rs]))
    return {(ws.GroupPath(rs[0]["wandb"]["job_type"], *(settings(rs[0]).get(k, "") for k in keys)) if keys
             else rs[0]["wandb"]["job_type"]): to_hex(colors[name]) for name, rs in runs.items()}


def bars(title: str, metrics: list[str]) -> wr.BarPlot:
    return wr.BarPlot(title=title, metrics=metrics, orientation="v", **SPREAD)


def workspace(sweep_dir: Path, entity: str) -> ws.Workspace:
    """The workspace of the sweep in `sweep_dir` (its results.json files say what it measured and where it
    logged), in `entity`'s copy of the project. Builds it only: `save()` sends it."""
    runs, _ = load_runs(sweep_dir)
    _, project, groups = where(runs, sweep_dir)
    found = [r for rs in runs.values() for r in rs]
    splits = found[0]["test_splits"]
    by_length = [bars(f"{split}: BLEU by source length (tokens)",
                      [bucket_metric(split, b["lo"], b["hi"]) for b in found[0][split]["by_src_len"]])
                 for split in splits]
    sections = [
        ws.Section(name="Test scores (mean ± std over seeds)", is_open=True, panels=[
            *(bars(f"{split}: BLEU, beam search", [f"{split}/bleu"]) for split in splits),
            *(bars(f"{split}: exact match %", [f"{split}/exact_match"]) for split in splits),
            bars(f"{splits[0]}: chrF", [f"{splits[0]}/chrf"])]),
        ws.Section(name="BLEU by source length, in range and beyond", is_open=True, panels=by_length),
        ws.Section(name="Training", is_open=True, panels=[
            wr.LinePlot(title="validation BLEU (greedy) against training seconds", x="val/train_seconds",
                        y=["val/bleu"], **SPREAD),
            wr.LinePlot(title="BLEU on a sample of training pairs: the fit", x="val/train_seconds", y=["fit/bleu"],
                        **SPREAD),
            wr.LinePlot(title="training loss", x="Step", y=["train/loss"], **SPREAD)]),
        ws.Section(name="Throughput, MFU and memory", is_open=True, panels=[
            bars("training tokens/s (source + target)", ["train/tokens_per_s"]),
            bars("decoding tokens/s: greedy, beam", ["decode/greedy_tokens_per_s", "decode/beam_tokens_per_s"]),
            bars("training MFU (fraction of the measured matmul peak)", ["train/mfu"]),
            bars("peak memory (MB)", ["memory/peak_mb"]), bars("parameters", ["params"])]),
        ws.Section(name="The report's figures", is_open=True, panels=[
            wr.MediaBrowser(title="report figures", num_columns=2,
                            media_keys=[f"plots/{name}" for name in plots.FIGURES if (sweep_dir / name).exists()])]),
    ]
    return ws.Workspace(
        entity=entity, project=project, name=f"zoo sweep {sweep_dir.parent.name}/{sweep_dir.name}",
        sections=sections, settings=ws.WorkspaceSettings(x_axis="val/train_seconds", max_runs=max(10, len(found) + 1)),
        runset_settings=ws.RunsetSettings(
            filters=[ws.Metric("Group").isin(groups)], groupby=grouping(runs), group_colors=group_colors(runs),
            pinned_columns=[f"summary:{splits[0]}/bleu", "summary:train/tokens_per_s", "config:seed.value"]))


def save(sweep_dir: Path, entity: str | None = None) -> str:
    """Builds and saves the sweep's workspace, in `entity` or else the one its runs logged to, or else the logged-in
    user's default entity; its URL. Each call saves a new workspace."""
    entity = entity or where(load_runs(sweep_dir)[0], sweep_dir)[0]
    if entity is None:
        import wandb

        entity = wandb.Api().default_entity
    return workspace(sweep_dir, entity).save().url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", type=Path, help="a sweep's directory (multirun/DATE/TIME), synced to wandb")
    parser.add_argument("--entity", help="the wandb user or team that owns the project (default: your own)")
    parser.add_argument("--dry-run", action="store_true", help="print the workspace's panels; contact nothing")
    args = parser.parse_args()
    try:
        if args.dry_run:
            built = workspace(args.sweep_dir, args.entity or "ENTITY")
            print(f"{built.entity}/{built.project}: {built.name}, runs where {built.runset_settings.filters}")
            for section in built.sections:
                print(f"  {section.name}: " + "; ".join(p.title for p in section.panels))
        else:
            print(f"workspace: {save(args.sweep_dir, args.entity)}")
    except UserError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
