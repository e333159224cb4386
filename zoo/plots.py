"""The report's figures, drawn from `results.json` files grouped by architecture (see zoo/report.py). Every
architecture keeps one colour across the figures; a line or bar is the mean over seeds, a dot each seed's value."""
from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from zoo.models import architectures  # noqa: E402
from zoo.results import Results  # noqa: E402

ZOO_COLORS = {a.name: a.colour for a in architectures()}  # each architecture's own, the same in every figure
COLORS = tuple(c for c in ("tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")
               if c not in ZOO_COLORS.values())  # for groups of no registered architecture
SPLIT_STYLES = ("-", "--", ":", "-.")


def longest_training_source(runs: dict[str, list[Results]]) -> int:
    return max(r["corpus"]["train_max_src_len"] for rs in runs.values() for r in rs)


def bucket(run: Results, split: str, lo: int, hi: int) -> dict | None:
    """A split's source-length bucket [lo, hi], or None where this run had no sentence in it."""
    return next((b for b in run[split]["by_src_len"] if (b["lo"], b["hi"]) == (lo, hi)), None)


SHADES = (0.0, 0.45, -0.35, 0.7, -0.6)  # towards white (+) or black (-), for groups of one architecture


def architecture(run: Results) -> str:
    """The registered architecture a run trained (its "architecture"; results written before it was kept name only
    their model config, which for the zoo's own configs is the architecture's name)."""
    return run.get("architecture") or run["model"]


def palette(runs: dict[str, list[Results]]) -> dict[str, tuple]:
    """One colour per architecture, each registered one always its own; groups that vary a setting of one
    architecture get shades of its colour."""
    archs = list(dict.fromkeys(architecture(rs[0]) for rs in runs.values()))
    others = [a for a in archs if a not in ZOO_COLORS]
    base = {**ZOO_COLORS, **{a: COLORS[i % len(COLORS)] for i, a in enumerate(others)}}
    colors, seen = {}, {}
    for group, rs in runs.items():
        arch = architecture(rs[0])
        shade = SHADES[seen.setdefault(arch, 0) % len(SHADES)]
        seen[arch] += 1
        rgb = to_rgb(base[arch])
        colors[group] = tuple(c + shade * (1 - c) if shade > 0 else c * (1 + shade) for c in rgb)
    return colors


def draw_all(runs: dict[str, list[Results]], out_dir: Path) -> list[str]:
    """Writes every figure the runs have data for into `out_dir`; returns the file names."""
    colors = palette(runs)
    written = []
    for name, draw in FIGURES.items():
        fig = draw(runs, colors)
        if fig is not None:
            fig.savefig(out_dir / name, dpi=120, bbox_inches="tight")
            plt.close(fig)
            written.append(name)
    return written


def legend_outside(ax) -> None:
    """To the right of the axes, where no line or dot can hide under it."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)


def bleu_by_length(runs: dict[str, list[Results]], colors: dict[str, tuple]):
    """BLEU against source length, every test split on one axis (Bahdanau et al. 2015, Fig. 2): the first split
    solid, the others (e.g. lengths beyond training) in other line styles; a dot per seed, the groups' dots a little
    apart so that they do not cover each other."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    splits = next(iter(runs.values()))[0]["test_splits"]
    for j, (model, rs) in enumerate(runs.items()):
        for split, style in zip(splits, SPLIT_STYLES):
            edges = [(b["lo"], b["hi"]) for b in rs[0][split]["by_src_len"]]
            offset = (j - (len(runs) - 1) / 2) * 0.06 * (edges[0][1] - edges[0][0] + 1)  # a fraction of a bucket
            values = [[b["bleu"] for r in rs if (b := bucket(r, split, lo, hi))]
                      for lo, hi in edges]  # (buckets, seeds)
            x = [(lo + hi) / 2 for lo, hi in edges]
            ax.plot(x, [statistics.fmean(v) for v in values], style, color=colors[model],
                    label=model if split == splits[0] else None)
            for xi, v in zip(x, values):
                ax.scatter([xi + offset] * len(v), v, s=9, color=colors[model], alpha=0.8, zorder=3, linewidths=0)
    longest = longest_training_source(runs)
    ax.axvline(longest + 0.5, color="grey", linestyle=":", linewidth=1)
    ax.annotate("longest training source", (longest + 0.5, 0.5), xycoords=("data", "axes fraction"), rotation=90,
                xytext=(-3, 0), textcoords="offset points", ha="right", va="center", fontsize=8, color="grey")
    for split, style in zip(splits, SPLIT_STYLES):
        ax.plot([], [], style, color="black", label=f"split: {split}")
    ax.set(xlabel="source length (tokens, bucket centre)", ylabel="BLEU (beam)",
           title="BLEU by source length (line: mean over seeds; dots: each seed)", ylim=(0, None))
    ax.grid(alpha=0.3)
    legend_outside(ax)
    return fig


