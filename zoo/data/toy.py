"""The embedded default task: a synthetic language pair, generated deterministically from a seed, no download.

It behaves like translation in the ways that matter for the three architectures:

* a vocabulary of about 300 words a side: nouns, adjectives, verbs and adverbs, and the closed classes;
* reordering, so that alignment matters: the target is verb-final within each clause (as in German subordinate
  clauses), and adjectives follow their noun in reverse order (as in French), so a target word's source can lie ten
  positions away;
* agreement: every target noun has a gender; its determiner and adjectives take the matching form, and the past
  tense's auxiliary agrees with the verb (transitive or not) and with the subject's number;
* target length that differs from source length, so that deciding when to stop must be learned (Newman et al.
  2020): source words with no target word ("the", fillers such as "really"), one source word that yields two
  (compound nouns, separable verbs, the past tense as auxiliary + participle), two source words fused into one
  (a preposition with "the", a verb with its particle). Per sentence the target/source length ratio spreads over
  about 0.4-1.7, since tense and the share of "the", pronouns and fillers are drawn per sentence;
* lengths: a source length is drawn uniformly from [min_len, max_len] and clauses joined by conjunctions fill it,
  so every length bucket is equally represented; `test_long` holds lengths in (max_len, 2 * max_len], beyond
  anything seen in training.

Two test pairs of seed 0:

    the mebudi dazeti with the lora pelo  ->  jenqyrwir es avec-le winjor jynmyrmo hirmywan gecynqu
    the zederu just vekuti away           ->  qorde es gejeqor

In the first, "the" has no target word, the past tense puts its auxiliary second and the participle last, "with the"
fuses into one word, and the noun "pelo" is two target words, its adjective after them; in the second, "the" and the
filler "just" have no target word, and the phrasal verb "vekuti away" is one verb.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from zoo.data.text import TextSplit

Pair = tuple[str, str]
GENERATOR = 2  # the task's version: part of the cache key, so a cache of another version is never reused

SRC_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
TGT_SYLLABLES = [c + v + e for c in "cdhjlmqtw" for v in "aeiouy" for e in ("", "r", "n")]
DETERMINERS = {"the": None, "a": ("un", "une"), "every": ("chaque", "chaque"), "no": ("nul", "nulle")}  # "the": dropped
PRONOUNS = {"he": "il", "she": "elle", "it": "ça", "they": "ils", "we": "nous", "you": "vous"}
PLURAL = {"they", "we", "you"}  # the auxiliary agrees with them
PREPOSITIONS = {"in": "dans", "on": "sur", "with": "avec", "near": "pres", "under": "sous", "behind": "derriere"}
CONJUNCTIONS = {"and": "et", "but": "mais", "because": "car", "while": "pendant", "so": "donc", "if": "si"}
FILLERS = ("just", "really", "even")  # source particles the target has no word for
PARTICLES = ("up", "out", "off", "down", "away", "over")  # phrasal verbs: verb + particle is one target verb
SEPARABLE = ("ab", "an", "auf", "aus", "mit", "zu")  # separable target verbs: stem and particle are two words
AUXILIARIES = {(True, False): "ha", (True, True): "han", (False, False): "es", (False, True): "son"}  # (transitive, plural)


@dataclass(frozen=True)
class Verb:
    """A target verb: its present tense (one word, or stem and separable particle) and its past participle."""

    present: tuple[str, ...]
    participle: str
    transitive: bool


@dataclass(frozen=True)
class Lexicon:
    nouns: dict[str, tuple[str, int]]  # source noun -> (target noun: one word or two, gender 0 or 1)
    adjectives: dict[str, str]  # source adjective -> target stem; the feminine form adds "-e"
    verbs: dict[tuple[str, ...], Verb]  # source verb, or verb and particle -> target verb
    past: dict[str, str]  # source verb -> its past-tense form (one word)
    adverbs: dict[str, str]


def make_lexicon(rng: random.Random, n_nouns: int, n_adjectives: int, n_verbs: int, n_adverbs: int) -> Lexicon:
    """Words drawn from syllables. A quarter of the nouns are two words in the target; a third of the verbs are
    separable in the target; a third of the verbs also form a phrasal verb with a particle, whose target is a verb
    of its own."""
    used: set[str] = set(DETERMINERS) | set(PRONOUNS) | set(PREPOSITIONS) | set(CONJUNCTIONS) | set(FILLERS)
    used |= set(PARTICLES)

    def words(syllables: list[str], n: int) -> list[str]:
        out = []
        while len(out) < n:
            w = "".join(rng.choice(syllables) for _ in range(rng.choice((2, 2, 3))))
            if w not in used and w + "ti" not in used:  # (+ "ti": a source verb's past form)
                used.update((w, w + "ti"))
                out.append(w)
        return out

    def pairs(n: int) -> dict[str, str]:
        return dict(zip(words(SRC_SYLLABLES, n), words(TGT_SYLLABLES, n)))

    nouns = {s: (t, rng.randrange(2)) for s, t in pairs(n_nouns).items()}
    for s, t in zip(rng.sample(list(nouns), n_nouns // 4), words(TGT_SYLLABLES, n_nouns // 4)):
        nouns[s] = (f"{nouns[s][0]} {t}", nouns[s][1])  # compounds (pomme de terre): two target words
    adjectives = pairs(n_adjectives)
    verbs: dict[tuple[str, ...], Verb] = {}
    for i, (s, t) in enumerate(pairs(n_verbs).items()):
        transitive = i < n_verbs // 2
        if rng.random() < 1 / 3:
            particle = rng.choice(SEPARABLE)
            verbs[(s,)] = Verb((t, particle), f"{particle}ge{t}", transitive)
        else:
            verbs[(s,)] = Verb((t,), f"ge{t}", transitive)
    for (s,), t in zip(rng.sample(list(verbs), n_verbs // 3), words(TGT_SYLLABLES, n_verbs // 3)):
        verbs[(s, rng.choice(PARTICLES))] = Verb((t,), f"ge{t}", verbs[(s,)].transitive)
    past = {s: s + "ti" for (s, *_) in verbs}
    return Lexicon(nouns, adjectives, verbs, past, pairs(n_adverbs))


class Grammar:
    """Draws one clause at a time as aligned (source words, target words). Target and source lengths differ: the
    target drops "the" and the source's fillers, fuses a preposition with "the" and a verb with its particle, and
    spends two words on a separable verb and on the past tense (auxiliary after the subject, participle last)."""

    def __init__(self, lexicon: Lexicon, rng: random.Random):
        self.lex, self.rng = lexicon, rng
        self.nouns, self.adjectives = list(lexicon.nouns), list(lexicon.adjectives)
        self.verbs, self.adverbs = list(lexicon.verbs), list(lexicon.adverbs)
        self.past, self.p_the, self.p_pronoun, self.p_filler = False, 0.5, 0.25, 0.0  # drawn for every sentence

    def noun_phrase(self, prep: str | None = None) -> tuple[list[str], list[str]]:
        """[PREP] DET ADJ* NOUN  ->  [PREP'] DET' NOUN' ADJ'*: adjectives reversed, determiner and adjectives agree in
        gender; "the" has no target word, and after a preposition the two fuse into one word (dans + le: dans-le)."""
        rng = self.rng
        det = "the" if rng.random() < self.p_the else rng.choice(["a", "every", "no"])
        noun = rng.choice(self.nouns)
        adjs = rng.sample(self.adjectives, rng.choice((0, 0, 1, 1, 2)))
        tgt_noun, gender = self.lex.nouns[noun]
        tgt_adjs = [self.lex.adjectives[a] + ("-e" if gender else "") for a in reversed(adjs)]
        head = [] if det == "the" else [DETERMINERS[det][gender]]
        if prep is not None:
            head = [f"{PREPOSITIONS[prep]}-{('le', 'la')[gender]}"] if det == "the" else [PREPOSITIONS[prep], *head]
        return [*([prep] if prep else []), det, *adjs, noun], [*head, *tgt_noun.split(), *tgt_adjs]

    def clause(self) -> tuple[list[str], list[str]]:
        """SUBJ [FILLER] VERB [PARTICLE] [OBJ] [PREP NP] [ADV]  ->  SUBJ' [AUX] [OBJ'] [PREP NP'] [ADV'] VERB'
        (verb-final; in the past tense the auxiliary, which agrees with the verb's transitivity and the subject's
        number, comes second and the participle last)."""
        rng = self.rng
        if rng.random() < self.p_pronoun:
            pron = rng.choice(list(PRONOUNS))
            src, tgt, plural = [pron], [PRONOUNS[pron]], pron in PLURAL
        else:
            (src, tgt), plural = self.noun_phrase(), False
        if rng.random() < self.p_filler:
            src.append(rng.choice(FILLERS))
        verb_src = rng.choice(self.verbs)
        verb = self.lex.verbs[verb_src]
        src += [self.lex.past[verb_src[0]] if self.past else verb_src[0], *verb_src[1:]]
        if self.past:
            tgt.append(AUXILIARIES[verb.transitive, plural])
        if verb.transitive:
            obj_src, obj_tgt = self.noun_phrase()
            src += obj_src
            tgt += obj_tgt
        if rng.random() < 0.4:
            pp_src, pp_tgt = self.noun_phrase(prep=rng.choice(list(PREPOSITIONS)))
            src += pp_src
            tgt += pp_tgt
        if rng.random() < 0.3:
            adv = rng.choice(self.adverbs)
            src.append(adv)
            tgt.append(self.lex.adverbs[adv])
        return src, [*tgt, *((verb.participle,) if self.past else verb.present)]

    def sentence(self, length: int) -> tuple[list[str], list[str]]:
        """Clauses joined by conjunctions, as many as fit in `length` source words (at least one). Tense, and how often
        "the", pronouns and fillers appear, are drawn per sentence, so that the target/source length ratio
        varies between sentences of every length, not only between short ones."""
        rng = self.rng
        self.past, self.p_the, self.p_pronoun = rng.random() < 0.5, rng.uniform(0.1, 0.9), rng.uniform(0.0, 0.6)
        self.p_filler = rng.choice((0.0, 0.0, 0.5))
        src, tgt = self.clause()
        while len(src) > length:  # a first clause that fits
            src, tgt = self.clause()
        for _ in range(4 * length):  # add clauses that fit, until the sentence is (close to) full
            if length - len(src) < 3:
                break
            conj = rng.choice(list(CONJUNCTIONS))
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
    n_nouns: int = 120
    n_adjectives: int = 40
    n_verbs: int = 60  # and as many phrasal verbs as a third of these
    n_adverbs: int = 20

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
        return {**asdict(self), "generator": GENERATOR}

    def text_splits(self) -> dict[str, TextSplit]:
        return {name: TextSplit.in_memory(f"toy {name}", pairs) for name, pairs in self.splits().items()}
