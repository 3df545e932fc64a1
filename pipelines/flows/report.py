"""Gather every model's metrics, curves and confusion matrix and the data reports into one page.

    python -m pipelines.flows.report

Reads ``metrics/*.json``, ``plots/*/history.csv``, ``plots/*/confusion.csv``,
``reports/samples/<model>.json`` (generations, translations, replies of the text models),
``reports/validation/<hop>/<corpus>.json`` and ``reports/clean/<corpus>.json`` (whichever
exist); writes ``reports/index.md``, ``reports/index.html`` (self-contained: inline CSS,
relative PNGs, no CDN — ``dvc plots`` HTML is blank offline) and ``reports/img/*.png``.
Inside a flow run it also publishes the report and the metrics table as Prefect artifacts;
the files stay the source of truth.
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rnnflow  # noqa: F401,I001  first: offline/telemetry env before Prefect reads it
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from pipelines.config import Layout, ReportConfig
from pipelines.outputs import logger, write_atomic
from rnnflow.config import load_params, parse
from rnnflow.io import read_json

# Extra test metrics shown beside the headline one, per task (dotted: nested keys).
EXTRAS = ("parity_accuracy", "sequence_accuracy", "baseline_rmse",
          "ngram_perplexity", "unigram_perplexity", "distinct_1", "distinct_2",
          "chrf", "bleu_greedy", "tatoeba.bleu", "tatoeba.chrf", "tatoeba.bleu_multiref")
# The headline test metric: the first of these the model's test metrics have.
HEADLINES = ("bleu", "perplexity", "rmse", "accuracy")


def _get(d: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


@dataclass
class Inputs:
    """Everything the report shows, read from disk."""

    train: dict[str, dict[str, Any]] = field(default_factory=dict)  # model → <model>_train.json
    evals: dict[str, dict[str, Any]] = field(default_factory=dict)  # model → <model>.json
    histories: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    confusions: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)  # text models' outputs
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
    for path in sorted((layout.root / "metrics").glob("*.json")):
        data = read_json(path)  # other stages' metrics files may sit here too: skip them
        if path.stem.endswith("_train") and isinstance(data, dict) and "epochs" in data:
            inp.train[path.stem.removesuffix("_train")] = data
        elif isinstance(data, dict) and isinstance(data.get("test"), dict):
            inp.evals[path.stem] = data
    for path in sorted((layout.root / "plots").glob("*/history.csv")):
        inp.histories[path.parent.name] = _csv(path)
    for path in sorted((layout.root / "plots").glob("*/confusion.csv")):
        inp.confusions[path.parent.name] = [(int(r["actual"]), int(r["predicted"]))
                                            for r in _csv(path)]
    for path in sorted((layout.reports / "samples").glob("*.json")):
        data = read_json(path)
        if isinstance(data, dict) and data.get("rows"):
            inp.samples[path.stem] = data
    for path in sorted((layout.reports / "validation").glob("*/*.json")):
        inp.validation.append(read_json(path))
    for path in sorted((layout.reports / "clean").glob("*.json")):
        inp.clean[path.stem] = read_json(path)
    return inp


# --- tables -----------------------------------------------------------------------------

def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def metrics_rows(inp: Inputs) -> list[dict[str, Any]]:
    """One row per model: test headline + extras, validation, training cost."""
    rows = []
    for name in inp.models:
        tr, ev = inp.train.get(name, {}), inp.evals.get(name, {})
        test, val = ev.get("test", {}), ev.get("validation", {})
        head = next((h for h in HEADLINES if h in test or f"val_{h}" in tr), "accuracy")
        extras = "; ".join(f"{k} {_fmt(_get(test, k))}" for k in EXTRAS
                           if _get(test, k) is not None and k != head)
        rows.append({
            "model": name, "corpus": tr.get("corpus", ""), "family": tr.get("family", ""),
            "metric": head, "test": test.get(head), "test_loss": test.get("loss"),
            "validation": val.get(head, tr.get(f"val_{head}")), "extra": extras,
            "n_test": test.get("n"), "epochs": tr.get("epochs"),
            "train_seconds": (f"{tr['wall_seconds']:.1f}" if tr.get("wall_seconds") is not None
                              else None),
            "device": tr.get("device", ""),
        })
    return rows


HOP_ORDER = ("fetch", "format", "clean", "sample", "tokenize")


def validation_rows(inp: Inputs) -> list[dict[str, Any]]:
    """One row per corpus, one column per hop: ``pass (N)`` expectations or ``FAIL: ...``."""
    hops = sorted({r.get("hop", "?") for r in inp.validation},
                  key=lambda h: (HOP_ORDER.index(h) if h in HOP_ORDER else len(HOP_ORDER), h))
    table: dict[str, dict[str, Any]] = {}
    for rep in inp.validation:
        results = rep.get("results", [])
        failures = [f"{r.get('suite')}: {f.get('expectation')}"
                    for r in results for f in r.get("failures", [])]
        n = sum(r.get("expectations_evaluated", 0) for r in results)
        cell = (f"pass ({n})" if rep.get("success") and not failures
                else "FAIL: " + "; ".join(failures[:2]) + (" …" if len(failures) > 2 else ""))
        row = table.setdefault(str(rep.get("corpus")), {"corpus": rep.get("corpus")})
        row[rep.get("hop", "?")] = cell
    return [{"corpus": row["corpus"], **{h: row.get(h, "") for h in hops}}
            for _, row in sorted(table.items())]


def clean_rows(inp: Inputs) -> list[dict[str, Any]]:
    """Rows in/out of the clean hop per corpus, with the drop reasons summed over parts."""
    rows = []
    for corpus, rep in inp.clean.items():
        reasons: Counter[str] = Counter()
        for part in (rep.get("parts") or {}).values():
            if isinstance(part, dict):
                reasons.update({k: v for k, v in (part.get("dropped") or {}).items()
                                if isinstance(v, (int, float))})
        rows.append({"corpus": corpus, "rows_in": rep.get("rows_in"),
                     "rows_out": rep.get("rows_out"),
                     "dropped_fraction": rep.get("dropped_fraction"),
                     "dropped": ", ".join(f"{k} {v}" for k, v in reasons.most_common())})
    return rows


# --- images -----------------------------------------------------------------------------

def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight",
                metadata={"Software": None})  # no version stamp: same input, same bytes
    plt.close(fig)
    return buf.getvalue()


def history_png(name: str, rows: list[dict[str, str]]) -> bytes:
    """Train/validation loss and the validation metric per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [int(r["epoch"]) for r in rows]
    key = next(k for k in rows[0] if k.startswith("val_") and k != "val_loss")
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(epochs, [float(r["train_loss"]) for r in rows], "o-", label="train loss")
    ax.plot(epochs, [float(r["val_loss"]) for r in rows], "s-", label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2 = ax.twinx()
    ax2.plot(epochs, [float(r[key]) for r in rows], "^--", color="tab:green", label=key)
    ax2.set_ylabel(key.removeprefix("val_"))
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, ncol=3, frameon=False,
              loc="upper center", bbox_to_anchor=(0.5, -0.2))
    ax.set_title(name)
    return _png(fig)