def bars(ax, runs: dict[str, list[Results]], colors: dict[str, tuple], value, title: str, digits: int = 0) -> None:
    """The mean over seeds as a bar, the standard deviation as its whisker, each seed as a black dot."""
    names = list(runs)
    values = [[value(r) for r in runs[m]] for m in names]
    means = [statistics.fmean(v) for v in values]
    errors = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
    ax.bar(names, means, yerr=errors, color=[colors[m] for m in names], capsize=4)
    for i, (v, mean, error) in enumerate(zip(values, means, errors)):
        spots = [i + 0.5 * (k - (len(v) - 1) / 2) / max(len(v), 2) for k in range(len(v))]  # side by side in the bar
        ax.scatter(spots, v, s=10, color="black", zorder=3, linewidths=0)
        ax.annotate(f"{mean:,.{digits}f}", (i, max(mean + error, *v)), xytext=(0, 3), textcoords="offset points",
                    ha="center", va="bottom", fontsize=9)  # above the whisker and the dots
    ax.set_title(title, fontsize=10)
    ax.margins(y=0.15)
    ax.tick_params(axis="x", labelrotation=20)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")


def grid(n: int):
    """n panels two to a row, so that a figure shown at the width of a README (about 900 pixels) keeps legible
    labels; returns the figure and its n axes (a spare one hidden)."""
    rows, columns = (n + 1) // 2, min(n, 2)
    fig, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    return fig, list(axes.flat[:n])


def scores(runs: dict[str, list[Results]], colors: dict[str, tuple]):
    """Test BLEU and exact match on the first split, beam and greedy, wherever every run has the figure."""
    split = next(iter(runs.values()))[0]["test_splits"][0]
    decodings = (("beam", lambda r: r[split]), ("greedy", lambda r: greedy(r, split)))
    metrics = (("BLEU", "bleu"), ("exact match %", "exact_match"))
    panels = [(f"{name}, {decoding}", key, figures) for name, key in metrics for decoding, figures in decodings]
    panels = [p for p in panels if all(p[1] in p[2](r) for rs in runs.values() for r in rs)]
    fig, axes = grid(len(panels))
    for ax, (title, key, figures) in zip(axes, panels):
        bars(ax, runs, colors, lambda r: figures(r)[key], title, 1)
    for key in {p[1] for p in panels}:  # beam and greedy on one scale
        same = [ax for ax, p in zip(axes, panels) if p[1] == key]
        top = max(ax.get_ylim()[1] for ax in same)
        for ax in same:
            ax.set_ylim(0, top)
    fig.suptitle(f"{split}: mean over seeds (bar), standard deviation (whisker), each seed (dot)", fontsize=10)
    fig.tight_layout()
    return fig


def greedy(run: Results, split: str) -> dict:
    """Greedy decoding's figures; results written before they were kept have only its BLEU."""
    figures = run[split]
    return figures.get("greedy", {"bleu": figures["greedy_bleu"]} if "greedy_bleu" in figures else {})


def throughput(runs: dict[str, list[Results]], colors: dict[str, tuple]):
    fig, axes = grid(4)
    bars(axes[0], runs, colors, lambda r: r["train"]["tokens_per_s"], "training: tokens/s (source + target)")
    bars(axes[1], runs, colors, lambda r: r["decode"]["greedy_tokens_per_s"], "greedy decoding: tokens/s")
    bars(axes[2], runs, colors, lambda r: r["decode"]["beam_tokens_per_s"], "beam decoding: tokens/s")
    bars(axes[3], runs, colors, lambda r: 100 * r["train"]["mfu"], "training MFU, % of matmul peak", 1)
    device = next(iter(runs.values()))[0]["device"]
    fig.suptitle(f"throughput on {device['name']} ({device['precision']}); whiskers: std over seeds; dots: each seed",
                 fontsize=10)
    fig.tight_layout()
    return fig


