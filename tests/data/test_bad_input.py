"""Every kind of bad input gets one clear error (or a warning, for what is cleaned) naming the file and line."""
import gzip
import re
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch

from tests.runs import train_here
from zoo.data.parallel import ParallelText
from zoo.data.cache import Corpus, prepare
from zoo.data.preprocess import DataWarning, Settings
from zoo.data.text import DataError
from zoo.data.tokenizer import SPECIALS
from zoo.decoding import beam_search, greedy_search
from zoo.models import AttentionEncoderDecoder, GRUEncoderDecoder, Transformer

ROOT = Path(__file__).resolve().parents[2]
GOOD = [(f"a small sentence number {i}", f"ein kleiner Satz Nummer {i}") for i in range(40)]
VOCAB = {"src_vocab_size": 8, "tgt_vocab_size": 8, "pad_id": 0}
TINY = {**VOCAB, "d_model": 16, "n_heads": 2, "d_ff": 32, "n_encoder_layers": 1, "n_decoder_layers": 1}


def write(path, lines, *, raw: bytes | None = None):
    data = raw if raw is not None else "".join(f"{line}\n" for line in lines).encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return str(path)


def corpus(tmp_path, src_lines, tgt_lines, suffix=""):
    return ParallelText(train=[write(tmp_path / f"train.en{suffix}", src_lines),
                               write(tmp_path / f"train.de{suffix}", tgt_lines)], val_size=5, test_size=5)


def build(source, tmp_path, **settings):
    return prepare(source, tmp_path / "cache", Settings(kind="word", vocab_size=1000, min_frequency=1, **settings))


def test_files_of_different_lengths(tmp_path):
    src, tgt = [s for s, _ in GOOD], [t for _, t in GOOD][:-3]
    with pytest.raises(DataError, match=r"train\.de has 37 lines but .*train\.en has more.*train\.en:38"):
        build(corpus(tmp_path, src, tgt), tmp_path)


def test_missing_files_are_listed(tmp_path):
    source = ParallelText(train=[str(tmp_path / "nope.en"), str(tmp_path / "nope.de")])
    with pytest.raises(DataError, match=r"missing files: .*nope\.en, .*nope\.de"):
        build(source, tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "empty.de").write_bytes(b"")
    source = ParallelText(train=[write(tmp_path / "train.en", [s for s, _ in GOOD]), str(tmp_path / "empty.de")])
    with pytest.raises(DataError, match=r"empty\.de: the file is empty"):
        build(source, tmp_path)


def test_empty_gzip_file(tmp_path):
    write(tmp_path / "e.tsv.gz", [], raw=b"")
    with pytest.raises(DataError, match=r"e\.tsv\.gz: the file is empty"):
        build(ParallelText(train=str(tmp_path / "e.tsv.gz")), tmp_path)


def test_invalid_utf8_names_file_and_line(tmp_path):
    lines = "".join(f"{s}\n" for s, _ in GOOD[:7]).encode() + b"caf\xe9 latin-1\n" + b"more\n" * 32
    source = ParallelText(train=[write(tmp_path / "train.en.gz", [], raw=lines),
                                 write(tmp_path / "train.de.gz", [t for _, t in GOOD])], val_size=5, test_size=5)
    with pytest.raises(DataError, match=r"train\.en\.gz:8: invalid UTF-8"):
        build(source, tmp_path)


def test_tsv_row_without_two_fields(tmp_path):
    rows = [f"{s}\t{t}" for s, t in GOOD]
    rows[11] = "only one field"
    rows[20] = "a\tb\tc"
    with pytest.raises(DataError, match=r"train\.tsv:12: expected 2 tab-separated fields .* found 1"):
        build(ParallelText(train=write(tmp_path / "train.tsv", rows), val_size=5, test_size=5), tmp_path)


