import random

import pytest

from zoo.data.toy import AUXILIARIES, DETERMINERS, FILLERS, PLURAL, Grammar, ToyTranslation, make_lexicon

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
    assert len({w for s, _ in splits["train"] for w in s.split()}) > 250
    assert len({w for _, t in splits["train"] for w in t.split()}) > 250


def test_target_length_differs_from_source_length(splits):
    """Stopping must be learned: per sentence the target/source length ratio spreads over at least 0.6-1.5, and
    not only in a few outliers."""
    for split in ("train", "test"):
        ratios = sorted(len(t.split()) / len(s.split()) for s, t in splits[split])
        n = len(ratios)
        print(f"{split}: target/source length ratio min {ratios[0]:.2f}, 5% {ratios[n // 20]:.2f}, "
              f"median {ratios[n // 2]:.2f}, 95% {ratios[-n // 20]:.2f}, max {ratios[-1]:.2f}")
        if split == "train":
            assert ratios[0] <= 0.6 and ratios[-1] >= 1.5
        assert ratios[n // 20] <= 0.85 and ratios[-n // 20] >= 1.15  # the middle 90% is wide too
        assert 0.9 <= ratios[n // 2] <= 1.1
    equal = [len(s.split()) == len(t.split()) for s, t in splits["test_long"]]
    assert sum(equal) < 0.2 * len(equal)  # beyond the training lengths too


LEXICON = make_lexicon(random.Random(0), 40, 10, 30, 4)


def test_noun_phrases_reorder_agree_drop_the_and_fuse_it_with_a_preposition():
    grammar, choose = Grammar(LEXICON, random.Random(1)), random.Random(5)
    fused = 0
    for _ in range(300):
        prep = choose.choice([None, "in"])
        src, tgt = grammar.noun_phrase(prep)
        *head, noun = src[1:] if prep else src
        det, *adjs = head
        tgt_noun, gender = LEXICON.nouns[noun]
        tail = [*tgt_noun.split(), *(LEXICON.adjectives[a] + ("-e" if gender else "") for a in reversed(adjs))]
        if det == "the":
            start = [f"dans-{('le', 'la')[gender]}"] if prep else []  # one word for two, or none for one
            fused += bool(prep)
        else:
            start = [*(["dans"] if prep else []), DETERMINERS[det][gender]]
        assert tgt == [*start, *tail]
    assert fused > 30


def test_prepositions_fuse_with_the():
    grammar = Grammar(LEXICON, random.Random(3))
    grammar.p_the = 1.0
    src, tgt = grammar.noun_phrase("under")
    assert src[:2] == ["under", "the"] and tgt[0] in ("sous-le", "sous-la")
    assert len(tgt) == len(src) - 1 + len(LEXICON.nouns[src[-1]][0].split()) - 1


def test_clauses_are_verb_final_and_the_past_splits_the_verb():
    moved = 0
    for past in (False, True):
        grammar = Grammar(LEXICON, random.Random(2))
        grammar.past, grammar.p_filler = past, 0.5
        for _ in range(200):
            src, tgt = grammar.clause()
            forms = {(LEXICON.past[v[0]] if past else v[0], *v[1:]): verb for v, verb in LEXICON.verbs.items()}
            at, key = next((i, k) for k in sorted(forms, key=len, reverse=True)  # a phrasal verb before its verb
                           for i in range(len(src)) if tuple(src[i:i + len(k)]) == k)
            verb = forms[key]
            if past:  # auxiliary second (after the subject), participle last
                assert tgt[-1] == verb.participle
                assert AUXILIARIES[verb.transitive, src[0] in PLURAL] in tgt
            else:
                assert tuple(tgt[-len(verb.present):]) == verb.present
            assert not set(FILLERS) & set(tgt)  # fillers have no target word
            moved += at + len(key) != len(src)
    assert moved > 200  # most clauses move the verb: word order differs between the languages


def test_the_lexicon_has_every_kind_of_length_change():
    separable = [v for v in LEXICON.verbs.values() if len(v.present) == 2]
    phrasal = [k for k in LEXICON.verbs if len(k) == 2]
    compounds = [t for t, _ in LEXICON.nouns.values() if len(t.split()) == 2]
    assert separable and phrasal and compounds
    assert all(LEXICON.verbs[k] != LEXICON.verbs[k[:1]] for k in phrasal)  # a phrasal verb is a verb of its own


def test_bad_settings_are_errors():
    with pytest.raises(ValueError, match=r"min_len \(10\) <= max_len \(5\)"):
        ToyTranslation(min_len=10, max_len=5)
    with pytest.raises(ValueError, match=r"n_train \(0\)"):
        ToyTranslation(n_train=0)
