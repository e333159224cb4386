"""The sweep report on a tiny fake sweep: every seed's value beside mean ± std, greedy beside beam, the convergence
table, the paired tests between every pair of groups, the plots, failed jobs, results written before the schema grew,
and the one-line errors."""
import gzip
import json
import random
import statistics
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import matplotlib.image
import pytest
from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest
from scipy.stats import binomtest

from zoo import plots, stats, tables
from zoo.metrics import corpus_scores, moses_tokenized
from zoo.report import ReportError, load_runs, write_report
from zoo.results import Results, check
from zoo.tables import cell, devices, length_penalties, signatures

ROOT = Path(__file__).resolve().parents[1]
WORDS = "the a red blue dog cat sees chases big small house tree runs near over".split()
RATES = {"gru": 0.6, "attention": 0.2, "transformer": 0.3}  # share of words corrupted: the quality we control
SEEDS = (0, 1, 2)
PRECISE = "attention trainer.precision=32-true"  # one seed only, and the best BLEU of all


def sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(n)]


def corrupt(refs: list[str], rate: float, seed: int) -> list[str]:
    """Each word replaced with probability `rate`: a system whose quality we control."""
    rng = random.Random(seed)
    return [" ".join(w if rng.random() > rate else rng.choice(WORDS) for w in r.split()) for r in refs]


def figures(hyps: list[str], refs: list[str], hit_limit: float) -> dict:
    """A decoding's figures as zoo/train.py writes them."""
    score = BLEU().corpus_score(hyps, [refs])
    return {**corpus_scores(hyps, refs, lang="en"), "len_ratio": score.sys_len / score.ref_len, "sys_len": score.sys_len,
            "ref_len": score.ref_len, "hit_limit": hit_limit}


def by_len(bleu: float, n: int, lo: int = 1) -> list[dict]:
    return [{"lo": lo, "hi": lo + 9, "n": n - 5, "bleu": bleu + 5, "len_ratio": 0.97, "hit_limit": 0.0},
            {"lo": lo + 10, "hi": lo + 19, "n": 5, "bleu": bleu, "len_ratio": 0.9, "hit_limit": 20.0}]


def fake_results(model: str, seed: int, refs: list[str], beam: list[str], greedy: list[str], alignment: bool,
                 old: bool = False) -> Results:
    """One run's results.json in the current schema, or (old) as runs wrote it before greedy figures, length
    diagnostics, the fit sample and the convergence keys were kept."""
    b, g = figures(beam, refs, 5.0), figures(greedy, refs, 10.0)
    split = {**b, "by_src_len": by_len(b["bleu"], len(refs)),
             "greedy": {**g, "by_src_len": by_len(g["bleu"], len(refs))},
             "samples": [{"source": r, "reference": r, "hypothesis": h, "greedy": gh}
                         for r, h, gh in zip(refs, beam, greedy)]}
    keep = {"gru": 0.2, "attention": 0.8, "transformer": 0.5}[model]  # of the in-range BLEU, beyond training lengths
    long = {**split, "bleu": keep * b["bleu"], "by_src_len": by_len(keep * b["bleu"], len(refs), lo=21)}
    curve = [{"step": 5, "train_s": 30.0, "wall_s": 31.0, "bleu": b["bleu"] / 2, "fit_bleu": b["bleu"] / 2 + 1,
              "loss": 2.5},
             {"step": 10, "train_s": 60.0, "wall_s": 62.0, "bleu": b["bleu"], "fit_bleu": b["bleu"] + 1,
              "loss": 2.0 + 0.1 * seed + 0.5 * (seed == 2)}]  # seed 2's lowest at step 5
    results = {
        "model": model, "data": "toy", "params": 1000 + len(model), "seed": seed,
        "device": {"name": "test CPU", "type": "cpu", "precision": "bf16-mixed", "matmul_peak_gflops": 500.0},
        "corpus": {"train_max_src_len": 20, "tgt_lang": "en"}, "test_splits": ["test", "test_long"],
        "test": split, "test_long": long,
        "fit": {"n": 50, "bleu": b["bleu"] + 1, "chrf": b["chrf"], "exact_match": 50.0 + seed, "len_ratio": 1.0,
                "hit_limit": 0.0, "samples": split["samples"][:3]},
        "train": {"wall_s": 100.0 + seed, "steps": 10, "tokens_per_s": 1000.0 * (seed + 1), "train_s": 90.0 + seed,
                  "tgt_tokens_per_s": 500.0, "mfu": 0.1, "flops_per_token": 1e6, "val_curve": curve,
                  "best_step": 10 - 5 * (seed == 2), "best_val_bleu": b["bleu"], "evaluated": "best",
                  "stopped_early": seed == 2, "val_plateaued": seed != 0},
        "decode": {"greedy_tokens_per_s": 2000.0, "beam_tokens_per_s": 800.0}, "decoding": {"beam_size": 4},
        "memory": {"peak_mb": 300.0, "kind": "peak RSS"},
        "alignment": {"source": ["a", "b", "c"], "target": ["x", "y", "</s>"],
                      "weights": [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]} if alignment else None,
        "wandb": None, "overrides": [f"model={model}", f"seed={seed}"],
    }
    return check(make_old(results) if old else results, f"the fake {model} run, seed {seed}")


