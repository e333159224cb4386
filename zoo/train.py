"""One run: the config checked (zoo/config_checks.py); data, model, module and trainer built from it; training;
the test splits scored by beam and greedy search (zoo/evaluation.py); `results.json` (zoo/results.py) and a summary.
Everything Hydra knows beyond the config comes in a RunContext (zoo/context.py), so this runs in-process too."""
from __future__ import annotations

import shlex
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from omegaconf import DictConfig, OmegaConf

from zoo import checkpoint
from zoo.config_checks import check_config, net_spec, scheduled_sampling
from zoo.context import RunContext
from zoo.data.batching import round_up
from zoo.data.datamodule import TranslationDataModule
from zoo.errors import ConfigError, EvaluationFailed, TrainingStopped
from zoo.evaluation import alignment_sample, attention_sample, evaluate, prepare
from zoo.metrics import TrainClock, device_name, matmul_peak_flops, peak_memory, plateaued
from zoo.models import of_class
from zoo.module import NonFiniteLoss, Seq2SeqModule
from zoo.results import Results, write
from zoo.resume import (BestCheckpoint, EpochCheckpoints, GracefulStop, RandomState, StepCheckpoints,
                        ValidationStop, all_processes)
from zoo.summary import print_summary
from zoo.tracking import finish, log_results, offline_throughout, wandb_identity


def train(cfg: DictConfig, ctx: RunContext) -> Path | None:
    """Train and evaluate one run; the path of its results.json (None on the other processes of a DDP run)."""
    offline_throughout(cfg.logger.get("mode"))
    logger = instantiate(cfg.logger)
    try:
        resume = check_config(cfg, ctx)  # before any data is prepared or model built
        L.seed_everything(cfg.seed, workers=True)
        results = fit_and_evaluate(cfg, ctx, logger, resume)
    except Exception:  # (Ctrl-C is left to wandb's own exit hook)
        finish(logger, failed=True)  # a failed job still closes its wandb run, so the sweep's next job gets its own
        raise
    if results is None:
        return None
    print_summary(results, cfg.n_samples)
    path = ctx.output_dir / "results.json"
    write(results, path)
    log_results(logger, results)
    finish(logger, failed=False)
    return path


@dataclass
class Watchers:
    """The callbacks a run's results are read from: its clock, the stop on a signal, early stopping, and the
    checkpoints by step, at the best validation score and at each epoch's end (None where not configured)."""
    clock: TrainClock
    stop: GracefulStop
    early: ValidationStop | None = None
    steps: StepCheckpoints | None = None
    best: BestCheckpoint | None = None
    epochs: EpochCheckpoints | None = None

    @classmethod
    def of(cls, cfg: DictConfig, folder: Path) -> Watchers:
        clock = TrainClock(budget_s=cfg.train_seconds)
        watchers = cls(clock, GracefulStop())
        if cfg.early_stopping.patience is not None:
            watchers.early = ValidationStop(clock, cfg.early_stopping.monitor, patience=cfg.early_stopping.patience,
                                            min_delta=cfg.early_stopping.min_delta)
        if cfg.trainer.enable_checkpointing:
            watchers.steps = StepCheckpoints(folder, every_n_steps=cfg.checkpoint.every_n_steps)
            watchers.best = BestCheckpoint(folder)
            watchers.epochs = EpochCheckpoints(folder, keep=cfg.checkpoint.keep_epochs)
        return watchers

    def callbacks(self) -> list[L.Callback]:
        every = [self.clock, self.stop, RandomState(), self.early, self.steps, self.epochs, self.best]
        return [c for c in every if c is not None]


