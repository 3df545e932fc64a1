"""The pages rnnflow writes — report, search, retrain judgement — from one renderer.

Each page is rendered from small fixture data in a tmp dir (no training, no DVC run) and
checked twice: parsed with the stdlib ``html.parser`` (runs everywhere), and, where
``/usr/bin/chromium`` and playwright are there, opened in headless Chromium, screenshotted
and checked in the DOM. Screenshots land in the test's tmp dir, and also in
``$RNNFLOW_SCREENSHOTS`` when that is set.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines import live as L
from pipelines import render as R
from pipelines.config import Layout
from pipelines.flows.evaluate import record_path
from pipelines.ops import judgement as J
from tests.conftest import write_params

CHROMIUM = Path("/usr/bin/chromium")


# --- a tiny DOM from html.parser ----------------------------------------------------------


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.text_parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.text_parts) + "".join(c.text for c in self.children)

    def iter(self, tag: str | None = None):
        for c in self.children:
            if tag is None or c.tag == tag:
                yield c
            yield from c.iter(tag)

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.iter(tag)
            if all(attrs_match(n.attrs.get(k.rstrip("_")), v) for k, v in attrs.items())
        ]

    def find(self, tag: str, **attrs: str) -> Node | None:
        return next(iter(self.find_all(tag, **attrs)), None)


def attrs_match(value: str | None, wanted: str) -> bool:
    return value is not None and (value == wanted or wanted in value.split())


VOID = {"meta", "img", "br", "hr", "link", "input"}


class DOM(HTMLParser):
    def __init__(self, text: str):
        super().__init__()
        self.root = self.cur = Node("#root", {}, None)
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_endtag(self, tag):
        node = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data):
        self.cur.text_parts.append(data)


def dom(path_or_text: Path | str) -> Node:
    text = path_or_text.read_text() if isinstance(path_or_text, Path) else path_or_text
    return DOM(text).root


def section(root: Node, heading_id: str) -> list[Node]:
    """The nodes after the ``<h2 id=heading_id>`` up to the next ``<h2>``."""
    body = root.find("body")
    out, inside = [], False
    for node in body.children:
        if node.tag == "h2":
            if inside:
                break
            inside = node.attrs.get("id") == heading_id
            continue
        if inside:
            out.append(node)
    return out


def self_contained(text: str) -> None:
    assert text.count("<html") == 1 and "<style>" in text
    assert "http://" not in text and "https://" not in text  # nothing from a CDN
    assert ".css" not in text.split("<style>")[0]  # no linked stylesheet


def png_of(src: str) -> np.ndarray:
    import matplotlib.image as mpimg

    assert src.startswith("data:image/png;base64,")
    return mpimg.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")


# --- fixtures -----------------------------------------------------------------------------

DIGITS = 6


def digit(label: int) -> np.ndarray:
    img = np.zeros((28, 28), dtype=np.uint8)
    img[6:22, 8 + label : 11 + label] = 255  # a bar whose place depends on the label
    return img


def png_b64(img: np.ndarray) -> str:
    import matplotlib.image as mpimg

    buf = io.BytesIO()
    mpimg.imsave(buf, img, cmap="gray", format="png")
    return base64.b64encode(buf.getvalue()).decode()


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def report_root(root: Path, pages: bool = True) -> Layout:
    """Outputs of three models: an evaluated MNIST classifier with digit samples (pixels as
    lists, two rows as base64 PNG only), a classifier trained but not evaluated, and a
    translator with text samples; a tagger whose samples have ``rows: []``."""
    layout = Layout(root)
    hist = [
        {"epoch": 1, "train_loss": 1.2, "val_loss": 1.0, "val_accuracy": 0.6},
        {"epoch": 2, "train_loss": 0.8, "val_loss": 0.7, "val_accuracy": 0.8},
        {"epoch": 3, "train_loss": 0.5, "val_loss": 0.6, "val_accuracy": 0.9},
    ]
    for name in ("digits_cnn", "digits_lstm"):  # DVCLive directories, as training writes them
        L.write_run(
            layout.live(name),
            {
                "model": name,
                "corpus": "mnist",
                "family": "cnn",
                "epochs": 3,
                "val_accuracy": 0.9,
                "device": "cpu",
            },
            hist,
        )
    write_json(
        record_path(layout, "digits_cnn"),
        {
            "model": "digits_cnn",
            "task": "classify",
            "test": {"n": 100, "loss": 0.3, "accuracy": 0.91},
            "validation": {"n": 50, "loss": 0.25, "accuracy": 0.92},
        },
    )
    layout.confusion("digits_cnn").parent.mkdir(parents=True, exist_ok=True)
    layout.confusion("digits_cnn").write_text(
        "actual,predicted\n"
        + "".join(f"{i % 10},{i % 10 if i % 7 else (i + 1) % 10}\n" for i in range(100))
    )
    rows = []
    for i in range(DIGITS):
        actual, predicted = i % 10, (i % 10 if i != 2 else 7)
        row: dict[str, Any] = {"index": i, "actual": actual, "predicted": predicted}
        if i < DIGITS - 2:
            row["pixels"] = digit(actual).astype(int).tolist()
        row["png"] = png_b64(digit(actual))
        rows.append(row)
    write_json(
        layout.samples("digits_cnn"), {"model": "digits_cnn", "task": "classify", "rows": rows}
    )
    write_json(
        layout.samples("digits_lstm"), {"model": "digits_lstm", "task": "classify", "rows": []}
    )
    L.write_run(
        layout.live("tr"),
        {
            "model": "tr",
            "corpus": "es_en",
            "family": "seq2seq",
            "epochs": 2,
            "val_perplexity": 9.0,
            "device": "cpu",
        },
        [],
    )
    write_json(
        record_path(layout, "tr"),
        {
            "model": "tr",
            "task": "translate",
            "test": {
                "n": 10,
                "loss": 2.0,
                "perplexity": 7.4,
                "bleu": 31.5,
                "chrf": 50.0,
                "tatoeba": {"bleu": 40.1},
            },
            "validation": {"perplexity": 8.0},
        },
    )
    write_json(
        layout.samples("tr"),
        {
            "model": "tr",
            "task": "translate",
            "rows": [
                {"source": "hola | amigo", "reference": "hello friend", "beam": "hello friend"}
            ],
        },
    )
    write_json(layout.samples("adder"), {"model": "adder", "task": "tag", "rows": []})
    write_json(
        layout.reports / "validation" / "tokenize" / "mnist.json",
        {
            "hop": "tokenize",
            "corpus": "mnist",
            "success": True,
            "results": [{"suite": "s", "expectations_evaluated": 4, "failures": []}],
        },
    )
    if pages:
        for rel in ("search/tiny.html", "retrain/digits_cnn.html"):
            path = layout.reports / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                f"<!doctype html><html><head><title>{rel}</title></head>"
                f"<body><h1>{rel}</h1></body></html>"
            )
    return layout


@pytest.fixture
def report_pages(tmp_path: Path) -> Layout:
    from pipelines.flows.report import build

    layout = report_root(tmp_path / "project")
    build(layout, "pages report")
    return layout


SEARCH_SPEC = {
    "model": "mnist_logreg",
    "method": "tpe",
    "n_trials": 5,
    "space": {
        "train.models.mnist_logreg.lr": {"type": "loguniform", "low": 1e-3, "high": 1e-1},
        "train.models.mnist_logreg.batch_size": {"type": "categorical", "choices": [32, 64]},
    },
}


def search_trials() -> list[dict[str, Any]]:
    vals = [0.81, None, 0.86, 0.84, 0.85]
    return [
        {
            "trial": i,
            "experiment": f"tiny-tpe-{i:02d}",
            "params": {
                "train.models.mnist_logreg.lr": 0.01 * (i + 1),
                "train.models.mnist_logreg.batch_size": 32 if i % 2 else 64,
            },
            "value": v,
            "state": "ok" if v is not None else "failed",
            "seconds": 1.5,
        }
        for i, v in enumerate(vals)
    ]


@pytest.fixture
def search_page(tmp_path: Path) -> dict[str, Path]:
    from pipelines.ops.search_report import write_report
    from pipelines.ops.search_spec import SearchSpec, best_trial

    spec = SearchSpec.model_validate(SEARCH_SPEC)
    trials = search_trials()
    best = best_trial(trials, spec.direction)
    return write_report(tmp_path / "project", "tiny", spec, trials, best, True)


def judged(decision: str = "promoted"):
    from pipelines.ops import retrain as RT

    cand = J.Candidate(
        model="digits_cnn",
        fingerprint="f" * 16,
        value=0.93,
        metrics={"validation": {"accuracy": 0.93}},
        params={"lr": 0.02},
        deps={"data/05_tokens/mnist": "h2"},
        model_hash="m2",
        commit="c" * 40,
        time="2026-01-02T03:04:05+00:00",
        dirty=False,
    )
    champ = {
        "fingerprint": "e" * 16,
        "version": "v0.0.1",
        "time": "2026-11-29T00:00:00+00:00",
        "params": {"lr": 0.01},
        "deps": {"data/05_tokens/mnist": "h1"},
        "metrics": {"validation": {"accuracy": 0.9}},
    }
    cfg = RT.RetrainConfig(model="digits_cnn", margin=0.01)
    verdict = J.Verdict(decision, "validation.accuracy 0.93 vs champion 0.9: better", 0.9)
    history = [
        {
            "version": "v0.0.1",
            "time": champ["time"],
            "decision": "promoted",
            "value": 0.9,
            "champion_value": None,
            "commit": "a" * 40,
            "reason": "first",
        }
    ]
    return cand, verdict, champ, cfg, ["train@digits_cnn", "evaluate@digits_cnn"], history


@pytest.fixture
def retrain_page(tmp_path: Path) -> Path:

    return J.write_pages(tmp_path / "project", *J.report_pages(*judged()), "digits_cnn")


# --- the renderer -------------------------------------------------------------------------


def test_md_table_is_the_one_markdown_table():
    md = R.md_table(
        [
            {"a": 1.23456789, "b": None, "c": "x | y", "_class": "best"},
            {"a": True, "b": [1, 2], "c": "two\nlines"},
        ]
    )
    assert md.splitlines() == [
        "| a | b | c |",
        "|---|---|---|",
        "| 1.23457 |  | x \\| y |",
        "| yes | [1, 2] | two lines |",
    ]
    assert R.md_table([]) == "_none_\n"
    assert R.md_table([{"a": None}], empty=R.EMPTY).splitlines()[-1] == f"| {R.EMPTY} |"


def test_one_table_macro_escapes_and_marks_rows():
    macros = R.environment().get_template("macros.html.j2").module
    html = str(
        macros.table(
            [{"x": "<b>", "y": "FAIL: z", "_class": "best"}, {"x": None, "y": "not evaluated"}],
            empty=R.EMPTY,
        )
    )
    root = dom(html)
    rows = root.find_all("tr")
    assert [c.text for c in rows[0].find_all("th")] == ["x", "y"]  # _class is no column
    assert rows[1].attrs.get("class") == "best"
    assert "&lt;b&gt;" in html and "<b>" not in html
    assert root.find("td", class_="bad").text == "FAIL: z"
    assert root.find("td", class_="na").text == "not evaluated"
    assert rows[2].find("td").text == R.EMPTY


def test_images_from_pixels_or_png():
    img = digit(3)
    from_pixels = R.image_png(img.tolist())
    from_flat = R.image_png(img.ravel().tolist())
    from_b64 = R.image_png(png_b64(img))
    from_uri = R.image_png("data:image/png;base64," + png_b64(img))
    for png in (from_pixels, from_flat, from_b64, from_uri):
        assert png is not None and png[:4] == b"\x89PNG"
    assert R.image_png("hello world") is None and R.image_png([1, 2, 3]) is None
    # Labels are never images, even a tagger's 64-long label sequence.
    assert R.row_image({"actual": list(range(64)), "predicted": list(range(64))}) is None
    assert R.row_image({"index": 0, "pixels": img.tolist()})[0] == "pixels"
    assert R.row_image({"image": img.ravel().tolist()})[0] == "image"
    assert R.row_image({"window": [0.5] * 64}) is None  # a flat series is not a picture
    assert R.without_images({"index": 0, "pixels": img.tolist(), "png": png_b64(img)}) == {
        "index": 0
    }


def test_templates_ship_with_the_package():
    import tomllib

    data = tomllib.loads((Path(R.__file__).parents[2] / "pyproject.toml").read_text())
    globs = data["tool"]["setuptools"]["package-data"]["pipelines.render"]
    shipped = {p.name for p in R.TEMPLATES.iterdir()}
    assert "style.css" in shipped
    for name in shipped:
        assert any(Path(name).match(g.split("/")[-1]) for g in globs), name


# --- the report ---------------------------------------------------------------------------


def test_report_outputs_keep_their_names(report_pages):
    reports = report_pages.reports
    assert (reports / "index.html").is_file() and (reports / "index.md").is_file()
    imgs = sorted(p.name for p in (reports / "img").glob("*.png"))
    assert imgs == [
        "digits_cnn_confusion.png",
        "digits_cnn_history.png",
        "digits_cnn_samples.png",
        "digits_lstm_history.png",
    ]
    md = (reports / "index.md").read_text()
    for name in imgs:
        assert f"(img/{name})" in md  # the Markdown links the files it ships with
    html = (reports / "index.html").read_text()
    self_contained(html)
    for img in dom(html).find_all("img"):  # plots: relative files there; thumbnails inline
        src = img.attrs["src"]
        assert src.startswith("data:image/png;base64,") or (reports / src).is_file(), src


def test_report_marks_models_trained_but_not_evaluated(report_pages):
    root = dom(report_pages.reports / "index.html")
    table = section(root, "models")[0]
    heads = [th.text for th in table.find_all("th")]
    rows = {
        tr.find("td").text: [td.text for td in tr.find_all("td")]
        for tr in table.find_all("tr")
        if tr.find("td")
    }
    lstm = dict(zip(heads, rows["digits_lstm"]))
    assert lstm["test"] == "not evaluated" and lstm["test_loss"] == "not evaluated"
    # validation is evaluate's score of the same metric, never training's per-epoch one
    assert lstm["validation"] == "not evaluated"
    tr = dict(zip(heads, rows["tr"]))
    assert tr["metric"] == "bleu" and tr["validation"] == R.EMPTY  # evaluate scored no BLEU
    assert all(cell for cell in rows["digits_cnn"] + rows["tr"])  # no empty cells anywhere
    assert all(cell for cell in rows["digits_lstm"])
    note = " ".join(p.text for p in root.find_all("p", class_="note"))
    assert "not evaluated" in note and R.EMPTY in note
    assert "| not evaluated | not evaluated |" in (report_pages.reports / "index.md").read_text()


def test_report_headline_comes_from_the_task_not_a_list(report_pages):
    from pipelines import tasks
    from pipelines.flows import report as RP
    from pipelines.render import tables as RT

    for mod in (RP, RT):
        assert not hasattr(mod, "HEADLINES") and not hasattr(mod, "EXTRAS")
        source = Path(mod.__file__).read_text()
        for name in tasks.names():  # no branch on any task name
            assert f'"{name}"' not in source and f"'{name}'" not in source, name
    rows = {r["model"]: r for r in RT.metrics_rows(RP.gather(report_pages))}
    assert rows["tr"]["metric"] == tasks.get("translate").headline
    assert rows["digits_cnn"]["metric"] == tasks.get("classify").headline
    assert rows["digits_cnn"]["better"] == "higher"


def test_report_draws_digit_samples_as_a_grid(report_pages):
    root = dom(report_pages.reports / "index.html")
    grid = root.find("div", class_="digits")
    figures = grid.find_all("figure")
    assert len(figures) == DIGITS and len(grid.find_all("img")) == DIGITS
    for fig in figures:
        src = fig.find("img").attrs["src"]
        assert png_of(src).shape[:2] == (28, 28)
    captions = [f.find("figcaption").text for f in figures]
    assert captions[0] == "0 → 0" and captions[2] == "2 → 7"
    assert [f.attrs["class"].split()[-1] for f in figures].count("wrong") == 1
    md = (report_pages.reports / "index.md").read_text()
    assert "![digits_cnn samples](img/digits_cnn_samples.png)" in md
    assert "| index | actual | predicted |" in md and "pixels" not in md and "png |" not in md
    # rows: [] shows nothing (no section), text samples stay a table
    assert "Samples: digits_lstm" not in md and "Samples: adder" not in md
    assert "## Samples: tr (translate)" in md and "hola \\| amigo" in md


def test_report_links_the_ops_pages_index_which_the_ops_keep(report_pages, tmp_path):
    from pipelines import render as R
    from pipelines.flows.report import build

    index = report_pages.reports / "index.html"
    nav = dom(index).find("nav", class_="pages")
    assert [a.attrs["href"] for a in nav.find_all("a")] == ["pages.html"]
    assert "](pages.md)" in (report_pages.reports / "index.md").read_text()
    # The ops pages are no DVC outputs: the report stage's files do not change with them.
    bare = report_root(tmp_path / "bare", pages=False)
    build(bare, "pages report")
    for name in ("index.html", "index.md"):
        assert (bare.reports / name).read_bytes() == (report_pages.reports / name).read_bytes()

    R.write_pages_index(report_pages.reports)  # what search and retrain call
    hrefs = [a.attrs["href"] for a in dom(report_pages.reports / "pages.html").find_all("a")]
    assert hrefs[1:] == ["search/tiny.html", "retrain/digits_cnn.html"]
    for href in hrefs:
        assert (index.parent / href).is_file()  # relative, and there
    assert "[tiny](search/tiny.html)" in (report_pages.reports / "pages.md").read_text()


# --- the search page ----------------------------------------------------------------------


def test_search_best_is_a_table_not_pre(search_page):
    text = search_page["html"].read_text()
    self_contained(text)
    root = dom(text)
    assert root.find("pre") is None
    best = section(root, "best")
    table = next(n for n in best if n.tag == "table")
    cells = [[td.text for td in tr.find_all("td")] for tr in table.find_all("tr")][1:]
    assert cells == [
        ["train.models.mnist_logreg.lr", "0.03"],
        ["train.models.mnist_logreg.batch_size", "64"],
    ]
    best_row = root.find("tr", class_="best")
    assert best_row.find("td").text == "2"
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
    assert root.find("h1").text == "retrain digits_cnn: promoted"
    judgement = root.find("table", id="judgement")
    assert [th.text for th in judgement.find_all("th")][:3] == ["metric", "champion", "challenger"]


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
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (`make test` installs it when run as root)")
    sync_api = pytest.importorskip("playwright.sync_api")
    reports = report_pages.reports
    # The fixtures share tmp_path/project: the real search and retrain pages now sit
    # where the pages index the report links lists them.
    assert search_page["html"] == reports / "search" / "tiny.html"
    assert retrain_page == reports / "retrain" / "digits_cnn.html"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    found: dict[str, Any] = {}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=flags,
            viewport={"width": 1280, "height": 900},
        )
        try:
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
        finally:
            browser.close()
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
