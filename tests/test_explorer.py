"""The explorer page (zoo/explorer) of a real tiny sweep: what it holds, and in a real browser (headless Chromium,
driven by Playwright) that a click on a sentence draws every architecture's attention without touching the network."""
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_hex

from zoo import plots
from zoo.explorer import page_data
from zoo.report import load_runs
from zoo.results import decode_weights


def embedded_data(sweep: Path) -> dict:
    page = (sweep / "explorer.html").read_text()
    return json.loads(re.search(r"const DATA = (.*?);</script>", page, re.DOTALL).group(1).replace("<\\/", "</"))


def test_every_run_stores_attention_for_the_same_sentences_spread_over_the_lengths(tiny_sweep):
    runs, _ = load_runs(tiny_sweep)
    assert runs["gru"][0]["attention_sample"] is None  # a fixed context vector: nothing to draw
    picked = {(a["split"], a["index"]) for a in runs["attention"][0]["attention_sample"]}
    for group in ("attention", "transformer"):
        for run in runs[group]:
            sample = run["attention_sample"]
            assert {(a["split"], a["index"]) for a in sample} == picked  # the same sentences in every run
            for a in sample:
                source = run[a["split"]]["samples"][a["index"]]["source"]
                words = source.split()  # (the embedded task's tokens are its words)
                assert len(a["source"]) == len(words) and all(p in (w, "<unk>") for p, w in zip(a["source"], words))
                weights = decode_weights(a)  # (L, H, T, S)
                assert weights.shape == (a["layers"], a["heads"], len(a["target"]), len(a["source"]))
                np.testing.assert_allclose(weights.sum(-1), 1, atol=len(a["source"]) / 255)  # rounded to 1/255
    test_lengths = sorted(len(s["source"].split()) for s in runs["attention"][0]["test"]["samples"])
    sampled = sorted(len(a["source"]) for a in runs["attention"][0]["attention_sample"] if a["split"] == "test")
    assert sampled[0] == test_lengths[0] and sampled[-1] == test_lengths[-1]  # shortest to longest
    transformer = runs["transformer"][0]["attention_sample"][0]
    assert (transformer["layers"], transformer["heads"]) == (2, 4)  # conf/model/transformer.yaml's, layer by head


def test_the_page_holds_every_seeds_scores_and_each_groups_translations(tiny_sweep):
    data, (runs, _) = embedded_data(tiny_sweep), load_runs(tiny_sweep)
    assert [g["name"] for g in data["groups"]] == ["gru", "attention", "transformer"]
    colors = plots.palette(runs)
    assert all(g["color"] == to_hex(colors[g["name"]]) for g in data["groups"])  # the figures' colours
    for group, rs in runs.items():
        for split in rs[0]["test_splits"]:
            buckets = data["by_length"][group][split]
            assert len(buckets) == len(rs[0][split]["by_src_len"]) > 0
            for b, expected in zip(buckets, rs[0][split]["by_src_len"]):
                values = [plots.bucket(r, split, b["lo"], b["hi"])["bleu"] for r in rs]
                assert [s["bleu"] for s in b["seeds"]] == values and b["n"] == expected["n"]
            assert data["translations"][group][split] == [{"beam": s["hypothesis"], "greedy": s["greedy"]}
                                                          for s in rs[0][split]["samples"]]
        assert [c["seed"] for c in data["curves"][group]] == [r["seed"] for r in rs]
    assert "<table>" in data["report_html"] and "Plots" not in data["report_html"]


def test_runs_from_before_the_explorer_show_their_translations_and_say_why_there_is_no_attention(tiny_sweep):
    runs, _ = load_runs(tiny_sweep)
    old = {group: [{k: v for k, v in r.items() if k != "attention_sample"} for r in rs] for group, rs in runs.items()}
    data = page_data(old, "# report")
    assert data["attention"] == {"gru": None}  # no attention at all; the others kept none (no entry)
    assert all(len(data["translations"][g]["test"]) == len(data["sentences"]["test"]) for g in runs)
    mixed = {**runs, "transformer": [old["transformer"][0], runs["transformer"][1]]}  # seed 0 from before
    data = page_data(mixed, "# report")
    assert [g["shown_seed"] for g in data["groups"]] == [0, 0, 1]  # the seed that kept its attention


def test_the_page_loads_nothing_from_anywhere(tiny_sweep):
    """No src or href leaves the page (the style sheet, script and data are inline), and its content security policy
    forbids any load, so a page that tried would fail in the browser test below."""
    page = (tiny_sweep / "explorer.html").read_text()
    assert not re.findall(r"""(?:src|href)\s*=\s*["'](?!#)""", page)
    assert "default-src 'none'" in page


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or next(
        (p for p in ("/usr/bin/chromium",) if os.access(p, os.X_OK)), None)


def test_a_click_on_a_sentence_draws_every_architectures_attention_in_a_real_browser(tiny_sweep, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="Playwright (the test extra) is not installed")
    browser_path = chromium()
    if browser_path is None:
        pytest.skip("no Chromium here (.ci/run installs Debian's package chromium)")
    requests, errors = [], []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((tiny_sweep / "explorer.html").as_uri())
        stored = page.locator("#sentence-list li")  # (by default only the sentences with stored attention)
        assert stored.count() == len({(a["split"], a["index"]) for a in load_runs(tiny_sweep)[0]["attention"][0][
            "attention_sample"] if a["split"] == "test"})
        stored.nth(stored.count() - 1).click()  # the longest
        page.wait_for_selector("#sentence[data-ready]")
        kinds = page.eval_on_selector_all(".map", "maps => maps.map(m => [m.dataset.group, m.dataset.kind])")
        assert kinds == [["gru", "context-vector"], ["attention", "heatmap"], ["transformer", "heatmap"]]
        inked = "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;" \
                " let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 200) n++; return n; }"
        for group in ("attention", "transformer"):
            assert page.eval_on_selector(f"canvas[data-group={group}]", inked) > 50  # weights drawn, not a blank
        page.hover("canvas[data-group=transformer]", position={"x": 92, "y": 92})  # the first cell, past the names
        hovered = page.get_attribute("canvas[data-group=transformer]", "title")
        assert hovered.startswith('output "') and '← source "' in hovered  # pieces and weight on hover
        before = page.eval_on_selector("canvas[data-group=transformer]", "c => c.toDataURL()")
        page.select_option(".map[data-group=transformer] select[aria-label=head]", "0")  # one head, not the mean
        assert page.eval_on_selector("canvas[data-group=transformer]", "c => c.toDataURL()") != before
        hover = page.eval_on_selector_all("#length-chart circle title", "ts => ts.map(t => t.textContent)")
        assert any("transformer" in t and "seed 0" in t and "seed 1" in t and "sentences" in t for t in hover)
        page.fill("#search", "zzzz-no-such-word")
        assert page.locator("#sentence-list li").inner_text() == "no sentence matches"
        page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
        browser.close()
    assert errors == []
    assert requests == [(tiny_sweep / "explorer.html").as_uri()]  # the page itself, and nothing else
    print(f"screenshot: {tmp_path / 'explorer.png'}")
