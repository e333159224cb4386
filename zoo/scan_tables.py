"""The report's section for SCAN (Lake & Baroni 2018): where exact matches are lost, read from the hypotheses every
run keeps. On the length split a test command may need a clause longer than any in training ("jump around left
thrice": 24 actions, where no training clause has more than 16) or only a longer combination of clauses seen in
training; a wrong output may stop too soon, run too long, or have the right length and wrong actions; and with
`oracle_length=true` the runs also decoded at each reference's length, which takes the decision to stop away."""
from __future__ import annotations

from operator import eq, gt, lt

from zoo.data.scan import SCAN, longest_clause, sentences
from zoo.metrics import percent, same_text
from zoo.results import Results
from zoo.tables import cell

DECODINGS = (("beam", "hypothesis"), ("greedy", "greedy"), ("oracle length", "oracle"))  # (header, sample key)


def right(samples: list[dict], key: str) -> list[bool] | None:
    """Which outputs of decoding `key` equal their reference; None where the run did not keep that decoding."""
    if any(key not in s for s in samples):
        return None
    return [same_text(s[key], s["reference"]) for s in samples]


def share(flags: list[bool] | None, where: list[bool]) -> float | None:
    """The percentage of `flags` set among the items `where` holds; None without flags or items."""
    if flags is None or not any(where):
        return None
    return percent([f for f, w in zip(flags, where) if w])


def error_kinds(samples: list[dict]) -> tuple[float, float, float]:
    """Of all items, the % whose beam output is wrong and shorter than the reference, of its length, longer."""
    lengths = [(len(s["hypothesis"].split()), len(s["reference"].split())) for s in samples]
    wrong = [not ok for ok in right(samples, "hypothesis")]
    return tuple(percent([w and compare(h, r) for w, (h, r) in zip(wrong, lengths)])
                 for compare in (lt, eq, gt))


def scan_tables(runs: dict[str, list[Results]], split: str) -> list[str]:
    """Exact match by decoding, by whether an item needs a clause longer than any in training, the kinds of error,
    and exact match by the reference's length; nothing for other data, or runs that kept no hypotheses."""
    first = next(iter(runs.values()))[0]
    if first["data"] != "scan" or not all(r[split].get("samples") for rs in runs.values() for r in rs):
        return []
    meaning = sentences()
    longest = max(longest_clause(c, meaning) for c, _ in SCAN(first["corpus"]["split"]).splits()["train"])
    samples = first[split]["samples"]  # every run holds the same items in the same order
    needs = [longest_clause(s["source"], meaning) > longest for s in samples]
    everything = [True] * len(samples)
    rows = ["| model | runs | " + " | ".join(f"exact % {name}" for name, _ in DECODINGS)
            + f" | beam, needs a clause > {longest} (n={sum(needs)}) | beam, the others (n={len(needs) - sum(needs)})"
            " | wrong and too short % | wrong, right length % | wrong and too long % |", "|" + "---|" * 10]
    for model, rs in runs.items():
        beams = [right(r[split]["samples"], "hypothesis") for r in rs]
        kinds = list(zip(*(error_kinds(r[split]["samples"]) for r in rs)))
        cells = [*(cell([share(right(r[split]["samples"], key), everything) for r in rs]) for _, key in DECODINGS),
                 cell([share(b, needs) for b in beams]), cell([share(b, [not n for n in needs]) for b in beams]),
                 *(cell(list(k)) for k in kinds)]
        rows.append(f"| {model} | {len(rs)} | " + " | ".join(cells) + " |")
    lengths = [len(s["reference"].split()) for s in samples]
    by_length = ["| actions | items | " + " | ".join(runs) + " |", "|---|---|" + "---|" * len(runs)]
    for n in sorted(set(lengths)):
        where = [length == n for length in lengths]
        by_length.append(f"| {n} | {sum(where)} | " + " | ".join(
            cell([share(right(r[split]["samples"], "hypothesis"), where) for r in rs], 0) for rs in runs.values())
            + " |")
    return [f"Exact match on `{split}` ({len(samples)} commands), from the kept hypotheses. \"Needs a clause > "
            f"{longest}\": the command has a clause meaning more actions than any clause of a training command. "
            "The three kinds of error add up, with exact % beam, to 100. Oracle length decodes greedily with EOS "
            "barred until the reference's length (Newman et al. 2020; runs with oracle_length=true).", "", *rows,
            "", "Exact % of beam search by the reference's number of actions:", "", *by_length]
