"""Runs that stop and go on: killed with SIGKILL, stopped with Ctrl-C or by a NaN loss, then resumed from their
checkpoint, they end exactly where an uninterrupted run with the same seed ends (on the CPU the tolerance is zero:
every loss, translation and score is equal). And the same seed twice gives the same run."""
import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.runs import train_here
from zoo.data.batching import TokenBudgetBatchSampler
from zoo.errors import ConfigError
from zoo.resume import ValidationStop

ROOT = Path(__file__).resolve().parents[1]
# 30 steps of the smoke task: about 12 epochs of 2-3 batches, so checkpoints land mid-epoch and at epoch ends
SHORT = ["model=transformer", "experiment=smoke", "trainer.max_steps=30", "trainer.val_check_interval=10",
         "trainer.enable_checkpointing=true", "checkpoint.every_n_steps=5", "logger=csv",
         "data.max_tokens=4096"]  # (epochs of several batches, so that step 15 falls inside one)
VARY = ("wall_s", "train_s", "tokens_per_s", "tgt_tokens_per_s", "mfu", "val_curve", "greedy_tokens_per_s",
        "beam_tokens_per_s", "peak_mb", "matmul_peak_gflops", "resumed_from", "checkpoint",
        "best_checkpoint")  # timings and paths


def start(run_dir: Path, cache: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "run.py", *SHORT, *overrides, f"hydra.run.dir={run_dir}",
                             f"data.cache_dir={cache}"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> dict:
    return finish_with_log(proc)[0]


def finish_with_log(proc: subprocess.Popen) -> tuple[dict, str]:
    """The run's results, and what it wrote to stderr (warnings among it)."""
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(Path(out.strip().splitlines()[-1].removeprefix("results: ")).read_text()), err


def wait_for(path: Path, proc: subprocess.Popen) -> None:
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.02)


def epoch_length(cache: Path, epoch: int) -> int:
    """How many training batches the trainer takes in `epoch`: the data module's batches from the preprocessed
    corpus, at most the loader's length (Lightning ends an epoch there)."""
    [index] = cache.glob("*/train.index.npy")  # (N, 3): line, source length, target length
    lengths = np.load(index)
    sampler = TokenBudgetBatchSampler(lengths[:, 1], lengths[:, 2] + 1, max_tokens=4096, shuffle=True)
    return min(len(sampler), len(sampler.batches(epoch)))


def losses(run_dir: Path) -> dict[str, str]:
    """The training loss of every step, as the CSV logger wrote it."""
    rows = csv.DictReader(open(run_dir / "csv" / "version_0" / "metrics.csv"))
    return {row["step"]: row["train/loss"] for row in rows if row.get("train/loss")}


def comparable(section):
    if isinstance(section, dict):
        return {k: comparable(v) for k, v in section.items() if k not in VARY}
    return section


def assert_same_run(resumed: dict, reference: dict) -> None:
    for split in reference["test_splits"]:
        assert resumed[split] == reference[split]  # every score and every translation
    assert comparable(resumed["train"]) == comparable(reference["train"])  # steps, tokens, FLOPs, val BLEU
    assert [p["bleu"] for p in resumed["train"]["val_curve"]] == [p["bleu"] for p in reference["train"]["val_curve"]]
    assert [p["step"] for p in resumed["train"]["val_curve"]] == [10, 20, 30]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict]:
    """An uninterrupted run, and where it ran."""
    root = tmp_path_factory.mktemp("reference")
    return root / "run", finish(start(root / "run", root.parent / "cache"))


