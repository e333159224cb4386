"""The sweep report on a tiny fake sweep: the table's means and spreads, sacrebleu's paired bootstrap, the plots,
failed jobs, and the one-line error for a directory without runs."""
import json
import random
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest

from zoo.report import ReportError, load_runs, write_report

ROOT = Path(__file__).resolve().parents[1]
WORDS = "the a red blue dog cat sees chases big small house tree runs near over".split()


def sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(n)]


def corrupt(refs: list[str], rate: float, seed: int) -> list[str]:
    """Each word replaced with probability `rate`: a system whose quality we control."""
    rng = random.Random(seed)
    return [" ".join(w if rng.random() > rate else rng.choice(WORDS) for w in r.split()) for r in refs]


def fake_results(model: str, seed: int, bleu: float, refs: list[str], hyps: list[str], alignment: bool) -> dict:
    srcs = refs
    by_len = [{"lo": 1, "hi": 10, "n": len(refs) - 5, "bleu": bleu + 5}, {"lo": 11, "hi": 20, "n": 5, "bleu": bleu}]
    split = {"bleu": bleu, "bleu_lc": bleu, "chrf": bleu + 10, "exact_match": 1.0, "greedy_bleu": bleu, "n": len(refs),
             "signature": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0", "by_src_len": by_len,
             "samples": [{"source": s, "reference": r, "hypothesis": h} for s, r, h in zip(srcs, refs, hyps)]}
    keep = {"gru": 0.2, "attention": 0.8, "transformer": 0.5}[model]  # of the in-range BLEU, beyond the training lengths
    long = {**split, "bleu": keep * bleu, "by_src_len": [{"lo": 21, "hi": 30, "n": len(refs), "bleu": keep * bleu}]}
    return {
        "model": model, "data": "toy", "params": 1000 + len(model), "seed": seed,
        "device": {"name": "test CPU", "type": "cpu", "precision": "bf16-mixed", "matmul_peak_gflops": 500.0},
        "corpus": {"train_max_src_len": 20}, "test_splits": ["test", "test_long"], "test": split, "test_long": long,
        "train": {"wall_s": 100.0 + seed, "steps": 10, "tokens_per_s": 1000.0 * (seed + 1),
                  "tgt_tokens_per_s": 500.0, "mfu": 0.1, "flops_per_token": 1e6,
                  "val_curve": [{"step": 5, "train_s": 30.0, "wall_s": 31.0, "bleu": bleu / 2},
                                {"step": 10, "train_s": 60.0, "wall_s": 62.0, "bleu": bleu}]},
        "decode": {"greedy_tokens_per_s": 2000.0, "beam_tokens_per_s": 800.0}, "decoding": {"beam_size": 4},
        "memory": {"peak_mb": 300.0, "kind": "peak RSS"},
        "alignment": {"source": ["a", "b", "c"], "target": ["x", "y", "</s>"],
                      "weights": [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]} if alignment else None,
        "wandb": None,
    }


@pytest.fixture
def sweep(tmp_path) -> tuple[Path, dict]:
    """gru, attention and transformer, two seeds each, in Hydra's job-directory layout; one more job failed and
    one was killed."""
    refs = sentences(60, seed=0)
    rates = {"gru": 0.6, "attention": 0.2, "transformer": 0.3}
    systems = {}
    job = 0
    for model, rate in rates.items():
        for seed in (0, 1):
            hyps = corrupt(refs, rate, seed=10 * job)
            systems[model, seed] = hyps
            bleu = BLEU().corpus_score(hyps, [refs]).score
            (tmp_path / f"{job}_model={model},seed={seed}").mkdir()
            results = fake_results(model, seed, bleu, refs, hyps, alignment=model != "gru")
            (tmp_path / f"{job}_model={model},seed={seed}/results.json").write_text(json.dumps(results))
            job += 1
    (tmp_path / f"{job}_model=broken").mkdir()
    (tmp_path / f"{job}_model=broken/error.txt").write_text("Traceback ...")
    (tmp_path / f"{job + 1}_model=killed/.hydra").mkdir(parents=True)  # killed from outside: no error.txt
    return tmp_path, {"refs": refs, "systems": systems}