def test_empty_lines_are_dropped_and_counted_or_refused(tmp_path):
    src, tgt = [s for s, _ in GOOD], [t for _, t in GOOD]
    src[3], tgt[9], tgt[30] = "", "   ", ""
    source = ParallelText(train=[write(tmp_path / "train.en", src), write(tmp_path / "train.de", tgt)],
                          val=[write(tmp_path / "val.en", src[:5]), write(tmp_path / "val.de", tgt[:5])],
                          test=[write(tmp_path / "test.en", src[:5]), write(tmp_path / "test.de", tgt[:5])])
    with pytest.warns(DataWarning) as caught:
        path = build(source, tmp_path)
    messages = [str(w.message) for w in caught]
    assert any(re.search(r"train\.en / .*train\.de: dropped 3 pairs with an empty side \(lines 4, 10, 31\)", m)
               for m in messages)
    assert any(re.search(r"val\.en / .*val\.de: dropped 1 pairs with an empty side \(lines 4\)", m) for m in messages)
    from zoo.data.cache import Corpus
    stats = Corpus.load(path).stats
    assert stats["train"]["pairs"] == 37 and stats["train"]["dropped_empty"] == 3
    assert stats["val"]["dropped_empty"] == 1
    with pytest.raises(DataError, match=r"train\.en:4: empty source line"):
        build(source, tmp_path / "strict", empty_lines="error")


def test_long_lines_are_filtered_from_training_and_counted(tmp_path):
    src, tgt = [s for s, _ in GOOD], [t for _, t in GOOD]
    src[5] = " ".join(["word"] * 30)
    tgt[17] = " ".join(["Wort"] * 31)
    source = ParallelText(train=[write(tmp_path / "train.en", src), write(tmp_path / "train.de", tgt)],
                          test=[write(tmp_path / "t.en", src[:8]), write(tmp_path / "t.de", tgt[:8])],
                          val=[write(tmp_path / "v.en", src[:8]), write(tmp_path / "v.de", tgt[:8])])
    with pytest.warns(DataWarning, match=r"dropped 2 pairs longer than max_len=10 tokens \(lines 6, 18\)"):
        path = build(source, tmp_path, max_len=10)
    from zoo.data.cache import Corpus
    corpus_ = Corpus.load(path)
    assert corpus_.stats["train"]["dropped_long"] == 2 and len(corpus_.ids["train"]) == 38
    assert len(corpus_.ids["test"]) == 8  # evaluation splits are scored whole


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="empty_lines 'skip' is not one of"):
        Settings(empty_lines="skip")
    with pytest.raises(ValueError, match=r"max_len \(0\) must be >= 1"):
        Settings(max_len=0)


def test_source_shorter_than_target(tmp_path):
    src, tgt = [s for s, _ in GOOD][:30], [t for _, t in GOOD]
    with pytest.raises(DataError, match=r"train\.en has 30 lines but .*train\.de has more.*train\.de:31"):
        build(corpus(tmp_path, src, tgt), tmp_path)


