"""The preprocessing cache: built once, reused, keyed by its inputs, rebuilt when corrupt; ids decode back."""
import hashlib
import json
import os

import numpy as np
import pytest

from zoo.data import cache, preprocess
from zoo.data.parallel import ParallelText
from zoo.data.cache import Corpus, prepare
from zoo.data.preprocess import DataWarning, Settings
from zoo.data.toy import ToyTranslation

TOY = ToyTranslation(n_train=300, n_val=20, n_test=30, n_test_long=10, max_len=12)
WORDS = Settings(kind="word", vocab_size=10_000, min_frequency=1, joint=False)


def test_ids_decode_back_to_the_text(tmp_path):
    corpus = Corpus.load(prepare(TOY, tmp_path, WORDS))
    splits = TOY.splits()
    ids = corpus.ids["train"]  # (held-out words may be unknown, so only training pairs decode exactly)
    assert len(ids) == len(splits["train"])
    for i in (0, len(ids) // 2, len(ids) - 1):
        _, src, tgt = ids[i]
        assert (corpus.src_tokenizer.decode(src), corpus.tgt_tokenizer.decode(tgt)) == splits["train"][i]
    for name in ("val", "test", "test_long"):
        assert len(corpus.ids[name]) == len(splits[name]) and corpus.texts[name] == splits[name]
    assert isinstance(corpus.ids["train"].src, np.memmap)


def test_joint_or_separate_vocabularies(tmp_path):
    joint = Corpus.load(prepare(TOY, tmp_path, Settings(kind="word", vocab_size=10_000, min_frequency=1)))
    separate = Corpus.load(prepare(TOY, tmp_path, WORDS))
    assert joint.src_tokenizer is joint.tgt_tokenizer
    assert len(separate.src_tokenizer) + len(separate.tgt_tokenizer) == len(joint.src_tokenizer) + 4


def test_a_second_run_reuses_the_cache(tmp_path, monkeypatch):
    first = prepare(TOY, tmp_path, WORDS)
    monkeypatch.setattr(preprocess, "build", lambda *a: pytest.fail("rebuilt an intact cache"))
    assert prepare(TOY, tmp_path, WORDS) == first


def test_other_inputs_or_settings_get_another_cache(tmp_path):
    first = prepare(TOY, tmp_path, WORDS)
    assert prepare(ToyTranslation(n_train=301, n_val=20, n_test=30, n_test_long=10, max_len=12), tmp_path,
                   WORDS) != first
    assert prepare(TOY, tmp_path, Settings(kind="word", vocab_size=10_000, min_frequency=2, joint=False)) != first


def test_lowercase_gets_its_own_cache_and_leaves_the_names_of_the_caches_before_it(tmp_path):
    (tmp_path / "c.tsv").write_text("".join(f"The W{i} X\tDie V{i} Y\n" for i in range(30)))
    source = ParallelText(train=str(tmp_path / "c.tsv"), val_size=3, test_size=3)
    lowercase = Settings(**{**vars(WORDS), "lowercase": True})
    cased, lowered = (prepare(source, tmp_path / "cache", settings) for settings in (WORDS, lowercase))
    assert cased != lowered
    for path, first in ((cased, ("The W", "Die V")), (lowered, ("the w", "die v"))):
        corpus = Corpus.load(path)
        _, src, tgt = corpus.ids["train"][0]
        words = corpus.src_tokenizer.decode(src), corpus.tgt_tokenizer.decode(tgt)
        assert all(w.startswith(f) for w, f in zip(words, first)), words
    # a cache built before the option existed (its settings without "lowercase") keeps its name
    before = {k: v for k, v in vars(WORDS).items() if k != "lowercase"}
    blob = json.dumps({"version": cache.VERSION, "inputs": source.fingerprint(), "settings": before}, sort_keys=True)
    assert cased.name == f"paralleltext-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"
    with pytest.raises(ValueError, match="lowercase .'yes'. must be true or false"):
        Settings(lowercase="yes")


def test_a_changed_input_file_is_not_served_from_the_stale_cache(tmp_path):
    (tmp_path / "c.tsv").write_text("".join(f"w{i} x\tv{i} y\n" for i in range(30)))
    source = ParallelText(train=str(tmp_path / "c.tsv"), val_size=3, test_size=3)
    first = Corpus.load(prepare(source, tmp_path / "cache", WORDS))
    (tmp_path / "c.tsv").write_text("".join(f"w{i} x z\tv{i} y z\n" for i in range(30)))
    os.utime(tmp_path / "c.tsv", ns=(1, 1))  # a new size and time, as an edit leaves
    second = Corpus.load(prepare(source, tmp_path / "cache", WORDS))
    assert second.stats["train"]["src_tokens"] == first.stats["train"]["src_tokens"] + 24


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta"])
def test_a_corrupt_cache_is_detected_and_rebuilt(tmp_path, damage):
    path = prepare(TOY, tmp_path, WORDS)
    good = (path / "train.src").read_bytes()
    if damage == "truncate":
        (path / "train.src").write_bytes(good[:-10])
    elif damage == "flip":
        (path / "train.src").write_bytes(bytes([good[0] ^ 1]) + good[1:])
    else:
        (path / "meta.json").write_text(json.dumps({"version": 1})[:-3])
    with pytest.warns(DataWarning, match=f"rebuilding the data cache {path}"):
        assert prepare(TOY, tmp_path, WORDS) == path
    assert (path / "train.src").read_bytes() == good
    assert not list(tmp_path.glob("*.tmp-*"))


def test_a_failed_build_leaves_no_cache_behind(tmp_path):
    (tmp_path / "bad.tsv").write_text("a\tb\n" * 20 + "no tab here\n")
    with pytest.raises(ValueError, match="bad.tsv:21"):
        prepare(ParallelText(train=str(tmp_path / "bad.tsv"), val_size=2, test_size=2), tmp_path / "cache", WORDS)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]


