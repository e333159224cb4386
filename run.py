"""Train and evaluate one model: `python run.py model=transformer` (see conf/ for every option)."""
import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from zoo.train import train  # imported here so that `--help` and config errors answer fast

    print(f"results: {train(cfg)}")


if __name__ == "__main__":
    main()
