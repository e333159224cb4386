"""Checkpoint averaging (`python -m zoo.average`) and `evaluate=average`: the mean of the weights, the epoch
checkpoints a run keeps, refusals as one line, and a real run whose averaged checkpoint translates as the run did."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.runs import train_here
from tests.test_translate import RUN, write_checkpoint
from zoo import average, checkpoint
from zoo.errors import CheckpointError
from zoo.resume import EpochCheckpoints

ROOT = Path(__file__).resolve().parents[1]


def scaled_copy(src: Path, dst: Path, factor: float) -> Path:
    ckpt = torch.load(src, weights_only=True)
    ckpt["state_dict"] = {k: v * factor for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, dst)
    return dst


def cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zoo.average", *argv], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


def test_the_average_is_the_mean_of_the_weights_and_translates_like_any_checkpoint(tmp_path):
    a = write_checkpoint(tmp_path / "a.ckpt")
    b, c = scaled_copy(a, tmp_path / "b.ckpt", 2.0), scaled_copy(a, tmp_path / "c.ckpt", -0.5)
    out = tmp_path / "avg.ckpt"
    proc = cli(str(a), str(b), str(c), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    averaged, first = checkpoint.read(out), checkpoint.read(a)
    for k, v in first["state_dict"].items():
        torch.testing.assert_close(averaged["state_dict"][k], v * (1 + 2 - 0.5) / 3)
    assert averaged["zoo"]["averaged"] == [str(a), str(b), str(c)]
    assert checkpoint.load_net(averaged) is not None  # what zoo.translate does with it


def test_each_weight_keeps_its_dtype_and_integer_buffers_must_agree(tmp_path):
    a = torch.load(write_checkpoint(tmp_path / "a.ckpt"), weights_only=True)
    name = next(iter(a["state_dict"]))
    states = []
    for i, value in enumerate((1.0, 2.0, 4.0)):
        ckpt = {**a, "state_dict": {**a["state_dict"], name: torch.full((3,), value, dtype=torch.bfloat16),
                                    "net.steps": torch.tensor([7])}}
        torch.save(ckpt, tmp_path / f"{i}.ckpt")
        states.append(tmp_path / f"{i}.ckpt")
    averaged = average.average(states)["state_dict"]
    assert averaged[name].dtype == torch.bfloat16  # summed in fp64, rounded once
    assert torch.equal(averaged[name], torch.full((3,), 7 / 3, dtype=torch.float64).to(torch.bfloat16))
    assert torch.equal(averaged["net.steps"], torch.tensor([7]))
    ckpt = torch.load(states[2], weights_only=True)
    ckpt["state_dict"]["net.steps"] = torch.tensor([8])
    torch.save(ckpt, states[2])
    with pytest.raises(CheckpointError, match=rf"checkpoint {states[2]}: net.steps differs from .*0.ckpt's"):
        average.average(states)
    del ckpt["state_dict"]["net.steps"]
    torch.save(ckpt, states[2])
    with pytest.raises(CheckpointError, match=rf"checkpoint {states[2]} holds other weights than .*0.ckpt"):
        average.average(states)


def test_nothing_is_overwritten_and_other_models_are_refused(tmp_path):
    a = write_checkpoint(tmp_path / "a.ckpt")
    out = tmp_path / "avg.ckpt"
    out.write_text("keep me")
    proc = cli(str(a), str(a), "--output", str(out))
    assert (proc.returncode, proc.stderr) == (1, f"error: {out} exists; it is not overwritten (name another "
                                                 f"--output)\n")
    assert out.read_text() == "keep me"
    other = write_checkpoint(tmp_path / "other.ckpt", max_positions=32)
    proc = cli(str(a), str(other), "--output", str(tmp_path / "new.ckpt"))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert f"checkpoint {other} is not the same model as {a} (its net differs)" in proc.stderr
    assert not (tmp_path / "new.ckpt").exists()


def test_a_run_directory_needs_last_and_enough_epochs(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    for epoch in (0, 1, 2):
        write_checkpoint(tmp_path / "checkpoints" / f"epoch{epoch}.ckpt")
    assert cli(str(tmp_path)).stderr.startswith(f"error: {tmp_path} is a run directory: say how many")
    assert cli(str(tmp_path), "--last", "4").stderr == (f"error: {tmp_path} has 3 epoch checkpoints, fewer than "
                                                         f"--last 4\n")
    assert cli(str(tmp_path), "--last", "2").returncode == 0
    assert checkpoint.read(tmp_path / "checkpoints" / "average.ckpt")["zoo"]["averaged"] == [
        str(tmp_path / "checkpoints" / f"epoch{e}.ckpt") for e in (1, 2)]


def test_epoch_checkpoints_keep_the_newest_n_and_list_them_across_resumes(tmp_path, monkeypatch):
    """The kept list travels in the callback's state: a resumed run in a new folder goes on from it, and deletes
    only files in its own folder."""
    class Trainer:  # what the callback reads of Lightning's trainer
        is_global_zero = True

        def __init__(self, epoch):
            self.current_epoch = epoch

        def save_checkpoint(self, path, weights_only=None):
            Path(path).write_text("checkpoint")

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    monkeypatch.setattr("zoo.resume.epoch_finished", lambda trainer: True)
    callback = EpochCheckpoints(first, keep=2)
    for epoch in range(3):
        callback.on_train_epoch_end(Trainer(epoch), None)
    assert sorted(p.name for p in first.iterdir()) == ["epoch1.ckpt", "epoch2.ckpt"]
    resumed = EpochCheckpoints(second, keep=2)
    resumed.load_state_dict(callback.state_dict())
    resumed.on_train_epoch_end(Trainer(3), None)
    resumed.on_train_epoch_end(Trainer(4), None)
    assert resumed.kept == [str(second / "epoch3.ckpt"), str(second / "epoch4.ckpt")]
    assert sorted(p.name for p in first.iterdir()) == ["epoch1.ckpt", "epoch2.ckpt"]  # not its folder: kept


# A real run scored with the average of its last 3 epochs and a length penalty chosen on validation.
AVERAGE_RUN = [*RUN, "checkpoint.keep_epochs=3", "evaluate=average", "tune_alpha=[0.0,1.0]"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("run")
    proc = subprocess.run([sys.executable, "run.py", *AVERAGE_RUN, f"hydra.run.dir={d}", f"data.cache_dir={d}/cache"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return d


@pytest.mark.slow
def test_a_run_scored_with_its_average_translates_as_the_run_did(run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    kept = results["train"]["averaged"]
    assert results["train"]["evaluated"] == "average" and len(kept) == 3
    assert [Path(p).name for p in kept] == sorted((Path(p).name for p in kept), key=lambda n: int(n[5:-5]))
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("epoch*.ckpt")) == sorted(Path(p).name for p in kept)
    tuning = results["alpha_tuning"]
    assert [s["alpha"] for s in tuning["scores"]] == [0.0, 1.0] and tuning["split"] == "val"
    assert results["decoding"]["alpha"] == tuning["alpha"] == max(tuning["scores"], key=lambda s: s["bleu"])["alpha"]
    ckpt = run_dir / "checkpoints" / "average.ckpt"
    assert results["average_checkpoint"] == str(ckpt)
    assert checkpoint.read(ckpt)["zoo"]["decode"]["alpha"] == tuning["alpha"]
    pairs = results["test"]["samples"]
    proc = subprocess.run([sys.executable, "-m", "zoo.translate", str(ckpt)],
                          input="".join(f"{p['source']}\n" for p in pairs), capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.split("\n") == [*(p["hypothesis"] for p in pairs), ""]


@pytest.mark.slow
def test_training_does_not_resume_from_an_average(run_dir, tmp_path):
    ckpt = run_dir / "checkpoints" / "average.ckpt"
    with pytest.raises(CheckpointError) as refused:
        train_here(tmp_path / "r", *AVERAGE_RUN, f"ckpt_path={ckpt}", f"data.cache_dir={run_dir}/cache")
    assert str(refused.value) == (
        f"checkpoint {ckpt} is an average of 3 checkpoints, weights only: training cannot resume from it "
        f"(resume from the run's last.ckpt)")
