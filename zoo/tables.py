"""The report's tables and its opening paragraph, as Markdown lines, from runs grouped by `zoo.report.load_runs`
(a group's runs sorted by seed). A score reads mean ± standard deviation over the group's seeds, then each seed's own
value; a figure that older results did not measure reads "–"."""
from __future__ import annotations

import statistics
from pathlib import Path

from zoo import plots
from zoo.metrics import after_first_error
from zoo.results import Results, Train


def spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single run)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def fmt(values: list[float], digits: int = 1, scale: float = 1.0) -> str:
    """Mean ± standard deviation: for costs (speed, memory, time), where each seed's value adds little."""
    mean, std = spread([v * scale for v in values])
    return f"{mean:,.{digits}f} ± {std:,.{digits}f}" if len(values) > 1 else f"{mean:,.{digits}f}"


LISTED = 5  # up to this many seeds a score lists each one; beyond, its range


def cell(values: list[float | None], digits: int = 1) -> str:
    """A score over seeds: mean ± standard deviation, then every seed's value in seed order (or the range), since
    three seeds' ± can hide one that failed; "–" for a run whose results lack the figure."""
    present = [v for v in values if v is not None]
    if not present:
        return "–"
    text = [f"{v:,.{digits}f}" if v is not None else "–" for v in values]
    if len(values) == 1:
        return text[0]
    mean, std = spread(present)
    each = ", ".join(text) if len(values) <= LISTED else f"{min(present):,.{digits}f}–{max(present):,.{digits}f}"
    return f"{mean:,.{digits}f} ± {std:,.{digits}f} ({each})"


def beam(run: Results, split: str) -> dict:
    """A split's beam-search figures: the configured decoding's, at the top of its entry."""
    return run[split]


FIGURES = (("BLEU", "bleu", 1), ("tok BLEU", "bleu_tok", 1), ("exact %", "exact_match", 1),
           ("len ratio", "len_ratio", 2), ("hit limit %", "hit_limit", 1))  # (header, key, digits): every split


def main_table(runs: dict[str, list[Results]], split: str) -> list[str]:
    """Beam and greedy BLEU, chrF and exact match; tokenized lowercased BLEU too where the runs measured it."""
    tok = any("bleu_tok" in r[split] for rs in runs.values() for r in rs)
    columns = [("BLEU beam", beam, "bleu"), ("BLEU greedy", plots.greedy, "bleu"),
               *([("tok BLEU beam", beam, "bleu_tok")] if tok else []), ("chrF", beam, "chrf"),
               ("exact % beam", beam, "exact_match"), ("exact % greedy", plots.greedy, "exact_match")]
    rows = ["| model | runs | " + " | ".join(name for name, _, _ in columns) + " |", "|" + "---|" * (2 + len(columns))]
    for model, rs in runs.items():
        cells = [cell([decoding(r, split).get(key) for r in rs]) for _, decoding, key in columns]
        rows.append(f"| {model} | {len(rs)} | " + " | ".join(cells) + " |")
    return rows


def cost_table(runs: dict[str, list[Results]]) -> list[str]:
    rows = ["| model | params | train tok/s | decode tok/s greedy / beam | peak memory MB | MFU % | wall s |",
            "|" + "---|" * 7]
    for model, rs in runs.items():
        def mean(section: str, key: str, digits: int = 0, scale: float = 1.0) -> str:
            return fmt([r[section][key] for r in rs], digits, scale)
        rows.append(f"| {model} | {rs[0]['params']:,} | {mean('train', 'tokens_per_s')} "
                    f"| {mean('decode', 'greedy_tokens_per_s')} / {mean('decode', 'beam_tokens_per_s')} "
                    f"| {mean('memory', 'peak_mb')} | {mean('train', 'mfu', 1, 100)} | {mean('train', 'wall_s')} |")
    return rows