def test_runs_are_grouped_by_architecture_in_the_zoos_order(sweep):
    sweep_dir, _ = sweep
    runs, failed = load_runs(sweep_dir)
    assert list(runs) == ["gru", "attention", "transformer"]
    assert [[r["seed"] for r in rs] for rs in runs.values()] == [[0, 1]] * 3
    assert failed == [sweep_dir / "6_model=broken", sweep_dir / "7_model=killed"]


def table_row(report: str, model: str) -> list[str]:
    line = next(line for line in report.splitlines() if line.startswith(f"| {model} | 1,0"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_report_table_holds_mean_and_spread_over_seeds(sweep):
    sweep_dir, data = sweep
    report = write_report(sweep_dir).read_text()
    bleus = [BLEU().corpus_score(data["systems"]["attention", s], [data["refs"]]).score for s in (0, 1)]
    mean, std = sum(bleus) / 2, abs(bleus[0] - bleus[1]) / 2**0.5
    row = table_row(report, "attention")
    assert row[:4] == ["attention", "1,009", "2", f"{mean:.1f} ± {std:.1f}"]
    assert row[6] == "1,500 ± 707"  # train tokens/s of 1000 and 2000
    assert row[9] == "10.0 ± 0.0"  # MFU in percent
    assert "**2 job(s) failed**" in report and "6_model=broken" in report and "7_model=killed" in report
    assert ("attention keeps the most of its in-range BLEU beyond the training lengths (80%), gru the least (20%)"
            in report)


def test_significance_is_sacrebleus_paired_bootstrap_against_the_best(sweep):
    sweep_dir, data = sweep
    report = write_report(sweep_dir).read_text()
    section = report.split("## Is the difference real?")[1]
    assert "| seed | attention BLEU | gru: ΔBLEU (p) | transformer: ΔBLEU (p) |" in section
    systems = [(m, data["systems"][m, 1]) for m in ("attention", "gru", "transformer")]
    _, scores = PairedTest(systems, {"BLEU": BLEU()}, [data["refs"]], test_type="bs", n_samples=1000)()
    base, gru, transformer = scores["BLEU"]
    assert (f"| 1 | {base.score:.1f} | {gru.score - base.score:+.1f} ({gru.p_value:.3f}) | "
            f"{transformer.score - base.score:+.1f} ({transformer.p_value:.3f}) |") in section
    assert gru.p_value < 0.05  # 60% of the words replaced: a real difference


def test_report_draws_every_plot(sweep):
    sweep_dir, _ = sweep
    report = write_report(sweep_dir).read_text()
    for name in ("bleu_by_length.png", "throughput.png", "val_bleu_vs_time.png", "attention.png"):
        image = matplotlib.image.imread(sweep_dir / name)
        assert image.shape[0] > 200 and image.shape[1] > 400, name
        assert f"![{name}]({name})" in report


def test_report_of_a_directory_without_runs_is_a_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "zoo.report", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: no results.json under {tmp_path}"


def test_a_setting_varied_across_the_sweep_splits_a_group_instead_of_passing_for_seeds(tmp_path):
    refs = sentences(20, seed=0)
    for job, (dropout, seed) in enumerate([(0.1, 0), (0.1, 1), (0.3, 0)]):
        results = fake_results("gru", seed, 50.0, refs, refs, alignment=False)
        results["overrides"] = ["experiment=compare", "model=gru", f"model.net.dropout={dropout}", f"seed={seed}"]
        (tmp_path / str(job)).mkdir()
        (tmp_path / str(job) / "results.json").write_text(json.dumps(results))
    runs, _ = load_runs(tmp_path)
    assert {name: [r["seed"] for r in rs] for name, rs in runs.items()} == {
        "gru model.net.dropout=0.1": [0, 1], "gru model.net.dropout=0.3": [0]}


def test_runs_on_different_data_are_refused_in_one_line(tmp_path):
    refs = sentences(20, seed=0)
    for job, data in enumerate(["toy", "scan"]):
        (tmp_path / str(job)).mkdir()
        results = {**fake_results("gru", 0, 50.0, refs, refs, alignment=False), "data": data}
        (tmp_path / str(job) / "results.json").write_text(json.dumps(results))
    with pytest.raises(ReportError, match=r"on different data \(scan, toy\); report each data set's runs separately"):
        load_runs(tmp_path)
