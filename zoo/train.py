"""One run: data, model, module and trainer from the config; training; evaluation of the test splits by greedy and
beam search (zoo/evaluation.py); `results.json`, a summary table and sample translations."""
from __future__ import annotations

import json
import os
import shlex
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from omegaconf import DictConfig, ListConfig, OmegaConf

from zoo import checkpoint
from zoo.data.datamodule import TranslationDataModule
from zoo.errors import CheckpointError, ConfigError, EvaluationFailed, TrainingStopped
from zoo.evaluation import alignment_sample, evaluate, prepare
from zoo.metrics import TrainClock, device_name, matmul_peak_flops, peak_memory, plateaued
from zoo.models import of_class
from zoo.module import NonFiniteLoss, Seq2SeqModule, check_decoding
from zoo.resolvers import run_label
from zoo.resume import (BestCheckpoint, EpochCheckpoints, GracefulStop, RandomState, StepCheckpoints,
                        ValidationStop, all_processes)
from zoo.sampling import ScheduledSampling
from zoo.tracking import finish, log_results, offline_throughout, wandb_identity


def print_summary(results: dict, n_samples: int) -> None:
    corpus, train = results["corpus"], results["train"]
    print(f"\n{results['model']} on {results['data']}: {results['params']:,} parameters, "
          f"{train['steps']} steps in {train['wall_s']:.0f} s, {train['tokens_per_s']:,.0f} train tokens/s "
          f"({train['tgt_tokens_per_s']:,.0f} target), {train['flops_per_token'] / 1e6:.1f} MFLOPs/token, "
          f"MFU {100 * train['mfu']:.1f}% of {results['device']['matmul_peak_gflops']:,.0f} GFLOP/s, "
          f"peak memory {results['memory']['peak_mb']:.0f} MB")
    print(f"data: {corpus['splits']['train']['pairs']:,} training pairs, vocabularies {corpus['src_vocab']:,} / "
          f"{corpus['tgt_vocab']:,}, padding efficiency {100 * corpus['padding_efficiency']:.1f}%")
    print(f"{'split':<10} {'n':>5} {'BLEU':>6} {'greedy':>7} {'tok BLEU':>8} {'chrF':>6} {'exact':>6} {'len':>5} "
          f"{'limit%':>6}   BLEU by source length  (tok BLEU: Moses-tokenized lowercased, as the papers report)")
    for split in results["test_splits"]:
        r = results[split]
        by_len = "  ".join(f"{b['lo']}-{b['hi']}:{b['bleu']:.0f}" for b in r["by_src_len"])
        print(f"{split:<10} {r['n']:>5} {r['bleu']:>6.1f} {r['greedy']['bleu']:>7.1f} {r['bleu_tok']:>8.1f} "
              f"{r['chrf']:>6.1f} {r['exact_match']:>6.1f} {r['len_ratio']:>5.2f} {r['hit_limit']:>6.1f}   {by_len}")
    if "fit" in results:
        fit, val = results["fit"], train["val_curve"]
        print(f"fit: greedy BLEU {fit['bleu']:.1f} on {fit['n']} training pairs, validation BLEU "
              + (f"{train['best_val_bleu']:.1f} at best (step {train['best_step']}), "
                 f"{'plateaued' if train['val_plateaued'] else 'still rising'}" if val else "not measured")
              + f"; test figures from the {train['evaluated']} weights")
    print(f"decoding: greedy {results['decode']['greedy_tokens_per_s']:,.0f} tokens/s, "
          f"beam {results['decode']['beam_tokens_per_s']:,.0f} tokens/s   ({results['test']['signature']})")
    samples = sorted(results["test"]["samples"], key=lambda s: len(s["source"].split()))
    for s in samples[:: max(1, len(samples) // n_samples)][:n_samples]:
        print(f"\n  source:     {s['source']}\n  reference:  {s['reference']}\n  hypothesis: {s['hypothesis']}")
    print()


def train(cfg: DictConfig) -> Path | None:
    """Train and evaluate one run; the path of its results.json (None on the other processes of a DDP run)."""
    results_path = Path(HydraConfig.get().runtime.output_dir) / "results.json"
    offline_throughout(cfg.logger.get("mode"))
    logger = instantiate(cfg.logger)
    try:
        resume = check_config(cfg)  # before any data is prepared or model built
        L.seed_everything(cfg.seed, workers=True)
        results = fit_and_evaluate(cfg, run_label(), logger, resume)
    except Exception:  # (Ctrl-C is left to wandb's own exit hook)
        finish(logger, failed=True)  # a failed job still closes its wandb run, so the sweep's next job gets its own
        raise
    if results is None:
        return None
    print_summary(results, cfg.n_samples)
    with open(results_path, "x") as f:  # "x": never overwrite
        json.dump(results, f, indent=1)
    log_results(logger, results)
    finish(logger, failed=False)
    return results_path


def net_spec(cfg: DictConfig) -> tuple[str, dict]:
    """The model class's dotted name and its config arguments (the data adds the vocabulary sizes and pad id)."""
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    return net.pop("_target_"), {k: v for k, v in net.items() if not k.startswith("_")}


def check_config(cfg: DictConfig) -> tuple[Path, dict] | None:
    """What can be checked before the data is prepared, as a ConfigError or CheckpointError naming the value: the
    model's arguments (the model is built on the meta device, which allocates nothing), the decoding settings,
    the budgets, and the checkpoint to resume from, which must exist, be readable and match the model. Returns the
    checkpoint's path and its "zoo" entry when resuming."""
    try:
        with torch.device("meta"):
            instantiate(cfg.model.net)(src_vocab_size=8, tgt_vocab_size=8, pad_id=0)
    except ValueError as e:
        raise ConfigError(f"model={run_label()}: {e}") from None
    check_decoding(**cfg.decode)
    if cfg.evaluate not in ("last", "best", "average"):
        raise ConfigError(f"evaluate ({cfg.evaluate}) must be last, best or average")
    if cfg.evaluate != "last" and not cfg.trainer.enable_checkpointing:
        raise ConfigError(f"evaluate={cfg.evaluate} needs trainer.enable_checkpointing: those weights are read back "
                          f"from the run's checkpoints")
    if cfg.evaluate == "average" and cfg.checkpoint.keep_epochs < 2:
        raise ConfigError(f"evaluate=average needs checkpoint.keep_epochs >= 2 (it is {cfg.checkpoint.keep_epochs}): "
                          f"the epoch checkpoints kept are the ones averaged")
    alphas = cfg.tune_alpha
    if alphas is not None and not (isinstance(alphas, ListConfig) and len(alphas) > 0 and all(
            isinstance(a, (int, float)) and not isinstance(a, bool) and a >= 0 for a in alphas)):
        raise ConfigError(f"tune_alpha ({alphas}) must be a list of length penalties >= 0, or null")
    if alphas is not None and cfg.evaluate != "average":
        raise ConfigError(f"tune_alpha needs evaluate=average (not {cfg.evaluate}): the averaged checkpoint is the one "
                          f"that carries the chosen length penalty, so that zoo.translate reproduces the test scores")
    scheduled_sampling(cfg)
    for flag in ("oracle_length", "exposure_bias"):
        if not isinstance(cfg[flag], bool):
            raise ConfigError(f"{flag} ({cfg[flag]}) must be true or false")
    patience, budget = cfg.early_stopping.patience, cfg.train_seconds
    if cfg.early_stopping.monitor not in ("bleu", "loss"):
        raise ConfigError(f"early_stopping.monitor ({cfg.early_stopping.monitor}) must be bleu or loss")
    if patience is not None and not (isinstance(patience, int) and patience > 0):
        raise ConfigError(f"early_stopping.patience ({patience}) must be an integer > 0 or null")
    if budget is not None and not (isinstance(budget, (int, float)) and budget > 0):
        raise ConfigError(f"train_seconds ({budget}) must be > 0 or null")
    sizes = {"trainer.max_steps": cfg.trainer.max_steps, "checkpoint.every_n_steps": cfg.checkpoint.every_n_steps,
             "checkpoint.keep_epochs": cfg.checkpoint.keep_epochs, "data.max_tokens": cfg.data.max_tokens,
             "data.eval_max_tokens": cfg.data.eval_max_tokens, "data.pool_size": cfg.data.get("pool_size", 1),
             **({} if cfg.data.get("max_sentences") is None else {"data.max_sentences": cfg.data.max_sentences})}
    bad = [f"{name} ({value})" for name, value in sizes.items() if not (isinstance(value, int) and value > 0)]
    if bad:
        raise ConfigError(f"{', '.join(bad)} must be an integer > 0")
    if (HydraConfig.get().mode == RunMode.MULTIRUN and cfg.trainer.get("strategy") == "ddp"
            and "SLURM_JOB_ID" not in os.environ):
        raise ConfigError("trainer.strategy=ddp in a sweep on this machine: Lightning would start the whole sweep "
                          "again in every process it launches; sweep DDP runs with hydra/launcher=slurm, or start "
                          "them one at a time")
    if cfg.ckpt_path is None:
        return None
    path = checkpoint.resolve(str(cfg.ckpt_path))
    info = checkpoint.read(path)["zoo"]
    if "averaged" in info:
        raise CheckpointError(f"checkpoint {path} is an average of {len(info['averaged'])} checkpoints, weights only: "
                              f"training cannot resume from it (resume from the run's last.ckpt)")
    net_class, net_kwargs = net_spec(cfg)
    checkpoint.check_matches(info, path, model=run_label(), net_class=net_class, net_kwargs=net_kwargs)
    return path, info


def scheduled_sampling(cfg: DictConfig) -> ScheduledSampling | None:
    """The scheduled sampling that `cfg.scheduled_sampling` asks for, None for teacher forcing alone."""
    if cfg.scheduled_sampling.method is None:
        return None
    try:
        return ScheduledSampling(**cfg.scheduled_sampling)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"scheduled_sampling: {e}") from None


def fit_and_evaluate(cfg: DictConfig, label: str, logger, resume: tuple[Path, dict] | None) -> dict | None:
    dm: TranslationDataModule = instantiate(cfg.data)
    dm.setup()
    data = HydraConfig.get().runtime.choices["data"]
    net_class, net_kwargs = net_spec(cfg)
    net_kwargs.update(src_vocab_size=len(dm.src_tokenizer), tgt_vocab_size=len(dm.tgt_tokenizer),
                      pad_id=dm.tgt_tokenizer.pad_id)  # the same in both: specials come first
    info = checkpoint.describe(model=label, data=data, net_class=net_class, net_kwargs=net_kwargs,
                               src_tokenizer=dm.src_tokenizer, tgt_tokenizer=dm.tgt_tokenizer,
                               decode=dict(cfg.decode), precision=str(cfg.trainer.precision))
    if resume is not None:
        checkpoint.check_data(resume[1], resume[0], info)
    if net_kwargs.get("share_all_embeddings") and not dm.settings.joint:
        raise ConfigError(f"model={label}: share_all_embeddings needs one vocabulary for both languages "
                          f"(data.preprocess.joint=true)")
    try:  # what only the data's sizes can refute (share_all_embeddings with two vocabularies)
        net = instantiate(cfg.model.net)(**{k: net_kwargs[k] for k in checkpoint.DATA_SIZED})
    except ValueError as e:
        raise ConfigError(f"model={label}: {e}") from None
    dm.corpus.check_fits(dm.source, net.max_positions, max_len_a=cfg.decode.max_len_a, max_len_b=cfg.decode.max_len_b,
                         references_fed=cfg.oracle_length or cfg.exposure_bias)
    module = Seq2SeqModule(net, optimizer=instantiate(cfg.model.optimizer),
                           scheduler=instantiate(cfg.model.scheduler), tokenizer=dm.tgt_tokenizer,
                           label_smoothing=cfg.model.label_smoothing, checkpoint_info=info,
                           sampling=scheduled_sampling(cfg), **cfg.decode)
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    print(f"{label}: {params:,} parameters")
    if cfg.speed.compile:  # in place, so checkpoints keep their keys; decoding's `step` stays eager
        net.compile(dynamic=True)  # one graph for every batch shape, not a recompile per shape
    clock, stop = TrainClock(budget_s=cfg.train_seconds), GracefulStop()
    callbacks = [clock, stop, RandomState()]
    early = steps = best = epochs = None
    if cfg.early_stopping.patience is not None:
        early = ValidationStop(clock, cfg.early_stopping.monitor, patience=cfg.early_stopping.patience,
                               min_delta=cfg.early_stopping.min_delta)
        callbacks.append(early)
    if cfg.trainer.enable_checkpointing:
        folder = Path(HydraConfig.get().runtime.output_dir) / "checkpoints"
        steps = StepCheckpoints(folder, every_n_steps=cfg.checkpoint.every_n_steps)
        best = BestCheckpoint(folder)
        epochs = EpochCheckpoints(folder, keep=cfg.checkpoint.keep_epochs)
        callbacks += [steps, epochs, best]
    trainer: L.Trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks)
    # the whole config, to filter runs by; logged once the trainer has told each process its rank (the first logs)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    device = trainer.strategy.root_device
    peak = matmul_peak_flops(device, checkpoint.PRECISION_DTYPES.get(str(trainer.precision), torch.float32))

    if resume is not None:
        print(f"resuming from {resume[0]}")
        # Lightning warns that a resume part-way through an epoch is unreliable unless the data loader itself can be
        # resumed; here the data module carries where the epoch stood (its state_dict, in every checkpoint), and
        # tests/test_resume.py shows such a resume equals the uninterrupted run, step by step
        warnings.filterwarnings("ignore", "You're resuming from a checkpoint that ended before the epoch ended",
                                PossibleUserWarning)
    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=None if resume is None else resume[0], weights_only=True)
    except NonFiniteLoss as e:
        raise NonFiniteLoss(f"{e}; a lower model.optimizer.lr or model.grad_clip may help; {kept(steps)}") from None
    if stop.stopped:
        raise TrainingStopped(f"stopped by {stop.reason} after step {trainer.global_step}; {kept(steps)}")
    wall_s = time.perf_counter() - start
    curve = [p["bleu"] for p in clock.val_curve]
    try:
        scored = prepare(module, dm, trainer, evaluate=cfg.evaluate, best=best, epochs=epochs,
                         alphas=None if cfg.tune_alpha is None else list(cfg.tune_alpha))
        evaluation = evaluate(module, dm, trainer, cfg.bucket_width, oracle_length=cfg.oracle_length,
                              exposure_bias=cfg.exposure_bias)
    except Exception as e:  # the trained model is safe in its checkpoint: say how to score it again
        raise EvaluationFailed(f"evaluation failed after training ({type(e).__name__}: {e}); "
                               f"{kept(steps, evaluate=True)}") from e
    if trainer.world_size > 1:  # each process counted its own batches; MFU is against all the devices
        clock.src_tokens, clock.tgt_tokens, clock.flops = map(sum, zip(*all_processes(
            (clock.src_tokens, clock.tgt_tokens, clock.flops))))
    if not trainer.is_global_zero:
        return None

    val_bleu = trainer.callback_metrics.get("val/bleu")  # None when no validation ran: JSON has no NaN
    return {
        "model": label, "architecture": getattr(of_class(type(net)), "name", label), "data": data, "params": params,
        "seed": cfg.seed,
        # what the command line set, the report groups by it; a resume's checkpoint is train.resumed_from
        "overrides": [o for o in HydraConfig.get().overrides.task if not o.startswith("ckpt_path=")],
        "device": {"name": device_name(device), "type": device.type, "precision": str(trainer.precision),
                   "matmul_peak_gflops": peak / 1e9, "processes": trainer.world_size},
        "corpus": {**dm.summary(), "train_max_src_len": int(dm.corpus.ids["train"].lengths[0].max())},
        "test_splits": dm.test_splits,
        **{split: evaluation[split] for split in dm.test_splits},
        "train": {"wall_s": clock.wall_before + wall_s, "steps": trainer.global_step,
                  **clock.summary(peak * trainer.world_size),
                  "val_bleu": None if val_bleu is None else float(val_bleu),
                  "best_val_bleu": max(curve, default=None),
                  "best_step": clock.val_curve[curve.index(max(curve))]["step"] if curve else None,
                  "val_plateaued": plateaued(curve), "evaluated": scored["evaluated"], "averaged": scored["averaged"],
                  "stopped_early": early is not None and early.wait_count >= early.patience,
                  "out_of_time": cfg.train_seconds is not None and clock.seconds >= cfg.train_seconds,
                  "resumed_from": None if resume is None else str(resume[0])},
        **({"fit": evaluation["fit"]} if "fit" in evaluation else {}),
        "decode": evaluation["decode"], "decoding": {**cfg.decode, "alpha": module.beam["alpha"]},
        "alpha_tuning": scored["alpha_tuning"],
        "memory": peak_memory(device), "speed": dict(cfg.speed),
        "alignment": alignment_sample(module, dm),
        "checkpoint": None if steps is None else steps.last_model_path,
        "best_checkpoint": None if best is None else best.path,
        "average_checkpoint": scored["average_checkpoint"],
        "wandb": wandb_identity(logger),
    }


def kept(steps: StepCheckpoints | None, evaluate: bool = False) -> str:
    """Where a stopped run's state is, and the command that resumes it (with `evaluate`, that translates with it)."""
    if steps is None or not steps.last_model_path:
        return "no checkpoint had been written (trainer.enable_checkpointing, checkpoint.every_n_steps)"
    if evaluate:
        return (f"the trained model is kept in {steps.last_model_path}; translate a test file with it: "
                f"python -m zoo.translate {steps.last_model_path} --input SOURCE_FILE --output OUT_FILE")
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith(("ckpt_path=", "hydra."))]
    command = shlex.join(["python", "run.py", *overrides, f"ckpt_path={steps.last_model_path}"])
    return (f"the last checkpoint is {steps.last_model_path} (step {steps._last_global_step_saved}); resume with: "
            f"{command}")