@pytest.mark.slow
def test_the_same_seed_twice_gives_identical_results(reference, tmp_path):
    """The second time in this process, through `zoo.train.train` as the tests call it: equal to run.py's run."""
    again = train_here(tmp_path / "run", *SHORT, f"data.cache_dir={reference[0].parent.parent / 'cache'}")
    mine = {k: v for k, v in again.items() if k != "overrides"}  # (the command lines differ)
    assert comparable(mine) == comparable({k: v for k, v in reference[1].items() if k != "overrides"})
    assert losses(tmp_path / "run") == losses(reference[0])


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_same_results(reference, tmp_path):
    ref_dir, ref = reference
    cache = ref_dir.parent.parent / "cache"
    killed = start(tmp_path / "killed", cache)
    wait_for(tmp_path / "killed" / "checkpoints" / "step15.ckpt", killed)  # files appear whole: Lightning writes
    killed.send_signal(signal.SIGKILL)  # a temporary file and moves it
    killed.wait()
    assert not (tmp_path / "killed" / "results.json").exists()
    saved = sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir())
    assert "last.ckpt" in saved and any(name.startswith("epoch") for name in saved), saved

    # from step 15, part-way through an epoch, and from the newest end-of-epoch checkpoint
    step15 = tmp_path / "killed" / "checkpoints" / "step15.ckpt"
    epoch, taken = torch.load(step15, weights_only=True)["TranslationDataModule"].values()
    assert 0 < taken < epoch_length(cache, epoch)
    epoch_ckpt = next((tmp_path / "killed" / "checkpoints").glob("epoch*.ckpt"))
    epoch, taken = torch.load(epoch_ckpt, weights_only=True)["TranslationDataModule"].values()
    assert taken == epoch_length(cache, epoch)
    for name, ckpt in [("mid_epoch", step15), ("epoch_end", epoch_ckpt)]:
        resumed = finish(start(tmp_path / name, cache, f"ckpt_path={ckpt}"))
        assert_same_run(resumed, ref)
        assert resumed["train"]["resumed_from"].startswith(str(tmp_path / "killed" / "checkpoints"))
        steps = losses(tmp_path / name)
        assert steps and all(steps[s] == losses(ref_dir)[s] for s in steps)  # step by step, the same losses


@pytest.mark.slow
def test_a_run_that_ends_mid_epoch_resumes_to_the_same_results(reference, tmp_path):
    """A run ends part-way through an epoch when its step budget, its time budget or Ctrl-C stops it (all three end
    training the same way); its last checkpoint must resume that epoch, not the next one."""
    ref_dir, ref = reference
    cache = ref_dir.parent.parent / "cache"
    # (no step checkpoint at 17); its schedule is still the 30-step run's, as when the clock or Ctrl-C ends a run: a
    # shorter budget would otherwise start the Transformer's cool-down sooner
    finish(start(tmp_path / "short", cache, "trainer.max_steps=17", "model.scheduler.total=30"))
    last = torch.load(tmp_path / "short" / "checkpoints" / "last.ckpt", weights_only=True)
    epoch, taken = last["TranslationDataModule"].values()
    assert last["global_step"] == 17 and 0 < taken < epoch_length(cache, epoch)  # part-way through an epoch

    resumed, log = finish_with_log(start(tmp_path / "resumed", cache, f"ckpt_path={tmp_path / 'short'}"))
    assert_same_run(resumed, ref)
    assert "ended before the epoch ended" not in log  # Lightning's warning, silenced because it is wrong here
    steps = losses(tmp_path / "resumed")
    assert steps and all(steps[s] == losses(ref_dir)[s] for s in steps)


