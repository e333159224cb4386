"""The embedded default task: a synthetic language pair, generated deterministically from a seed, no download.

It behaves like translation in the ways that matter for the three architectures:

* a sizeable vocabulary: a word-to-word lexicon of a few hundred nouns, verbs, adjectives and adverbs per side;
* reordering, so that alignment matters: the target is verb-final within each clause (subject, object,
  prepositional phrase, adverb, then the verb, as in German subordinate clauses), and adjectives follow their noun
  in reverse order (as in French), so a target word's source can lie ten positions away;
* agreement: every target noun has a gender; its determiner and adjectives take the matching form, so a word's
  translation depends on another word of the sentence;
* lengths: a source length is drawn uniformly from [min_len, max_len] and clauses joined by conjunctions fill it,
  so every length bucket is equally represented; `test_long` holds lengths in (max_len, 2 * max_len], beyond
  anything seen in training.

Two test pairs of seed 0 (the verb moves to the end of its clause, adjectives follow the noun and agree with it):

    we tesubu the vukani fidu so we nite   ->   nous la dinwanhen jenwo dermo donc nous cewen
    no kogi penu every gave sasi lunema    ->   nulle lynmer chaque qorholy morhur-e hanwen qilu
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from zoo.data.text import TextSplit

Pair = tuple[str, str]

SRC_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
TGT_SYLLABLES = [c + v + e for c in "cdhjlmqtw" for v in "aeiouy" for e in ("", "r", "n")]
DETERMINERS = {"the": ("le", "la"), "a": ("un", "une"), "every": ("chaque", "chaque"), "no": ("nul", "nulle")}
PRONOUNS = {"he": "il", "she": "elle", "they": "ils", "we": "nous", "you": "vous", "it": "ça"}
PREPOSITIONS = {"in": "dans", "on": "sur", "with": "avec", "near": "pres", "under": "sous", "behind": "derriere"}
CONJUNCTIONS = {"and": "et", "but": "mais", "because": "car", "while": "pendant", "so": "donc", "if": "si"}


@dataclass(frozen=True)
class Lexicon:
    nouns: dict[str, tuple[str, int]]  # source noun -> (target noun, gender 0 or 1)
    adjectives: dict[str, str]  # source adjective -> target stem; the feminine form adds "-e"
    transitive: dict[str, str]
    intransitive: dict[str, str]
    adverbs: dict[str, str]


def make_lexicon(rng: random.Random, n_nouns: int, n_adjectives: int, n_verbs: int, n_adverbs: int) -> Lexicon:
    used: set[str] = set(DETERMINERS) | set(PRONOUNS) | set(PREPOSITIONS) | set(CONJUNCTIONS)

    def words(syllables: list[str], n: int) -> list[str]:
        out = []
        while len(out) < n:
            w = "".join(rng.choice(syllables) for _ in range(rng.choice((2, 2, 3))))
            if w not in used:
                used.add(w)
                out.append(w)
        return out

    def pairs(n: int) -> dict[str, str]:
        return dict(zip(words(SRC_SYLLABLES, n), words(TGT_SYLLABLES, n)))

    nouns = {s: (t, rng.randrange(2)) for s, t in pairs(n_nouns).items()}
    verbs = list(pairs(n_verbs).items())
    return Lexicon(nouns, pairs(n_adjectives), dict(verbs[: n_verbs // 2]), dict(verbs[n_verbs // 2:]),
                   pairs(n_adverbs))


class Grammar:
    """Draws one clause at a time as aligned (source words, target words)."""

    def __init__(self, lexicon: Lexicon, rng: random.Random):
        self.lex, self.rng = lexicon, rng
        self.nouns, self.adjectives = list(lexicon.nouns), list(lexicon.adjectives)
        self.transitive, self.intransitive = list(lexicon.transitive), list(lexicon.intransitive)
        self.adverbs = list(lexicon.adverbs)

    def noun_phrase(self) -> tuple[list[str], list[str]]:
        """DET ADJ* NOUN  ->  DET' NOUN' ADJ'* (adjectives reversed, determiner and adjectives agree in gender)."""
        rng = self.rng
        det, noun = rng.choice(list(DETERMINERS)), rng.choice(self.nouns)
        adjs = rng.sample(self.adjectives, rng.choice((0, 0, 1, 1, 2)))
        tgt_noun, gender = self.lex.nouns[noun]
        tgt_adjs = [self.lex.adjectives[a] + ("-e" if gender else "") for a in reversed(adjs)]
        return [det, *adjs, noun], [DETERMINERS[det][gender], tgt_noun, *tgt_adjs]

    def clause(self) -> tuple[list[str], list[str]]:
        """SUBJ VERB [OBJ] [PREP NP] [ADV]  ->  SUBJ' [OBJ'] [PREP' NP'] [ADV'] VERB'  (verb-final)."""
        rng = self.rng
        if rng.random() < 0.25:
            pron = rng.choice(list(PRONOUNS))
            subj = [pron], [PRONOUNS[pron]]
        else:
            subj = self.noun_phrase()
        src, tgt = list(subj[0]), list(subj[1])
        if rng.random() < 0.5:
            verb = rng.choice(self.transitive)
            obj = self.noun_phrase()
            src += [verb, *obj[0]]
            tgt += obj[1]
            tgt_verb = self.lex.transitive[verb]
        else:
            verb = rng.choice(self.intransitive)
            src.append(verb)
            tgt_verb = self.lex.intransitive[verb]
        if rng.random() < 0.4:
            prep = rng.choice(list(PREPOSITIONS))
            np_src, np_tgt = self.noun_phrase()
            src += [prep, *np_src]
            tgt += [PREPOSITIONS[prep], *np_tgt]
        if rng.random() < 0.3:
            adv = rng.choice(self.adverbs)
            src.append(adv)
            tgt.append(self.lex.adverbs[adv])
        return src, [*tgt, tgt_verb]

    def sentence(self, length: int) -> tuple[list[str], list[str]]:
        """Clauses joined by conjunctions, as many as fit in `length` source words (at least one)."""
        src, tgt = self.clause()
        while len(src) > length:  # a first clause that fits
            src, tgt = self.clause()
        for _ in range(4 * length):  # add clauses that fit, until the sentence is (close to) full
            if length - len(src) < 3:
                break
            conj = self.rng.choice(list(CONJUNCTIONS))
            more_src, more_tgt = self.clause()
            if len(src) + 1 + len(more_src) <= length:
                src, tgt = [*src, conj, *more_src], [*tgt, CONJUNCTIONS[conj], *more_tgt]
        return src, tgt


