"""experiments/scaling.py: its memory count, its fits and crossovers, and a small run end to end."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
from scaling import (ARCHS, PHASES, PRESETS, PeakMemory, build, crossover, fit_exponent, main,  # noqa: E402
                     predicted_over)


def test_peak_memory_counts_what_is_alive_at_once():
    with PeakMemory() as freed_first:
        a = torch.empty(1000, dtype=torch.uint8)
        del a
        b = torch.empty(3000, dtype=torch.uint8)
    with PeakMemory() as both_alive:
        a = torch.empty(1000, dtype=torch.uint8)
        b = torch.empty(3000, dtype=torch.uint8)
    assert (freed_first.peak, both_alive.peak) == (3000, 4000)
    del a, b
    assert both_alive.live == 0


def test_peak_memory_leaves_out_what_was_there_before():
    x = torch.zeros(1000)
    with PeakMemory() as in_place:
        x.add_(1)
        x.view(10, 100).mul_(2)
    with PeakMemory() as new:
        y = x + 1
    assert in_place.peak == 0
    assert new.peak == y.untyped_storage().nbytes() == 4000


def test_peak_memory_sees_the_backward_pass():
    w = torch.randn(256, 256, requires_grad=True)
    x = torch.randn(64, 256)
    with PeakMemory() as memory:
        h = (x @ w).relu()  # (64, 256), saved for the backward pass
        (h @ w).sum().backward()
    assert memory.peak >= h.untyped_storage().nbytes() + w.grad.untyped_storage().nbytes()


def test_the_fit_takes_the_upper_half_of_the_lengths():
    lengths = [16 * 2**i for i in range(7)]
    assert fit_exponent([(n, 3 * n**1.5) for n in lengths]) == pytest.approx(1.5)
    linear_then_quadratic = [(n, n if n < 128 else n * n / 128) for n in lengths]  # upper half: 128 .. 1024
    assert fit_exponent(linear_then_quadratic) == pytest.approx(2.0)
    assert fit_exponent([(16, 1.0)]) is None


def test_crossover_is_interpolated_on_the_log_log_lines():
    lengths = [16 * 2**i for i in range(5)]
    grows, flat = {n: float(n) for n in lengths}, {n: 50.0 for n in lengths}
    found = crossover(grows, flat)
    assert found["crossings"] == [pytest.approx(50.0)]
    assert found["a_faster_at"] == [16, 32]
    assert crossover(flat, {n: 100.0 for n in lengths})["crossings"] == []


def test_a_length_that_would_not_fit_is_skipped():
    done = [{"n": 16, "seconds": 1.0, "peak_bytes": 100}]
    quadratic = (2, 1)
    fits = {"free": 10**9, "repeats": 3}  # a measurement: warm-up, memory pass, 3 timed runs
    assert predicted_over(done, quadratic, 32, budget=30.0, **fits) is None  # 4 s x 5 runs
    assert "time budget" in predicted_over(done, quadratic, 32, budget=10.0, **fits)
    assert "free memory" in predicted_over(done, quadratic, 32, budget=30.0, free=200, repeats=3)  # 200 B > 0.8 x 200
    assert predicted_over([], quadratic, 16, budget=0.0, free=0, repeats=3) is None
    two = done + [{"n": 32, "seconds": 2.0, "peak_bytes": 200}]  # grew linearly: predicts 4 s, not 8 s, at 64
    assert predicted_over(two, quadratic, 64, budget=21.0, **fits) is None
    long = [{"n": 16, "seconds": 6.0, "peak_bytes": 100}]  # 24 s at 32: timed once, so 3 runs, 72 s
    assert predicted_over(long, quadratic, 32, budget=80.0, **fits) is None


@pytest.mark.slow
def test_scaling_runs_and_writes_every_figure(tmp_path):
    out = tmp_path / "tiny"
    command = [sys.executable, "experiments/scaling.py", "--preset", "tiny", "--repeats", "1", "--out", str(out)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=300)
    record = json.loads((out / "scaling.json").read_text())
    preset = PRESETS["tiny"]
    rows = {(r["arch"], r["phase"], r["n"]): r for r in record["rows"]}
    assert set(rows) == {(a, p, n) for p, archs in PHASES.items() for a in archs for n in preset["lengths"]}
    for (arch, phase, n), row in rows.items():
        assert row["status"] == "ok"
        assert row["seconds"] > 0 and row["peak_bytes"] > 0
        assert row["per_token_s"] == pytest.approx(row["seconds"] / preset["batch"] / n)
        assert row["flops_per_s"] == pytest.approx(row["flops"] / row["seconds"])
    net = build("transformer", width=preset["width"], vocab=preset["vocab"], max_len=16)
    assert rows["transformer", "train", 16]["flops"] == 3 * preset["batch"] * net.forward_flops(16, 16)
    assert rows["transformer", "decode", 16]["flops"] == preset["batch"] * net.decode_flops(16, 16)
    no_cache = net.forward_flops(16, 0) + sum(net.forward_flops(16, t) - net.forward_flops(16, 0) for t in range(1, 17))
    assert rows["transformer", "decode, no cache", 16]["flops"] == preset["batch"] * no_cache  # every prefix again
    pairs = sum(map(len, PHASES.values()))  # every (architecture, phase) measured
    assert len(record["exponents"]) == pairs and len(record["crossovers"]) == 3 * (len(ARCHS) - 1)
    assert math.isclose(record["exponents"]["gru, train"]["flops"], 1.0, abs_tol=0.05)  # d² work per token
    assert {"device", "torch", "matmul_peak_gflops"} <= set(record["machine"]) and record["date"]
    assert record["commit"] and set(record["parameters"]) == set(ARCHS) >= {"gru", "attention", "transformer"}
    assert (out / "scaling.png").stat().st_size > 0 and "| 16 |" in (out / "scaling.md").read_text()

    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and "already exists" in again.stderr  # nothing measured is overwritten
    (out / "scaling.md").unlink()
    subprocess.run([sys.executable, "experiments/scaling.py", "--redraw", str(out)], cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    assert "| 16 |" in (out / "scaling.md").read_text()


def test_a_phase_stops_at_the_first_length_over_the_budget(tmp_path):
    out = tmp_path / "budget"
    subprocess.run([sys.executable, "experiments/scaling.py", "--preset", "tiny", "--repeats", "1", "--lengths", "4",
                    "8", "16", "--budget", "1e-9", "--out", str(out)], cwd=ROOT, check=True, capture_output=True,
                   timeout=300)
    rows = json.loads((out / "scaling.json").read_text())["rows"]
    assert [r["status"] for r in rows if r["n"] == 4] == ["ok"] * sum(map(len, PHASES.values()))  # no trend yet
    assert {r["status"] for r in rows if r["n"] > 4} == {"skipped: over the time budget (0 s)"}


@pytest.mark.parametrize("lengths", [["8", "8"], ["1", "8"]])
def test_lengths_are_checked(lengths, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--preset", "tiny", "--lengths", *lengths, "--out", str(tmp_path / "x")])
    assert stopped.value.code == 2 and "--lengths" in capsys.readouterr().err.splitlines()[-1]
    assert not (tmp_path / "x").exists()
