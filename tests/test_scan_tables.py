"""The report's SCAN section on hand-made runs over real commands of the length split: every figure counted here
from the outputs we chose."""
from zoo.data.scan import SCAN, commands
from zoo.scan_tables import scan_tables

# two test commands whose clauses all appear in training, two with a clause of 24 actions (longer than any, 16);
# 24, 25, 24 and 25 actions
ITEMS = ["jump around left twice and walk around left", "look around right twice after run opposite left thrice",
         "jump around left thrice", "walk after look around right thrice"]


def run(seed: int, outputs: list[list[str]], oracle: bool) -> dict:
    """A SCAN run's results as zoo/train.py writes them (only what the section reads); `outputs` are the beam
    outputs as action lists; greedy writes the references, oracle-length decoding (if run) the first action only."""
    meaning = commands()
    samples = [{"source": c, "reference": " ".join(meaning[c]), "hypothesis": " ".join(out),
                "greedy": " ".join(meaning[c]), **({"oracle": meaning[c][0]} if oracle else {})}
               for c, out in zip(ITEMS, outputs)]
    return {"data": "scan", "seed": seed, "corpus": {"split": "length"}, "test": {"samples": samples}}


def test_scan_section_counts_exact_matches_by_decoding_clause_error_kind_and_length():
    meaning = commands()
    assert all(c in dict(SCAN("length").splits()["test"]) for c in ITEMS)
    right = [meaning[c] for c in ITEMS]
    seed0 = [right[0], right[1][:-1], right[2], right[3] + ["I_JUMP"]]  # one stops early, one runs on
    seed1 = [right[0], right[1], ["I_WALK"] * len(right[2]), right[3]]  # one of the right length, wrong
    lines = scan_tables({"attention": [run(0, seed0, True), run(1, seed1, False)]}, "test")
    header = next(line for line in lines if line.startswith("| model"))
    assert "needs a clause > 16 (n=2)" in header and "the others (n=2)" in header
    row = next(line for line in lines if line.startswith("| attention")).strip("| ").split(" | ")
    assert row[:5] == ["attention", "2", "62.5 ± 17.7 (50.0, 75.0)", "100.0 ± 0.0 (100.0, 100.0)", "0.0 ± 0.0 (0.0, –)"]
    assert row[5:7] == ["50.0 ± 0.0 (50.0, 50.0)", "75.0 ± 35.4 (50.0, 100.0)"]  # needs a longer clause, the others
    assert row[7:] == ["12.5 ± 17.7 (25.0, 0.0)", "12.5 ± 17.7 (0.0, 25.0)", "12.5 ± 17.7 (25.0, 0.0)"]
    assert "| 24 | 2 | 75 ± 35 (100, 50) |" in lines and "| 25 | 2 | 50 ± 71 (0, 100) |" in lines  # by actions


def test_scan_section_is_left_out_for_other_data_and_for_runs_without_hypotheses():
    scan = run(0, [commands()[c] for c in ITEMS], False)
    assert scan_tables({"gru": [{**scan, "data": "toy"}]}, "test") == []
    assert scan_tables({"gru": [{**scan, "test": {"samples": None}}]}, "test") == []
