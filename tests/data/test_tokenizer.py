import gzip
from itertools import islice

import numpy as np
import pytest

from zoo.data.tokenizer import SPECIALS, Tokenizer


@pytest.fixture(scope="module")
def multi30k_lines(shared_data):
    with gzip.open(shared_data / "multi30k/train.de.gz", "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in islice(f, 3000)]


@pytest.fixture(scope="module")
def bpe(multi30k_lines):
    return Tokenizer.train(multi30k_lines, kind="bpe", vocab_size=1000)


def test_specials_come_first_in_every_kind(multi30k_lines):
    for kind in ("bpe", "word"):
        tok = Tokenizer.train(multi30k_lines[:100], kind=kind, vocab_size=300)
        assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
        assert [tok.tok.id_to_token(i) for i in range(4)] == list(SPECIALS)


def test_bpe_round_trip_gives_back_detokenized_text(bpe, multi30k_lines):
    """Decoding gives the text itself (up to whitespace), punctuation attached as it was: what sacreBLEU scores."""
    for line in multi30k_lines[:500]:
        ids = bpe.encode(line)
        assert bpe.decode(ids) == " ".join(line.split())
    assert bpe.decode(bpe.encode("Ein Hund, der läuft.")) == "Ein Hund, der läuft."
    assert len(bpe.encode("Ein Hund, der läuft.")) < len("Ein Hund, der läuft.")  # subwords, not characters


def test_vocabulary_size_is_the_configured_one(multi30k_lines):
    assert len(Tokenizer.train(multi30k_lines, kind="bpe", vocab_size=700)) == 700


def test_encode_lines_equals_the_library_encoding_line_by_line(bpe, multi30k_lines):
    lines = [*multi30k_lines, "  Zwei  Leerzeichen\tund ein Tab ", "Unbekannt: ßẞ€ 😀"]
    ids, lengths = bpe.encode_lines(lines)
    assert lengths.tolist() == [len(bpe.encode(line)) for line in lines]
    assert ids.tolist() == [i for line in lines for i in bpe.encode(line)]
    again, _ = bpe.encode_lines(lines)  # the second time from the memo of words
    assert np.array_equal(again, ids)


def test_unknown_characters_become_unk_and_stay_visible(bpe):
    ids = bpe.encode("Hund 😀")
    assert bpe.unk_id in ids and "<unk>" in bpe.decode(ids)
    assert bpe.decode([bpe.bos_id, *bpe.encode("Hund"), bpe.eos_id, bpe.pad_id]) == "Hund"


def test_word_level_decodes_with_spaces_and_saves_and_loads(tmp_path):
    tok = Tokenizer.train(["I_TURN_LEFT I_WALK", "I_WALK I_JUMP"], kind="word", vocab_size=100, min_frequency=1)
    assert tok.decode(tok.encode("I_WALK I_TURN_LEFT")) == "I_WALK I_TURN_LEFT"
    assert tok.encode("I_RUN") == [tok.unk_id]
    tok.save(tmp_path / "t.json")
    again = Tokenizer.load(tmp_path / "t.json")
    assert again.encode("I_JUMP I_WALK") == tok.encode("I_JUMP I_WALK") and len(again) == len(tok)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="'unigram' is not one of"):
        Tokenizer.train(["a b"], kind="unigram")


def test_bpe_without_any_shared_data_round_trips_and_matches_the_library(monkeypatch):
    """The same checks on text made here, with the whitespace oddities real corpora have."""
    words = ["Hund", "Katze", "läuft", "schnell", "über", "die", "Straße", "und", "springt", "hoch"]
    lines = [" ".join(words[(i * k) % 10] for k in range(1, 4 + i % 7)) + "." for i in range(400)]
    tok = Tokenizer.train(lines, kind="bpe", vocab_size=120)
    odd = ["  zwei  Leerzeichen ", "Tab\tund\x1cTrenner", "Straße, Hund!", ""]
    ids, lengths = tok.encode_lines([*lines, *odd])
    assert ids.tolist() == [i for line in [*lines, *odd] for i in tok.encode(line)]
    assert lengths.tolist() == [len(tok.encode(line)) for line in [*lines, *odd]]
    assert [tok.decode(tok.encode(line)) for line in lines[:50]] == lines[:50]
    assert tok.decode(tok.encode("Straße. Hund.")) == "Straße. Hund."  # punctuation stays attached
    monkeypatch.setattr("zoo.data.tokenizer.MEMO_LIMIT", 3)  # the memo of words restarts when it grows too big
    for start in range(0, 400, 50):
        chunk = lines[start:start + 50]
        assert tok.encode_lines(chunk)[0].tolist() == [i for line in chunk for i in tok.encode(line)]


def test_a_lowercasing_tokenizer_folds_case_in_training_and_in_every_encoding(multi30k_lines):
    tok = Tokenizer.train(multi30k_lines, kind="bpe", vocab_size=1000, lowercase=True)
    assert tok.encode("Ein Hund, der LÄUFT.") == tok.encode("ein hund, der läuft.")
    assert tok.decode(tok.encode("Ein Hund, der LÄUFT.")) == "ein hund, der läuft."
    assert not any(piece != piece.lower() for piece in tok.tok.get_vocab())  # no cased piece was learned
    again = Tokenizer.from_str(tok.tok.to_str())  # as a checkpoint carries it: zoo.translate lowercases too
    assert again.encode("Zwei Männer") == tok.encode("zwei männer")
    cased = Tokenizer.train(multi30k_lines, kind="bpe", vocab_size=1000)
    assert cased.decode(cased.encode("Ein Hund")) == "Ein Hund"
