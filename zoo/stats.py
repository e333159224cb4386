"""Is a gap between two groups of runs real, or an accident of which sentences the test set happens to hold? Two
paired tests on the sentences both runs translated, for every pair of groups and every seed the two share:

- BLEU: sacrebleu's paired bootstrap resampling (Koehn 2004): test sets of the same size are drawn with replacement
  from the sentences, and p is how often the gap between the two systems departs from its mean by as much as the
  real gap does. Where the runs scored tok BLEU (Moses-tokenized lowercased text, the Multi30k papers' figure), the
  same test on that figure too.
- Exact match: McNemar's exact test. Only the sentences that exactly one of the two systems gets exactly right say
  anything about which is better; if neither is, each of them is a fair coin toss, so p is a two-sided binomial test
  at 1/2 on those discordant sentences.

Neither says anything about how much a result varies between seeds: the report lists every seed's value for that.
"""
from __future__ import annotations

import statistics
from itertools import combinations
from typing import NamedTuple

from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest
from scipy.stats import binomtest

from zoo.metrics import moses_tokenized, same_text, tok_bleu
from zoo.results import Results

LEVELS = (0.001, 0.01, 0.05)  # the thresholds a one-line verdict names


class Outcome(NamedTuple):
    """One test on one seed: the gap (first system minus second), its p-value, and what the gap rests on."""
    diff: float
    p: float
    note: str = ""


def bootstrap(hyps_a: list[str], hyps_b: list[str], refs: list[str], n_samples: int, bleu: BLEU | None = None
              ) -> Outcome:
    """BLEU of a minus BLEU of b, and the paired bootstrap's two-sided p-value (sacrebleu compares every system with
    its first; a pair is the two-system case). `bleu`: the metric, sacreBLEU's default BLEU unless given."""
    _, scores = PairedTest([("a", hyps_a), ("b", hyps_b)], {"BLEU": bleu or BLEU()}, [refs], test_type="bs",
                           n_samples=n_samples)()
    a, b = scores["BLEU"]
    return Outcome(a.score - b.score, b.p_value)


def mcnemar(right_a: list[bool], right_b: list[bool]) -> Outcome:
    """Exact match of a minus that of b (percentage points), and McNemar's exact p-value; the note gives the
    discordant counts, sentences right only in a : only in b."""
    only_a = sum(a and not b for a, b in zip(right_a, right_b))
    only_b = sum(b and not a for a, b in zip(right_a, right_b))
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return Outcome(100 * (only_a - only_b) / max(len(right_a), 1), p, f"{only_a}:{only_b}")


def exact(samples: list[dict], lowercase: bool = False) -> list[bool]:
    """Which hypotheses equal their reference up to whitespace, and case with `lowercase` (zoo.metrics' exact
    match)."""
    return [same_text(s["hypothesis"], s["reference"], lowercase) for s in samples]


def folds_case(run: Results) -> bool:
    """Whether the run's model writes lowercase (data.preprocess.lowercase), so that its scores fold case."""
    return bool(run.get("corpus", {}).get("settings", {}).get("lowercase"))


def tok_lang(run_a: Results, run_b: Results, split: str) -> str | None:
    """The target language both runs scored tok BLEU in; None where either did not."""
    langs = {r.get("corpus", {}).get("tgt_lang") if "bleu_tok" in r[split] else None for r in (run_a, run_b)}
    return langs.pop() if len(langs) == 1 else None


def both_tests(run_a: Results, run_b: Results, split: str, n_samples: int) -> dict[str, Outcome] | None:
    """The BLEU test, the tok BLEU test where both runs scored it, and the exact-match test of two runs on `split`,
    each under the report's heading for it; None where either kept no translations (results written before every
    sentence was kept) or they translated different sentences. Where either model writes lowercase, BLEU and exact
    match fold case for both, so that neither loses points for case the other was not asked to get right."""
    a, b = run_a[split].get("samples"), run_b[split].get("samples")
    if not a or not b or [s["reference"] for s in a] != [s["reference"] for s in b]:
        return None
    hyps_a, hyps_b, refs = [s["hypothesis"] for s in a], [s["hypothesis"] for s in b], [s["reference"] for s in a]
    lowercase = folds_case(run_a) or folds_case(run_b)
    tests = {"BLEU": bootstrap(hyps_a, hyps_b, refs, n_samples, BLEU(lowercase=lowercase))}
    if lang := tok_lang(run_a, run_b, split):
        tokenized = (moses_tokenized(texts, lang) for texts in (hyps_a, hyps_b, refs))
        tests["tok BLEU"] = bootstrap(*tokenized, n_samples, tok_bleu())
    return tests | {"Exact match": mcnemar(exact(a, lowercase), exact(b, lowercase))}


def reference(runs: dict[str, list[Results]], split: str) -> str | None:
    """The group with the best mean BLEU among those run on every seed of the sweep: a group with fewer seeds may
    lead by the luck of its one seed, and could not be set against the others on theirs."""
    seeds = set().union(*({r["seed"] for r in rs} for rs in runs.values()))
    full = [m for m, rs in runs.items() if {r["seed"] for r in rs} == seeds]
    return max(full, key=lambda m: statistics.fmean(r[split]["bleu"] for r in runs[m]), default=None)