def build(cfg: DictConfig, ctx: RunContext, resume: tuple[Path, dict] | None
          ) -> tuple[TranslationDataModule, Seq2SeqModule]:
    """The data module, prepared, and the LightningModule around the model sized by its vocabularies; what only
    the data can refute (a resumed checkpoint made on other data, shared embeddings over two vocabularies, sentences
    longer than the model's positions) as a one-line error."""
    dm: TranslationDataModule = instantiate(cfg.data, pad_to_multiple=cfg.speed.pad_to_multiple)
    dm.setup()
    net_class, net_kwargs = net_spec(cfg)
    net_kwargs.update(src_vocab_size=len(dm.src_tokenizer), tgt_vocab_size=len(dm.tgt_tokenizer),
                      pad_id=dm.tgt_tokenizer.pad_id)  # the same in both: specials come first
    info = checkpoint.describe(model=ctx.label, data=ctx.data, net_class=net_class, net_kwargs=net_kwargs,
                               src_tokenizer=dm.src_tokenizer, tgt_tokenizer=dm.tgt_tokenizer,
                               decode=dict(cfg.decode), precision=str(cfg.trainer.precision))
    if resume is not None:
        checkpoint.check_data(resume[1], resume[0], info)
    if net_kwargs.get("share_all_embeddings") and not dm.settings.joint:
        raise ConfigError(f"model={ctx.label}: share_all_embeddings needs one vocabulary for both languages "
                          f"(data.preprocess.joint=true)")
    try:
        net = instantiate(cfg.model.net)(**{k: net_kwargs[k] for k in checkpoint.DATA_SIZED})
    except ValueError as e:
        raise ConfigError(f"model={ctx.label}: {e}") from None
    dm.corpus.check_fits(dm.source, net.max_positions, max_len_a=cfg.decode.max_len_a, max_len_b=cfg.decode.max_len_b,
                         references_fed=cfg.oracle_length or cfg.exposure_bias)
    module = Seq2SeqModule(net, optimizer=instantiate(cfg.model.optimizer),
                           scheduler=instantiate(cfg.model.scheduler), tokenizer=dm.tgt_tokenizer,
                           label_smoothing=cfg.model.label_smoothing, checkpoint_info=info,
                           sampling=scheduled_sampling(cfg), **cfg.decode)
    if cfg.speed.compile:
        compile_net(module, dm)
    return dm, module


def compile_net(module: Seq2SeqModule, dm: TranslationDataModule, backend: str = "inductor") -> None:
    """torch.compile the model's teacher-forced pass, in place, so that checkpoints keep their keys (decoding's
    `step` stays eager). Where batches are padded to a multiple (speed.pad_to_multiple), they come in a few lengths:
    each (source, target) length pair gets its own graph with static lengths, only the batch size left symbolic,
    which is what CUDA graphs and shape-specialised kernels want. Otherwise one graph with symbolic shapes serves
    every batch, rather than a recompile for each new shape. (`backend` is torch.compile's; "eager" compiles
    nothing, only captures the graphs.)"""
    if dm.pad_to_multiple == 1:
        module.net.compile(dynamic=True, backend=backend)
        return
    sources, targets = set(), set()  # every padded length a batch can have: its longest sentences'
    for split in dm.corpus.ids:  # the test splits' too (the fit sample is training pairs)
        src_len, tgt_len = dm.split_ids(split).lengths
        sources |= {round_up(int(n), dm.pad_to_multiple) for n in src_len}
        targets |= {round_up(int(n) + 1, dm.pad_to_multiple) for n in tgt_len}  # + 1: BOS / EOS
    # each shape may be compiled four times: in training and in evaluation (dropout), and for a batch of one row
    # (a size of 1 is never left symbolic)
    limit = 4 * len(sources) * len(targets)
    dynamo = torch._dynamo.config
    dynamo.recompile_limit = max(dynamo.recompile_limit, limit)
    dynamo.accumulated_recompile_limit = max(dynamo.accumulated_recompile_limit, limit)
    module.net.compile(dynamic=False, backend=backend)
    module.symbolic_batch = True


def fit_and_evaluate(cfg: DictConfig, ctx: RunContext, logger, resume: tuple[Path, dict] | None) -> Results | None:
    """Build, train (resuming from `resume`'s checkpoint), score the test splits; the run's results (None on the
    other processes of a DDP run). A stop on a signal or a NaN loss, or a failed evaluation, raises an error that
    says where the trained state is kept and how to go on."""
    dm, module = build(cfg, ctx, resume)
    print(f"{ctx.label}: {sum(p.numel() for p in module.net.parameters() if p.requires_grad):,} parameters")
    watchers = Watchers.of(cfg, ctx.output_dir / "checkpoints")
    trainer: L.Trainer = instantiate(cfg.trainer, logger=logger, callbacks=watchers.callbacks())
    # the whole config and each config group's choice, to filter and group runs by (zoo/dashboard.py); logged once
    # the trainer has told each process its rank (the first logs)
    logger.log_hyperparams({**OmegaConf.to_container(cfg, resolve=True), "choices": dict(ctx.choices)})
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
        raise NonFiniteLoss(f"{e}; a lower model.optimizer.lr or model.grad_clip may help; "
                            f"{kept(watchers.steps, ctx)}") from None
    if watchers.stop.stopped:
        raise TrainingStopped(f"stopped by {watchers.stop.reason} after step {trainer.global_step}; "
                              f"{kept(watchers.steps, ctx)}")
    wall_s = time.perf_counter() - start
    try:
        scored = prepare(module, dm, trainer, evaluate=cfg.evaluate, best=watchers.best, epochs=watchers.epochs,
                         alphas=None if cfg.tune_alpha is None else list(cfg.tune_alpha))
        evaluation = evaluate(module, dm, trainer, cfg.bucket_width, oracle_length=cfg.oracle_length,
                              exposure_bias=cfg.exposure_bias)
    except Exception as e:  # the trained model is safe in its checkpoint: say how to score it again
        raise EvaluationFailed(f"evaluation failed after training ({type(e).__name__}: {e}); "
                               f"{kept(watchers.steps, ctx, evaluate=True)}") from e
    clock = watchers.clock
    if trainer.world_size > 1:  # each process counted its own batches; MFU is against all the devices
        clock.src_tokens, clock.tgt_tokens, clock.flops = map(sum, zip(*all_processes(
            (clock.src_tokens, clock.tgt_tokens, clock.flops))))
    if not trainer.is_global_zero:
        return None
    return collect(cfg, ctx, dm, module, trainer, watchers, logger, peak=peak, wall_s=wall_s, scored=scored,
                   evaluation=evaluation, resumed_from=None if resume is None else str(resume[0]))


