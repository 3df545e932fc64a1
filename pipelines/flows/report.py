"""Gather every model's metrics, curves and confusion matrix and the data reports into one page.

    rnnflow report     # or: python -m pipelines.flows.report

Reads ``reports/evaluate/*.json`` (what evaluate measured), each model's DVCLive directory
``dvclive/<model>/`` (training curves and final numbers, :mod:`pipelines.live`),
``plots/*/confusion.csv``, ``reports/samples/<model>.json`` (generations, translations, replies
of the text models; example predictions of the tensor models, drawn as thumbnails when a row
carries an image) and ``reports/clean/<corpus>.json`` (whichever exist): DVC outputs of the
stages before it, never a hop's local validation results (``reports/validation/``, not in the
DAG: the page would depend on what happens to lie on the machine); writes ``reports/index.md``,
``reports/index.html`` (offline: inline CSS, the sample thumbnails as data URIs, the plots as
relative ``img/`` PNGs, no CDN — ``dvc plots`` HTML is blank offline) and ``reports/img/*.png``
(the plots both pages link). Both are rendered by :mod:`pipelines.render`. The page links
``reports/pages.html``, which the search and retrain commands keep: their pages are no
DVC outputs, so this stage's never change with them. The tables' rows:
:mod:`pipelines.render.tables`.

Inside a flow run it also publishes the report and the metrics table as Prefect artifacts;
the files stay the source of truth.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import rnnflow  # noqa: F401,I001  first: offline/telemetry env before Prefect reads it
from pipelines import live as L
from pipelines import render as R
from pipelines.config import Layout, ReportConfig
from pipelines.lineage import stage_main
from pipelines.outputs import logger, write_atomic
from pipelines.render import plots as P
from pipelines.render.tables import (
    MODEL_COLS,
    Inputs,
    clean_rows,
    metrics_rows,
    models_note,
)
from rnnflow.config import load_params, parse
from rnnflow.io import read_json


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def gather(layout: Layout) -> Inputs:
    """Read whatever outputs exist under ``layout.root``."""
    inp = Inputs()
    for name in L.models(layout.root):
        record = L.train_metrics(layout.live(name))
        if record is not None:
            inp.train[name] = record
            inp.histories[name] = L.history(layout.live(name))
            if record.get("task"):
                inp.tasks[name] = str(record["task"])
    for path in sorted((layout.reports / "evaluate").glob("*.json")):
        data = read_json(path)  # a file of another shape: skip it
        if isinstance(data, dict) and isinstance(data.get("test"), dict):
            inp.evals[path.stem] = data
            if data.get("task"):
                inp.tasks[path.stem] = str(data["task"])
    for path in sorted((layout.root / "plots").glob("*/confusion.csv")):
        inp.confusions[path.parent.name] = [
            (int(r["actual"]), int(r["predicted"])) for r in _csv(path)
        ]
    for path in sorted((layout.reports / "samples").glob("*.json")):
        data = read_json(path)
        if not isinstance(data, dict):
            continue
        if data.get("task"):
            inp.tasks.setdefault(path.stem, str(data["task"]))
        if data.get("rows"):
            inp.samples[path.stem] = data
    for path in sorted((layout.reports / "clean").glob("*.json")):
        inp.clean[path.stem] = read_json(path)
    return inp


# --- images -----------------------------------------------------------------------------


def render_images(inp: Inputs, img_dir: Path) -> dict[str, list[dict[str, str]]]:
    """Write the PNGs both pages link; returns model → ``[{path, alt}]`` (``path`` relative
    to ``reports/``)."""
    img_dir.mkdir(parents=True, exist_ok=True)
    made: dict[str, list[dict[str, str]]] = {}

    def put(name: str, kind: str, png: bytes) -> None:
        write_atomic(img_dir / f"{name}_{kind}.png", png)
        made.setdefault(name, []).append(
            {"path": f"img/{name}_{kind}.png", "alt": f"{name}_{kind}"}
        )

    for name, rows in inp.histories.items():
        if rows:
            put(name, "history", P.history_png(name, rows))
    for name, pairs in inp.confusions.items():
        if pairs:
            put(name, "confusion", P.confusion_png(name, pairs))
    keep = {Path(i["path"]).name for imgs in made.values() for i in imgs}
    keep |= {f"{name}_samples.png" for name in inp.samples}
    for old in img_dir.glob("*.png"):  # images of models no longer there
        if old.name not in keep:
            old.unlink()
    return made


def sample_sections(inp: Inputs, img_dir: Path) -> list[dict[str, Any]]:
    """One section per model with sample rows: thumbnails (rows with an image) or a table."""
    out = []
    for name, data in sorted(inp.samples.items()):
        rows = [r for r in data.get("rows") or [] if isinstance(r, dict)]
        items, table = P.digit_items(rows)
        sec: dict[str, Any] = {
            "name": name,
            "task": data.get("task", ""),
            "digits": items,
            "md_image": None,
            "wrong": sum(not d["correct"] for d in items),
        }
        if items:
            write_atomic(img_dir / f"{name}_samples.png", P.digits_png(name, items))
            sec.update(md_image=f"img/{name}_samples.png", rows=table)
        else:
            (img_dir / f"{name}_samples.png").unlink(missing_ok=True)
            sec["rows"] = [{k: " ".join(R.fmt(v).split()) for k, v in r.items()} for r in rows]
        out.append(sec)
    return out


# --- documents --------------------------------------------------------------------------


def context(
    inp: Inputs, title: str, images: dict[str, list[dict[str, str]]], samples: list[dict[str, Any]]
) -> dict[str, Any]:
    """What both templates (``report.html.j2``, ``report.md.j2``) show."""
    rows = metrics_rows(inp)
    return {
        "title": title,
        "models": rows,
        "model_cols": MODEL_COLS,
        "models_note": models_note(rows) if rows else "",
        "figures": [{"model": m, "images": images[m]} for m in sorted(images)],
        "samples": samples,
        "clean": clean_rows(inp) if inp.clean else [],
    }


def build(layout: Layout, title: str) -> tuple[str, list[dict[str, Any]]]:
    """Write ``reports/index.{md,html}`` and the images; returns (markdown, metrics rows)."""
    inp = gather(layout)
    img_dir = layout.reports / "img"
    images = render_images(inp, img_dir)
    ctx = context(inp, title, images, sample_sections(inp, img_dir))
    md = R.render("report.md.j2", **ctx)
    write_atomic(layout.reports / "index.md", md.encode())
    write_atomic(layout.reports / "index.html", R.render("report.html.j2", **ctx).encode())
    return md, ctx["models"]


@task(cache_policy=NO_CACHE)
def build_report(layout: Layout, title: str) -> tuple[str, list[dict[str, Any]]]:
    return build(layout, title)


@task(cache_policy=NO_CACHE)
def publish(markdown: str, rows: list[dict[str, Any]], title: str) -> None:
    """Prefect artifacts for the UI; a failure here never fails the report."""
    try:
        from prefect.artifacts import create_markdown_artifact, create_table_artifact

        create_markdown_artifact(markdown=markdown, key="rnnflow-report", description=title)
        create_table_artifact(
            table=[{k: R.fmt(v, R.EMPTY) for k, v in r.items()} for r in rows],
            key="rnnflow-metrics",
            description=f"{title}: metrics",
        )
    except Exception as exc:
        logger().warning("could not publish Prefect artifacts: %s", exc)


@flow(name="report")
def report(params_path: str = "params.yaml", root: str | None = None) -> str:
    """Build the report under ``<root>/reports/``; returns the path of index.html."""
    layout = Layout(Path(root)) if root else Layout()
    cfg = parse(ReportConfig, load_params(layout.params(params_path)), "report")
    markdown, rows = build_report(layout, cfg.title)
    publish(markdown, rows, cfg.title)
    return str(layout.reports / "index.html")


def main(argv: list[str] | None = None) -> int:
    print(stage_main(report, __doc__, argv, model=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
