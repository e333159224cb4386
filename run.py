"""Train and evaluate one model: `python run.py model=transformer` (see conf/ for every option).
A sweep, `python run.py -m model=gru,attention,transformer`, ends in a report in its directory (zoo/report.py)."""
import sys
import traceback

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from zoo.resolvers import register_resolvers

register_resolvers()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from zoo.context import RunContext  # imported here so that `--help` and config errors answer fast
    from zoo.errors import UserError
    from zoo.train import train

    # Hydra's runtime state, passed down from here (the configs' ${zoo.label:} and ${hydra:...} read it as they resolve)
    ctx = RunContext.from_hydra(HydraConfig.get())
    try:
        results = train(cfg, ctx)
        if results is not None:  # (DDP's other processes have none)
            print(f"results: {results}")
    except Exception as e:
        if ctx.multirun:  # the other jobs still run and the report still gets written; it names this job as failed
            traceback.print_exc()
            (ctx.output_dir / "error.txt").write_text(traceback.format_exc())
        elif isinstance(e, UserError):  # bad input: one line naming the value, file or line, not a traceback
            sys.exit(f"error: {e}")
        else:
            raise


if __name__ == "__main__":
    main()
