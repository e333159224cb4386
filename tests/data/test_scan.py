"""SCAN generated from its grammar equals the published files."""
import gzip

import pytest

from zoo.data.scan import SCAN, commands


def published(shared_data, name: str) -> set[str]:
    with gzip.open(shared_data / "scan" / name, "rt", encoding="utf-8") as f:
        return {line.rstrip("\n") for line in f}


def as_lines(pairs) -> set[str]:
    return {f"IN: {c} OUT: {a}" for c, a in pairs}


def test_the_grammar_generates_exactly_the_published_tasks(shared_data):
    generated = as_lines((c, " ".join(a)) for c, a in commands().items())
    assert len(generated) == 20_910
    assert generated == published(shared_data, "tasks.txt.gz")


def test_the_length_split_is_the_published_one(shared_data):
    splits = SCAN(split="length").splits()
    assert as_lines(splits["train"]) == published(shared_data, "tasks_train_length.txt.gz")
    assert as_lines(splits["test"]) == published(shared_data, "tasks_test_length.txt.gz")


def test_the_simple_split_has_the_published_sizes_and_no_overlap(shared_data):
    splits = SCAN(split="simple").splits()
    assert (len(splits["train"]), len(splits["test"])) == (16_728, 4_182)
    assert not as_lines(splits["train"]) & as_lines(splits["test"])
    assert as_lines(splits["val"]) <= as_lines(splits["train"])  # SCAN has no validation set: a sample of train
    assert SCAN(split="simple").splits() == splits and SCAN(split="simple", seed=1).splits() != splits


def test_interpretation_examples_from_the_paper():
    c = commands()
    assert c["jump left"] == ["I_TURN_LEFT", "I_JUMP"]
    assert c["jump around right"] == ["I_TURN_RIGHT", "I_JUMP"] * 4
    assert c["turn left twice"] == ["I_TURN_LEFT"] * 2
    assert c["jump thrice"] == ["I_JUMP"] * 3
    assert c["jump opposite left after walk around left"] == (["I_TURN_LEFT", "I_WALK"] * 4
                                                             + ["I_TURN_LEFT", "I_TURN_LEFT", "I_JUMP"])


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="SCAN split 'add_jump' is not one of"):
        SCAN(split="add_jump")
