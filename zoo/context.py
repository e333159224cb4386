"""What Hydra knows about a run that the config does not: read once, at the entry point (run.py), and passed down,
so that the training function can be called in-process with a context from a composed config (as tests/runs.py
does). (The logger and trainer configs still name the run directory and the label through ${hydra:...} and
${zoo.label:}, which Hydra resolves from its own state when they are instantiated.)"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydra.types import RunMode
from omegaconf import DictConfig


def label(model: str) -> str:
    """The architecture's name in tables, plots and wandb: the model config's (model=multi30k/gru is a gru)."""
    return model.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class RunContext:
    output_dir: Path  # the run's directory: results.json, checkpoints/, the loggers' files
    model: str  # the model config chosen, as named on the command line (multi30k/gru)
    data: str  # the data config chosen (toy, multi30k, scan, ...)
    overrides: tuple[str, ...] = ()  # the command line's settings, which the report groups runs by
    multirun: bool = False  # one job of a sweep (-m)
    choices: tuple[tuple[str, str], ...] = ()  # every config group's choice (decode=beam, ablation=...), for wandb

    @property
    def label(self) -> str:
        return label(self.model)

    @classmethod
    def from_hydra(cls, hydra: DictConfig) -> RunContext:
        """From Hydra's own config node (`HydraConfig.get()` in a job; `compose(..., return_hydra_config=True)`'s
        `hydra` node, with runtime.output_dir set, in a test)."""
        return cls(output_dir=Path(hydra.runtime.output_dir), model=hydra.runtime.choices["model"],
                   data=hydra.runtime.choices["data"], overrides=tuple(hydra.overrides.task),
                   multirun=hydra.mode == RunMode.MULTIRUN,
                   choices=tuple((k, str(v)) for k, v in hydra.runtime.choices.items() if not k.startswith("hydra")))
