"""Train and evaluate one model: `python run.py model=transformer` (see conf/ for every option)."""
import sys

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from zoo.data.text import DataError  # imported here so that `--help` and config errors answer fast
    from zoo.train import train

    try:
        print(f"results: {train(cfg)}")
    except DataError as e:  # bad input: one line naming the file and line, not a traceback
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
