"""The report's figures, drawn from `results.json` files grouped by architecture (see zoo/report.py). Every
architecture keeps one colour across the figures; a line or bar is the mean over seeds, the band or whisker the
spread between them."""
from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402

ZOO_COLORS = {"gru": "tab:red", "attention": "tab:blue", "transformer": "tab:green"}  # the same in every report
COLORS = ("tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")
SPLIT_STYLES = ("-", "--", ":", "-.")


def longest_training_source(runs: dict[str, list[dict]]) -> int:
    return max(r["corpus"]["train_max_src_len"] for rs in runs.values() for r in rs)


def bucket_bleu(run: dict, split: str, lo: int, hi: int) -> float:
    return next(b["bleu"] for b in run[split]["by_src_len"] if (b["lo"], b["hi"]) == (lo, hi))


def draw_all(runs: dict[str, list[dict]], out_dir: Path) -> list[str]:
    """Writes every figure the runs have data for into `out_dir`; returns the file names."""
    others = [m for m in runs if m not in ZOO_COLORS]
    colors = {**ZOO_COLORS, **dict(zip(others, COLORS * (1 + len(others) // len(COLORS))))}
    figures = {"bleu_by_length.png": bleu_by_length, "throughput.png": throughput,
               "val_bleu_vs_time.png": val_bleu_vs_time, "attention.png": attention}
    written = []
    for name, draw in figures.items():
        fig = draw(runs, colors)
        if fig is not None:
            fig.savefig(out_dir / name, dpi=120, bbox_inches="tight")
            plt.close(fig)
            written.append(name)
    return written


def bleu_by_length(runs: dict[str, list[dict]], colors: dict[str, str]):
    """BLEU against source length, every test split on one axis (Bahdanau et al. 2015, Fig. 2): the first split
    solid, the others (e.g. lengths beyond training) in other line styles; the band spans the seeds."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    splits = next(iter(runs.values()))[0]["test_splits"]
    for model, rs in runs.items():
        for split, style in zip(splits, SPLIT_STYLES):
            buckets = [(b["lo"], b["hi"]) for b in rs[0][split]["by_src_len"]]
            scores = [[bucket_bleu(r, split, lo, hi) for r in rs] for lo, hi in buckets]  # (buckets, seeds)
            x = [(lo + hi) / 2 for lo, hi in buckets]
            ax.plot(x, [statistics.fmean(s) for s in scores], style, marker="o", color=colors[model],
                    label=model if split == splits[0] else None)
            if len(rs) > 1:
                ax.fill_between(x, [min(s) for s in scores], [max(s) for s in scores], color=colors[model], alpha=0.15)
    longest = longest_training_source(runs)
    ax.axvline(longest + 0.5, color="grey", linestyle=":", linewidth=1)
    ax.annotate("longest training source", (longest + 0.5, 1.0), xycoords=("data", "axes fraction"),
                xytext=(-4, -4), textcoords="offset points", ha="right", va="top", fontsize=8, color="grey")
    for split, style in zip(splits, SPLIT_STYLES):
        ax.plot([], [], style, color="black", label=f"split: {split}")
    ax.set(xlabel="source length (tokens, bucket centre)", ylabel="BLEU",
           title="BLEU by source length (mean over seeds; band: min to max)", ylim=(0, None))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def bars(ax, runs: dict[str, list[dict]], colors: dict[str, str], value, title: str, digits: int = 0) -> None:
    names = list(runs)
    values = [[value(r) for r in runs[m]] for m in names]
    means = [statistics.fmean(v) for v in values]
    errors = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
    ax.bar(names, means, yerr=errors, color=[colors[m] for m in names], capsize=4)
    for i, (mean, error) in enumerate(zip(means, errors)):  # above the whisker
        ax.annotate(f"{mean:,.{digits}f}", (i, mean + error), xytext=(0, 3), textcoords="offset points",
                    ha="center", va="bottom", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.margins(y=0.15)
    ax.tick_params(axis="x", labelrotation=20)


def throughput(runs: dict[str, list[dict]], colors: dict[str, str]):
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6))
    bars(axes[0], runs, colors, lambda r: r["train"]["tokens_per_s"], "training: tokens/s (source + target)")
    bars(axes[1], runs, colors, lambda r: r["decode"]["greedy_tokens_per_s"], "greedy decoding: tokens/s")
    bars(axes[2], runs, colors, lambda r: r["decode"]["beam_tokens_per_s"], "beam decoding: tokens/s")
    bars(axes[3], runs, colors, lambda r: 100 * r["train"]["mfu"], "training MFU, % of matmul peak", 1)
    device = next(iter(runs.values()))[0]["device"]
    fig.suptitle(f"throughput on {device['name']} ({device['precision']}); whiskers: std over seeds", fontsize=10)
    fig.tight_layout()
    return fig


def val_bleu_vs_time(runs: dict[str, list[dict]], colors: dict[str, str]):
    if not any(r["train"]["val_curve"] for rs in runs.values() for r in rs):
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for model, rs in runs.items():
        for i, r in enumerate(rs):
            curve = r["train"]["val_curve"]
            ax.plot([p["train_s"] / 60 for p in curve], [p["bleu"] for p in curve], marker=".", alpha=0.8,
                    color=colors[model], label=model if i == 0 else None)
    ax.set(xlabel="training time (minutes, validation excluded)", ylabel="validation BLEU (greedy)",
           title="validation BLEU against training time (one line per seed)", ylim=(0, None))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def attention(runs: dict[str, list[dict]], colors: dict[str, str]):
    """Alignment weights of one test sentence for each architecture's first run: the RNN's α (Bahdanau et al.
    2015, Fig. 3), the Transformer's last-layer cross-attention averaged over heads, or a note where the model has
    no attention at all."""
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 5.2), squeeze=False)
    for ax, (model, rs) in zip(axes[0], runs.items()):
        a = rs[0]["alignment"]
        ax.set_title(f"{model} (seed {rs[0]['seed']})", color=colors[model])
        if a is None:
            ax.text(0.5, 0.5, "no attention:\nthe decoder sees one\nfixed-length context vector",
                    ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        ax.imshow(a["weights"], cmap="Greys", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(a["source"])), a["source"], rotation=90, fontsize=7)
        ax.set_yticks(range(len(a["target"])), a["target"], fontsize=7)
        ax.set(xlabel="source", ylabel="output (greedy)")
    fig.suptitle("where each output token looks in the source (weights 0 white to 1 black)", fontsize=10)
    fig.tight_layout()
    return fig


PHASE_STYLES = {"train": "-", "decode": "--", "decode, no cache": ":"}


def scaling_figure(record: dict):
    """experiments/scaling.py's figures from its scaling.json: time per token and peak memory against sequence length,
    log-log, one line per architecture (colour) and phase (line style); a slope of 1 on the left is time per
    sequence growing as n²."""
    fig, (time_ax, memory_ax) = plt.subplots(1, 2, figsize=(13, 4.8))
    lines: dict[tuple[str, str], list[dict]] = {}
    for r in record["rows"]:
        if r["status"] == "ok":
            lines.setdefault((r["arch"], r["phase"]), []).append(r)
    for (arch, phase), rs in lines.items():
        style = {"linestyle": PHASE_STYLES[phase], "marker": "o", "markersize": 3,
                 "color": ZOO_COLORS[arch], "label": f"{arch}, {phase}"}
        time_ax.plot([r["n"] for r in rs], [1e6 * r["per_token_s"] for r in rs], **style)
        memory_ax.plot([r["n"] for r in rs], [r["peak_bytes"] / 2**20 for r in rs], **style)
    time_ax.set(ylabel="µs per target token", title="time per target token: a training step's (each with its\n"
                "source token), decoding's per generated token")
    memory_ax.set(ylabel="MiB", title="peak memory of a training step or a decoding run,\nabove the model and "
                  "optimizer state")
    for ax in (time_ax, memory_ax):
        ax.set(xscale="log", yscale="log", xlabel="sequence length n (source and target)")
        ax.set_xticks(record["settings"]["lengths"], [str(n) for n in record["settings"]["lengths"]])
        ax.grid(alpha=0.3, which="both")
    time_ax.legend(fontsize=8)
    s, m = record["settings"], record["machine"]
    fig.suptitle(f"{m['device']}, torch {m['torch']}, {record['date'][:10]}: width {s['width']}, batch {s['batch']}, "
                 f"{s['precision']}", fontsize=10)
    fig.tight_layout()
    return fig
