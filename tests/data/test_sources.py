"""Multi30k from a local folder (or its checked download) and the user's own parallel text."""
import io

import pytest

from zoo.data import multi30k
from zoo.data.multi30k import Multi30k
from zoo.data.parallel import ParallelText
from zoo.data.text import DataError


def test_multi30k_en_de_has_the_published_sizes(shared_data):
    splits = Multi30k(root=str(shared_data / "multi30k")).text_splits()
    sizes = {name: sum(1 for _ in split.read()) for name, split in splits.items()}
    assert sizes == {"train": 29_000, "val": 1_014, "test": 1_000, "test2017": 1_000}
    _, src, tgt = next(splits["train"].read())
    assert src.startswith("Two young, White males") and tgt.startswith("Zwei junge weiße Männer")


def test_multi30k_pairs_without_a_2017_test_leave_it_out(shared_data):
    assert set(Multi30k(root=str(shared_data / "multi30k"), tgt_lang="cs").files()) == {"train", "val", "test"}
    with pytest.raises(ValueError, match="no language 'es'"):
        Multi30k(root=".", tgt_lang="es")


def test_multi30k_missing_folder_lists_the_files_it_expected(tmp_path):
    with pytest.raises(DataError, match=r"missing .*train\.en\.gz, .*train\.de\.gz, .*val\.en\.gz.*download=true"):
        Multi30k(root=str(tmp_path)).text_splits()


def serve_from(folder, tamper: str | None = None):
    """A stand-in for urlopen that answers from local copies: the tests never touch the network."""
    def urlopen(url, timeout):
        name = url.rsplit("/", 1)[1]
        data = (folder / name).read_bytes()
        return io.BytesIO(data + b"x" if name == tamper else data)
    return urlopen


def test_multi30k_download_checks_every_file(shared_data, tmp_path, monkeypatch):
    monkeypatch.setattr(multi30k.urllib.request, "urlopen", serve_from(shared_data / "multi30k"))
    splits = Multi30k(root=str(tmp_path / "m"), download=True).text_splits()
    assert sum(1 for _ in splits["val"].read()) == 1_014
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(
        f"{stem}.{lang}.gz" for stem in multi30k.SPLITS.values() for lang in ("en", "de"))


def test_multi30k_download_refuses_a_file_with_the_wrong_checksum(shared_data, tmp_path, monkeypatch):
    monkeypatch.setattr(multi30k.urllib.request, "urlopen", serve_from(shared_data / "multi30k", "val.de.gz"))
    with pytest.raises(DataError, match=r"val\.de\.gz: sha256 .* does not match"):
        Multi30k(root=str(tmp_path), download=True).text_splits()
    assert not (tmp_path / "val.de.gz").exists() and not list(tmp_path.glob(".*part"))


def lines_of(split):
    return [(s, t) for _, s, t in split.read()]


def test_parallel_tsv_splits_off_val_and_test_deterministically(tmp_path):
    (tmp_path / "all.tsv").write_text("".join(f"s{i}\tt{i}\n" for i in range(100)))
    splits = ParallelText(train=str(tmp_path / "all.tsv"), val_size=10, test_size=15).text_splits()
    parts = {name: lines_of(split) for name, split in splits.items()}
    assert {name: len(p) for name, p in parts.items()} == {"train": 75, "val": 10, "test": 15}
    assert sorted(sum(parts.values(), [])) == sorted((f"s{i}", f"t{i}") for i in range(100))
    again = ParallelText(train=str(tmp_path / "all.tsv"), val_size=10, test_size=15).text_splits()
    assert {name: lines_of(split) for name, split in again.items()} == parts
    other = ParallelText(train=str(tmp_path / "all.tsv"), val_size=10, test_size=15, seed=1).text_splits()
    assert lines_of(other["test"]) != parts["test"]


def test_parallel_file_pairs_with_given_splits(tmp_path):
    for split, n in (("train", 30), ("dev", 5), ("test", 6)):
        (tmp_path / f"{split}.en").write_text("".join(f"{split} {i}\n" for i in range(n)))
        (tmp_path / f"{split}.de").write_text("".join(f"{split} {i} de\n" for i in range(n)))
    pair = lambda split: [str(tmp_path / f"{split}.en"), str(tmp_path / f"{split}.de")]  # noqa: E731
    splits = ParallelText(train=pair("train"), val=pair("dev"), test=pair("test")).text_splits()
    assert {name: len(lines_of(s)) for name, s in splits.items()} == {"train": 30, "val": 5, "test": 6}
    with pytest.raises(DataError, match=r"a TSV path or \[source file, target file\]"):
        ParallelText(train=[str(tmp_path / "train.en")]).text_splits()


def test_parallel_too_small_to_split(tmp_path):
    (tmp_path / "tiny.tsv").write_text("a\tb\n" * 10)
    with pytest.raises(DataError, match=r"tiny\.tsv: 10 lines cannot give 2000 pairs to val and test"):
        ParallelText(train=str(tmp_path / "tiny.tsv")).text_splits()


def test_multi30k_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise OSError("Network is unreachable")
    monkeypatch.setattr(multi30k.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match=r"train\.en\.gz: download failed \(Network is unreachable\)"):
        Multi30k(root=str(tmp_path), download=True).text_splits()
