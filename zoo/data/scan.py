"""SCAN (Lake & Baroni 2018): navigation commands ("jump twice after walk left") and the action sequences they mean
("I_TURN_LEFT I_WALK I_JUMP I_JUMP"), generated here from the paper's grammar and interpretation (its Figure 6 and
Table 5); no download. The grammar yields all 20,910 commands of the published `tasks.txt`:

    C -> S and S | S after S | S          [x1 and x2] = [x1] [x2]      [x1 after x2] = [x2] [x1]
    S -> V twice | V thrice | V           [x twice] = [x] [x]          [x thrice] = [x] [x] [x]
    V -> D[1] opposite D[2] | D[1] around D[2] | D | U
    D -> U left | U right | turn left | turn right
    U -> walk | look | run | jump

Splits: `simple`, a seeded random 80/20 split of the commands (the published one is also random); `length`, training
on commands whose action sequence has at most 22 actions and testing on the longer ones (24-48), exactly the
published split. SCAN has no validation set: `val` is a seeded sample of the training pairs, to watch the fit; it
selects nothing. Papers report exact match (the whole action sequence right), which the zoo reports beside BLEU.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from itertools import product

from zoo.data.text import TextSplit

ACTIONS = {"walk": "I_WALK", "look": "I_LOOK", "run": "I_RUN", "jump": "I_JUMP"}
TURNS = {"left": "I_TURN_LEFT", "right": "I_TURN_RIGHT"}
REPEATS = {"twice": 2, "thrice": 3}
SPLITS = ("simple", "length")
LENGTH_CUTOFF = 22  # the length split trains on action sequences of at most this many actions


def verb_phrases() -> dict[str, list[str]]:
    """V: every command without repetition or conjunction, and its actions."""
    out = {u: [a] for u, a in ACTIONS.items()}
    for d, turn in TURNS.items():
        out[f"turn {d}"] = [turn]
        out[f"turn opposite {d}"] = [turn, turn]
        out[f"turn around {d}"] = [turn] * 4
        for u, a in ACTIONS.items():
            out[f"{u} {d}"] = [turn, a]
            out[f"{u} opposite {d}"] = [turn, turn, a]
            out[f"{u} around {d}"] = [turn, a] * 4
    return out


def sentences() -> dict[str, list[str]]:
    """S: every verb phrase, alone, twice and thrice, and its actions."""
    out = dict(verb_phrases())
    for (v, actions), (word, k) in product(verb_phrases().items(), REPEATS.items()):
        out[f"{v} {word}"] = actions * k
    return out


def commands() -> dict[str, list[str]]:
    """C: all 20,910 commands and their action sequences."""
    out = sentences()
    for (s1, a1), (s2, a2) in product(sentences().items(), repeat=2):
        out[f"{s1} and {s2}"] = a1 + a2
        out[f"{s1} after {s2}"] = a2 + a1
    return out


def longest_clause(command: str, meaning: dict[str, list[str]]) -> int:
    """The most actions one clause S of `command` means (`meaning` is `sentences()`): a test command of the length
    split may need a clause longer than any in training ("jump around left thrice", 24 actions, where the longest
    training clause has 16), or only longer combinations of clauses seen in training."""
    return max(len(meaning[clause]) for clause in re.split(r" and | after ", command))


@dataclass(frozen=True)
class SCAN:
    split: str = "simple"
    seed: int = 0  # the simple split's shuffle and the validation sample
    n_val: int = 500

    def __post_init__(self):
        if self.split not in SPLITS:
            raise ValueError(f"SCAN split {self.split!r} is not one of {list(SPLITS)}")

    def splits(self) -> dict[str, list[tuple[str, str]]]:
        pairs = sorted((c, " ".join(a)) for c, a in commands().items())
        if self.split == "length":
            train = [p for p in pairs if len(p[1].split()) <= LENGTH_CUTOFF]
            test = [p for p in pairs if len(p[1].split()) > LENGTH_CUTOFF]
        else:
            random.Random(f"scan-simple-{self.seed}").shuffle(pairs)
            cut = round(0.8 * len(pairs))
            train, test = pairs[:cut], pairs[cut:]
        val = random.Random(f"scan-val-{self.seed}").sample(train, min(self.n_val, len(train)))
        return {"train": train, "val": val, "test": test}

    def fingerprint(self) -> dict:
        return {"split": self.split, "seed": self.seed, "n_val": self.n_val}

    def text_splits(self) -> dict[str, TextSplit]:
        return {name: TextSplit.in_memory(f"SCAN {self.split} {name}", pairs) for name, pairs in self.splits().items()}