def confusion_png(name: str, pairs: list[tuple[int, int]]) -> bytes:
    """Counts of (actual, predicted) as a heatmap, annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    k = max(max(a, p) for a, p in pairs) + 1
    mat = np.zeros((k, k), dtype=int)
    np.add.at(mat, tuple(np.array(pairs).T), 1)
    fig, ax = plt.subplots(figsize=(0.45 * k + 2, 0.45 * k + 1.5))
    im = ax.imshow(np.log1p(mat), cmap="Blues")
    for (i, j), v in np.ndenumerate(mat):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                    color="white" if np.log1p(v) > np.log1p(mat.max()) / 2 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    acc = np.trace(mat) / max(mat.sum(), 1)
    ax.set_title(f"{name}: test confusion (accuracy {acc:.4f})")
    fig.colorbar(im, ax=ax, fraction=0.046, label="log(1 + count)")
    return _png(fig)


def render_images(inp: Inputs, img_dir: Path) -> dict[str, list[str]]:
    """Write the PNGs; returns model → image paths relative to ``reports/``."""
    img_dir.mkdir(parents=True, exist_ok=True)
    made: dict[str, list[str]] = {}
    for name, rows in inp.histories.items():
        if rows:
            write_atomic(img_dir / f"{name}_history.png", history_png(name, rows))
            made.setdefault(name, []).append(f"img/{name}_history.png")
    for name, pairs in inp.confusions.items():
        if pairs:
            write_atomic(img_dir / f"{name}_confusion.png", confusion_png(name, pairs))
            made.setdefault(name, []).append(f"img/{name}_confusion.png")
    keep = {Path(p).name for paths in made.values() for p in paths}
    for old in img_dir.glob("*.png"):  # images of models no longer there
        if old.name not in keep:
            old.unlink()
    return made


# --- documents --------------------------------------------------------------------------

def _md_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "_none_\n"
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_fmt(r[c]).replace("|", "\\|") for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _html_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            cls = ' class="bad"' if _fmt(r[c]).startswith("FAIL") else ""
            cells.append(f"<td{cls}>{html.escape(_fmt(r[c]))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:72rem;color:#222;padding:0 1rem}
h1{border-bottom:2px solid #ddd}h2{margin-top:2rem}
table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}
th{background:#f3f3f3}tr:nth-child(even){background:#fafafa}td.bad{color:#b00;font-weight:bold}
figure{display:inline-block;margin:.5rem}img{max-width:100%}
"""


