"""Never write over an earlier run: a Hydra callback (conf/config.yaml) that refuses a run or sweep directory that
already holds one, before Hydra writes its `.hydra/` files into it. Default directories are named to the
microsecond, so this only ever stops a `hydra.run.dir=` or `hydra.sweep.dir=` given twice."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from lightning.fabric.utilities.rank_zero import rank_zero_only

RUN_FILES = (".hydra", "results.json", "checkpoints")


class FreshRunDir(Callback):
    def on_run_start(self, config, **kwargs) -> None:
        if rank_zero_only.rank != 0 or int(os.environ.get("NODE_RANK", 0)) > 0:  # DDP's other processes, on
            return  # this machine or others, start in the directory of the first
        run_dir = Path(config.hydra.run.dir)
        held = [name for name in RUN_FILES if (run_dir / name).exists()]
        if held:
            resume = (f", or resume that run in a new one with ckpt_path={run_dir}"
                      if (run_dir / "checkpoints" / "last.ckpt").exists() else "")
            sys.exit(f"error: {run_dir} already holds a run ({held[0]}); choose another hydra.run.dir{resume}")

    def on_multirun_start(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if (sweep_dir / "multirun.yaml").exists():
            sys.exit(f"error: {sweep_dir} already holds a sweep (multirun.yaml); choose another hydra.sweep.dir")
