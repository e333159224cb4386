"""The real config tree, composed and instantiated; run.py end to end on a tiny budget for every model."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from sacrebleu.metrics import BLEU

from tests.runs import run_py, train_here
from tests.wandb_records import offline_run
from zoo.errors import EvaluationFailed
from zoo.models import architectures
from zoo.resolvers import cpu_precision, register_resolvers
from zoo.results import load

register_resolvers()  # as run.py does: the logger configs use ${zoo.label:} and ${zoo.group:}
ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted(p.stem for p in (ROOT / "conf/model").glob("*.yaml"))
# one end-to-end run per architecture: a variant (a config built on another's defaults, e.g. transformer_rotary) is
# composed and instantiated below, and its model runs through the interface tests of tests/models/
ARCHITECTURES = sorted(p.stem for p in (ROOT / "conf/model").glob("*.yaml") if "defaults:" not in p.read_text())
TRAINERS = sorted(p.stem for p in (ROOT / "conf/trainer").glob("*.yaml"))
EXPERIMENTS = sorted(str(p.relative_to(ROOT / "conf/experiment").with_suffix(""))
                     for p in (ROOT / "conf/experiment").glob("**/*.yaml"))


def compose_config(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize("model", MODELS)
def test_every_model_config_instantiates_its_constructor(model, tmp_path):
    cfg = compose_config(f"model={model}", "experiment=smoke", f"data.cache_dir={tmp_path}")
    dm = instantiate(cfg.data)
    dm.setup()
    net = instantiate(cfg.model.net)(src_vocab_size=len(dm.src_tokenizer), tgt_vocab_size=len(dm.tgt_tokenizer),
                                     pad_id=dm.tgt_tokenizer.pad_id)
    optimizer = instantiate(cfg.model.optimizer)(net.parameters())
    if cfg.model.scheduler is not None:
        instantiate(cfg.model.scheduler)(optimizer)
    batch = next(iter(dm.train_dataloader()))
    assert net(batch["src"], batch["src_mask"], batch["tgt_in"]).shape[-1] == len(dm.tgt_tokenizer)


@pytest.mark.parametrize("trainer", [t for t in TRAINERS if t not in ("gpu", "ddp")])
def test_every_trainer_and_logger_config_instantiates(trainer, tmp_path):
    cfg = compose_config(f"trainer={trainer}", f"trainer.default_root_dir={tmp_path}",
                         f"logger.save_dir={tmp_path}")
    instantiate(cfg.trainer, logger=instantiate(cfg.logger))


def test_gpu_trainer_configs_compose():
    cfg = compose_config("trainer=gpu")
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
    cfg = compose_config("trainer=ddp", "trainer.num_nodes=2")
    assert (cfg.trainer.accelerator, cfg.trainer.strategy, cfg.trainer.devices, cfg.trainer.num_nodes) == (
        "gpu", "ddp", -1, 2)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment):
    assert compose_config(f"experiment={experiment}").model.net._target_


def leaves(tree, prefix: str = ""):
    """(dotted key, value) of every leaf of a nested dict."""
    if not isinstance(tree, dict):
        yield prefix[:-1], tree
        return
    for key, value in tree.items():
        yield from leaves(value, f"{prefix}{key}.")


LAKE_BARONI = ("experiment=scan_lake_baroni", "model=scan/lake_baroni_attention")  # two_way_encoder's recipe


@pytest.mark.parametrize("ablation", sorted(p.stem for p in (ROOT / "conf" / "ablation").glob("*.yaml")))
def test_every_ablation_changes_the_recipe_and_nothing_else(ablation):
    """conf/ablation/: a factor of the training recipe at a time, on top of an experiment (+ablation=NAME)."""
    recipe = LAKE_BARONI if ablation == "two_way_encoder" else ("experiment=scan_length", "model=attention")

    def settings(*extra: str) -> dict:
        cfg = compose_config(*recipe, *extra)
        return dict(leaves(OmegaConf.to_container(cfg)))  # unresolved: the interpolations name what they read
    base, changed = settings(), settings(f"+ablation={ablation}")
    differ = [key for key, value in changed.items() if base.get(key) != value]
    assert differ and all(key.split(".")[0] in ("model", "data", "trainer", "scheduled_sampling") for key in differ)


@pytest.mark.slow
@pytest.mark.parametrize("model", ARCHITECTURES)
def test_every_architecture_trains_and_is_scored(model, tmp_path, capsys):
    results = train_here(tmp_path, f"model={model}", "experiment=smoke", "oracle_length=true", "exposure_bias=true")
    printed = capsys.readouterr().out
    assert results["model"] == results["architecture"] == model and results["data"] == "toy" and results["seed"] == 0
    assert results["params"] > 0 and results["device"]["type"] == "cpu"
    assert f"{model}: {results['params']:,} parameters" in printed
    for split in ("test", "test_long"):
        r = results[split]
        assert 0 <= r["bleu"] <= 100 and 0 <= r["chrf"] <= 100 and 0 <= r["exact_match"] <= 100
        assert r["signature"].startswith("nrefs:1") and r["n"] == (40 if split == "test" else 20)
        assert sum(b["n"] for b in r["by_src_len"]) == r["n"]
        assert all(b["lo"] <= b["hi"] for b in r["by_src_len"])
        for scores, key in ((r, "hypothesis"), (r["greedy"], "greedy")):  # beam search, then greedy
            hyps, refs = [s[key] for s in r["samples"]], [s["reference"] for s in r["samples"]]
            assert scores["bleu"] == BLEU().corpus_score(hyps, [refs]).score and len(hyps) == r["n"]
            assert scores["len_ratio"] == scores["sys_len"] / scores["ref_len"] and 0 <= scores["hit_limit"] <= 100
            assert all({"len_ratio", "hit_limit"} <= set(b) for b in scores["by_src_len"])
        oracle = [s["oracle"] for s in r["samples"]]  # greedy at each reference's length in tokens (here words;
        # fewer once decoded where an untrained model wrote a special token such as BOS, which decoding drops)
        assert all(len(h.split()) <= len(s["reference"].split()) for h, s in zip(oracle, r["samples"]))
        assert sum(len(h.split()) == len(s["reference"].split()) for h, s in zip(oracle, r["samples"])) > r["n"] / 2
        right = sum(h == s["reference"] for h, s in zip(oracle, r["samples"]))
        assert r["oracle"]["exact_match"] == 100 * right / r["n"]
        exposure, positions = r["exposure"], r["exposure"]["positions"]  # next-token accuracy by target position
        assert positions[0]["t"] == 1 and positions[0]["n"] == r["n"]  # every reference reaches its first token
        assert all(a["n"] >= b["n"] for a, b in zip(positions, positions[1:]))
        first = positions[0]  # after BOS alone both prefixes are the same (up to a near tie of step and pass)
        assert abs(first["teacher_forced"] - first["free_running"]) <= 100 / r["n"]
        n = sum(p["n"] for p in positions)
        for key in ("teacher_forced", "free_running"):
            assert exposure[key] == pytest.approx(sum(p[key] * p["n"] for p in positions) / n)
    train = results["train"]
    assert train["steps"] == 6 and train["wall_s"] > train["train_s"] > 0
    assert train["tokens_per_s"] > train["tgt_tokens_per_s"] > 0 and train["tokens"] > train["tgt_tokens"]
    assert train["flops_per_token"] > 0 and 0 < train["mfu"] < 1 and results["device"]["matmul_peak_gflops"] > 0
    assert [p["step"] for p in train["val_curve"]] == [3, 6]  # trainer=debug validates every 3 steps
    assert all(0 <= p["fit_bleu"] <= 100 for p in train["val_curve"])  # training pairs beside validation
    assert all(0 < p["loss"] < 20 for p in train["val_curve"])  # validation cross-entropy, what early stopping watches
    assert results["fit"]["n"] == 200 and len(results["fit"]["samples"]) == 200
    assert (train["evaluated"], train["stopped_early"], train["out_of_time"]) == ("last", False, False)
    assert results["decode"]["greedy_tokens_per_s"] > 0 and results["decode"]["beam_tokens_per_s"] > 0
    assert results["memory"]["peak_mb"] > 0 and results["memory"]["kind"] == "peak RSS"
    alignment, sample = results["alignment"], results["attention_sample"]
    if model.startswith("gru"):
        assert alignment is None and sample is None  # a fixed context vector, no attention
    else:
        weights = alignment["weights"]
        assert len(weights) == len(alignment["target"]) and len(weights[0]) == len(alignment["source"])
        assert all(abs(sum(row) - 1) < 1e-3 for row in weights)
        assert {a["split"] for a in sample} == {"test", "test_long"} and all(a["layers"] >= 1 for a in sample)
    assert "hypothesis:" in printed  # sample translations are printed


@pytest.mark.slow
def test_run_py_end_to_end_writes_results_and_logs_to_wandb_offline(tmp_path):
    proc = run_py(tmp_path, "model=attention", "experiment=smoke")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == f"results: {tmp_path / 'results.json'}"
    results = load(tmp_path / "results.json")
    assert results["model"] == "attention" and results["overrides"] == ["model=attention", "experiment=smoke",
                                                                        f"data.cache_dir={tmp_path}/cache"]
    # the default logger is wandb, offline: a run named by architecture and seed, with the same metric names
    wandb = offline_run(tmp_path)
    assert (wandb["name"], wandb["job_type"], wandb["group"], wandb["exit_code"]) == ("attention-seed0", "attention",
                                                                                      "", 0)
    assert float(wandb["summary"]["test/bleu"]) == results["test"]["bleu"]
    assert float(wandb["summary"]["train/mfu"]) == results["train"]["mfu"]
    assert "test_long/bleu_by_src_len" in {k.rsplit("/", 1)[0] for k in wandb["summary"]}


@pytest.mark.slow
def test_early_stopping_ends_a_run_and_its_best_weights_are_scored(tmp_path, capsys):
    """A smoke run scores BLEU 0 at every check: with patience 1 the second check does not improve on the first,
    so training stops there, and the weights of the first check (best.ckpt) are the ones evaluated."""
    results = train_here(tmp_path, "experiment=smoke", "model=gru", "trainer.max_steps=60",
                         "trainer.enable_checkpointing=true", "early_stopping.patience=1", "evaluate=best")
    train = results["train"]
    assert train["steps"] == 6 and train["stopped_early"] and train["val_plateaued"] is False
    assert (train["evaluated"], train["best_step"]) == ("best", 3)
    best = torch.load(results["best_checkpoint"], weights_only=True)
    assert best["global_step"] == 3
    printed = capsys.readouterr().out
    assert f"evaluating the best weights by validation BLEU (step 3): {results['best_checkpoint']}" in printed


@pytest.mark.slow
def test_a_training_time_budget_stops_training(tmp_path):
    train = train_here(tmp_path, "experiment=smoke", "model=gru", "trainer.max_steps=100000", "train_seconds=3",
                       "trainer.val_check_interval=1000")["train"]
    assert train["out_of_time"] and train["steps"] < 100000 and 3 <= train["train_s"] < 3 + train["train_s"] / 2


@pytest.mark.slow
def test_a_failed_evaluation_keeps_the_trained_model_and_says_how_to_use_it(tmp_path, monkeypatch):
    """Evaluation is made to fail: the run ends with an error naming the checkpoint that holds the trained model
    and the command that translates with it."""
    def evaluate(*args, **kwargs):
        raise RuntimeError("out of memory")
    monkeypatch.setattr("zoo.train.evaluate", evaluate)
    with pytest.raises(EvaluationFailed) as failed:
        train_here(tmp_path, "experiment=smoke", "model=gru", "trainer.enable_checkpointing=true")
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert last.is_file() and not (tmp_path / "results.json").exists()
    assert str(failed.value) == (
        f"evaluation failed after training (RuntimeError: out of memory); the trained model is kept in {last}; "
        f"translate a test file with it: python -m zoo.translate {last} --input SOURCE_FILE --output OUT_FILE")


@pytest.mark.slow
def test_a_run_trains_with_scheduled_sampling_and_logs_the_references_probability(tmp_path):
    results = train_here(tmp_path, "model=attention", "experiment=smoke", "scheduled_sampling.method=step",
                         "scheduled_sampling.schedule=linear", "scheduled_sampling.k=4", "scheduled_sampling.p=0.25")
    assert results["train"]["steps"] == 6
    logged = [line.split(",") for line in next(tmp_path.rglob("metrics.csv")).read_text().splitlines()]
    column = logged[0].index("train/p_gold")
    assert [float(row[column]) for row in logged[1:] if row[column]][:5] == [1.0, 0.8125, 0.625, 0.4375, 0.25]


@pytest.mark.slow
def test_run_py_trains_a_compiled_model(tmp_path):
    """speed.compile, as a GPU run would use it, here on the CPU: torch.compile (inductor) of the teacher-forced
    pass under the precision trainer=cpu picks on this CPU (zoo.resolvers) with fused Adam, its lengths padded and
    static (a multiple of 16 gives this tiny task's lengths one pair, so inductor compiles few graphs; one graph per
    pair, and the symbolic shapes without padding, are counted in tests/test_compile.py); the run trains, decodes
    eagerly and records the setting."""
    proc = run_py(tmp_path, "model=transformer", "experiment=smoke", "speed.compile=true", "logger=csv",
                  "speed.pad_to_multiple=16")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["speed"] == {"compile": True, "pad_to_multiple": 16}
    assert results["device"]["precision"] == cpu_precision()
    assert results["train"]["steps"] == 6 and results["test"]["n"] == 40


@pytest.mark.slow
def test_a_run_never_overwrites_an_earlier_one(tmp_path):
    (tmp_path / "results.json").write_text("{}")
    proc = run_py(tmp_path, "experiment=smoke")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (f"error: {tmp_path} already holds a run (results.json); choose "
                                                    "another hydra.run.dir")
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"] and (tmp_path / "results.json").read_text() == "{}"


@pytest.mark.slow
def test_a_sweep_ends_in_a_report_and_a_wandb_group_even_when_a_job_fails(tmp_path):
    proc = subprocess.run([sys.executable, "run.py", "-m", "model=gru,transformer", "experiment=smoke",
                           "model.net.dropout=0.1,1.5", f"hydra.sweep.dir={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1  # two jobs fail (dropout 1.5): the sweep fails, after the other jobs and the report
    assert proc.stderr.strip().splitlines()[-1].startswith("error: 2 job(s) of the sweep failed")
    jobs = sorted(p for p in tmp_path.iterdir() if p.name[0].isdigit())
    assert [p.name.split("_")[0] for p in jobs] == ["0", "1", "2", "3"]
    done = [p for p in jobs if (p / "results.json").exists()]
    assert [json.loads((p / "results.json").read_text())["model"] for p in done] == ["gru", "transformer"]
    assert all("dropout (1.5) must be in [0, 1)" in (p / "error.txt").read_text() for p in jobs if p not in done)

    report = (tmp_path / "report.md").read_text()
    assert "| gru | " in report and "| transformer | " in report and "**2 job(s) failed**" in report
    for name in ("bleu_by_length.png", "throughput.png", "val_bleu_vs_time.png", "attention.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name

    runs = {p.name: offline_run(p) for p in jobs}  # every job logged a run, in the sweep's group
    assert {r["group"] for r in runs.values()} == {str(tmp_path)}
    assert sorted((r["name"], r["exit_code"]) for r in runs.values()) == [
        ("gru-seed0", 0), ("gru-seed0", 1), ("transformer-seed0", 0), ("transformer-seed0", 1)]
    comparison = offline_run(tmp_path)
    assert (comparison["job_type"], comparison["group"], comparison["exit_code"]) == ("report", str(tmp_path), 0)
    assert "runs" in comparison["summary"] or "runs/_type" in comparison["summary"]


def test_scan_config_lengthens_the_output_limit_for_its_long_action_sequences(tmp_path):
    cfg = compose_config("data=scan", "data.split=length", f"data.cache_dir={tmp_path}")
    assert cfg.decode.max_len_a * 9 + cfg.decode.max_len_b >= 48  # 9 command words can mean 48 actions
    dm = instantiate(cfg.data)
    dm.setup()
    assert dm.test_splits == ["test"] and len(dm.texts["test"]) == 3920
    assert dm.summary()["split"] == "length"


def write_parallel(folder: Path, n: int = 80) -> Path:
    words = ["red", "blue", "dog", "cat", "runs", "sleeps", "big", "small"]
    rows = [" ".join(words[(i * k) % 8] for k in range(1, 3 + i % 5)) for i in range(n)]
    (folder / "corpus.tsv").write_text("".join(f"{r}\t{r.upper()}\n" for r in rows))
    return folder / "corpus.tsv"


@pytest.mark.slow
def test_a_run_trains_on_the_users_parallel_text(tmp_path):
    results = train_here(tmp_path / "run", "data=parallel", f"data.source.train={write_parallel(tmp_path)}",
                         "data.source.val_size=10", "data.source.test_size=10", "data.preprocess.vocab_size=60",
                         "trainer=debug", "model=gru")
    assert results["data"] == "parallel" and results["test_splits"] == ["test"] and results["test"]["n"] == 10
    assert results["corpus"]["splits"]["train"]["pairs"] == 60 and results["corpus"]["src_vocab"] == 60


def test_run_py_reports_bad_input_in_one_line(tmp_path):
    tsv = write_parallel(tmp_path)
    tsv.write_text(tsv.read_text() + "a line without a tab\n")
    proc = run_py(tmp_path / "run", "data=parallel", f"data.source.train={tsv}", "data.source.val_size=10",
               "data.source.test_size=10", "trainer=debug")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (f"error: {tsv}:81: expected 2 tab-separated fields "
                                                    "(source, target), found 1")


@pytest.mark.slow
def test_a_run_trains_on_multi30k(shared_data, tmp_path):
    results = train_here(tmp_path, "data=multi30k", f"data.root={shared_data / 'multi30k'}", "trainer=debug",
                         "model=gru", "decode.beam_size=2", "decode.max_len_b=2", "decode.max_len_a=0.5")
    assert results["test_splits"] == ["test", "test2017"]
    assert results["test"]["n"] == results["test2017"]["n"] == 1000
    assert results["corpus"]["src_vocab"] == 8000 and results["corpus"]["padding_efficiency"] > 0.9
    assert results["test"]["signature"].startswith("nrefs:1|case:mixed")


def test_the_comparison_sweeps_every_architecture_at_matched_size_over_three_seeds(tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        params = compose("config", overrides=["experiment=compare"], return_hydra_config=True).hydra.sweeper.params
    assert params == {"model": ",".join(a.name for a in architectures()), "seed": "0,1,2"}
    assert params["model"].startswith("gru,attention,transformer")
    sizes = {}
    for model in params["model"].split(","):
        cfg = compose_config(f"model={model}", f"data.cache_dir={tmp_path}")
        dm = instantiate(cfg.data)
        dm.setup()
        net = instantiate(cfg.model.net)(src_vocab_size=len(dm.src_tokenizer),
                                         tgt_vocab_size=len(dm.tgt_tokenizer), pad_id=dm.tgt_tokenizer.pad_id)
        sizes[model] = sum(p.numel() for p in net.parameters())
    assert max(sizes.values()) / min(sizes.values()) < 1.05, sizes


@pytest.mark.parametrize("experiment", ["long_sequence", "long_sequence_scan"])
def test_the_long_sequence_sweeps_take_every_architecture_and_the_positional_variants(experiment):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        hydra = compose("config", overrides=[f"experiment={experiment}"], return_hydra_config=True).hydra
    models = hydra.sweeper.params["model"].split(",")
    assert models[:len(architectures())] == [a.name for a in architectures()]
    assert models[len(architectures()):] == ["transformer_learned", "transformer_rotary", "transformer_alibi"]


def test_the_transformers_positional_variants_match_its_parameter_count():
    """A comparison of positions, not of sizes: the learned table's weights are paid for with a narrower FFN."""
    sizes = {}
    for config in sorted((ROOT / "conf" / "model").glob("transformer*.yaml")):
        cfg = compose_config(f"model={config.stem}")
        net = instantiate(cfg.model.net)(src_vocab_size=500, tgt_vocab_size=600, pad_id=0)
        sizes[config.stem] = sum(p.numel() for p in net.parameters())
    assert len(sizes) >= 6 and max(sizes.values()) / min(sizes.values()) < 1.001, sizes


