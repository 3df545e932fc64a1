"""What the page tests share: a small DOM query over ``lxml.html`` and the pages' fixture
data (model outputs for the report, a finished search, a retrain judgement), written to a
tmp dir with no training and no DVC run."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import lxml.html
import numpy as np
import pytest

from pipelines import live as L
from pipelines.config import Layout
from pipelines.flows.evaluate import record_path
from pipelines.ops import judgement as J


def write_run(
    directory: Path,
    record: dict[str, Any],
    history: list[dict[str, Any]],
    config: dict[str, Any] | None = None,
) -> None:
    """A whole run's DVCLive directory from a flat record (``live.flatten``'s shape) and its
    per-epoch rows, written with the same DVCLive calls as training, so ``train_metrics`` and
    ``history`` read back what was given."""
    columns = [c for c in (history[0] if history else {}) if c != "epoch"]
    live = L.open_live(directory, resume=False)
    L.log_params(live, config or {}, {k: record[k] for k in L.RUN_PARAMS if k in record})
    L.relog(live, history, columns)
    saved = {
        k: v
        for k, v in record.items()
        if k in ("train_loss", "val_loss") or (k.startswith("val_") and not isinstance(v, str))
    }
    L.finish(live, {**{k: record[k] for k in L.RUN_METRICS if k in record}, "saved": saved})


# --- querying a page ----------------------------------------------------------------------


def dom(path_or_text: Path | str) -> lxml.html.HtmlElement:
    """The page's ``<html>`` element."""
    text = path_or_text.read_text() if isinstance(path_or_text, Path) else path_or_text
    return lxml.html.fromstring(text)


def find_all(node: lxml.html.HtmlElement, tag: str, **attrs: str) -> list[lxml.html.HtmlElement]:
    """``tag`` elements under ``node`` with each attribute (``class_`` for ``class``) equal to
    the value or holding it as one of its space-separated words."""
    return [
        n
        for n in node.iter(tag)
        if all(v in (n.get(k.rstrip("_")) or "").split() for k, v in attrs.items())
    ]


def find(node: lxml.html.HtmlElement, tag: str, **attrs: str) -> lxml.html.HtmlElement | None:
    return next(iter(find_all(node, tag, **attrs)), None)


def section(root: lxml.html.HtmlElement, heading_id: str) -> list[lxml.html.HtmlElement]:
    """The elements after the ``<h2 id=heading_id>`` up to the next ``<h2>``."""
    out, inside = [], False
    for node in root.find("body"):
        if node.tag == "h2":
            if inside:
                break
            inside = node.get("id") == heading_id
        elif inside and isinstance(node.tag, str):  # not a comment
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
        write_run(
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
    write_run(
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
