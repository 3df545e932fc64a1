"""Gather every model's metrics, curves and confusion matrix and the data reports into one page.

    rnnflow report     # or: python -m pipelines.flows.report

Reads ``reports/evaluate/*.json`` (what evaluate measured), each model's DVCLive directory
``dvclive/<model>/`` (training curves and final numbers, :mod:`pipelines.live`),
``plots/*/confusion.csv``, ``reports/samples/<model>.json`` (generations, translations, replies
of the text models; example predictions of the tensor models, drawn as thumbnails when a row
carries an image), ``reports/validation/<hop>/<corpus>.json`` and
``reports/clean/<corpus>.json`` (whichever exist); writes ``reports/index.md``,
``reports/index.html`` (offline: inline CSS, the sample thumbnails as data URIs, the plots as
relative ``img/`` PNGs, no CDN — ``dvc plots`` HTML is blank offline) and ``reports/img/*.png``
(the plots both pages link). Both are rendered by :mod:`pipelines.render`. The page links
``reports/pages.html``, which the search, compare and retrain commands keep: their pages are no
DVC outputs, so this stage's never change with them. Which metric heads a model's row, and
which extras sit beside it, is its task's business (:mod:`pipelines.tasks`), never a list kept
here.

Inside a flow run it also publishes the report and the metrics table as Prefect artifacts;
the files stay the source of truth.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from dataclasses import dataclass, field
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
from rnnflow.config import load_params, parse
from rnnflow.io import read_json

NOT_EVALUATED = "not evaluated"


def _get(d: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


@dataclass
class Inputs:
    """Everything the report shows, read from disk."""

    train: dict[str, dict[str, Any]] = field(default_factory=dict)  # model → live.flatten record
    evals: dict[str, dict[str, Any]] = field(default_factory=dict)  # model → <model>.json
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    confusions: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)  # models' sample outputs
    tasks: dict[str, str] = field(default_factory=dict)  # model → task name, where recorded
    validation: list[dict[str, Any]] = field(default_factory=list)
    clean: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        return sorted(set(self.train) | set(self.evals))


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
    for path in sorted((layout.reports / "validation").glob("*/*.json")):
        inp.validation.append(read_json(path))
    for path in sorted((layout.reports / "clean").glob("*.json")):
        inp.clean[path.stem] = read_json(path)
    return inp


# --- tables -----------------------------------------------------------------------------


def task_spec(name: str | None) -> Any:
    """The task object of ``pipelines.tasks`` (``.headline``, ``.higher_is_better``,
    ``.report_extras``), or None for an unknown or unrecorded task."""
    if not name:
        return None
    try:
        from pipelines import tasks
    except ImportError:
        return None
    try:
        return tasks.get(name)
    except (KeyError, LookupError, ValueError):
        return None


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _leaves(d: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of the numeric leaves of ``d``."""
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _leaves(v, f"{prefix}{k}.")
        elif _numeric(v):
            out.append(f"{prefix}{k}")
    return out


def headline(spec: Any, train: dict[str, Any], test: dict[str, Any]) -> str:
    """The task's headline metric; without a task: the metric training tracked
    (``val_<metric>``), else the first numeric test metric besides n and loss."""
    if spec is not None:
        return spec.headline
    tracked = [
        k.removeprefix("val_")
        for k in train
        if k.startswith("val_") and k != "val_loss" and _numeric(train[k])
    ]
    if tracked:
        return tracked[0]
    return next((k for k in _leaves(test) if k not in ("n", "loss")), "loss")


