"""Bad input to run.py: one clear line naming the value, file or choice, given before any data is prepared or model
trained, and nothing already written is lost. (Bad data files: tests/data/test_bad_input.py; a corrupt cache:
tests/data/test_preprocess.py; a NaN loss and Ctrl-C: tests/test_resume.py; the translate CLI: test_translate.py.)
Most are raised in-process, as the UserError that run.py prints as `error: MESSAGE`; run.py itself prints some."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.runs import run_py, train_here
from zoo.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def run(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """run.py in a new run directory under tmp_path (a refused run still leaves Hydra's .hydra/ in its own)."""
    run_dir = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
    return run_py(run_dir, "experiment=smoke", "logger=csv", *overrides, f"data.cache_dir={tmp_path / 'cache'}")


def error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stderr[-3000:]
    return proc.stderr.strip().splitlines()[-1]


def refusal(tmp_path: Path, *overrides: str) -> str:
    """The line run.py would print for a smoke run with `overrides`, here raised in-process."""
    run_dir = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
    with pytest.raises(UserError) as refused:
        train_here(run_dir, "experiment=smoke", f"data.cache_dir={tmp_path / 'cache'}", *overrides)
    return f"error: {refused.value}"


@pytest.mark.parametrize("overrides, message", [
    (["model.net.d_model=130"], "error: model=transformer: d_model (130) must be divisible by n_heads (4)"),
    (["model.net.dropout=1.5"], "error: model=transformer: dropout (1.5) must be in [0, 1)"),
    (["model=attention", "model.net.hidden=0"], "error: model=attention: hidden (0) must be > 0"),
    (["model=gru", "model.net.dropout=-0.1"], "error: model=gru: dropout (-0.1) must be in [0, 1)"),
    (["decode.beam_size=0"], "error: decode.beam_size (0) must be an integer >= 1"),
    (["decode.alpha=-1"], "error: decode.alpha (-1) must be >= 0"),
    (["trainer.max_steps=0", "checkpoint.every_n_steps=0"],
     "error: trainer.max_steps (0), checkpoint.every_n_steps (0) must be an integer > 0"),
    (["data.max_tokens=-5"], "error: data.max_tokens (-5) must be an integer > 0"),
    (["data.max_sentences=0", "data.pool_size=1.5"],
     "error: data.pool_size (1.5), data.max_sentences (0) must be an integer > 0"),
    (["early_stopping.monitor=bleu_tok"], "error: early_stopping.monitor (bleu_tok) must be bleu or loss"),
    (["oracle_length=maybe"], "error: oracle_length (maybe) must be true or false"),
    (["exposure_bias=1"], "error: exposure_bias (1) must be true or false"),
    (["scheduled_sampling.method=beam", "scheduled_sampling.unit=word"],
     "error: scheduled_sampling: method ('beam') must be one of ['step', 'two_pass']; unit ('word') must be one of "
     "['token', 'sentence']"),
    (["evaluate=average", "trainer.enable_checkpointing=true"],
     "error: evaluate=average needs checkpoint.keep_epochs >= 2 (it is 1): the epoch checkpoints kept are the ones "
     "averaged"),
    (["evaluate=average", "trainer.enable_checkpointing=true", "checkpoint.keep_epochs=3", "tune_alpha=0.6"],
     "error: tune_alpha (0.6) must be a list of length penalties >= 0, or null"),
    (["evaluate=best", "trainer.enable_checkpointing=true", "tune_alpha=[0,1]"],
     "error: tune_alpha needs evaluate=average (not best): the averaged checkpoint is the one that carries the chosen "
     "length penalty, so that zoo.translate reproduces the test scores"),
    (["checkpoint.keep_epochs=0"], "error: checkpoint.keep_epochs (0) must be an integer > 0"),
])
def test_invalid_hyperparameters_are_refused_before_the_data_is_prepared(tmp_path, overrides, message):
    assert refusal(tmp_path, *overrides) == message
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow  # run.py in a subprocess: the data is prepared before this can be known
def test_shared_embeddings_need_a_joint_vocabulary(tmp_path):
    assert error_line(run(tmp_path, "+model.net.share_all_embeddings=true", "data.preprocess.joint=false")) == (
        "error: model=transformer: share_all_embeddings needs one vocabulary for both languages "
        "(data.preprocess.joint=true)")


@pytest.mark.slow  # run.py in a subprocess: seconds each
@pytest.mark.parametrize("group, value", [("model", "transformr"), ("data", "multi31k"), ("trainer", "tpu")])
def test_an_unknown_config_name_lists_the_choices(tmp_path, group, value):
    proc = run(tmp_path, f"{group}={value}")
    assert proc.returncode == 1
    assert f"Could not find '{group}/{value}'" in proc.stderr
    choices = sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))
    assert f"Available options in '{group}':\n\t" + "\n\t".join(choices) in proc.stderr