def splits_table(runs: dict[str, list[Results]], splits: list[str]) -> list[str]:
    """Both decodings' scores and length diagnostics on every split, one row per group and split; a figure no run
    has (results written before it was measured) is left out."""
    every = [(r, s) for rs in runs.values() for r in rs for s in splits]
    figures = [f for f in FIGURES if any(f[1] in beam(r, s) or f[1] in plots.greedy(r, s) for r, s in every)]
    decodings = (beam, plots.greedy)
    rows = ["| model | split | " + " | ".join(f"{name} {d.__name__}" for name, _, _ in figures for d in decodings)
            + " |", "|---|---|" + "---|" * 2 * len(figures)]
    for model, rs in runs.items():
        for s in splits:
            cells = [cell([d(r, s).get(key) for r in rs], digits) for _, key, digits in figures for d in decodings]
            rows.append(f"| {model} | {s} | " + " | ".join(cells) + " |")
    if len(figures) > 2:
        rows += ["", "Len ratio is sacreBLEU's hypothesis/reference length (below 1 costs BLEU its brevity penalty); "
                 "hit limit is the share of hypotheses that reached the decoding length limit without ending."]
    return rows


def bucket_cell(rs: list[dict], split: str, lo: int, hi: int) -> str:
    """A bucket's BLEU over seeds, and beam's mean length ratio there where the runs measured it."""
    buckets = [plots.bucket(r, split, lo, hi) for r in rs]
    ratios = [b["len_ratio"] for b in buckets if b and "len_ratio" in b]
    return cell([b and b["bleu"] for b in buckets], 0) + (f"; len {statistics.fmean(ratios):.2f}" if ratios else "")


def length_table(runs: dict[str, list[Results]], splits: list[str]) -> list[str]:
    """BLEU by source-length bucket, one row per split's bucket: the numbers behind bleu_by_length.png."""
    first = next(iter(runs.values()))[0]
    rows = ["| split | source tokens | sentences | " + " | ".join(runs) + " |", "|---|---|---|" + "---|" * len(runs)]
    for s in splits:
        for b in first[s]["by_src_len"]:
            rows.append(f"| {s} | {b['lo']}-{b['hi']} | {b['n']} | "
                        + " | ".join(bucket_cell(rs, s, b["lo"], b["hi"]) for rs in runs.values()) + " |")
    return rows


def beyond_training(runs: dict[str, list[Results]], splits: list[str]) -> list[str]:
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
        rows.append(f"| {model} | {cell([r[splits[0]]['bleu'] for r in rs])} | {cell([r[split]['bleu'] for r in rs])} "
                    f"| {kept[model]:.0f} | {bucket_cell(rs, split, lo['lo'], lo['hi'])} "
                    f"| {bucket_cell(rs, split, hi['lo'], hi['hi'])} |")
    best, worst = max(kept, key=kept.get), min(kept, key=kept.get)
    return [f"`{split}` holds sources of {lo['lo']}-{hi['hi']} tokens; the longest training source has {longest}. "
            f"Measured here, {best} keeps the most of its in-range BLEU beyond the training lengths "
            f"({kept[best]:.0f}%), {worst} the least ({kept[worst]:.0f}%).", "", *rows]


EXPOSURE_BUCKETS = ((1, 5), (6, 10), (11, 20), (21, 40), (41, 10**6))  # target positions


def exposure_table(runs: dict[str, list[Results]], split: str) -> list[str]:
    """Next-token accuracy on the reference's prefix against on the model's own, overall and by target position
    (the numbers behind exposure.png); nothing where the runs did not measure it."""
    if not all("exposure" in r[split] for rs in runs.values() for r in rs):
        return []
    positions = [p["t"] for rs in runs.values() for r in rs for p in r[split]["exposure"]["positions"]]
    buckets = [(lo, hi) for lo, hi in EXPOSURE_BUCKETS if any(lo <= t <= hi for t in positions)]
    rows = ["| model | runs | reference's prefix % | own prefix % | gap | rest after the first error % | "
            + " | ".join(f"positions {lo}-{hi}" if hi < 10**6 else f"positions {lo}+" for lo, hi in buckets) + " |",
            "|" + "---|" * (6 + len(buckets))]
    for model, rs in runs.items():
        forced, free = ([r[split]["exposure"][k] for r in rs] for k in ("teacher_forced", "free_running"))
        cells = [cell(forced), cell(free), cell([a - b for a, b in zip(forced, free)]),
                 cell([recovery(r, split) for r in rs])]
        for lo, hi in buckets:
            within = [[p for p in r[split]["exposure"]["positions"] if lo <= p["t"] <= hi] for r in rs]
            mean = [[sum(p[k] * p["n"] for p in ps) / max(sum(p["n"] for p in ps), 1) for ps in within]
                    for k in ("teacher_forced", "free_running")]
            cells.append(f"{statistics.fmean(mean[0]):.0f} / {statistics.fmean(mean[1]):.0f}")
        rows.append(f"| {model} | {len(rs)} | " + " | ".join(cells) + " |")
    return [f"On `{split}`: how often the most probable next token is the reference's, given the reference's prefix "
            "(teacher forcing, as the models trained) and given the model's own greedy prefix (as they decode, "
            "compared position by position, so a dropped or added token misaligns the rest). The gap is exposure "
            "bias with what follows from it. Whether the greedy outputs recover from their first error: over the "
            "wrong ones, the share of the reference's words from an output's first difference on that it still "
            "writes in order (`zoo.metrics.after_first_error`; \"–\" without kept greedy outputs). Position buckets give "
            "reference / own prefix, the mean over seeds.",
            "", *rows]


