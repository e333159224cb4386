"""zoo.models.registry: the architectures every other part of the zoo discovers."""
from pathlib import Path

import pytest
import yaml

from zoo.models import REGISTRY, architectures, of_class
from zoo.models.registry import register

CONF = Path(__file__).resolve().parents[2] / "conf" / "model"


def test_each_architecture_has_its_model_config_and_a_distinct_place_and_colour():
    assert [a.name for a in architectures()][:3] == ["gru", "attention", "transformer"]  # the history, in order
    assert len({a.order for a in architectures()}) == len({a.colour for a in architectures()}) == len(REGISTRY)
    for a in architectures():
        target = yaml.safe_load((CONF / f"{a.name}.yaml").read_text())["net"]["_target_"]
        assert target == f"{a.cls.__module__}.{a.cls.__qualname__}"
        assert of_class(a.cls) is a and a.cls(src_vocab_size=7, tgt_vocab_size=9, pad_id=0, **a.small)


def test_a_name_or_an_order_already_taken_is_refused():
    with pytest.raises(ValueError, match="architecture 'gru' is already registered, by GRUEncoderDecoder"):
        register("gru", colour="black", order=99, small={})(type("Other", (), {}))
    with pytest.raises(ValueError, match="architecture 'new': order 0 is already 'gru'"):
        register("new", colour="black", order=0, small={})(type("New", (), {}))
    assert "new" not in REGISTRY and of_class(int) is None
