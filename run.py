"""Train and evaluate one model: `python run.py model=transformer` (see conf/ for every option).
A sweep, `python run.py -m model=gru,attention,transformer`, ends in a report in its directory (zoo/report.py)."""
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from zoo.resolvers import register_resolvers

register_resolvers()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from zoo.data.text import DataError  # imported here so that `--help` and config errors answer fast
    from zoo.train import train

    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        print(f"results: {train(cfg)}")
    except Exception as e:
        if multirun:  # the other jobs still run and the report still gets written; it names this job as failed
            traceback.print_exc()
            (Path(HydraConfig.get().runtime.output_dir) / "error.txt").write_text(traceback.format_exc())
        elif isinstance(e, DataError):  # bad input: one line naming the file and line, not a traceback
            sys.exit(f"error: {e}")
        else:
            raise


if __name__ == "__main__":
    main()