def pairs(runs: dict[str, list[Results]], split: str) -> list[tuple[str, str]]:
    """Every pair of groups, the reference's pairs first (with the reference named first)."""
    ref = reference(runs, split)
    first = [(ref, m) for m in runs if ref is not None and m != ref]
    return first + [(a, b) for a, b in combinations(runs, 2) if ref not in (a, b)]


def pair_tests(runs: dict[str, list[Results]], split: str, n_samples: int = 1000) -> dict:
    """{(a, b): {seed: {test's heading: Outcome}}} over the seeds each pair shares (`both_tests`)."""
    tests = {}
    for a, b in pairs(runs, split):
        by_seed = {r["seed"]: r for r in runs[b]}
        tests[a, b] = {r["seed"]: out for r in runs[a] if r["seed"] in by_seed
                       and (out := both_tests(r, by_seed[r["seed"]], split, n_samples)) is not None}
    return tests


def p_text(p: float) -> str:
    """Three decimals, or as many more as it takes not to print a p beside a threshold as the threshold itself
    (0.00999, not 0.010, next to "all p < 0.01")."""
    if p < 0.001:
        return "< 0.001"
    decimals = 3
    while decimals < 8 and (shown := float(f"{p:.{decimals}f}")) in LEVELS and shown != p:
        decimals += 1
    return f"{p:.{decimals}f}"


def verdict(a: str, b: str, outcomes: list[Outcome]) -> str:
    """One line for a pair across its seeds: who is ahead on how many, and how sure each seed's test is."""
    n = len(outcomes)
    ahead_a, ahead_b = sum(o.diff > 0 for o in outcomes), sum(o.diff < 0 for o in outcomes)
    ps = [o.p for o in outcomes]
    if n in (ahead_a, ahead_b):
        win, lose = (a, b) if ahead_a == n else (b, a)
        level = next((lv for lv in LEVELS if max(ps) < lv), None)
        sure = (f"all p < {level}" if n > 1 else f"p < {level}") if level else "p by seed " + ", ".join(map(p_text, ps))
        return f"{win} > {lose} on {n}/{n} seeds, {sure}"
    ties = f", tied on {n - ahead_a - ahead_b}/{n}" if ahead_a + ahead_b < n else ""
    return (f"mixed: {a} > {b} on {ahead_a}/{n} seeds, {b} > {a} on {ahead_b}/{n}{ties}; "
            f"p by seed {', '.join(map(p_text, ps))}")


def pair_table(tests: dict, seeds: list[int], which: str, digits: int, unit: str) -> list[str]:
    """One row per pair: each shared seed's gap (first minus second) on the test `which` and its p-value, then the
    verdict; a pair no seed of which ran that test has no row."""
    rows = ["| pair (first − second) | " + " | ".join(f"seed {s}: Δ{unit} (p)" for s in seeds) + " | across seeds |",
            "|---|" + "---|" * (len(seeds) + 1)]
    for (a, b), by_seed in tests.items():
        outcomes = {seed: out[which] for seed, out in by_seed.items() if which in out}
        if not outcomes:
            continue
        cells = []
        for seed in seeds:
            o = outcomes.get(seed)
            note = f"{o.note}, " if o and o.note else ""
            cells.append("–" if o is None else f"{o.diff:+.{digits}f} ({note}p {p_text(o.p)})")
        summary = verdict(a, b, list(outcomes.values()))
        rows.append(f"| {a} − {b} | " + " | ".join(cells) + f" | {summary} |")
    return rows


def significance(runs: dict[str, list[Results]], split: str, n_samples: int = 1000) -> list[str]:
    """The report's section on the paired tests; nothing for a single group."""
    tests = pair_tests(runs, split, n_samples)
    if not tests:
        return []
    if not any(tests.values()):
        return ["No pair was tested: no two runs of one seed have their translations of every sentence in their "
                "results.json (the committed results keep only their scores)."]
    seeds = sorted({s for by_seed in tests.values() for s in by_seed})
    ref = reference(runs, split)
    tok = any("tok BLEU" in out for by_seed in tests.values() for out in by_seed.values())
    lines = [f"On `{split}`, beam search's output, every pair of groups on every seed the two share. BLEU"
             + (" and tok BLEU" if tok else "") + f": paired bootstrap resampling (sacrebleu, {n_samples} resamples: "
             "how often resampled test sets show a gap that far from its mean); exact match: McNemar's exact test (a "
             "two-sided binomial test at 1/2 on the sentences exactly one of the two gets exactly right, counted as "
             "only-first:only-second). p < 0.05 means the gap is unlikely to come from which sentences the test set "
             "holds; no test says anything about variation between seeds, which the per-seed values above show.", ""]
    if ref is not None:
        lines += [f"{ref} has the best mean BLEU of the groups run on every seed; its pairs come first.", ""]
    for which, unit in (("BLEU", "BLEU"), *([("tok BLEU", "tok BLEU")] if tok else []), ("Exact match", "%")):
        lines += [f"### {which}", "", *pair_table(tests, seeds, which, 1, unit), ""]
    return lines[:-1]