def make_old(results: Results) -> Results:
    del results["fit"]
    for key in ("best_step", "best_val_bleu", "evaluated", "stopped_early", "val_plateaued"):
        del results["train"][key]
    for point in results["train"]["val_curve"]:
        del point["fit_bleu"], point["loss"]
    for split in results["test_splits"]:
        s = results[split]
        s["greedy_bleu"] = s.pop("greedy")["bleu"]
        for key in ("len_ratio", "sys_len", "ref_len", "hit_limit", "bleu_tok"):
            del s[key]
        s["by_src_len"] = [{k: v for k, v in b.items() if k in ("lo", "hi", "n", "bleu")} for b in s["by_src_len"]]
        s["samples"] = [{k: v for k, v in x.items() if k != "greedy"} for x in s["samples"]]
    return results


def write_sweep(sweep_dir: Path, refs: list[str], old: bool = False) -> dict:
    """gru, attention and transformer on three seeds, and one more attention run in fp32 on seed 0 alone, in Hydra's
    job-directory layout; returns each run's (beam, greedy) hypotheses."""
    jobs = [(model, seed, rate) for model, rate in RATES.items() for seed in SEEDS] + [("attention", 0, 0.0)]
    systems = {}
    for job, (model, seed, rate) in enumerate(jobs):
        beam, greedy = corrupt(refs, rate, seed=10 * job), corrupt(refs, rate + 0.05, seed=10 * job + 1)
        results = fake_results(model, seed, refs, beam, greedy, alignment=model != "gru", old=old)
        if rate == 0.0:
            results["overrides"].append("trainer.precision=32-true")
        systems[PRECISE if rate == 0.0 else model, seed] = beam, greedy
        (sweep_dir / str(job)).mkdir()
        (sweep_dir / str(job) / "results.json").write_text(json.dumps(results))
    return systems


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, dict, str]:
    """The sweep, one failed job and one killed, and its report (written once: the tests only read it)."""
    sweep_dir = tmp_path_factory.mktemp("sweep")
    refs = sentences(60, seed=0)
    systems = write_sweep(sweep_dir, refs)
    (sweep_dir / "10_model=broken").mkdir()
    (sweep_dir / "10_model=broken/error.txt").write_text("Traceback ...")
    (sweep_dir / "11_model=killed/.hydra").mkdir(parents=True)  # killed from outside: no error.txt
    return sweep_dir, {"refs": refs, "systems": systems}, write_report(sweep_dir).read_text()


def section(report: str, title: str) -> str:
    return report.split(f"## {title}\n")[1].split("\n## ")[0]


def row(text: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is `first`."""
    line = next(line for line in text.splitlines() if line.startswith(f"| {first} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def bleu(hyps: list[str], refs: list[str]) -> float:
    return BLEU().corpus_score(hyps, [refs]).score


def listed(values: list[float], digits: int = 1) -> str:
    """What a report cell should read for a few seeds' values."""
    each = ", ".join(f"{v:.{digits}f}" for v in values)
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f} ({each})"


def test_runs_are_grouped_by_architecture_in_the_zoos_order(sweep):
    sweep_dir, _, _ = sweep
    runs, failed = load_runs(sweep_dir)
    assert list(runs) == ["gru", "attention", PRECISE, "transformer"]  # a variant beside its architecture
    assert [[r["seed"] for r in rs] for rs in runs.values()] == [[0, 1, 2], [0, 1, 2], [0], [0, 1, 2]]
    assert failed == [sweep_dir / "10_model=broken", sweep_dir / "11_model=killed"]