def recovery(run: Results, split: str) -> float | None:
    """`after_first_error` of the run's kept greedy outputs on `split`; None where it kept none."""
    samples = run[split].get("samples", [])
    if not samples or any("greedy" not in s for s in samples):
        return None
    return after_first_error([s["greedy"] for s in samples], [s["reference"] for s in samples])


def count(values: list) -> str:
    """How many seeds have each value: "3/3" for flags, "best 2/3, last 1/3" for other values; "–" if none."""
    n, present = len(values), [v for v in values if v is not None]
    if not present:
        return "–"
    if all(isinstance(v, bool) for v in present):
        return f"{sum(present)}/{n}"
    return ", ".join(f"{v} {present.count(v)}/{n}" for v in sorted(set(present), key=present.index))


def lowest_loss(train: Train) -> str:
    """The validation curve's lowest loss and its step, what early stopping on the loss watches ("–" for results
    written before the curve kept the loss)."""
    points = [p for p in train.get("val_curve", []) if p.get("loss") is not None]
    if not points:
        return "–"
    lowest = min(points, key=lambda p: p["loss"])
    return f"{lowest['loss']:.3f} at {lowest['step']}"


def convergence(runs: dict[str, list[Results]]) -> list[str]:
    """Whether each model learned its training data and when validation stopped improving; nothing for results
    written before these were kept."""
    if not any("fit" in r or "best_val_bleu" in r["train"] for rs in runs.values() for r in rs):
        return []
    losses = any(lowest_loss(r["train"]) != "–" for rs in runs.values() for r in rs)
    rows = ["| model | fit BLEU | fit exact % | best val BLEU | at step" + " | lowest val loss" * losses
            + " | test figures from | stopped early | val plateaued | training s |", "|" + "---|" * (9 + losses)]
    for model, rs in runs.items():
        fit, train = [r.get("fit", {}) for r in rs], [r["train"] for r in rs]
        cells = [cell([f.get("bleu") for f in fit]), cell([f.get("exact_match") for f in fit]),
                 cell([t.get("best_val_bleu") for t in train]),
                 ", ".join("–" if t.get("best_step") is None else str(t["best_step"]) for t in train),
                 *([", ".join(map(lowest_loss, train))] if losses else []),
                 *(count([t.get(key) for t in train]) for key in ("evaluated", "stopped_early", "val_plateaued")),
                 cell([t.get("train_s") for t in train], 0)]
        rows.append(f"| {model} | " + " | ".join(cells) + " |")
    n_fit = next((r["fit"]["n"] for rs in runs.values() for r in rs if "fit" in r), None)
    return [f"Fit: greedy translations of a fixed sample of {n_fit} training pairs, how well a model learned its own "
            "training data (far above test BLEU: it memorises; low: it underfits). Best val BLEU and its step come "
            "from the validation curve (greedy)" + ("; so does the lowest validation loss, which early stopping on "
                                                   "the loss watches" if losses else "") + "; \"test figures from\" "
            "says which weights were tested (best, last or the average of the last epochs); stopped early and val "
            "plateaued count seeds. Training seconds exclude validation.", "", *rows]