def test_a_missing_or_truncated_checkpoint_is_named(tmp_path):
    missing = tmp_path / "nope.ckpt"
    assert refusal(tmp_path, f"ckpt_path={missing}") == f"error: checkpoint {missing} does not exist"
    truncated = tmp_path / "truncated.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "zoo": {"version": 1}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:2000])
    line = refusal(tmp_path, f"ckpt_path={truncated}")
    assert line.startswith(f"error: checkpoint {truncated} cannot be read (truncated or not a checkpoint): ")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    assert refusal(tmp_path, f"ckpt_path={foreign}") == (
        f"error: checkpoint {foreign} was not written by the zoo (it has no 'zoo' entry)")
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow  # run.py in a subprocess: seconds each
def test_resuming_needs_a_run_that_left_a_checkpoint(tmp_path):
    (tmp_path / "outputs").mkdir()
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "experiment=smoke", "ckpt_path=latest",
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, capture_output=True, text=True)
    assert error_line(proc) == "error: latest: no run under outputs/ has a checkpoints/last.ckpt"


@pytest.fixture(scope="module")
def transformer_run(tmp_path_factory) -> Path:
    """A finished smoke run of the Transformer, with its checkpoints."""
    folder = tmp_path_factory.mktemp("transformer") / "run"
    train_here(folder, "experiment=smoke", "trainer.enable_checkpointing=true")
    return folder


@pytest.mark.slow
def test_a_checkpoint_of_another_architecture_or_size_is_refused(transformer_run, tmp_path):
    ckpt = transformer_run / "checkpoints" / "last.ckpt"
    assert refusal(tmp_path, "model=gru", f"ckpt_path={transformer_run}") == (
        f"error: checkpoint {ckpt} is a transformer (zoo.models.transformer.Transformer); this run is model=gru "
        "(zoo.models.gru.GRUEncoderDecoder)")
    assert refusal(tmp_path, "model.net.d_ff=64", f"ckpt_path={ckpt}") == (
        f"error: checkpoint {ckpt} has other model sizes: model.net.d_ff=768 in the checkpoint, 64 here")
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_a_checkpoint_trained_on_other_data_is_refused(transformer_run, tmp_path):
    line = refusal(tmp_path, "data.source.seed=1", f"ckpt_path={transformer_run}")
    assert line == (f"error: checkpoint {transformer_run / 'checkpoints' / 'last.ckpt'} was trained on data=toy with "
                    "other vocabularies than this run's data=toy")


@pytest.mark.slow
def test_a_directory_holding_a_run_is_never_written_over(transformer_run, tmp_path):
    """A finished run (its results.json), and one that failed or was killed (only Hydra's .hydra/)."""
    before = {p: p.stat().st_mtime_ns for p in transformer_run.rglob("*") if p.is_file()}
    proc = subprocess.run([sys.executable, "run.py", "experiment=smoke", f"hydra.run.dir={transformer_run}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert error_line(proc) == (f"error: {transformer_run} already holds a run (results.json); choose another "
                                f"hydra.run.dir, or resume that run in a new one with ckpt_path={transformer_run}")
    assert {p: p.stat().st_mtime_ns for p in transformer_run.rglob("*") if p.is_file()} == before
    killed = tmp_path / "killed"
    (killed / ".hydra").mkdir(parents=True)
    (killed / ".hydra" / "config.yaml").write_text("seed: 0\n")
    proc = subprocess.run([sys.executable, "run.py", "experiment=smoke", f"hydra.run.dir={killed}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert error_line(proc) == f"error: {killed} already holds a run (.hydra); choose another hydra.run.dir"
    assert [p.name for p in killed.rglob("*")] == [".hydra", "config.yaml"]
