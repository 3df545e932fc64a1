"""The pages the operations write — search and retrain judgement — and every page in
headless Chromium.

Checked parsed with ``lxml.html`` (runs everywhere) and, where ``/usr/bin/chromium`` and
playwright are there, opened in headless Chromium, screenshotted and checked in the DOM.
Screenshots land in the test's tmp dir, and also in ``$RNNFLOW_SCREENSHOTS`` when that is set.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from pipelines import render as R
from pipelines.ops import judgement as J
from tests.conftest import chromium, write_params
from tests.pages.conftest import (
    DIGITS,
    SEARCH_SPEC,
    dom,
    find,
    find_all,
    judged,
    search_trials,
    section,
    self_contained,
)

# --- the search page ----------------------------------------------------------------------


def test_search_best_is_a_table_not_pre(search_page):
    text = search_page["html"].read_text()
    self_contained(text)
    root = dom(text)
    assert find(root, "pre") is None
    best = section(root, "best")
    table = next(n for n in best if n.tag == "table")
    cells = [[td.text_content() for td in find_all(tr, "td")] for tr in find_all(table, "tr")][1:]
    assert cells == [
        ["train.models.mnist_logreg.lr", "0.03"],
        ["train.models.mnist_logreg.batch_size", "64"],
    ]
    best_row = find(root, "tr", class_="best")
    assert find(best_row, "td").text_content() == "2"
    md = search_page["md"].read_text()
    assert "## Best" in md and "| param | value |" in md and "| trial |" in md
    assert "![progress](tiny.png)" in md and search_page["png"].is_file()


def test_search_progress_axis_has_whole_trial_numbers():
    from pipelines.ops.search_report import progress_figure
    from pipelines.ops.search_spec import SearchSpec

    spec = SearchSpec.model_validate(SEARCH_SPEC)
    fig = progress_figure(search_trials(), spec)
    fig.canvas.draw()
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks
    R.pyplot().close(fig)


# --- the retrain judgement ----------------------------------------------------------------


def test_retrain_judgement_markdown_and_page(retrain_page):

    md, _ = J.report_pages(*judged())
    assert md.startswith("# retrain digits_cnn: promoted\n")
    assert "**Why:** validation.accuracy 0.93" in md
    assert "| metric | champion | challenger | improvement |" in md
    assert "| lr | 0.01 | 0.02 |" in md and "## Registry history" in md
    assert J.report_pages(*judged("rejected"))[0].startswith("# retrain digits_cnn: not promoted")
    assert retrain_page == retrain_page.parents[1] / "retrain" / "digits_cnn.html"
    assert (retrain_page.parent / "digits_cnn.md").read_text() == md
    text = retrain_page.read_text()
    self_contained(text)
    root = dom(text)
    assert find(root, "h1").text_content() == "retrain digits_cnn: promoted"
    judgement = find(root, "table", id="judgement")
    assert [th.text_content() for th in find_all(judgement, "th")][:3] == [
        "metric",
        "champion",
        "challenger",
    ]


def test_retrain_flow_writes_the_champion_page(tmp_path, monkeypatch):
    from pipelines.ops import retrain as RT
    from pipelines.ops import workspace as W

    root = tmp_path / "project"
    root.mkdir()
    write_params(root, {"retrain": {"model": "digits_cnn", "margin": 0.002}})
    cand, verdict, champ, cfg, ran, history = judged()
    published = []
    monkeypatch.setattr(RT, "reproduce", lambda *a: ran)
    monkeypatch.setattr(RT, "evaluate_and_record", lambda *a: (cand, verdict, champ, history))
    monkeypatch.setattr(W, "publish_markdown", lambda md, *a, **k: published.append(md))
    out = RT.retrain.fn(root=str(root))
    page = root / "reports" / "retrain" / "digits_cnn.html"
    assert out["page"] == str(page) and page.is_file()
    assert published == [(root / "reports" / "retrain" / "digits_cnn.md").read_text()]
    assert published[0].startswith("# retrain digits_cnn: promoted")


# --- in a browser -------------------------------------------------------------------------


def test_pages_in_headless_chromium(report_pages, search_page, retrain_page, tmp_path):
    """Every page opened from disk in Chromium: rendered, screenshotted, checked in the DOM."""
    reports = report_pages.reports
    # The fixtures share tmp_path/project: the real search and retrain pages now sit
    # where the pages index the report links lists them.
    assert search_page["html"] == reports / "search" / "tiny.html"
    assert retrain_page == reports / "retrain" / "digits_cnn.html"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    found: dict[str, Any] = {}
    with chromium(tmp_path / "chromium-profile") as browser:
        page = browser.new_page()
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))

        def visit(rel: str, shot: str) -> None:
            page.goto((reports / rel).as_uri(), wait_until="load", timeout=30_000)
            page.screenshot(path=str(shots / shot), full_page=True)
            found[shot] = {
                "broken": page.eval_on_selector_all(
                    "img", "els => els.filter(e => !(e.complete && e.naturalWidth > 0)).length"
                ),
                "imgs": page.eval_on_selector_all("img", "els => els.length"),
            }

        visit("index.html", "report.png")
        found["digits"] = page.eval_on_selector_all(
            "div.digits figure", "els => els.map(e => e.innerText.trim())"
        )
        found["na"] = page.eval_on_selector_all(
            "td.na", "els => els.map(e => getComputedStyle(e).fontStyle)"
        )
        page.click("nav.pages a[href='pages.html']")  # the index the ops pages keep
        page.wait_for_load_state("load")
        page.click("nav.pages a[href='search/tiny.html']")
        page.wait_for_load_state("load")
        found["after_click"] = page.url
        visit("search/tiny.html", "search.png")
        found["best"] = page.eval_on_selector_all(
            "#best-params tr", "els => els.map(e => e.innerText)"
        )
        visit("retrain/digits_cnn.html", "retrain.png")
        found["h1"] = page.inner_text("h1")
    assert all(u.startswith(("file://", "data:")) for u in requests), requests  # offline
    for shot in ("report.png", "search.png", "retrain.png"):
        assert (shots / shot).read_bytes()[:4] == b"\x89PNG"
        assert found[shot]["broken"] == 0, (shot, found[shot])
    assert found["report.png"]["imgs"] >= DIGITS + 3
    assert len(found["digits"]) == DIGITS and found["digits"][2] == "2 → 7"
    assert found["na"] and set(found["na"]) == {"italic"}
    assert found["after_click"].endswith("/search/tiny.html")
    assert len(found["best"]) == 3 and "0.03" in found["best"][1]
    assert found["h1"] == "retrain digits_cnn: promoted"
    keep = os.environ.get("RNNFLOW_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots.glob("*.png"):
            shutil.copy(shot, Path(keep) / shot.name)
    print(f"\nscreenshots of the pages: {shots}")