def collect(cfg: DictConfig, ctx: RunContext, dm: TranslationDataModule, module: Seq2SeqModule, trainer: L.Trainer,
            watchers: Watchers, logger, *, peak: float, wall_s: float, scored: dict, evaluation: dict,
            resumed_from: str | None) -> Results:
    """The run's results.json, from what training and evaluation left behind (`peak`: the device's measured
    matmul FLOP/s, which MFU is a share of)."""
    device, clock, net = trainer.strategy.root_device, watchers.clock, module.net
    curve = [p["bleu"] for p in clock.val_curve]  # every validation of the run, before a resume too
    early = watchers.early
    return {
        "model": ctx.label, "architecture": getattr(of_class(type(net)), "name", ctx.label), "data": ctx.data,
        "params": sum(p.numel() for p in net.parameters() if p.requires_grad), "seed": cfg.seed,
        # what the command line set, the report groups by it; a resume's checkpoint is train.resumed_from
        "overrides": [o for o in ctx.overrides if not o.startswith("ckpt_path=")],
        "choices": dict(ctx.choices),
        "device": {"name": device_name(device), "type": device.type, "precision": str(trainer.precision),
                   "matmul_peak_gflops": peak / 1e9, "processes": trainer.world_size},
        "corpus": {**dm.summary(), "train_max_src_len": int(dm.corpus.ids["train"].lengths[0].max())},
        "test_splits": dm.test_splits,
        **{split: evaluation[split] for split in dm.test_splits},
        "train": {"wall_s": clock.wall_before + wall_s, "steps": trainer.global_step,
                  **clock.summary(peak * trainer.world_size),
                  "val_bleu": curve[-1] if curve else None,  # the last validation's (JSON has no NaN)
                  "best_val_bleu": max(curve, default=None),
                  "best_step": clock.val_curve[curve.index(max(curve))]["step"] if curve else None,
                  "val_plateaued": plateaued(curve), "evaluated": scored["evaluated"], "averaged": scored["averaged"],
                  "stopped_early": early is not None and early.wait_count >= early.patience,
                  "out_of_time": cfg.train_seconds is not None and clock.seconds >= cfg.train_seconds,
                  "resumed_from": resumed_from},
        **({"fit": evaluation["fit"]} if "fit" in evaluation else {}),
        "decode": evaluation["decode"], "decoding": {**cfg.decode, "alpha": module.beam["alpha"]},
        "alpha_tuning": scored["alpha_tuning"],
        "memory": peak_memory(device), "speed": dict(cfg.speed),
        "alignment": alignment_sample(module, dm),
        "attention_sample": attention_sample(module, dm),
        "checkpoint": None if watchers.steps is None else watchers.steps.last_model_path,
        "best_checkpoint": None if watchers.best is None else watchers.best.path,
        "average_checkpoint": scored["average_checkpoint"],
        "wandb": wandb_identity(logger),
    }


def kept(steps: StepCheckpoints | None, ctx: RunContext, evaluate: bool = False) -> str:
    """Where a stopped run's state is, and the command that resumes it (with `evaluate`, that translates with it)."""
    if steps is None or not steps.last_model_path:
        return "no checkpoint had been written (trainer.enable_checkpointing, checkpoint.every_n_steps)"
    if evaluate:
        return (f"the trained model is kept in {steps.last_model_path}; translate a test file with it: "
                f"python -m zoo.translate {steps.last_model_path} --input SOURCE_FILE --output OUT_FILE")
    overrides = [o for o in ctx.overrides if not o.startswith(("ckpt_path=", "hydra."))]
    command = shlex.join(["python", "run.py", *overrides, f"ckpt_path={steps.last_model_path}"])
    return (f"the last checkpoint is {steps.last_model_path} (step {steps._last_global_step_saved}); resume with: "
            f"{command}")