def machines(runs: list[Results]) -> list[str]:
    """Each machine and precision `runs` ran on, with the matrix-multiply peak they measured (each run measures its
    own, so a range where they differ)."""
    peaks: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        d = run["device"]
        peaks.setdefault((d["name"], d["precision"]), []).append(d["matmul_peak_gflops"])
    return [f"{name} ({precision}, measured matrix-multiply peak {spread_of(p)} GFLOP/s)"
            for (name, precision), p in sorted(peaks.items())]


def spread_of(peaks: list[float]) -> str:
    lo, hi = f"{min(peaks):,.0f}", f"{max(peaks):,.0f}"
    return lo if lo == hi else f"{lo}-{hi}"


def devices(runs: dict[str, list[Results]]) -> str:
    """The machine the runs ran on, or each group's where they differ (a run recorded later, or given fewer threads:
    its MFU is against its own peak)."""
    every = machines([r for rs in runs.values() for r in rs])
    if len(every) == 1:
        return every[0]
    return "; ".join(f"{m}: {' / '.join(machines(rs))}" for m, rs in runs.items())


def header(runs: dict[str, list[Results]], sweep_dir: Path) -> list[str]:
    first = next(iter(runs.values()))[0]
    split = first["test_splits"][0]
    seeds = sorted({r["seed"] for rs in runs.values() for r in rs})
    return [f"# {', '.join(runs)} on {first['data']}", "",
            f"{sum(map(len, runs.values()))} runs in `{sweep_dir}`, on {devices(runs)}, "
            f"seeds {', '.join(map(str, seeds))}. "
            f"A score reads mean ± sample standard deviation over a group's seeds, then in brackets each seed's own "
            f"value in seed order (beyond {LISTED} seeds, their min–max); costs (speed, memory, time) are mean ± "
            f"standard deviation. BLEU is sacreBLEU on detokenized text ({signatures(runs, split)}); \"beam\" is "
            f"beam search of size {first['decoding']['beam_size']}, \"greedy\" greedy decoding of the same model."
            + (" tok BLEU is BLEU on Moses-tokenized lowercased text (sacremoses, then sacreBLEU with tokenize=none), "
               "the figure the Multi30k papers report; it is not comparable with BLEU." if "bleu_tok" in first[split]
               else "") + scoring(runs), ""]


def signatures(runs: dict[str, list[Results]], split: str) -> str:
    """BLEU's signature, or each group's where they differ (a model trained on lowercased text is scored with
    case folded: case:lc)."""
    by_group = {m: sorted({r[split]["signature"] for r in rs}) for m, rs in runs.items()}
    if len({s for ss in by_group.values() for s in ss}) == 1:
        return f"`{next(iter(by_group.values()))[0]}`"
    return "; ".join(f"{m}: " + " / ".join(f"`{s}`" for s in ss) for m, ss in by_group.items())


def scoring(runs: dict[str, list[Results]]) -> str:
    """Which weights were scored and with what length penalty, where the runs did not simply take the last ones."""
    rs = [r for group in runs.values() for r in group]
    evaluated = sorted({r["train"].get("evaluated", "last") for r in rs})
    counts = sorted({len(r["train"]["averaged"]) for r in rs if r["train"].get("averaged")})
    text = "" if evaluated == ["last"] else f" Test figures from the {' / '.join(evaluated)} weights" + (
        f" (the average of each run's last {' or '.join(map(str, counts))} epoch checkpoints)" if counts else "") + "."
    return text + length_penalties(runs)


def alphas(tuning: dict) -> str:
    return ", ".join(f"{s['alpha']:g}" for s in tuning["scores"])


def length_penalties(runs: dict[str, list[Results]]) -> str:
    """Each group's length penalties chosen on validation, in seed order, and the grid they were chosen from (each
    run's own where the runs' grids differ); nothing where no run chose one."""
    tuned = {m: [r["alpha_tuning"] for r in group if r.get("alpha_tuning")] for m, group in runs.items()}
    tuned = {m: ts for m, ts in tuned.items() if ts}
    grids = {alphas(t) for ts in tuned.values() for t in ts}
    if not grids:
        return ""
    chosen = "; ".join(f"{m} " + ", ".join(f"{t['alpha']:g}" + ("" if len(grids) == 1 else f" (of {alphas(t)})")
                                           for t in ts) for m, ts in tuned.items())
    return (" Beam search's length penalty was chosen on the validation split"
            + (f" from {grids.pop()}" if len(grids) == 1 else "") + f", in seed order: {chosen}.")
