"""Runs of the zoo for the tests: in-process through `zoo.train.train`, with the config and the run context set up
as Hydra's job runner sets them up for run.py, or through run.py in a subprocess where the entry point itself is
what a test is about (its one-line errors, signals, sweeps, DDP)."""
import copy
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict, read_write

from zoo.context import RunContext
from zoo.resolvers import register_resolvers
from zoo.results import Results, load

ROOT = Path(__file__).resolve().parents[1]
register_resolvers()  # as run.py does: the logger configs use ${zoo.label:} and ${zoo.group:}


def job_config(run_dir: Path, *overrides: str) -> tuple[DictConfig, RunContext, DictConfig]:
    """The config of `python run.py OVERRIDES hydra.run.dir=RUN_DIR`, its run context, and Hydra's own config (with
    runtime.output_dir `run_dir`), which `hydra_installed` makes the one ${hydra:...} and ${zoo.label:} read."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.runtime.output_dir = str(run_dir)
    task = copy.deepcopy(cfg)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return task, RunContext.from_hydra(cfg.hydra), cfg


@contextmanager
def hydra_installed(cfg: DictConfig):
    """Hydra's config installed as its job runner installs it for run.py's job, and removed afterwards, so that no
    later test sees this run's directory or label."""
    HydraConfig.instance().set_config(cfg)
    try:
        yield
    finally:
        HydraConfig.instance().cfg = None


def train_here(run_dir: Path, *overrides: str) -> Results:
    """One run in this process (csv logger unless `overrides` say otherwise; data cached under `run_dir`); its
    results.json, read back through the schema's check."""
    from zoo.train import train  # (torch and Lightning: imported by the tests that train)
    cfg, ctx, hydra = job_config(run_dir, "logger=csv", f"data.cache_dir={run_dir}/cache", *overrides)
    with hydra_installed(hydra):
        return load(train(cfg, ctx))


def run_py(run_dir: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python run.py OVERRIDES` in a subprocess, with its directory and data cache under `run_dir`."""
    return subprocess.run([sys.executable, "run.py", *overrides, f"hydra.run.dir={run_dir}",
                           f"data.cache_dir={run_dir}/cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