@dataclass(frozen=True)
class ToyTranslation:
    """The embedded task's splits. Same seed, same corpus, on any machine (Python's `random` seeded by strings)."""

    seed: int = 0
    n_train: int = 40_000
    n_val: int = 300
    n_test: int = 1_000
    n_test_long: int = 300
    min_len: int = 3
    max_len: int = 50
    n_nouns: int = 250
    n_adjectives: int = 80
    n_verbs: int = 120
    n_adverbs: int = 40

    def __post_init__(self):
        if not 3 <= self.min_len <= self.max_len:
            raise ValueError(f"need 3 <= min_len ({self.min_len}) <= max_len ({self.max_len})")
        for name in ("n_train", "n_val", "n_test", "n_test_long", "n_nouns", "n_adjectives", "n_verbs", "n_adverbs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} ({getattr(self, name)}) must be >= 1")

    def splits(self) -> dict[str, list[Pair]]:
        lexicon = make_lexicon(random.Random(f"lexicon-{self.seed}"), self.n_nouns, self.n_adjectives,
                               self.n_verbs, self.n_adverbs)
        seen: set[str] = set()  # sources drawn for the held-out splits (drawn first)

        def draw(split: str, n: int, lo: int, hi: int) -> list[Pair]:
            rng = random.Random(f"{split}-{self.seed}")
            grammar, out = Grammar(lexicon, rng), []
            while len(out) < n:
                src, tgt = grammar.sentence(rng.randint(lo, hi))
                line = " ".join(src)
                if len(src) >= lo and line not in seen:
                    out.append((line, " ".join(tgt)))
                    if split != "train":  # held-out sources are unique and never seen in training
                        seen.add(line)
            return out

        held_out = {"val": draw("val", self.n_val, self.min_len, self.max_len),
                    "test": draw("test", self.n_test, self.min_len, self.max_len),
                    "test_long": draw("test_long", self.n_test_long, self.max_len + 1, 2 * self.max_len)}
        return {"train": draw("train", self.n_train, self.min_len, self.max_len), **held_out}

    def fingerprint(self) -> dict:
        return asdict(self)

    def text_splits(self) -> dict[str, TextSplit]:
        return {name: TextSplit.in_memory(f"toy {name}", pairs) for name, pairs in self.splits().items()}