def test_the_multi30k_recipes_build_with_their_own_batches_and_schedules():
    """experiment=multi30k_converged sweeps the three published recipes; each builds on a joint vocabulary (the
    Transformer shares one table three ways) and brings its own batch, validation interval and step ceiling."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        params = compose("config", overrides=["experiment=multi30k_converged"],
                         return_hydra_config=True).hydra.sweeper.params
    models = params["model"].split(",")
    assert models == ["multi30k/transformer_tiny", "multi30k/attention_nmtpy", "multi30k/gru_nmtpy"]
    for model in models:
        cfg = compose_config("experiment=multi30k_converged", f"model={model}")
        assert cfg.data.max_tokens == cfg.model.max_tokens and cfg.trainer.val_check_interval == cfg.model.val_every
        assert (cfg.evaluate, cfg.checkpoint.keep_epochs, cfg.decode.beam_size) == ("average", 10, 5)
        with torch.device("meta"):
            net = instantiate(cfg.model.net)(src_vocab_size=10000, tgt_vocab_size=10000, pad_id=0)
        optimizer = instantiate(cfg.model.optimizer)([torch.zeros(1, requires_grad=True)])
        if cfg.model.scheduler is not None:
            instantiate(cfg.model.scheduler)(optimizer)
    tiny = compose_config("experiment=multi30k_converged")
    assert tiny.model.scheduler._target_ == "zoo.module.inverse_sqrt_schedule" and tiny.trainer.max_steps == 8000
    with torch.device("meta"):
        net = instantiate(tiny.model.net)(src_vocab_size=10000, tgt_vocab_size=10000, pad_id=0)
    assert net.encoder.embed.tokens.weight is net.decoder.out.weight


def without_network(log: Path) -> tuple[list[str], dict]:
    """A command prefix and environment in which nothing reaches another machine: a network namespace of its own
    (no interfaces but a loopback that is down) where the kernel allows one, and, always, tests/no_network's guard
    that logs and refuses any remote connection or name lookup made from Python."""
    env = {k: v for k, v in os.environ.items()  # the defaults, not CI's settings; no proxy to hide an attempt behind
           if not k.startswith(("WANDB_", "HF_")) and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(PYTHONPATH=str(ROOT / "tests" / "no_network"), ZOO_NETWORK_LOG=str(log))
    isolated = shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"]).returncode == 0
    return (["unshare", "-rn"] if isolated else []), env


@pytest.mark.slow
def test_the_main_job_runs_with_the_network_unreachable(tmp_path):
    prefix, env = without_network(tmp_path / "network.log")
    probe = subprocess.run([*prefix, sys.executable, "-c", "import urllib.request as u; u.urlopen('https://wandb.ai')"],
                           env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and (tmp_path / "network.log").read_text() == "resolve wandb.ai\n"  # the guard works
    (tmp_path / "network.log").unlink()

    proc = subprocess.run([*prefix, sys.executable, "run.py", "trainer.max_steps=30", f"hydra.run.dir={tmp_path}/run",
                           f"data.cache_dir={tmp_path}/cache"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)  # the main job (default data, model and logger), 30 steps of it
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "network.log").exists()  # nothing tried to reach another machine
    assert offline_run(tmp_path / "run")["exit_code"] == 0  # wandb, offline by default, recorded the run
