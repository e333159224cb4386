"""The config tree's own interpolations, registered by run.py before Hydra resolves anything:
${zoo.label:} names a run's architecture and ${zoo.group:} its sweep, for the loggers and the report."""
from __future__ import annotations

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf


def run_label() -> str:
    """The architecture's name in tables, plots and wandb: the model config's (model=multi30k/gru is a gru)."""
    if not HydraConfig.initialized():
        return "model"
    return HydraConfig.get().runtime.choices["model"].rsplit("/", 1)[-1]


def sweep_group() -> str | None:
    """The wandb group of a sweep's runs: the sweep directory. A single run has none."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return HydraConfig.get().sweep.dir


def register_resolvers() -> None:
    """${zoo.label:} and ${zoo.group:} for the logger configs."""
    OmegaConf.register_new_resolver("zoo.label", run_label, replace=True)
    OmegaConf.register_new_resolver("zoo.group", sweep_group, replace=True)
