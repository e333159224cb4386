"""A run's config checked before any data is prepared or model built, each bad value named in one line (a
ConfigError or CheckpointError); and the two settings that need more than a check to read: the model class with
its arguments, and the scheduled sampling asked for."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from zoo import checkpoint
from zoo.context import RunContext
from zoo.errors import CheckpointError, ConfigError
from zoo.module import check_decoding
from zoo.sampling import ScheduledSampling


def net_spec(cfg: DictConfig) -> tuple[str, dict]:
    """The model class's dotted name and its config arguments (the data adds the vocabulary sizes and pad id)."""
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    return net.pop("_target_"), {k: v for k, v in net.items() if not k.startswith("_")}


def check_config(cfg: DictConfig, ctx: RunContext) -> tuple[Path, dict] | None:
    """What can be checked before the data is prepared, as a ConfigError or CheckpointError naming the value: the
    model's arguments (the model is built on the meta device, which allocates nothing), the decoding settings,
    the budgets, and the checkpoint to resume from, which must exist, be readable and match the model. Returns the
    checkpoint's path and its "zoo" entry when resuming."""
    try:
        with torch.device("meta"):
            instantiate(cfg.model.net)(src_vocab_size=8, tgt_vocab_size=8, pad_id=0)
    except ValueError as e:
        raise ConfigError(f"model={ctx.label}: {e}") from None
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
             "speed.pad_to_multiple": cfg.speed.pad_to_multiple,
             **({} if cfg.data.get("max_sentences") is None else {"data.max_sentences": cfg.data.max_sentences})}
    bad = [f"{name} ({value})" for name, value in sizes.items() if not (isinstance(value, int) and value > 0)]
    if bad:
        raise ConfigError(f"{', '.join(bad)} must be an integer > 0")
    if ctx.multirun and cfg.trainer.get("strategy") == "ddp" and "SLURM_JOB_ID" not in os.environ:
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
    checkpoint.check_matches(info, path, model=ctx.label, net_class=net_class, net_kwargs=net_kwargs)
    return path, info


def scheduled_sampling(cfg: DictConfig) -> ScheduledSampling | None:
    """The scheduled sampling that `cfg.scheduled_sampling` asks for, None for teacher forcing alone."""
    if cfg.scheduled_sampling.method is None:
        return None
    try:
        return ScheduledSampling(**cfg.scheduled_sampling)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"scheduled_sampling: {e}") from None