def val_bleu_vs_time(runs: dict[str, list[Results]], colors: dict[str, tuple]):
    """Validation BLEU against training time, one line per seed; where the runs measured it, BLEU on a sample of
    training pairs as a dotted line beside it (the gap between the two is overfitting)."""
    if not any(r["train"]["val_curve"] for rs in runs.values() for r in rs):
        return None
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for model, rs in runs.items():
        for i, r in enumerate(rs):
            curve = r["train"]["val_curve"]
            minutes = [p["train_s"] / 60 for p in curve]
            ax.plot(minutes, [p["bleu"] for p in curve], marker=".", alpha=0.8, color=colors[model],
                    label=model if i == 0 else None)
            fit = [(m, p["fit_bleu"]) for m, p in zip(minutes, curve) if p.get("fit_bleu") is not None]
            if fit:
                ax.plot(*zip(*fit), ":", alpha=0.8, color=colors[model])
    if any(p.get("fit_bleu") is not None for rs in runs.values() for r in rs for p in r["train"]["val_curve"]):
        ax.plot([], [], ":", color="black", label="on training pairs")
    ax.set(xlabel="training time (minutes, validation excluded)", ylabel="BLEU (greedy)",
           title="validation BLEU against training time (one line per seed)", ylim=(0, None))
    ax.grid(alpha=0.3)
    legend_outside(ax)
    return fig


def exposure(runs: dict[str, list[Results]], colors: dict[str, tuple]):
    """Next-token accuracy against target position on the first test split, given the reference's prefix (dashed:
    teacher forcing, as the models trained) and given the model's own greedy prefix (solid: as they decode), the mean
    over seeds; the gap between the two is exposure bias. None where the runs did not measure it."""
    split = next(iter(runs.values()))[0]["test_splits"][0]
    if not all("exposure" in r[split] for rs in runs.values() for r in rs):
        return None
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for model, rs in runs.items():
        for key, style in (("teacher_forced", "--"), ("free_running", "-")):
            by_t: dict[int, list[float]] = {}
            for r in rs:
                for p in r[split]["exposure"]["positions"]:
                    by_t.setdefault(p["t"], []).append(p[key])
            ts = sorted(by_t)
            ax.plot(ts, [statistics.fmean(by_t[t]) for t in ts], style, color=colors[model],
                    label=model if key == "free_running" else None)
    ax.plot([], [], "--", color="black", label="on the reference's prefix")
    ax.plot([], [], "-", color="black", label="on its own greedy prefix")
    ax.set(xlabel="target position", ylabel="next token right (%)", ylim=(0, 100),
           title=f"exposure bias on {split}: next-token accuracy by position (mean over seeds)")
    ax.grid(alpha=0.3)
    legend_outside(ax)
    return fig


def attention(runs: dict[str, list[Results]], colors: dict[str, tuple]):
    """Alignment weights of one test sentence for each architecture's first run: the RNN's α (Bahdanau et al.
    2015, Fig. 3), the Transformer's last-layer cross-attention averaged over heads, or a note where the model has
    no attention at all."""
    columns = min(len(runs), 3)
    rows = -(-len(runs) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.3 * columns, 3.8 * rows), squeeze=False)
    for ax in axes.flat[len(runs):]:
        ax.set_axis_off()
    for ax, (model, rs) in zip(axes.flat, runs.items()):
        a = rs[0]["alignment"]
        ax.set_title(f"{model} (seed {rs[0]['seed']})", color=colors[model])
        if a is None:
            ax.text(0.5, 0.5, "no attention:\nthe decoder sees one\nfixed-length context vector",
                    ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        ax.imshow(a["weights"], cmap="Greys", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(a["source"])), a["source"], rotation=90, fontsize=9)
        ax.set_yticks(range(len(a["target"])), a["target"], fontsize=9)
        ax.set(xlabel="source", ylabel="output (greedy)")
    fig.suptitle("where each output token looks in the source (weights 0 white to 1 black)\nwith several layers or "
                 "heads, the model's one picture of them (its `alignment`); explorer.html shows each", fontsize=10)
    fig.tight_layout()
    return fig


FIGURES = {"scores.png": scores, "bleu_by_length.png": bleu_by_length, "throughput.png": throughput,
           "val_bleu_vs_time.png": val_bleu_vs_time, "attention.png": attention,
           "exposure.png": exposure}  # the report's figures, each drawn where its runs have the data


PHASE_STYLES = {"train": "-", "decode": "--", "decode, no cache": ":"}


def scaling_figure(record: dict):
    """experiments/scaling.py's figures from its scaling.json: time per token and peak memory against sequence length,
    log-log, one line per architecture (colour) and phase (line style); a slope of 1 on the left is time per
    sequence growing as n²."""
    fig, (time_ax, memory_ax) = plt.subplots(1, 2, figsize=(13, 4.8))
    lines: dict[tuple[str, str], list[Results]] = {}
    for r in record["rows"]:
        if r["status"] == "ok":
            lines.setdefault((r["arch"], r["phase"]), []).append(r)
    for (arch, phase), rs in lines.items():
        style = {"linestyle": PHASE_STYLES[phase], "marker": "o", "markersize": 3,
                 "color": ZOO_COLORS.get(arch, "tab:gray"), "label": f"{arch}, {phase}"}
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
