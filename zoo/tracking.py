"""What a run hands to Weights & Biases when the logger is wandb (the default; offline unless asked): the scalars of
`results.json` under the same names (`test/bleu`, `train/tokens_per_s`, ...) as the run's summary, BLEU by source
length as a table with a line plot, and a finished run even when the job fails, so a sweep logs every job; at a
sweep's end, the report's comparison run (`log_comparison`)."""
from __future__ import annotations

import os
from pathlib import Path

from lightning.pytorch.loggers import WandbLogger

from zoo.results import Results

SECTIONS = ("train", "decode", "memory", "device")  # and every test split


def offline_throughout(mode: str | None) -> None:
    """Make an offline (or disabled) wandb run offline in the whole process. The run's own `mode` does not reach
    wandb's process-wide analytics, which read WANDB_MODE and otherwise post to wandb's server even for an offline
    run (wandb 0.31; tests/test_run.py's network test caught it)."""
    if mode in ("offline", "disabled"):
        os.environ["WANDB_MODE"] = mode


def scalars(results: Results) -> dict[str, float]:
    """The numbers of `results.json` as flat metric names: {"test": {"bleu": 93.7}} -> {"test/bleu": 93.7}."""
    flat = {"params": results["params"]}
    for section in (*results["test_splits"], *SECTIONS):
        flat.update({f"{section}/{name}": value for name, value in results[section].items()
                     if isinstance(value, (int, float)) and not isinstance(value, bool)})
    for split in results["test_splits"]:  # BLEU by source length, one figure a bucket, for the dashboard's bars
        flat.update({bucket_metric(split, b["lo"], b["hi"]): b["bleu"] for b in results[split]["by_src_len"]})
    return flat


def bucket_metric(split: str, lo: int, hi: int) -> str:
    """A source-length bucket's BLEU under a name that sorts by length: test/bleu_src_len/011-020."""
    return f"{split}/bleu_src_len/{lo:03d}-{hi:03d}"


def log_results(logger, results: Results) -> None:
    if not isinstance(logger, WandbLogger):
        return  # results.json holds everything; the CSV logger keeps the training curves
    import wandb

    run = logger.experiment
    run.summary.update(scalars(results))
    for split in results["test_splits"]:
        table = wandb.Table(columns=["lo", "hi", "n", "bleu"],
                            data=[[b["lo"], b["hi"], b["n"], b["bleu"]] for b in results[split]["by_src_len"]])
        run.log({f"{split}/bleu_by_src_len": table,
                 f"{split}/bleu_by_src_len_plot": wandb.plot.line(table, "hi", "bleu",
                                                                  title=f"{split}: BLEU by source length")})


def finish(logger, *, failed: bool) -> None:
    """Close the wandb run, marked failed (exit code 1) when the job raised; started first if it never was, so a
    job that fails before its first step still shows up in the group."""
    if isinstance(logger, WandbLogger):
        logger.experiment.finish(exit_code=1 if failed else 0)


def wandb_identity(logger) -> dict | None:
    """Where this run lives in wandb, for the report's comparison run and for `wandb sync`."""
    if not isinstance(logger, WandbLogger):
        return None
    run = logger.experiment
    return {"entity": run.entity, "project": run.project, "group": run.group, "name": run.name,
            "job_type": run.job_type, "id": run.id, "mode": run.settings.mode, "dir": run.dir}


def log_comparison(runs: dict[str, list[Results]], sweep_dir: Path, figures: list[str]) -> None:
    """A "report" run in the sweep's wandb group, with the table and the cross-architecture charts."""
    identities = [r["wandb"] for rs in runs.values() for r in rs if r.get("wandb")]
    if not identities:
        return
    # the sweep's own group, when runs of another sweep were copied in beside its own
    identity = next((i for i in identities if i["group"] == str(sweep_dir)), identities[0])
    import wandb

    from zoo import plots

    offline_throughout(identity["mode"])
    run = wandb.init(project=identity["project"], group=identity["group"], name="report", job_type="report",
                     mode=identity["mode"], dir=str(sweep_dir), reinit="finish_previous")
    columns = ["model", "seed", "params", "bleu", "greedy_bleu", "bleu_tok", "chrf", "exact_match",
               "train_tokens_per_s", "greedy_tokens_per_s", "beam_tokens_per_s", "peak_mb", "mfu"]
    split = next(iter(runs.values()))[0]["test_splits"][0]
    table = wandb.Table(columns=columns, data=[
        [m, r["seed"], r["params"], r[split]["bleu"], plots.greedy(r, split).get("bleu"), r[split].get("bleu_tok"),
         r[split]["chrf"],
         r[split]["exact_match"], r["train"]["tokens_per_s"], r["decode"]["greedy_tokens_per_s"],
         r["decode"]["beam_tokens_per_s"], r["memory"]["peak_mb"], r["train"]["mfu"]]
        for m, rs in runs.items() for r in rs])
    run.log({"runs": table, **{f"{metric} by model": wandb.plot.bar(table, "model", metric, title=metric)
                               for metric in ("bleu", "train_tokens_per_s", "beam_tokens_per_s", "mfu")},
             **{f"plots/{name}": wandb.Image(str(sweep_dir / name)) for name in figures}})
    run.finish()