def metrics_rows(inp: Inputs) -> list[dict[str, Any]]:
    """One row per model: test headline + extras, validation, training cost.

    A model trained but not evaluated (no ``reports/evaluate/<model>.json``) says so in its test
    cells; a value a model does not have stays None (shown as ``—``).
    """
    rows = []
    for name in inp.models:
        tr, ev = inp.train.get(name, {}), inp.evals.get(name)
        test, val = (ev or {}).get("test", {}), (ev or {}).get("validation", {})
        spec = task_spec(inp.tasks.get(name))
        head = headline(spec, tr, test)
        extra_keys = (
            tuple(spec.report_extras)
            if spec is not None
            else tuple(k for k in _leaves(test) if k not in ("n", "loss"))
        )
        extras = "; ".join(
            f"{k} {R.fmt(_get(test, k))}"
            for k in extra_keys
            if k != head and _get(test, k) is not None
        )
        better = None if spec is None else "higher" if spec.higher_is_better else "lower"
        missing = NOT_EVALUATED if ev is None else None
        rows.append(
            {
                "model": name,
                "task": inp.tasks.get(name),
                "corpus": tr.get("corpus"),
                "family": tr.get("family"),
                "metric": head,
                "better": better,
                "test": _get(test, head) if ev is not None else missing,
                "test_loss": test.get("loss") if ev is not None else missing,
                # evaluate's score of the same metric on validation, or none: training's
                # per-epoch validation score can be another metric (the translator's BLEU)
                "validation": _get(val, head) if ev is not None else missing,
                "test_extra": extras or missing,
                "n_test": test.get("n") if ev is not None else missing,
                "epochs": tr.get("epochs"),
                "device": tr.get("device"),
            }
        )
    return rows


def models_note(rows: list[dict[str, Any]]) -> str:
    notes = [
        "metric: the task's headline; test, test_loss, test_extra and n_test: the test split; "
        "validation: the same metric, scored by evaluate on the validation split",
        f"{R.EMPTY}: no such value for this model",
    ]
    if any(r["test"] == NOT_EVALUATED for r in rows):
        notes.insert(
            0,
            f"{NOT_EVALUATED}: trained, but the evaluate stage has not scored it "
            f"(no reports/evaluate/<model>.json)",
        )
    return "; ".join(notes) + "."


HOP_ORDER = ("fetch", "format", "clean", "sample", "tokenize")


def validation_rows(inp: Inputs) -> list[dict[str, Any]]:
    """One row per corpus, one column per hop: ``pass (N)`` expectations or ``FAIL: ...``."""
    hops = sorted(
        {r.get("hop", "?") for r in inp.validation},
        key=lambda h: (HOP_ORDER.index(h) if h in HOP_ORDER else len(HOP_ORDER), h),
    )
    table: dict[str, dict[str, Any]] = {}
    for rep in inp.validation:
        results = rep.get("results", [])
        failures = [
            f"{r.get('suite')}: {f.get('expectation')}"
            for r in results
            for f in r.get("failures", [])
        ]
        n = sum(r.get("expectations_evaluated", 0) for r in results)
        cell = (
            f"pass ({n})"
            if rep.get("success") and not failures
            else "FAIL: " + "; ".join(failures[:2]) + (" …" if len(failures) > 2 else "")
        )
        row = table.setdefault(str(rep.get("corpus")), {"corpus": rep.get("corpus")})
        row[rep.get("hop", "?")] = cell
    return [
        {"corpus": row["corpus"], **{h: row.get(h, "") for h in hops}}
        for _, row in sorted(table.items())
    ]


def clean_rows(inp: Inputs) -> list[dict[str, Any]]:
    """Rows in/out of the clean hop per corpus, with the drop reasons summed over parts."""
    rows = []
    for corpus, rep in inp.clean.items():
        reasons: Counter[str] = Counter()
        for part in (rep.get("parts") or {}).values():
            if isinstance(part, dict):
                reasons.update(
                    {
                        k: v
                        for k, v in (part.get("dropped") or {}).items()
                        if isinstance(v, (int, float))
                    }
                )
        rows.append(
            {
                "corpus": corpus,
                "rows_in": rep.get("rows_in"),
                "rows_out": rep.get("rows_out"),
                "dropped_fraction": rep.get("dropped_fraction"),
                "dropped": ", ".join(f"{k} {v}" for k, v in reasons.most_common()),
            }
        )
    return rows


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

MODEL_COLS = [
    "model",
    "task",
    "corpus",
    "family",
    "metric",
    "better",
    "test",
    "test_loss",
    "validation",
    "test_extra",
    "n_test",
    "epochs",
    "device",
]


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
        "validation": validation_rows(inp),
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
