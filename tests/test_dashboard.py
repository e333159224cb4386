"""The sweep's wandb workspace (zoo/dashboard.py), built from a real tiny sweep that logged offline, without the
network: its filters and groups pick the sweep's runs as the report groups them, and every panel shows a figure
those runs (or the report's comparison run) logged."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import wandb_workspaces.reports.v2 as wr
from matplotlib.colors import to_hex

from tests.test_run import without_network
from tests.wandb_records import offline_run
from zoo import plots
from zoo.dashboard import DashboardError, workspace
from zoo.report import load_runs

ROOT = Path(__file__).resolve().parents[1]


def panel_metrics(panel) -> list[str]:
    if isinstance(panel, wr.BarPlot):
        return list(panel.metrics)
    if isinstance(panel, wr.LinePlot):
        return [*panel.y, *([panel.x] if panel.x not in ("Step",) else [])]
    return list(panel.media_keys)


def test_the_workspace_shows_the_sweeps_runs_grouped_and_coloured_as_the_report(tiny_sweep):
    built = workspace(tiny_sweep, "a-team")
    runs, _ = load_runs(tiny_sweep)
    assert (built.entity, built.project) == ("a-team", "seq2seq-zoo")
    view = built._to_model()  # wandb's view spec, as save() would send it: built without the network
    [runset] = view.spec.section.run_sets
    assert runset.filters["filters"] == [{"key": {"section": "run", "name": "group"}, "op": "IN",
                                          "value": [str(tiny_sweep)], "disabled": False}]  # this sweep's runs alone
    assert [(k.section, k.name) for k in runset.grouping] == [("run", "jobType")]  # an architecture a group here
    colors = plots.palette(runs)
    assert built.runset_settings.group_colors == {group: to_hex(colors[group]) for group in runs}
    assert sorted(view.spec.section.custom_run_colors.values()) == sorted(to_hex(colors[g]) for g in runs)
    assert [s.name for s in built.sections] == [
        "Test scores (mean ± std over seeds)", "BLEU by source length, in range and beyond", "Training",
        "Throughput, MFU and memory", "The report's figures"]


def test_every_panel_shows_a_figure_the_runs_logged(tiny_sweep):
    built = workspace(tiny_sweep, "a-team")
    logged = set()
    for run_dir in [p.parent.parent for p in tiny_sweep.glob("*/wandb/offline-run-*")]:
        logged |= set(offline_run(run_dir)["summary"])
    report_run = offline_run(tiny_sweep)  # the report's comparison run, in the sweep directory itself
    assert report_run["job_type"] == "report"
    logged |= set(report_run["summary"])
    named = [m for section in built.sections for panel in section.panels for m in panel_metrics(panel)]
    assert [m for m in named if m not in logged and f"{m}/_type" not in logged] == []  # (an image: its fields)
    assert {m for m in named if m.startswith("plots/")} == {f"plots/{p.name}" for p in tiny_sweep.glob("*.png")}
    by_length = [m for m in named if "/bleu_src_len/" in m]
    assert {m.split("/")[0] for m in by_length} == {"test", "test_long"}  # in range and beyond
    assert by_length == sorted(by_length, key=lambda m: (m.split("/")[0], m))  # by length within a split


def test_a_sweep_that_logged_no_wandb_runs_is_a_clear_error(tmp_path, tiny_sweep):
    [first] = tiny_sweep.glob("0/results.json")
    results = json.loads(first.read_text())
    results["wandb"] = None  # as a run with logger=csv writes it
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "results.json").write_text(json.dumps(results))
    with pytest.raises(DashboardError, match="did not log to wandb"):
        workspace(tmp_path, "a-team")


def test_the_dry_run_prints_the_panels_and_reaches_no_machine(tiny_sweep, tmp_path):
    prefix, env = without_network(tmp_path / "network.log")
    proc = subprocess.run([*prefix, sys.executable, "-m", "zoo.dashboard", str(tiny_sweep), "--dry-run"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Test scores (mean ± std over seeds): test: BLEU, beam search" in proc.stdout
    assert not (tmp_path / "network.log").exists()


def test_a_varied_setting_splits_the_groups_as_the_report_does(tiny_sweep, tmp_path):
    """A sweep that varied a config value and a config group's choice: wandb groups its runs by both, as the report
    does, each group in the report's colour (a shade of its architecture's)."""
    for results in tiny_sweep.glob("*/results.json"):
        run = json.loads(results.read_text())
        if run["model"] == "transformer":  # seeds 0 and 1 become two groups
            decode = "greedy" if run["seed"] == 0 else "beam"
            run["overrides"] += [f"model.net.dropout={run['seed'] / 10}", f"decode={decode}"]
            run["choices"]["decode"] = decode
        (tmp_path / results.parent.name).mkdir()
        (tmp_path / results.parent.name / "results.json").write_text(json.dumps(run))
    runs, _ = load_runs(tmp_path)
    assert list(runs)[2:] == ["transformer model.net.dropout=0.0 decode=greedy",
                              "transformer model.net.dropout=0.1 decode=beam"]
    view = workspace(tmp_path, "a-team")._to_model()
    [runset] = view.spec.section.run_sets
    assert [(k.section, k.name) for k in runset.grouping] == [
        ("run", "jobType"), ("config", "choices.value.decode"), ("config", "model.value.net.dropout")]
    colors = plots.palette(runs)
    assert sorted(view.spec.section.custom_run_colors.values()) == sorted(to_hex(colors[g]) for g in runs)
    paths = [str(p) for p in workspace(tmp_path, "a-team").runset_settings.group_colors]
    assert "GroupPath('transformer', 'beam', '0.1')" in paths and "GroupPath('gru', '', '')" in paths