def test_a_score_cell_holds_mean_spread_and_every_seeds_value(sweep):
    _, data, report = sweep
    beams = [bleu(data["systems"]["attention", s][0], data["refs"]) for s in SEEDS]
    greedies = [bleu(data["systems"]["attention", s][1], data["refs"]) for s in SEEDS]
    assert ("| model | runs | BLEU beam | BLEU greedy | tok BLEU beam | chrF | exact % beam | exact % greedy |"
            in report)
    toks = [corpus_scores(data["systems"]["attention", s][0], data["refs"], lang="en")["bleu_tok"] for s in SEEDS]
    assert row(section(report, "test"), "attention")[:5] == ["attention", "3", listed(beams), listed(greedies),
                                                             listed(toks)]
    assert "tok BLEU is BLEU on Moses-tokenized lowercased text" in report.splitlines()[2]
    assert row(section(report, "test"), PRECISE)[2] == f"{bleu(data['systems'][PRECISE, 0][0], data['refs']):.1f}"
    costs = section(report, "test").split("| model | params")[1]
    assert row(costs, "attention")[2:] == ["2,000 ± 1,000", "2,000 ± 0 / 800 ± 0", "300 ± 0", "10.0 ± 0.0",
                                           "101 ± 1"]  # costs: mean ± std alone
    assert "each seed's own value in seed order" in report.splitlines()[2]
    assert "**2 job(s) failed**" in report and "10_model=broken" in report and "11_model=killed" in report
    assert ("attention keeps the most of its in-range BLEU beyond the training lengths (80%), gru the least (20%)"
            in report)