@pytest.mark.slow
def test_ctrl_c_keeps_a_checkpoint_and_prints_the_command_that_resumes_it(reference, tmp_path):
    ref_dir, ref = reference
    run = start(tmp_path / "stopped", ref_dir.parent.parent / "cache")
    wait_for(tmp_path / "stopped" / "checkpoints" / "step5.ckpt", run)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=600)
    assert run.returncode == 1
    message = err.strip().splitlines()[-1]
    assert message.startswith("error: stopped by Ctrl-C after step "), message  # (SIGTERM works alike)
    step = int(message.split("after step ")[1].split(";")[0])
    last = tmp_path / "stopped" / "checkpoints" / "last.ckpt"
    assert f"the last checkpoint is {last} (step {step}); resume with: python run.py " in message
    assert torch.load(last, weights_only=True)["global_step"] == step < 30

    command = message.split("resume with: ")[1].split()  # what the message says to run, as given
    resumed = subprocess.run([sys.executable, *command[1:], f"hydra.run.dir={tmp_path / 'resumed'}"], cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(json.loads((tmp_path / "resumed" / "results.json").read_text()), ref)


@pytest.mark.slow
def test_a_resumed_sweep_job_writes_into_one_directory_named_after_its_overrides(reference, tmp_path):
    """A job's directory is named after its overrides: the checkpoint's path is left out of the name, and the cache
    directory's path keeps its "/" as "-", so that neither nests the job inside directories of its own. Resumed
    where it had ended, the job is the run it continues, its last validation's BLEU included."""
    ref_dir, ref = reference
    cache = ref_dir.parent.parent / "cache"
    sweep = subprocess.run([sys.executable, "run.py", "-m", *SHORT, f"ckpt_path={ref_dir}", "seed=0",
                            f"hydra.sweep.dir={tmp_path / 'sweep'}", f"data.cache_dir={cache}"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    [job] = (tmp_path / "sweep").glob("0_*")
    assert "ckpt_path" not in job.name and f"data.cache_dir={str(cache).replace('/', '-')}," in job.name
    resumed = json.loads((job / "results.json").read_text())
    assert resumed["train"]["resumed_from"] == str(ref_dir / "checkpoints" / "last.ckpt")
    assert_same_run(resumed, ref)


@pytest.mark.slow
def test_a_nan_loss_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    run = start(tmp_path / "run", tmp_path / "cache", "model=gru", "model.optimizer.lr=1e30", "model.grad_clip=null",
                "checkpoint.every_n_steps=1")
    _, err = run.communicate(timeout=600)
    assert run.returncode == 1
    message = err.strip().splitlines()[-1]
    assert message.startswith("error: the training loss is nan at step 2 (batch 2 of epoch 0)"), message
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert f"the last checkpoint is {last} (step 1)" in message
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["global_step"] == 1
    assert all(torch.isfinite(w).all() for w in checkpoint["state_dict"].values())
    assert not (tmp_path / "run" / "results.json").exists()


def curve(figure: str, values: list[float]) -> SimpleNamespace:
    """A TrainClock as a resumed run has it: one validation point every 10 steps."""
    return SimpleNamespace(val_curve=[{"step": 10 * (i + 1), "bleu": None, "loss": None, figure: v}
                                      for i, v in enumerate(values)])


@pytest.mark.parametrize("figure, values, best", [("bleu", [5.0, 7.0, 6.0, 7.0], 7.0),
                                                  ("loss", [3.0, 2.5, 2.6, 2.5], 2.5)])
def test_early_stopping_resumed_on_another_figure_counts_from_the_validation_curve(figure, values, best):
    stop = ValidationStop(curve(figure, values), figure, patience=3)
    stop.on_train_start(SimpleNamespace(global_step=40), None)
    assert (float(stop.best_score), stop.wait_count) == (best, 2)  # (an equal score is no improvement)


def test_early_stopping_refuses_a_resume_its_count_would_have_stopped_and_a_curve_without_its_figure():
    stop = ValidationStop(curve("bleu", [5.0, 4.0, 3.0, 6.0]), "bleu", patience=2)
    with pytest.raises(ConfigError, match=r"^early_stopping.monitor=bleu with patience 2 would have stopped this run "
                                          r"at step 30; its checkpoint is at step 40$"):
        stop.on_train_start(SimpleNamespace(global_step=40), None)
    stop = ValidationStop(curve("bleu", [5.0, 6.0]), "loss", patience=2)
    with pytest.raises(ConfigError, match="the resumed run's validation curve has no loss at step 10 to count from"):
        stop.on_train_start(SimpleNamespace(global_step=20), None)


def test_early_stopping_resumed_with_its_own_figure_keeps_its_count_and_takes_the_new_patience():
    before = ValidationStop(curve("bleu", []), "bleu", patience=3)
    before.best_score, before.wait_count = torch.tensor(7.0), 2
    after = ValidationStop(curve("bleu", [9.0, 9.0, 9.0]), "bleu", patience=10)  # (a curve it must not replay)
    after.load_state_dict(before.state_dict())
    after.on_train_start(SimpleNamespace(global_step=30), None)
    assert (float(after.best_score), after.wait_count, after.patience) == (7.0, 2, 10)


@pytest.mark.slow
def test_a_run_resumed_on_another_stopping_figure_ends_as_one_that_watched_it_throughout(reference, tmp_path):
    ref_dir, ref = reference
    cache = ref_dir.parent.parent / "cache"
    finish(start(tmp_path / "short", cache, "trainer.max_steps=20", "early_stopping.monitor=loss",
                 "early_stopping.patience=100"))
    resumed = finish(start(tmp_path / "resumed", cache, f"ckpt_path={tmp_path / 'short'}",
                           "early_stopping.monitor=bleu", "early_stopping.patience=50"))
    assert_same_run(resumed, ref)  # (no stop within 50 checks)
    bleu = [p["bleu"] for p in ref["train"]["val_curve"]]
    saved = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
    state = saved["EarlyStopping{'monitor': 'val/bleu', 'mode': 'max'}"]
    assert (float(state["best_score"]), state["wait_count"], state["patience"]) == (
        max(bleu), len(bleu) - 1 - bleu.index(max(bleu)), 50)
