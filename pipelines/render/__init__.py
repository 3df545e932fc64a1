"""One renderer for every page rnnflow writes: the report, search and retrain pages.

Jinja2 templates (``templates/*.html.j2`` and ``*.md.j2``) share one stylesheet
(``templates/style.css``, inlined into each page so it renders offline, from a file or an
e-mail), one table macro (``templates/macros.html.j2``), one :func:`md_table` and one way to
embed a matplotlib figure (:func:`figure_png` → :func:`data_uri` → ``<img src="data:...">``).

    from pipelines.render import render, md_table
    html = render("search.html.j2", title=..., best_params=[...], trials=[...])

No matplotlib or numpy import at module top (the report stage imports this module).
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).parent / "templates"
EMPTY = "—"  # a cell with no value (a legend note says what it means where it matters)
# Keys of a sample row that are never its image (a tagger's label sequence may be 16 long).
NOT_IMAGES = frozenset({"index", "actual", "predicted", "target", "prediction", "label"})
MIN_SIDE = 8  # pixels given as lists: at least 8×8
IMAGE_KEYS = frozenset({"pixels", "image", "img", "png"})  # where a flat list is an image


# --- cells and tables --------------------------------------------------------------------


def fmt(value: Any, empty: str = "") -> str:
    """One cell's text: floats to 6 significant digits, bools yes/no, dicts/lists as JSON."""
    if value is None:
        return empty
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.6g}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return str(value)


def columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Every key of ``rows`` in first-seen order; keys starting with ``_`` are row metadata
    (``_class``: the row's CSS class), never a column."""
    cols: dict[str, None] = {}
    for r in rows:
        cols.update((k, None) for k in r if not str(k).startswith("_"))
    return list(cols)


def md_table(
    rows: list[dict[str, Any]],
    cols: list[str] | None = None,
    heads: list[str] | None = None,
    empty: str = "",
) -> str:
    """A Markdown table of ``rows`` (``cols`` default: every key, first-seen order)."""
    if not rows:
        return "_none_\n"
    cols = cols or columns(rows)
    heads = heads or cols

    def cell(v: Any) -> str:
        return fmt(v, empty).replace("|", "\\|").replace("\n", " ").replace("\r", " ")

    out = ["| " + " | ".join(cell(h) for h in heads) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


# --- images ------------------------------------------------------------------------------


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig, dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG bytes (closed afterwards; no version stamp, so the same
    input gives the same bytes)."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def data_uri(png: bytes, mime: str = "image/png") -> str:
    """``data:image/png;base64,...`` for an ``<img src>``: the page carries its images."""
    return f"data:{mime};base64,{base64.b64encode(png).decode()}"


def image_png(value: Any) -> bytes | None:
    """A small image given as data → PNG bytes, else None.

    Accepts a PNG (bytes, base64 text or a ``data:image/png;base64,`` URI) or pixels: a
    square list of lists (e.g. 28×28) or a flat list whose length is a square (784).
    Pixels are drawn as stored (low black, high white, as MNIST's PNGs), scaled to their
    own range.
    """
    if isinstance(value, (bytes, bytearray)):
        return bytes(value) if bytes(value[:4]) == b"\x89PNG" else None
    if isinstance(value, str):
        text = value.split(",", 1)[1] if value.startswith("data:image/png;base64,") else value
        if len(text) < 24:
            return None
        try:
            raw = base64.b64decode(text, validate=True)
        except (ValueError, TypeError):
            return None
        return raw if raw[:4] == b"\x89PNG" else None
    if isinstance(value, (list, tuple)) and value:
        import numpy as np

        try:
            arr = np.asarray(value, dtype=float)
        except (ValueError, TypeError):
            return None
        if arr.ndim == 1:
            side = math.isqrt(arr.size)
            if side < MIN_SIDE or side * side != arr.size:
                return None
            arr = arr.reshape(side, side)
        if arr.ndim == 3 and arr.shape[0] == 1:  # (1, H, W): one channel
            arr = arr[0]
        if arr.ndim != 2 or min(arr.shape) < MIN_SIDE or not np.isfinite(arr).all():
            return None
        import matplotlib.image as mpimg

        lo, hi = float(arr.min()), float(arr.max())
        buf = io.BytesIO()
        mpimg.imsave(
            buf,
            arr,
            cmap="gray",
            vmin=lo,
            vmax=hi if hi > lo else lo + 1,
            format="png",
            # None drops the version stamp (documented for PNG); matplotlib's stubs say str
            metadata={"Software": None},  # type: ignore[dict-item]
        )
        return buf.getvalue()
    return None


def _looks_like_image(key: str, value: Any) -> bool:
    """Worth trying :func:`image_png` on: PNG text/bytes, a 2-D list, or a flat list under an
    image key (a 64-long input window elsewhere is not an 8×8 picture)."""
    if key in NOT_IMAGES:
        return False
    if isinstance(value, (str, bytes)):
        return True
    if isinstance(value, (list, tuple)) and len(value) >= MIN_SIDE:
        return isinstance(value[0], (list, tuple)) or key in IMAGE_KEYS
    return False


def row_image(row: dict[str, Any]) -> tuple[str, bytes] | None:
    """(key, PNG) of the first value of ``row`` that is an image (see :func:`image_png`):
    pixels (``pixels``: 28×28 lists, or 784 flat) or a base64 PNG (``png``); label keys
    (``actual``, ``predicted``, ...) are never read as images."""
    for key, value in row.items():
        if _looks_like_image(key, value):
            png = image_png(value)
            if png is not None:
                return key, png
    return None


def without_images(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` less every value that is an image (for a table beside the thumbnails)."""
    return {
        k: v for k, v in row.items() if not (_looks_like_image(k, v) and image_png(v) is not None)
    }


# --- templates ---------------------------------------------------------------------------


@cache
def environment():
    """The Jinja2 environment: autoescaped HTML, plain Markdown, shared filters."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2", "html"), default_for_string=False, default=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(fmt=fmt, md_table=md_table, data_uri=data_uri)
    env.globals.update(columns=columns, EMPTY=EMPTY, stylesheet=stylesheet)
    return env


def stylesheet() -> str:
    """The one stylesheet, inlined into every page."""
    return (TEMPLATES / "style.css").read_text()


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context``."""
    return environment().get_template(template).render(**context)


__all__ = [
    "EMPTY",
    "columns",
    "data_uri",
    "environment",
    "figure_png",
    "fmt",
    "image_png",
    "md_table",
    "pyplot",
    "render",
    "row_image",
    "stylesheet",
    "without_images",
]


# The pages the ops commands write under reports/ (folder, group label). They are not DVC
# outputs, so the report stage never lists them (its index would change with files it does
# not depend on); each op rewrites reports/pages.{md,html} instead, which the index links.
PAGES = (("search", "search"), ("retrain", "champion"))


def other_pages(reports: Path) -> list[dict[str, str]]:
    """Links (relative to ``reports/``) to the search and champion pages there."""
    links = []
    for folder, group in PAGES:
        for page in sorted((reports / folder).glob("*.html")):
            links.append({"group": group, "label": page.stem, "href": f"{folder}/{page.name}"})
    return links


def write_pages_index(reports: Path) -> Path:
    """Write ``reports/pages.{md,html}``: every search and champion page there."""
    from pipelines.outputs import write_atomic

    links = other_pages(reports)
    md = "# Search and champion pages\n\n" + "".join(
        f"- {x['group']}: [{x['label']}]({x['href']})\n" for x in links
    )
    write_atomic(reports / "pages.md", md.encode())
    html = render("pages.html.j2", links=links, title="Search and champion pages")
    write_atomic(reports / "pages.html", html.encode())
    return reports / "pages.html"