def test_beyond_five_seeds_a_cell_gives_the_range_and_a_missing_figure_a_dash():
    assert cell([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == "3.5 ± 1.9 (1.0–6.0)"
    assert cell([None, 2.0, 4.0]) == "3.0 ± 1.4 (–, 2.0, 4.0)"
    assert cell([None, None]) == "–"


def test_every_split_shows_both_decodings_and_their_length_diagnostics(sweep):
    _, data, report = sweep
    splits = section(report, "Every test split")
    assert ("| model | split | BLEU beam | BLEU greedy | tok BLEU beam | tok BLEU greedy | exact % beam "
            "| exact % greedy | len ratio beam | len ratio greedy | hit limit % beam | hit limit % greedy |") in splits
    cells = row(splits.split("| gru | test_long |")[0], "gru")  # gru's first row: test
    ratios = [BLEU().corpus_score(data["systems"]["gru", s][1], [data["refs"]]) for s in SEEDS]
    ratios = [r.sys_len / r.ref_len for r in ratios]
    assert cells[9] == listed(ratios, 2)
    assert cells[10:] == ["5.0 ± 0.0 (5.0, 5.0, 5.0)", "10.0 ± 0.0 (10.0, 10.0, 10.0)"]
    by_length = section(report, "BLEU by source length (tokens; the longest training source has 20)")
    assert row(by_length, "test_long")[:3] == ["test_long", "21-30", "55"]
    assert row(by_length, "test_long")[4].endswith("; len 0.97")


def test_convergence_counts_seeds_and_lists_best_steps(sweep):
    _, data, report = sweep
    cells = row(section(report, "Convergence"), "transformer")
    fit = [bleu(data["systems"]["transformer", s][0], data["refs"]) + 1 for s in SEEDS]
    assert cells[1] == listed(fit)
    assert cells[2] == "51.0 ± 1.0 (50.0, 51.0, 52.0)"
    assert cells[4:] == ["10, 10, 5", "2.000 at 10, 2.100 at 10, 2.500 at 5", "best 3/3", "1/3", "2/3",
                         "91 ± 1 (90, 91, 92)"]


def test_every_pair_is_tested_on_every_seed_it_shares(sweep):
    _, _, report = sweep
    tested = section(report, "Is the difference real?")
    for table in tested.split("### ")[1:]:
        rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| pair")]
        pairs = [tuple(line.split(" | ")[0][2:].split(" − ")) for line in rows]
        assert len(pairs) == 6
        assert {frozenset(p) for p in pairs} == {frozenset(p) for p in combinations([*RATES, PRECISE], 2)}
        assert row(table, "attention − gru")[1:4] != ["–"] * 3  # seeds 1 and 2 too, not only the one all share
        assert row(table, "attention − " + PRECISE)[2:4] == ["–", "–"]  # the fp32 run has seed 0 alone


def test_a_better_system_wins_on_every_seed_with_sacrebleus_bootstrap_p(sweep):
    _, data, report = sweep
    bleu_table = section(report, "Is the difference real?").split("### BLEU")[1].split("###")[0]
    cells = row(bleu_table, "attention − gru")
    for seed in SEEDS:
        systems = [(m, data["systems"][m, seed][0]) for m in ("attention", "gru")]
        _, scores = PairedTest(systems, {"BLEU": BLEU()}, [data["refs"]], test_type="bs", n_samples=1000)()
        base, gru = scores["BLEU"]
        assert gru.p_value < 0.05
        assert cells[1 + seed] == f"{base.score - gru.score:+.1f} (p {stats.p_text(gru.p_value)})"
    assert cells[-1].startswith("attention > gru on 3/3 seeds, all p < 0.0")


def test_tok_bleu_gets_its_own_bootstrap_whose_gaps_are_the_runs_own_tok_bleu_gaps(sweep):
    sweep_dir, data, report = sweep
    runs, _ = load_runs(sweep_dir)
    cells = row(section(report, "Is the difference real?").split("### tok BLEU")[1].split("###")[0],
                "attention − gru")
    refs = moses_tokenized(data["refs"], "en")
    for seed in SEEDS:
        a, b = ({r["seed"]: r for r in runs[m]}[seed]["test"]["bleu_tok"] for m in ("attention", "gru"))
        systems = [(m, moses_tokenized(data["systems"][m, seed][0], "en")) for m in ("attention", "gru")]
        _, scores = PairedTest(systems, {"BLEU": BLEU(tokenize="none", force=True)}, [refs], test_type="bs",
                               n_samples=1000)()
        assert cells[1 + seed] == f"{a - b:+.1f} (p {stats.p_text(scores['BLEU'][1].p_value)})"
    assert "BLEU and tok BLEU: paired bootstrap resampling" in report


def test_where_a_model_writes_lowercase_both_sides_of_its_pairs_are_tested_with_case_folded():
    refs = sentences(60, 7)
    cased_refs = [r.capitalize() for r in refs]
    good, poor = corrupt(refs, 0.1, 1), [h.capitalize() for h in corrupt(refs, 0.3, 2)]

    def run(hyps: list[str], lowercase: bool) -> dict:
        return {"corpus": {"settings": {"lowercase": lowercase}},
                "test": {"samples": [{"reference": r, "hypothesis": h} for r, h in zip(cased_refs, hyps)]}}

    tests = stats.both_tests(run(good, True), run(poor, False), "test", 200)
    folded = BLEU(lowercase=True)
    gap = folded.corpus_score(good, [cased_refs]).score - folded.corpus_score(poor, [cased_refs]).score
    assert tests["BLEU"].diff == pytest.approx(gap) and gap > 0
    cased_gap = BLEU().corpus_score(good, [cased_refs]).score - BLEU().corpus_score(poor, [cased_refs]).score
    assert cased_gap < gap - 5  # cased, the lowercased run would lose every sentence's capital
    right_good = [g == r for g, r in zip(good, refs)]
    right_poor = [p.lower() == r for p, r in zip(poor, refs)]  # right but for the capital, which folding forgives
    assert tests["Exact match"] == stats.mcnemar(right_good, right_poor) and any(right_poor)
    assert stats.both_tests(run(good, False), run(poor, False), "test", 200)["BLEU"].diff == pytest.approx(cased_gap)


def test_exact_match_gets_mcnemars_exact_test():
    right_a = [True] * 7 + [False] * 2 + [True] * 5 + [False] * 6
    right_b = [False] * 7 + [True] * 2 + [True] * 5 + [False] * 6
    outcome = stats.mcnemar(right_a, right_b)
    assert outcome == (100 * 5 / 20, binomtest(7, 9, 0.5).pvalue, "7:2")
    assert outcome.p == pytest.approx(2 * (1 + 9 + 36) / 2**9)  # both tails of 9 coin tosses, 2 or fewer one way
    assert stats.mcnemar([True, False], [True, False]).p == 1.0  # nothing discordant: nothing to tell them apart


def test_verdict_says_mixed_when_seeds_disagree():
    outcomes = [stats.Outcome(2.0, 0.0005), stats.Outcome(-1.0, 0.2), stats.Outcome(3.0, 0.03)]
    assert stats.verdict("a", "b", outcomes) == ("mixed: a > b on 2/3 seeds, b > a on 1/3; "
                                                 "p by seed < 0.001, 0.200, 0.030")
    assert stats.verdict("a", "b", outcomes[:1]) == "a > b on 1/1 seeds, p < 0.001"
    sure = [stats.Outcome(1.0, 0.004), stats.Outcome(2.0, 0.03)]
    assert stats.verdict("a", "b", sure) == "a > b on 2/2 seeds, all p < 0.05"
    assert stats.verdict("a", "b", [stats.Outcome(-1.0, 0.2)] * 2) == "b > a on 2/2 seeds, p by seed 0.200, 0.200"


def test_a_p_value_just_under_a_threshold_never_prints_as_the_threshold():
    assert [stats.p_text(p) for p in (0.2, 0.03, 0.01)] == ["0.200", "0.030", "0.010"]
    assert stats.p_text(10 / 1001) == "0.00999"   # beside "all p < 0.01", "0.010" would read as a contradiction
    assert stats.p_text(0.04999) == "0.04999" and stats.p_text(0.0501) == "0.0501"
    assert stats.p_text(0.0004) == "< 0.001"


def test_a_group_with_a_single_seed_is_never_the_reference(sweep):
    sweep_dir, _, report = sweep
    runs, _ = load_runs(sweep_dir)
    assert max(runs, key=lambda m: statistics.fmean(r["test"]["bleu"] for r in runs[m])) == PRECISE
    assert stats.reference(runs, "test") == "attention"
    assert "attention has the best mean BLEU of the groups run on every seed" in report


def test_report_draws_every_plot(sweep):
    sweep_dir, _, report = sweep
    for name in ("scores.png", "bleu_by_length.png", "throughput.png", "val_bleu_vs_time.png", "attention.png"):
        image = matplotlib.image.imread(sweep_dir / name)
        assert image.shape[0] > 200 and image.shape[1] > 400, name
        assert f"![{name}]({name})" in report


def test_results_written_before_the_schema_grew_still_report(tmp_path):
    refs = sentences(30, seed=0)
    systems = write_sweep(tmp_path, refs, old=True)
    report = write_report(tmp_path).read_text()
    greedy = [bleu(systems["gru", s][1], refs) for s in SEEDS]
    assert row(section(report, "test"), "gru")[3] == listed(greedy)
    assert row(section(report, "test"), "gru")[6] == "–"  # greedy exact match was not kept
    assert "len ratio" not in report and "## Convergence" not in report and "### tok BLEU" not in report
    assert "attention > gru on 3/3 seeds" in section(report, "Is the difference real?")
    for job in tmp_path.glob("*/results.json"):  # the committed results keep no translations at all
        results = json.loads(job.read_text())
        for split in results["test_splits"]:
            del results[split]["samples"]
        job.write_text(json.dumps(results))
    assert stats.significance(load_runs(tmp_path)[0], "test")[0].startswith("No pair was tested")


def test_report_of_a_directory_without_runs_is_a_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "zoo.report", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: no results.json under {tmp_path}"


def test_a_setting_varied_across_the_sweep_splits_a_group_instead_of_passing_for_seeds(tmp_path):
    refs = sentences(20, seed=0)
    for job, (dropout, seed) in enumerate([(0.1, 0), (0.1, 1), (0.3, 0)]):
        results = fake_results("gru", seed, refs, refs, refs, alignment=False)
        results["overrides"] = ["experiment=compare", "model=gru", f"model.net.dropout={dropout}", f"seed={seed}"]
        (tmp_path / str(job)).mkdir()
        (tmp_path / str(job) / "results.json").write_text(json.dumps(results))
    runs, _ = load_runs(tmp_path)
    assert {name: [r["seed"] for r in rs] for name, rs in runs.items()} == {
        "gru model.net.dropout=0.1": [0, 1], "gru model.net.dropout=0.3": [0]}


def test_a_resumed_run_stays_in_its_sweeps_group(tmp_path):
    """A run resumed with ckpt_path= ends where the uninterrupted run ends, so it is one more seed, not a group."""
    refs = sentences(20, seed=0)
    for seed in (0, 1):
        results = fake_results("gru", seed, refs, refs, refs, alignment=False)
        results["overrides"] = ["model=gru", f"seed={seed}"] + [f"ckpt_path=multirun/{seed}"] * (seed == 0)
        (tmp_path / str(seed)).mkdir()
        (tmp_path / str(seed) / "results.json").write_text(json.dumps(results))
    runs, _ = load_runs(tmp_path)
    assert {name: [r["seed"] for r in rs] for name, rs in runs.items()} == {"gru": [0, 1]}


def test_a_time_budget_splits_a_group_only_where_it_stopped_a_run(tmp_path):
    """train_seconds= changes a run only when the run ran out of it: a cap that a run stopped early under (or was
    resumed under) leaves it one more seed; runs cut short by different budgets are different groups."""
    refs = sentences(20, seed=0)
    for job, (budget, seed, out_of_time) in enumerate([(None, 0, False), (12000, 1, False), (60, 2, True),
                                                        (60, 3, True), (120, 4, True)]):
        results = fake_results("gru", seed, refs, refs, refs, alignment=False)
        results["overrides"] = ["model=gru", f"seed={seed}"] + [f"train_seconds={budget}"] * (budget is not None)
        results["train"]["out_of_time"] = out_of_time
        (tmp_path / str(job)).mkdir()
        (tmp_path / str(job) / "results.json").write_text(json.dumps(results))
    runs, _ = load_runs(tmp_path)
    assert {name: [r["seed"] for r in rs] for name, rs in runs.items()} == {
        "gru": [0, 1], "gru train_seconds=60": [2, 3], "gru train_seconds=120": [4]}


def test_runs_on_different_data_are_refused_in_one_line(tmp_path):
    refs = sentences(20, seed=0)
    for job, data in enumerate(["toy", "scan"]):
        (tmp_path / str(job)).mkdir()
        results = {**fake_results("gru", 0, refs, refs, refs, alignment=False), "data": data}
        (tmp_path / str(job) / "results.json").write_text(json.dumps(results))
    with pytest.raises(ReportError, match=r"on different data \(scan, toy\); report each data set's runs separately"):
        load_runs(tmp_path)


def test_a_recorded_sweep_reports_from_its_gzipped_results_alone(tmp_path):
    """experiments/record_sweep.sh keeps each job's results.json gzipped, translations included: the report reads
    them as it reads a live sweep, and every pair is tested again."""
    refs = sentences(60, seed=0)
    (tmp_path / "live").mkdir()
    write_sweep(tmp_path / "live", refs)
    for results in (tmp_path / "live").rglob("results.json"):
        job = tmp_path / "recorded" / "runs" / results.parent.name
        job.mkdir(parents=True)
        (job / "results.json.gz").write_bytes(gzip.compress(results.read_bytes()))
    live, recorded = write_report(tmp_path / "live").read_text(), write_report(tmp_path / "recorded").read_text()
    assert recorded.replace(str(tmp_path / "recorded"), "DIR") == live.replace(str(tmp_path / "live"), "DIR")
    assert "attention > gru on 3/3 seeds" in recorded


def test_the_length_penalties_chosen_are_named_by_group_in_seed_order_with_their_grid():
    def tuned(chosen: float, grid: tuple[float, ...]) -> dict:
        return {"alpha_tuning": {"split": "val", "scores": [{"alpha": a, "bleu": 30.0 + a} for a in grid],
                                 "alpha": chosen}}
    old, new = (0.0, 1.5), (0.0, 1.5, 3.0)
    runs = {"transformer": [{"seed": 0, **tuned(1.5, old)}, {"seed": 1, **tuned(3.0, new)}],
            "attention": [{"seed": 0, **tuned(0.0, new)}], "gru": [{"seed": 0, "alpha_tuning": None}]}
    said = " Beam search's length penalty was chosen on the validation split"
    assert length_penalties(runs) == (f"{said}, in seed order: transformer 1.5 (of 0, 1.5), 3 (of 0, 1.5, 3); "
                                      "attention 0 (of 0, 1.5, 3).")
    del runs["transformer"][0]
    assert length_penalties(runs) == f"{said} from 0, 1.5, 3, in seed order: transformer 3; attention 0."
    assert length_penalties({"gru": runs["gru"]}) == ""


def test_the_header_names_each_groups_machine_where_the_runs_ran_on_different_ones(sweep):
    _, _, report = sweep
    said = "(bf16-mixed, measured matrix-multiply peak 500 GFLOP/s)"
    assert f"on test CPU {said}, seeds" in report
    cpu = {"name": "test CPU", "precision": "bf16-mixed", "matmul_peak_gflops": 500.0}
    runs = {"gru": [{"device": cpu}], "attention": [{"device": {**cpu, "name": "other CPU"}}, {"device": cpu}]}
    assert devices(runs) == f"gru: test CPU {said}; attention: other CPU {said} / test CPU {said}"
    faster = {**cpu, "matmul_peak_gflops": 612.4}  # the same machine: each run measures its own peak
    assert devices({"gru": [{"device": cpu}], "attention": [{"device": faster}]}) == (
        "test CPU (bf16-mixed, measured matrix-multiply peak 500-612 GFLOP/s)")


def test_the_header_gives_each_groups_bleu_signature_where_they_differ():
    runs = {"a": [{"test": {"signature": "nrefs:1|case:mixed"}}], "b": [{"test": {"signature": "nrefs:1|case:lc"}}]}
    assert signatures(runs, "test") == "a: `nrefs:1|case:mixed`; b: `nrefs:1|case:lc`"
    assert signatures({"a": runs["a"] * 2}, "test") == "`nrefs:1|case:mixed`"


def test_the_report_tables_exposure_bias_on_every_test_split_that_measured_it(tmp_path):
    refs = sentences(20, seed=0)
    for seed in SEEDS:
        results = fake_results("gru", seed, refs, refs, refs, alignment=False)
        for split in ("test", "test_long"):
            results[split]["exposure"] = {"teacher_forced": 90.0, "free_running": 80.0 - seed, "positions": [
                {"t": 1, "n": 20, "teacher_forced": 90.0, "free_running": 80.0 - seed}]}
        (tmp_path / str(seed)).mkdir()
        (tmp_path / str(seed) / "results.json").write_text(json.dumps(results))
    section = write_report(tmp_path).read_text().split("## Exposure bias")[1].split("\n## ")[0]
    assert [line.split(":")[0] for line in section.splitlines() if line.startswith("On `")] == ["On `test`",
                                                                                                "On `test_long`"]


def test_exposure_bias_is_tabled_by_position_bucket_and_drawn(tmp_path):
    def run(model: str, seed: int, free: list[float]) -> dict:
        positions = [{"t": t, "n": 10 if t <= 5 else 2, "teacher_forced": 90.0, "free_running": f}
                     for t, f in enumerate(free, 1)]
        n = sum(p["n"] for p in positions)
        return {"model": model, "seed": seed, "test_splits": ["test"], "test": {"exposure": {
            "teacher_forced": 90.0, "free_running": sum(p["free_running"] * p["n"] for p in positions) / n,
            "positions": positions}}}
    runs = {"gru": [run("gru", 0, [90, 80, 70, 60, 50, 40]), run("gru", 1, [90, 90, 90, 90, 90, 10])],
            "transformer": [run("transformer", 0, [90] * 6)]}
    runs["transformer"][0]["test"]["samples"] = [  # one wrong output: a word slips at position 2, 2 of 3 after
        {"source": "s", "reference": "a b c d", "hypothesis": "a x c d", "greedy": "a x c d"},
        {"source": "s", "reference": "a b", "hypothesis": "a b", "greedy": "a b"}]
    lines = tables.exposure_table(runs, "test")
    assert lines[2].endswith("| rest after the first error % | positions 1-5 | positions 6-10 |")
    gru = row("\n".join(lines), "gru")
    assert gru[2:] == [listed([90.0, 90.0]), listed([3580 / 52, 4520 / 52]),  # (10 · (90+80+70+60+50) + 2 · 40) / 52
                       listed([90 - 3580 / 52, 90 - 4520 / 52]), "–", "90 / 80", "90 / 25"]  # (no kept outputs)
    assert row("\n".join(lines), "transformer")[2:] == ["90.0", "90.0", "0.0", "66.7", "90 / 90", "90 / 90"]
    assert plots.exposure(runs, plots.palette(runs)) is not None
    assert plots.exposure({"gru": [{**runs["gru"][0], "test": {}}]}, {"gru": (0, 0, 0)}) is None
    assert tables.exposure_table({"gru": [{**runs["gru"][0], "test": {}}]}, "test") == []