def sections(inp: Inputs, images: dict[str, list[str]]) -> list[tuple[str, list[dict], list[str]]]:
    """``(heading, table rows, images)`` in page order."""
    out = [("Models", metrics_rows(inp), [])]
    for name in sorted(images):
        out.append((f"Model {name}", [], images[name]))
    for name, data in sorted(inp.samples.items()):
        rows = [{k: " ".join(str(v).split()) for k, v in r.items()} for r in data["rows"]]
        out.append((f"Samples: {name} ({data.get('task', '')})", rows, []))
    out.append(("Data validation", validation_rows(inp), []))
    if inp.clean:
        out.append(("Cleaning", clean_rows(inp), []))
    return out


def to_markdown(title: str, secs: list[tuple[str, list[dict], list[str]]]) -> str:
    parts = [f"# {title}\n"]
    for heading, rows, imgs in secs:
        parts.append(f"## {heading}\n")
        if rows or not imgs:
            parts.append(_md_table(rows))
        parts += [f"![{Path(i).stem}]({i})\n" for i in imgs]
    return "\n".join(parts)


def to_html(title: str, secs: list[tuple[str, list[dict], list[str]]]) -> str:
    t = html.escape(title)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{t}</title>"
             f"<style>{CSS}</style></head><body><h1>{t}</h1>"]
    for heading, rows, imgs in secs:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if rows or not imgs:
            parts.append(_html_table(rows))
        parts += [f"<figure><img src='{html.escape(i)}' alt='{html.escape(Path(i).stem)}'>"
                  "</figure>" for i in imgs]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def build(layout: Layout, title: str) -> tuple[str, list[dict[str, Any]]]:
    """Write ``reports/index.{md,html}`` and the images; returns (markdown, metrics rows)."""
    inp = gather(layout)
    images = render_images(inp, layout.reports / "img")
    secs = sections(inp, images)
    md = to_markdown(title, secs)
    write_atomic(layout.reports / "index.md", md.encode())
    write_atomic(layout.reports / "index.html", to_html(title, secs).encode())
    return md, metrics_rows(inp)


@task(cache_policy=NO_CACHE)
def build_report(layout: Layout, title: str) -> tuple[str, list[dict[str, Any]]]:
    return build(layout, title)


@task(cache_policy=NO_CACHE)
def publish(markdown: str, rows: list[dict[str, Any]], title: str) -> None:
    """Prefect artifacts for the UI; a failure here never fails the report."""
    try:
        from prefect.artifacts import create_markdown_artifact, create_table_artifact

        create_markdown_artifact(markdown=markdown, key="rnnflow-report", description=title)
        create_table_artifact(table=[{k: _fmt(v) for k, v in r.items()} for r in rows],
                              key="rnnflow-metrics", description=f"{title}: metrics")
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
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.flows.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml",
                        help="params file, relative to the root (default: %(default)s)")
    parser.add_argument("--root", default=None, help="project root (default: this checkout)")
    args = parser.parse_args(argv)
    print(report(args.params, args.root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
