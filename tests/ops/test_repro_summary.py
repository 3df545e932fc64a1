"""The ``repro`` flow's artifact without a DVC run: it lists only numeric, non-timing metrics
as changed, and counts a stage DVC restored from its run cache as restored.

The flow's body is called with ``.fn`` (no Prefect engine); ``dvc repro`` and
``dvc metrics diff`` are replaced by stand-ins through monkeypatch.
"""

from __future__ import annotations

import pytest

from pipelines.ops import repro as R
from pipelines.ops import workspace as W

DIFF = {  # `dvc metrics diff --json` after a retrain of mnist_logreg on another device
    "metrics/mnist_logreg.json": {
        "test.accuracy": {"old": 0.81, "new": 0.84, "diff": 0.03},
        "test.loss": {"old": 0.6, "new": 0.6, "diff": 0},
        "model": {"old": "mnist_logreg", "new": "mnist_logreg_v2"},
        "seconds": {"old": 1.5, "new": 2.25, "diff": 0.75},
    },
    "metrics/mnist_logreg_train.json": {
        "val_accuracy": {"old": 0.8, "new": 0.83, "diff": 0.03},
        "device": {"old": "cpu", "new": "cuda"},
        "torch": {"old": "2.4.0", "new": "2.5.1"},
        "keep": {"old": "best", "new": "last"},
        "wall_seconds": {"old": 3.0, "new": 4.0, "diff": 1.0},
        "run_seconds": {"old": 3.5, "new": 4.5, "diff": 1.0},
        "train.time": {"old": 10, "new": 12, "diff": 2},
        "wall": {"old": 10, "new": 12, "diff": 2},
        "epochs": {"old": 3, "new": 5, "diff": 2},
        "amp": {"old": False, "new": True},
    },
}


def test_metrics_diff_lists_only_numeric_non_timing_metrics():
    rows = R.metrics_diff_rows(DIFF)
    assert [(r["file"], r["metric"]) for r in rows] == [
        ("metrics/mnist_logreg.json", "test.accuracy"),
        ("metrics/mnist_logreg_train.json", "epochs"),
        ("metrics/mnist_logreg_train.json", "val_accuracy"),
    ]
    assert rows[0] == {
        "file": "metrics/mnist_logreg.json",
        "metric": "test.accuracy",
        "old": 0.81,
        "new": 0.84,
        "change": 0.03,
    }


def test_a_metric_that_appears_or_disappears_is_listed():
    rows = R.metrics_diff_rows({"m.json": {"test.f1": {"new": 0.5}, "gone": {"old": 2}}})
    assert [r["metric"] for r in rows] == ["gone", "test.f1"]


@pytest.mark.parametrize(
    "key, timing",
    [
        ("seconds", True),
        ("wall_seconds", True),
        ("run_seconds", True),
        ("train.time", True),
        ("wall", True),
        ("epoch_time", True),
        ("wall_s", True),
        ("test.accuracy", False),
        ("val_loss", False),
        ("loss", False),
        ("epochs", False),
        ("timestamps_seen", False),
    ],
)
def test_timing_keys(key, timing):
    assert R.is_timing(key) is timing


LINES = [
    "Stage 'fetch@mnist' didn't change, skipping",
    "Stage 'clean@mnist' is cached - skipping run, checking out outputs",
    "Stage 'format@mnist' is cached - skipping run, checking out outputs",
    "Running stage 'train@mnist_logreg':",
    "> python -m pipelines.flows.train mnist_logreg",
]


def test_summary_counts_stages_restored_from_the_run_cache():
    run = W.Run(["dvc", "repro"], 0, LINES, 3.0)
    assert R.restored(run) == ["clean@mnist", "format@mnist"]
    md = R.summary_markdown([], {}, run, [], None)
    assert "1 stage(s) ran, 2 restored from the run cache, 1 up to date" in md
    assert "| clean@mnist |" in md and "| format@mnist |" in md


def test_repro_flow_reports_restored_and_filtered_metrics(tmp_path, monkeypatch):
    published = []
    monkeypatch.setattr(R, "run_dvc", lambda *a: W.Run(["dvc", "repro"], 0, LINES, 3.0))
    monkeypatch.setattr(W, "dvc_json", lambda root, *args: DIFF)
    monkeypatch.setattr(W, "publish_markdown", lambda md, *a, **k: published.append(md))
    out = R.repro.fn(root=str(tmp_path))
    assert out["ran"] == ["train@mnist_logreg"]
    assert out["restored"] == ["clean@mnist", "format@mnist"]
    assert out["skipped"] == ["fetch@mnist"]
    assert out["metrics_changed"] == 3
    md = published[0]
    for text in ("| device |", "| torch |", "| model |", "| keep |", "seconds |"):
        assert text not in md
    assert "| test.accuracy |" in md
