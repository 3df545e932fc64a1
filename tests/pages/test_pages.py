"""The report page and the renderer every page comes from (``pipelines/render``).

Each page is rendered from small fixture data in a tmp dir (``conftest.py``: no training, no
DVC run) and checked parsed with ``lxml.html``; ``test_ops_pages.py`` opens them in a browser.
"""

from __future__ import annotations

from pathlib import Path

from pipelines import render as R
from tests.pages.conftest import (
    DIGITS,
    digit,
    dom,
    find,
    find_all,
    png_b64,
    png_of,
    report_root,
    section,
    self_contained,
)

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
    rows = find_all(root, "tr")
    assert [c.text_content() for c in find_all(rows[0], "th")] == ["x", "y"]  # _class is no column
    assert rows[1].get("class") == "best"
    assert "&lt;b&gt;" in html and "<b>" not in html
    assert find(root, "td", class_="bad").text_content() == "FAIL: z"
    assert find(root, "td", class_="na").text_content() == "not evaluated"
    assert find(rows[2], "td").text_content() == R.EMPTY


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
    for img in find_all(dom(html), "img"):  # plots: relative files there; thumbnails inline
        src = img.get("src")
        assert src.startswith("data:image/png;base64,") or (reports / src).is_file(), src


def test_report_marks_models_trained_but_not_evaluated(report_pages):
    root = dom(report_pages.reports / "index.html")
    table = section(root, "models")[0]
    heads = [th.text_content() for th in find_all(table, "th")]
    rows = {
        find(tr, "td").text_content(): [td.text_content() for td in find_all(tr, "td")]
        for tr in find_all(table, "tr")
        if find(tr, "td") is not None
    }
    lstm = dict(zip(heads, rows["digits_lstm"]))
    assert lstm["test"] == "not evaluated" and lstm["test_loss"] == "not evaluated"
    # validation is evaluate's score of the same metric, never training's per-epoch one
    assert lstm["validation"] == "not evaluated"
    tr = dict(zip(heads, rows["tr"]))
    assert tr["metric"] == "bleu" and tr["validation"] == R.EMPTY  # evaluate scored no BLEU
    assert all(cell for cell in rows["digits_cnn"] + rows["tr"])  # no empty cells anywhere
    assert all(cell for cell in rows["digits_lstm"])
    note = " ".join(p.text_content() for p in find_all(root, "p", class_="note"))
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
    assert rows["tr"]["test"] == 31.5 and "tatoeba.bleu 40.1" in rows["tr"]["test_extra"]
    assert rows["digits_cnn"]["metric"] == tasks.get("classify").headline
    assert rows["digits_cnn"]["better"] == "higher"


def test_report_draws_digit_samples_as_a_grid(report_pages):
    root = dom(report_pages.reports / "index.html")
    grid = find(root, "div", class_="digits")
    figures = find_all(grid, "figure")
    assert len(figures) == DIGITS and len(find_all(grid, "img")) == DIGITS
    for fig in figures:
        src = find(fig, "img").get("src")
        assert png_of(src).shape[:2] == (28, 28)
    captions = [find(f, "figcaption").text_content() for f in figures]
    assert captions[0] == "0 → 0" and captions[2] == "2 → 7"
    assert [f.get("class").split()[-1] for f in figures].count("wrong") == 1
    md = (report_pages.reports / "index.md").read_text()
    assert "![digits_cnn samples](img/digits_cnn_samples.png)" in md
    assert "| index | actual | predicted |" in md and "pixels" not in md and "png |" not in md
    # rows: [] shows nothing (no section), text samples stay a table
    assert "Samples: digits_lstm" not in md and "Samples: adder" not in md
    assert "## Samples: tr (translate)" in md and "hola \\| amigo" in md
    assert "hello friend" in (report_pages.reports / "index.html").read_text()


def test_report_links_the_ops_pages_index_which_the_ops_keep(report_pages, tmp_path):
    from pipelines import render as R
    from pipelines.flows.report import build

    index = report_pages.reports / "index.html"
    nav = find(dom(index), "nav", class_="pages")
    assert [a.get("href") for a in find_all(nav, "a")] == ["pages.html"]
    assert "](pages.md)" in (report_pages.reports / "index.md").read_text()
    # The ops pages are no DVC outputs: the report stage's files do not change with them.
    bare = report_root(tmp_path / "bare", pages=False)
    build(bare, "pages report")
    for name in ("index.html", "index.md"):
        assert (bare.reports / name).read_bytes() == (report_pages.reports / name).read_bytes()

    R.write_pages_index(report_pages.reports)  # what search and retrain call
    hrefs = [a.get("href") for a in find_all(dom(report_pages.reports / "pages.html"), "a")]
    assert hrefs[1:] == ["search/tiny.html", "retrain/digits_cnn.html"]
    for href in hrefs:
        assert (index.parent / href).is_file()  # relative, and there
    assert "[tiny](search/tiny.html)" in (report_pages.reports / "pages.md").read_text()
