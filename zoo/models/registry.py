"""Which architectures the zoo has: each model file registers its own class, with what the rest of the zoo needs to
know about it (checkpoints, tests, reports, plots, the scaling study), so that adding an architecture is a new file
and a new YAML and nothing else. `zoo.models` imports every module of its package, so every file's registration has
run once `zoo.models` is imported.

    @register("gru", colour="tab:red", order=0, small={"emb_dim": 16, ...})
    class GRUEncoderDecoder(EncoderDecoder): ...
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Architecture:
    name: str                  # its model config's name (conf/model/NAME.yaml) and its runs' label
    cls: type                  # the EncoderDecoder subclass
    colour: str                # its colour in every figure (a matplotlib colour)
    order: int                 # its place in the zoo's history: reports and plots list architectures by it
    small: dict = field(default_factory=dict)  # constructor arguments of a tiny instance, for the tests


REGISTRY: dict[str, Architecture] = {}


def register(name: str, *, colour: str, order: int, small: dict):
    """A class decorator: adds the class to REGISTRY under `name`; refuses a name or an order already taken."""
    def add(cls: type) -> type:
        if name in REGISTRY and (REGISTRY[name].cls.__module__, REGISTRY[name].cls.__qualname__) != (
                cls.__module__, cls.__qualname__):
            raise ValueError(f"architecture {name!r} is already registered, by {REGISTRY[name].cls.__qualname__}")
        clash = next((a.name for a in REGISTRY.values() if a.order == order and a.name != name), None)
        if clash:
            raise ValueError(f"architecture {name!r}: order {order} is already {clash!r}'s")
        REGISTRY[name] = Architecture(name, cls, colour, order, dict(small))
        return cls
    return add


def architectures() -> list[Architecture]:
    """Every registered architecture, in the zoo's order."""
    return sorted(REGISTRY.values(), key=lambda a: a.order)


def of_class(cls: type) -> Architecture | None:
    """The registered architecture whose class `cls` is (or derives from), None for an unregistered class."""
    return next((a for a in architectures() if issubclass(cls, a.cls)), None)
