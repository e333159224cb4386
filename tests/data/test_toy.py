import random

import pytest

from zoo.data.toy import DETERMINERS, Grammar, ToyTranslation, make_lexicon

SMALL = ToyTranslation(n_train=2000, n_val=100, n_test=300, n_test_long=100)


@pytest.fixture(scope="module")
def splits():
    return SMALL.splits()


def test_same_seed_same_corpus_other_seed_other_corpus(splits):
    assert SMALL.splits() == splits
    assert ToyTranslation(seed=1, n_train=2000, n_val=100, n_test=300, n_test_long=100).splits() != splits


def test_lengths_cover_the_range_and_test_long_lies_beyond_it(splits):
    for split in ("train", "val", "test"):
        lengths = [len(s.split()) for s, _ in splits[split]]
        assert min(lengths) >= 3 and max(lengths) <= 50
    train_lengths = [len(s.split()) for s, _ in splits["train"]]
    for lo in range(1, 50, 10):  # every length bucket is well represented in training
        assert sum(lo <= n < lo + 10 for n in train_lengths) > 0.1 * len(train_lengths)
    long_lengths = [len(s.split()) for s, _ in splits["test_long"]]
    assert min(long_lengths) > 50 and max(long_lengths) <= 100


def test_held_out_sources_never_appear_in_training(splits):
    train = {s for s, _ in splits["train"]}
    for split in ("val", "test", "test_long"):
        assert not train & {s for s, _ in splits[split]}
    held_out = [s for split in ("val", "test", "test_long") for s, _ in splits[split]]
    assert len(set(held_out)) == len(held_out)


def test_vocabulary_is_sizeable(splits):
    assert len({w for s, _ in splits["train"] for w in s.split()}) > 400
    assert len({w for _, t in splits["train"] for w in t.split()}) > 400


def test_noun_phrases_reorder_and_agree():
    lexicon = make_lexicon(random.Random(0), 20, 10, 10, 4)
    grammar = Grammar(lexicon, random.Random(1))
    for _ in range(200):
        src, tgt = grammar.noun_phrase()
        det, *adjs, noun = src
        tgt_noun, gender = lexicon.nouns[noun]
        assert tgt[:2] == [DETERMINERS[det][gender], tgt_noun]
        assert tgt[2:] == [lexicon.adjectives[a] + ("-e" if gender else "") for a in reversed(adjs)]


def test_clauses_are_verb_final():
    lexicon = make_lexicon(random.Random(0), 20, 10, 10, 4)
    verbs = {**lexicon.transitive, **lexicon.intransitive}
    grammar = Grammar(lexicon, random.Random(2))
    moved = 0
    for _ in range(200):
        src, tgt = grammar.clause()
        verb = next(w for w in src if w in verbs)
        assert tgt[-1] == verbs[verb]
        moved += src.index(verb) != len(src) - 1
    assert moved > 100  # most clauses move the verb: word order differs between the languages


def test_bad_settings_are_errors():
    with pytest.raises(ValueError, match=r"min_len \(10\) <= max_len \(5\)"):
        ToyTranslation(min_len=10, max_len=5)
    with pytest.raises(ValueError, match=r"n_train \(0\)"):
        ToyTranslation(n_train=0)
