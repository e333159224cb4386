"""Every kind of bad input gets one clear error (or a warning, for what is cleaned) naming the file and line."""
import gzip
import re

import pytest

from zoo.data.parallel import ParallelText
from zoo.data.cache import prepare
from zoo.data.preprocess import DataWarning, Settings
from zoo.data.text import DataError

GOOD = [(f"a small sentence number {i}", f"ein kleiner Satz Nummer {i}") for i in range(40)]


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
