"""train → evaluate → report as real Prefect flows (one temporary API server) on tiny data."""

from __future__ import annotations

import csv
import json

import pytest

from pipelines import live as L
from tests import synthetic

PARAMS = """\
train:
  device: cpu
  threads: 1
  models:
    tiny_cnn: {corpus: digits, family: cnn, epochs: 2, batch_size: 64, lr: 0.01, seed: 0,
               augment: true}
    tiny_series: {corpus: series, family: rnn_regressor, cell: gru, hidden: 8, epochs: 3,
                  batch_size: 32, lr: 0.01, seed: 0}
evaluate:
  batch_size: 256
report:
  title: tiny report
"""


def test_cli_help(capsys):
    from pipelines.flows import evaluate, report, train

    for mod in (train, evaluate, report):
        with pytest.raises(SystemExit) as exc:
            mod.main(["--help"])
        assert exc.value.code == 0
    assert "model name" in capsys.readouterr().out


@pytest.mark.slow
def test_train_evaluate_report_flows(tmp_path):
    from prefect.testing.utilities import prefect_test_harness

    from pipelines.flows.evaluate import evaluate
    from pipelines.flows.report import report
    from pipelines.flows.train import train

    root = tmp_path
    (root / "params.yaml").write_text(PARAMS)
    synthetic.write(root / "data/05_tokens/digits", "images", n=500)
    synthetic.write(root / "data/05_tokens/series", "timeseries", n=400)
    with prefect_test_harness(server_startup_timeout=120):
        trained = train("tiny_cnn", root=str(root))
        train("tiny_series", root=str(root))
        evaluated = evaluate("tiny_cnn", root=str(root))
        evaluate("tiny_series", root=str(root))
        index = report(root=str(root))

    # train
    assert (root / "models/tiny_cnn/model.pt").stat().st_size > 0
    assert (root / "checkpoints/tiny_cnn/last.pt").exists()
    # DVCLive: one curve per metric (step = epoch), the summary, the config and run facts
    live = root / "dvclive/tiny_cnn"
    curves = sorted(p.name for p in (live / "plots/metrics").iterdir())
    assert curves == ["train_loss.tsv", "val_accuracy.tsv", "val_loss.tsv"]
    with open(live / "plots/metrics/val_loss.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [r["step"] for r in rows] == ["1", "2"]
    summary = json.loads((live / "metrics.json").read_text())
    assert summary["step"] == 2 and summary["epochs"] == 2 and summary["n_train"] == 300
    assert summary["saved_epoch"] in (1, 2) and 0 <= summary["saved"]["val_accuracy"] <= 1
    assert "seconds" not in summary and not (root / "metrics/tiny_cnn_train.json").exists()
    assert not (root / "plots/tiny_cnn/history.csv").exists()
    tm = L.train_metrics(live)
    timings = {k: v for k, v in trained.items() if k.endswith("seconds")}  # beside the record
    assert timings["wall_seconds"] > 0 and tm == {k: trained[k] for k in trained.keys() - timings}
    assert tm["epochs"] == 2 and tm["device"] == "cpu" and tm["n_train"] == 300
    assert 0 <= tm["val_accuracy"] <= 1
    assert [r["epoch"] for r in L.history(live)] == [1, 2]

    # evaluate
    em = json.loads((root / "reports/evaluate/tiny_cnn.json").read_text())
    assert em == evaluated
    assert em["test"]["n"] == 100 and 0.5 < em["test"]["accuracy"] <= 1
    assert 0 <= em["validation"]["accuracy"] <= 1
    # the DVC metric holds the headline only, so `dvc metrics show` is one short row
    assert json.loads((root / "metrics/tiny_cnn.json").read_text()) == {
        split: {"accuracy": em[split]["accuracy"]} for split in ("test", "validation")
    }
    with open(root / "plots/tiny_cnn/confusion.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 100 and set(rows[0]) == {"actual", "predicted"}
    samples = json.loads((root / "reports/samples/tiny_cnn.json").read_text())
    assert samples["task"] == "classify" and [r["index"] for r in samples["rows"]] == list(
        range(12)
    )
    assert {"actual", "predicted", "pixels", "png"} <= set(samples["rows"][0])
    series = json.loads((root / "reports/evaluate/tiny_series.json").read_text())["test"]
    assert series["rmse"] > 0 and series["baseline_rmse"] > 0
    assert (root / "plots/tiny_series/confusion.csv").read_text() == "actual,predicted\n"

    # report
    assert index == str(root / "reports/index.html")
    page = (root / "reports/index.html").read_text()
    assert "tiny report" in page and "tiny_cnn" in page and "tiny_series" in page
    assert "Great Expectations" in page and "http" not in page  # nothing remote
    md = (root / "reports/index.md").read_text()
    # the page is made from DVC outputs only: a hop's local validation results, which are
    # none, would make it differ from machine to machine
    stray = root / "reports/validation/tokenize/digits.json"
    stray.parent.mkdir(parents=True)
    stray.write_text(json.dumps({"hop": "tokenize", "corpus": "digits", "success": False}))
    with prefect_test_harness(server_startup_timeout=120):
        report(root=str(root))
    assert (root / "reports/index.md").read_text() == md
    for img in ("tiny_cnn_history", "tiny_cnn_confusion", "tiny_series_history"):
        assert f"img/{img}.png" in md + page  # the HTML may carry it inline (data URI)
        assert (root / f"reports/img/{img}.png").read_bytes()[:4] == b"\x89PNG"
    assert "| tiny_cnn |" in md