@pytest.mark.parametrize("damage", ["not gzip", "truncated"])
def test_a_damaged_gzip_file_is_named(tmp_path, damage):
    good = gzip.compress("".join(f"{s}\n" for s, _ in GOOD).encode())
    (tmp_path / "train.en.gz").write_bytes(b"plain text\n" if damage == "not gzip" else good[: len(good) // 2])
    source = ParallelText(train=[str(tmp_path / "train.en.gz"), write(tmp_path / "train.de", [t for _, t in GOOD])],
                          val_size=5, test_size=5)
    with pytest.raises(DataError, match=r"train\.en\.gz:\d+: cannot read the file"):
        build(source, tmp_path)


def test_blank_tsv_lines_are_empty_pairs_not_malformed_rows(tmp_path):
    rows = [f"{s}\t{t}" for s, t in GOOD] + [""]
    with pytest.warns(DataWarning, match=r"train\.tsv: dropped 1 pairs with an empty side \(lines 41\)"):
        build(ParallelText(train=write(tmp_path / "train.tsv", rows), val_size=5, test_size=5), tmp_path)


@pytest.mark.parametrize("layout", ["aligned", "aligned.gz", "tsv", "tsv.gz"])
def test_a_byte_order_mark_is_not_text(tmp_path, layout):
    """Editors on Windows begin UTF-8 files with U+FEFF; kept, it would join the first word as a token of its own."""
    suffix = ".gz" if layout.endswith(".gz") else ""
    src, tgt = [s for s, _ in GOOD], [t for _, t in GOOD]

    def split(name, n):  # each file of the split begins with a byte-order mark
        if layout.startswith("tsv"):
            return write(tmp_path / f"{name}.tsv{suffix}", [f"\ufeff{s}\t{t}" if i == 0 else f"{s}\t{t}"
                                                            for i, (s, t) in enumerate(zip(src[:n], tgt[:n]))])
        return [write(tmp_path / f"{name}.{lang}{suffix}", ["\ufeff" + lines[0], *lines[1:n]])
                for lang, lines in (("en", src), ("de", tgt))]

    source = ParallelText(train=split("train", 40), val=split("val", 5), test=split("test", 5))
    corpus_ = Corpus.load(build(source, tmp_path))
    assert not [word for word in corpus_.src_tokenizer.tok.get_vocab() if "\ufeff" in word]
    assert corpus_.src_tokenizer.decode(corpus_.ids["train"][0][1]) == GOOD[0][0]
    assert corpus_.texts["test"][0] == GOOD[0]  # the text that is scored, too


@pytest.mark.parametrize("char", ["\x00", "\x08", "\x1b", "\x7f", "\x9b"])
def test_a_control_character_is_refused_naming_file_line_and_character(tmp_path, char):
    tgt = [t for _, t in GOOD]
    tgt[7] = f"ein{char}kleiner Satz"
    with pytest.raises(DataError, match=rf"train\.de:8: control character U\+{ord(char):04X} \(character 4 "):
        build(corpus(tmp_path, [s for s, _ in GOOD], tgt), tmp_path)


def test_a_utf16_file_is_refused_at_its_first_line(tmp_path):
    rows = "".join(f"{s}\t{t}\n" for s, t in GOOD).encode("utf-16-le")  # no BOM: valid UTF-8, NUL every other byte
    source = ParallelText(train=write(tmp_path / "train.tsv.gz", [], raw=rows), val_size=5, test_size=5)
    with pytest.raises(DataError, match=r"train\.tsv\.gz:1: control character U\+0000 \(character 2 .*UTF-16"):
        build(source, tmp_path)


def test_whitespace_control_characters_are_spaces(tmp_path):
    """Tab, vertical tab, form feed, the separators U+001C-U+001F, CR and NEL are whitespace to str.split and to the
    tokenizers alike: they separate words and never become tokens."""
    src = [s.replace(" ", ws, 1) for (s, _), ws in zip(GOOD, "\t\v\f\x1c\x1d\x1e\x1f\r\x85" * 5)]
    corpus_ = Corpus.load(build(corpus(tmp_path, src, [t for _, t in GOOD]), tmp_path))
    assert sorted(w for w in corpus_.src_tokenizer.tok.get_vocab() if not w.isalnum()) == sorted(SPECIALS)


def with_long_lines(tmp_path, **long: tuple[int, str]) -> ParallelText:
    """GOOD's pairs as train (40), val (5) and test (10) files, with lines replaced as `long` says: test_en=(7, text)
    puts `text` at line 7 of test.en."""
    files = {"train": 40, "val": 5, "test": 10}
    lines = {f"{split}_{lang}": [pair[side] for pair in GOOD[:n]]
             for split, n in files.items() for side, lang in enumerate(("en", "de"))}
    for name, (line, text) in long.items():
        lines[name][line - 1] = text
    return ParallelText(**{split: [write(tmp_path / f"{split}.{lang}", lines[f"{split}_{lang}"])
                                   for lang in ("en", "de")] for split in files})


def words(n: int) -> str:
    return " ".join(f"w{i % 50}" for i in range(n))


@pytest.mark.parametrize("long, message", [
    ({"test_en": (7, words(3000))},
     r"test\.en:7: the source has 3000 tokens, more than the model's max_positions \(1024\); test is scored whole, "
     r"so shorten or remove the line$"),
    ({"test_en": (7, words(900)), "val_en": (2, words(1000))},  # decoding a source of 900 needs 1.2 * 900 + 10
     r"val\.en:2: its 1000 source tokens allow a translation of 1210 tokens \(decode\.max_len_a \* 1000 \+ "
     r"decode\.max_len_b\), 1211 with BOS, more than the model's max_positions \(1024\); val is scored whole, so "
     r"shorten or remove the line, or lower decode\.max_len_a or decode\.max_len_b$"),
    ({"train_de": (12, words(1100)), "train_en": (30, words(2000))},
     r"train\.de:12: the target has 1100 tokens, 1101 with BOS, more than the model's max_positions \(1024\) \(and 1 "
     r"more pairs of train\); data\.preprocess\.max_len drops long training pairs$"),
    ({"train_en": (12, words(900))},  # training pairs may be decoded too (a sample of them, to measure the fit)
     r"train\.en:12: its 900 source tokens allow a translation of 1090 tokens .*, 1091 with BOS, .*; "
     r"data\.preprocess\.max_len drops long training pairs$"),
    ({"test_de": (2, words(2000))}, None),  # a test target is only a reference
])
def test_a_line_too_long_for_the_model_is_refused_naming_it(tmp_path, long, message):
    """Evaluation splits are never length-filtered: a line that the model cannot take would crash the run after
    training. train.py asks before training; recurrent models and rotary or alibi positions take any length."""
    source = with_long_lines(tmp_path, **long)
    corpus_ = Corpus.load(build(source, tmp_path))
    with pytest.raises(DataError, match=message) if message else nullcontext():
        corpus_.check_fits(source, Transformer(**TINY).max_positions, max_len_a=1.2, max_len_b=10)
    for net in (Transformer(**TINY, positions="rotary"), Transformer(**TINY, positions="alibi"),
                GRUEncoderDecoder(**VOCAB), AttentionEncoderDecoder(**VOCAB)):
        corpus_.check_fits(source, net.max_positions, max_len_a=1.2, max_len_b=10)


def test_a_test_reference_too_long_is_refused_where_evaluation_feeds_it_to_the_model(tmp_path):
    """Oracle-length decoding and the exposure-bias measurement run the model on each test reference's length or
    prefix, so there a test target must fit as a training target must."""
    source = with_long_lines(tmp_path, test_de=(2, words(2000)))
    corpus_ = Corpus.load(build(source, tmp_path))
    corpus_.check_fits(source, 1024, max_len_a=1.2, max_len_b=10)
    with pytest.raises(DataError, match=r"test\.de:2: the target has 2000 tokens, 2001 with BOS, more than the "
                                        r"model's max_positions \(1024\); test is scored whole"):
        corpus_.check_fits(source, 1024, max_len_a=1.2, max_len_b=10, references_fed=True)


def test_what_fits_is_what_a_transformer_can_train_decode_and_align(tmp_path):
    """At the limit check_fits allows (a max_len_a * S + max_len_b token translation and its BOS in max_positions,
    and the same for a target), the loss, greedy and beam search and the alignment plot all run; one more is refused."""
    (tmp_path / "over").mkdir()
    source = with_long_lines(tmp_path / "over", test_en=(3, words(14)), val_en=(1, words(13)), val_de=(1, words(15)))
    with pytest.raises(DataError, match=r"test\.en:3: its 14 source tokens allow a translation of 16 tokens"):
        Corpus.load(build(source, tmp_path)).check_fits(source, 16, max_len_a=1.0, max_len_b=2)
    source = with_long_lines(tmp_path, val_en=(1, words(13)), val_de=(1, words(15)))
    corpus_ = Corpus.load(build(source, tmp_path))
    vocab = len(corpus_.src_tokenizer)  # joint: both sides
    net = Transformer(**{**TINY, "src_vocab_size": vocab, "tgt_vocab_size": vocab, "max_positions": 16}).eval()
    corpus_.check_fits(source, net.max_positions, max_len_a=1.0, max_len_b=2)
    with torch.no_grad():
        net.decoder.out.bias[2] = -1e4  # never EOS: every translation runs to its limit
    src = torch.tensor([corpus_.ids["val"][0][1].tolist()])  # (1, 13)
    tgt_in = torch.tensor([[1, *corpus_.ids["val"][0][2].tolist()]])  # (1, 16): BOS and 15 tokens
    mask = torch.ones_like(src, dtype=torch.bool)  # (1, 13)
    assert net(src, mask, tgt_in).shape[1] == 16
    for search in (greedy_search, beam_search):
        hyp = search(net, src, mask, bos_id=1, eos_id=2, max_len_a=1.0, max_len_b=2)[0]
        assert len(hyp) == 15
        assert net.alignment(src, mask, torch.tensor([[1, *hyp]])).shape == (1, 16, 13)


def test_run_refuses_a_test_line_too_long_for_the_model_before_training(tmp_path, monkeypatch):
    source = with_long_lines(tmp_path, test_en=(7, words(3000)))
    splits = [f"data.source.{split}=[{','.join(repr(p) for p in getattr(source, split))}]"
              for split in ("train", "val", "test")]

    def fit(*args, **kwargs):
        raise AssertionError("training started")
    monkeypatch.setattr("lightning.Trainer.fit", fit)
    with pytest.raises(DataError) as refused:
        train_here(tmp_path / "run", "model=transformer", "data=parallel", "trainer=debug", *splits,
                   "data.preprocess.kind=word", "data.preprocess.min_frequency=1")
    assert str(refused.value) == (
        f"{tmp_path / 'test.en'}:7: the source has 3000 tokens, more than the model's max_positions (1024); "
        "test is scored whole, so shorten or remove the line")
    assert not (tmp_path / "run" / "results.json").exists()
