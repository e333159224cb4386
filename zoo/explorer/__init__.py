"""A sweep's explorer page: `explorer.html` beside `report.md`, one self-contained file (its data, script and style
inline; it loads nothing, so it opens from a laptop's disk or a cluster's file browser). It shows

- the report's tables, and BLEU by source length as a chart whose points tell their sentence count and every seed's
  value on hover;
- any test sentence, found by its words or its length: the source, the reference, and each group's translation with
  the words that differ from the reference marked, beside each model's attention over the source (the attention
  RNN's alignment, the Transformer's cross-attention by layer and head or averaged, the GRU's single context vector
  as the one thing it is); attention for the sample of sentences every run stores (`attention_sample`);
- validation BLEU against training time, one line per seed.

Written by `zoo.report` with the report; the page itself is page.html, explorer.js and explorer.css in this folder.
Translations and attention are each group's first run's (its lowest seed); the tables and charts cover every seed.
"""
from __future__ import annotations

import html
import json
import re
import statistics
from importlib import resources
from pathlib import Path

import markdown
from matplotlib.colors import to_hex

from zoo import plots
from zoo.results import Results


def page_data(runs: dict[str, list[Results]], report_md: str) -> dict:
    """Everything the page shows, as one JSON-able dictionary (the script's `DATA`)."""
    colors = plots.palette(runs)
    splits = next(iter(runs.values()))[0]["test_splits"]
    shown = {group: shown_run(rs, splits) for group, rs in runs.items()}
    texts = next((r for r in shown.values() if r is not None), None)
    return {
        "groups": [{"name": group, "architecture": plots.architecture(rs[0]), "color": to_hex(colors[group]),
                    "seeds": [r["seed"] for r in rs], "shown_seed": None if shown[group] is None else
                    shown[group]["seed"]} for group, rs in runs.items()],
        "splits": splits,
        "longest_training_source": plots.longest_training_source(runs),
        "report_html": markdown.markdown(without_plots(report_md), extensions=["tables"]),
        "by_length": {group: {split: by_length(rs, split) for split in splits} for group, rs in runs.items()},
        "curves": {group: [{"seed": r["seed"], "points": [[p["train_s"] / 60, p["bleu"], p.get("fit_bleu")]
                                                          for p in r["train"]["val_curve"]]} for r in rs]
                   for group, rs in runs.items()},
        "sentences": {split: [{"source": s["source"], "reference": s["reference"]} for s in texts[split]["samples"]]
                      if texts else [] for split in splits},
        "translations": {group: {split: [{"beam": s["hypothesis"], "greedy": s.get("greedy")}
                                         for s in r[split]["samples"]] for split in splits}
                         for group, r in shown.items() if r is not None},
        "attention": {group: r.get("attention_sample") for group, r in shown.items()  # None: a model without
                      if r is not None and ("attention_sample" in r or r["alignment"] is None)},  # any
    }


def shown_run(rs: list[Results], splits: list[str]) -> Results | None:
    """The run of a group whose translations and attention the page shows: its lowest seed that kept every
    translation, and its attention where a run kept that too (runs from before the explorer did not)."""
    complete = [r for r in rs if all("samples" in r[split] for split in splits)]
    return next((r for r in complete if "attention_sample" in r), complete[0] if complete else None)


def by_length(rs: list[Results], split: str) -> list[dict]:
    """A group's BLEU in each source-length bucket of `split`: the sentence count, the mean and each seed's value."""
    rows = []
    for edge in rs[0][split]["by_src_len"]:
        found = [(r["seed"], b) for r in rs if (b := plots.bucket(r, split, edge["lo"], edge["hi"]))]
        rows.append({"lo": edge["lo"], "hi": edge["hi"], "n": edge["n"],
                     "mean": statistics.fmean(b["bleu"] for _, b in found),
                     "seeds": [{"seed": seed, "bleu": b["bleu"]} for seed, b in found]})
    return rows


def without_plots(report_md: str) -> str:
    """The report's text less its "Plots" section (PNG files beside it, which the page draws for itself)."""
    return re.sub(r"^## Plots\n.*?(?=^## |\Z)", "", report_md, flags=re.DOTALL | re.MULTILINE)


def asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text()


def write_explorer(runs: dict[str, list[Results]], sweep_dir: Path, report_md: str) -> Path:
    """explorer.html in `sweep_dir`; returns its path."""
    data = json.dumps(page_data(runs, report_md), separators=(",", ":")).replace("</", "<\\/")  # no </script> inside
    title = html.escape(f"{', '.join(runs)}: {sweep_dir.name}")
    page = (asset("page.html").replace("/*STYLE*/", asset("explorer.css")).replace("/*SCRIPT*/", asset("explorer.js"))
            .replace("<!--TITLE-->", title).replace('"/*DATA*/"', data))  # (the data last: it is the only text given)
    path = sweep_dir / "explorer.html"
    path.write_text(page)
    return path