def test_chunks_join_up_exactly_with_filtering_across_their_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(preprocess, "CHUNK", 7)  # many chunks, each with pairs dropped for length
    settings = Settings(kind="word", vocab_size=10_000, min_frequency=1, joint=False, max_len=8)
    with pytest.warns(DataWarning, match="longer than max_len=8"):
        corpus = Corpus.load(prepare(TOY, tmp_path, settings))
    kept = [(s, t) for s, t in TOY.splits()["train"] if len(s.split()) <= 8 and len(t.split()) <= 8]
    ids = corpus.ids["train"]
    assert 0 < len(kept) == len(ids) < 300 and corpus.stats["train"]["dropped_long"] == 300 - len(kept)
    assert [(corpus.src_tokenizer.decode(ids[i][1]), corpus.tgt_tokenizer.decode(ids[i][2]))
            for i in range(len(ids))] == kept


def prepare_in_another_process(root):
    return str(prepare(TOY, root, WORDS))


def test_processes_preparing_at_once_build_one_cache_and_share_it(tmp_path):
    """As DDP ranks or parallel sweep jobs do: one builds under the lock, the other waits and reuses it."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        paths = list(pool.map(prepare_in_another_process, [tmp_path, tmp_path]))
    assert paths[0] == paths[1]
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == [os.path.basename(paths[0])]


def test_the_tokenizer_sample_is_seeded_uniform_and_in_order():
    pairs = [(n, f"s{n}", f"t{n}") for n in range(1, 10_001)]
    sample = preprocess.sample_pairs(iter(pairs), 1000)
    assert len(sample) == 1000 == len(set(sample)) and sample == sorted(sample)
    assert sample == preprocess.sample_pairs(iter(pairs), 1000)
    assert 4000 < sum(n for n, _, _ in sample) / len(sample) < 6000  # spread over the whole stream
    assert preprocess.sample_pairs(iter(pairs[:10]), 1000) == pairs[:10]


def test_a_pool_of_processes_writes_exactly_what_one_process_writes(tmp_path, monkeypatch):
    settings = Settings(kind="word", vocab_size=10_000, min_frequency=1, joint=False, max_len=8)
    with pytest.warns(DataWarning):
        one = prepare(TOY, tmp_path / "one", settings)  # 300 pairs: one chunk, no pool
    monkeypatch.setattr(preprocess, "CHUNK", 16)
    monkeypatch.setattr(preprocess.os, "sched_getaffinity", lambda pid: {0, 1})  # a pool even on one core
    with pytest.warns(DataWarning):
        pooled = prepare(TOY, tmp_path / "pool", settings)
    for file in ("train.src", "train.tgt", "train.index.npy"):
        assert (pooled / file).read_bytes() == (one / file).read_bytes()
    meta = [json.loads((path / "meta.json").read_text()) for path in (pooled, one)]
    assert meta[0]["files"] == meta[1]["files"] and meta[0]["splits"] == meta[1]["splits"]
