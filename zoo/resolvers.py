"""The config tree's own interpolations, registered by run.py before Hydra resolves anything:
${zoo.label:} names a run's architecture and ${zoo.group:} its sweep, for the loggers and the report;
${zoo.cpu_precision:} the training precision that was faster on CPUs like this one; ${zoo.architectures:} lists every
registered architecture, for the sweeps that compare them all; ${zoo.flat:NAME} keeps a sweep job's directory name
one directory deep."""
from __future__ import annotations

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from zoo.context import label


def run_label() -> str:
    """${zoo.label:}: the run's label (zoo.context.label) for the loggers."""
    if not HydraConfig.initialized():
        return "model"
    return label(HydraConfig.get().runtime.choices["model"])


def sweep_group() -> str | None:
    """The wandb group of a sweep's runs: the sweep directory. A single run has none."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return HydraConfig.get().sweep.dir


def cpu_precision(cpuinfo: str = "/proc/cpuinfo") -> str:
    """bf16 autocast where it trained faster than fp32 on the CPUs measured: where the CPU multiplies bf16 in
    hardware (x86's avx512_bf16, Arm's bf16) and has no AMX. fp32 elsewhere: where bf16 products are emulated,
    several times slower (a Cascade Lake Xeon, say), and on Xeons with AMX (Sapphire Rapids and later). There oneDNN
    builds a kernel for each new bf16 matrix shape, and a run's token-budget batches keep bringing new shapes: on
    such a Xeon the zoo's default models trained slower in bf16 than in fp32, although its bf16 products on shapes
    seen before are several times faster (docs/speed.md, experiments/precision.py). The choice is recorded in
    results.json (device.precision); trainer.precision overrides it."""
    try:
        with open(cpuinfo) as f:
            flags = {word for line in f if line.startswith(("flags", "Features")) for word in line.split()}
    except OSError:  # not Linux: no way to tell, and fp32 is never the slow path
        return "32-true"
    if "amx_bf16" in flags:
        return "32-true"
    return "bf16-mixed" if flags & {"avx512_bf16", "bf16"} else "32-true"


def all_architectures() -> str:
    """"gru,attention,transformer,...": every architecture that registered itself (zoo.models.registry), in the zoo's
    order, as a sweep's list of model configs (each has conf/model/NAME.yaml). Imports the models (torch) only when
    a sweep asks."""
    from zoo.models import architectures
    return ",".join(a.name for a in architectures())


def flat(name: str) -> str:
    """${zoo.flat:NAME}: NAME with "/" as "-", so that a path among a sweep job's overrides (data.path=, say) does
    not nest the job's directory, named after them, inside directories of its own."""
    return name.replace("/", "-")


def register_resolvers() -> None:
    """${zoo.label:} and ${zoo.group:} for the logger configs, ${zoo.cpu_precision:} for trainer=cpu,
    ${zoo.architectures:} for the sweeps, ${zoo.flat:} for their jobs' directories."""
    OmegaConf.register_new_resolver("zoo.label", run_label, replace=True)
    OmegaConf.register_new_resolver("zoo.group", sweep_group, replace=True)
    OmegaConf.register_new_resolver("zoo.cpu_precision", cpu_precision, replace=True)
    OmegaConf.register_new_resolver("zoo.architectures", all_architectures, replace=True)
    OmegaConf.register_new_resolver("zoo.flat", flat, replace=True)
