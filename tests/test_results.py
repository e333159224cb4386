"""results.json's schema (zoo/results.py): what a run writes, the report's fakes and every committed result match
it, and a file that does not is named with its first missing key, in one line, wherever it is read."""
import gzip
import json
from pathlib import Path

import pytest

from tests.test_report import fake_results, sentences
from zoo.report import write_report
from zoo.results import Results, ResultsError, check, load, problems

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted([*(ROOT / "experiments").rglob("results.json"), *(ROOT / "experiments").rglob("results.json.gz")])


@pytest.fixture
def run() -> Results:
    refs = sentences(10, seed=0)
    return fake_results("attention", 0, refs, refs, refs, alignment=True)


def test_a_run_with_every_key_has_no_problems_and_an_old_one_neither(run):
    refs = sentences(10, seed=0)
    assert problems(run, Results) == []
    assert problems(fake_results("gru", 1, refs, refs, refs, alignment=False, old=True), Results) == []


@pytest.mark.parametrize("path, where", [
    (("train", "val_curve", 1, "step"), "train.val_curve[1].step"),
    (("test", "by_src_len", 0, "lo"), "test.by_src_len[0].lo"),
    (("test_long", "samples", 2, "reference"), "test_long.samples[2].reference"),  # (may be absent, not partial)
    (("alignment", "weights"), "alignment.weights"),
    (("fit", "n"), "fit.n"),
    (("decode",), "decode"),
])
def test_a_missing_key_is_named_by_its_path(run, path, where):
    broken = json.loads(json.dumps(run))  # (the fake shares its sample objects between splits)
    *parents, key = path
    node = broken
    for p in parents:
        node = node[p]
    del node[key]
    with pytest.raises(ResultsError, match=r"^RUN: not a results.json of the zoo's: " + where.replace("[", r"\[")
                       .replace("]", r"\]") + " is missing$"):
        check(broken, "RUN")


def test_a_test_split_that_is_named_but_absent_or_not_a_list_where_one_is_due_is_refused(run):
    del run["test_long"]
    run["train"]["val_curve"] = "none"
    assert problems(run, Results) == ["train.val_curve is not a list"]
    with pytest.raises(ResultsError, match="train.val_curve is not a list$"):
        check(run, "RUN")
    run["train"]["val_curve"] = []
    with pytest.raises(ResultsError, match="test_long is missing$"):
        check(run, "RUN")


def test_optional_values_may_be_null_and_unknown_keys_are_kept(run):
    run["alignment"], run["train"]["best_step"], run["new_figure"] = None, None, 1.0
    assert check(run, "RUN") is run


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT / "experiments")))
def test_every_committed_result_matches_the_schema(path):
    assert load(path)["test_splits"]


def test_the_report_names_a_file_that_is_not_a_runs_results(run, tmp_path):
    for job, results in enumerate([run, {**run, "train": {"steps": 3}}]):
        (tmp_path / str(job)).mkdir()
        (tmp_path / str(job) / "results.json").write_text(json.dumps(results))
    with pytest.raises(ResultsError) as refused:
        write_report(tmp_path)
    assert str(refused.value) == (f"{tmp_path / '1' / 'results.json'}: not a results.json of the zoo's: "
                                  "train.flops_per_token is missing (and 6 more)")
    (tmp_path / "1" / "results.json").unlink()
    (tmp_path / "1" / "results.json.gz").write_bytes(gzip.compress(b"{not json"))
    with pytest.raises(ResultsError, match=r"results.json.gz: cannot be read \(Expecting property name"):
        write_report(tmp_path)
    assert not (tmp_path / "report.md").exists()
