"""Evaluate a trained model on the test (and validation) split — the ``evaluate`` stage.

    rnnflow evaluate mnist_cnn     # or: python -m pipelines.flows.evaluate mnist_cnn

Reads ``models/<model>/model.pt`` (weights + config + spec) and ``data/05_tokens/<corpus>/``;
writes ``reports/evaluate/<model>.json`` (``{"test": {...}, "validation": {...}}``: every
metric of the model's task, in its kind's package, with its baselines and settings),
``metrics/<model>.json`` (the DVC metric: the task's headline number per split, nothing else,
so ``dvc metrics show`` is one short row per model), ``plots/<model>/confusion.csv``
(``actual,predicted``: one row per test example for classifiers of up to
``evaluate.confusion_max_classes`` classes, only the header otherwise, so the plot DVC declares
always exists) and ``reports/samples/<model>.json`` (sample rows for the report: the first test
predictions of the tensor models — with the pixels of image corpora —, generations,
translations, replies).

Each task scores on its own terms (``tasks.get(spec["task"]).evaluate``): accuracy, RMSE
beside a last-value baseline, perplexity beside an n-gram or unigram baseline, sacrebleu
BLEU/chrF, distinct-n.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import rnnflow  # noqa: F401,I001  first: offline/telemetry env before Prefect reads it
from pipelines import device as dev
from pipelines import tasks
from pipelines.config import EvaluateConfig, Layout, ModelConfig, model_config
from pipelines.integrity import verify
from pipelines.lineage import artifact_key, publish_table, stage_main
from pipelines.models import build_model
from pipelines.outputs import write_atomic, write_metrics
from rnnflow.config import load_params, parse
from rnnflow.io import write_json

if TYPE_CHECKING:
    from pipelines.tensor import TensorTask

SPLITS = ("test", "validation")
SAMPLE_ROWS = 5  # sample rows a text model shows in the UI (the report shows them all)


def load_trained(
    path: Path,
    device: torch.device | str = "cpu",
) -> tuple[torch.nn.Module, ModelConfig, dict]:
    """The model saved by ``train`` (in eval mode), its config and its corpus spec."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    cfg = model_config(saved["config"], name=saved.get("name", ""))
    model = build_model(cfg.family, cfg, saved["spec"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), cfg, saved["spec"]


def score(
    model: torch.nn.Module,
    directory: Path,
    split: str,
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """Metrics of one split of a fixed-shape corpus, plus its predictions and targets."""
    # not an assert: a text corpus (rescoring a text champion) fails on .score, as it always did
    task_ = cast("TensorTask", tasks.get(tasks.read_spec(directory)["task"]))
    return task_.score(model, directory, split, batch_size, device, amp_dtype)


def write_confusion(path: Path, actual: torch.Tensor, predicted: torch.Tensor) -> None:
    """``actual,predicted`` rows (DVC's confusion template reads this)."""
    buf = io.StringIO()
    buf.write("actual,predicted\n")
    np.savetxt(buf, torch.stack([actual, predicted], 1).numpy(), fmt="%d", delimiter=",")
    write_atomic(path, buf.getvalue().encode())


@task(cache_policy=NO_CACHE)
def load_model(path: Path, device: str) -> tuple[torch.nn.Module, ModelConfig, dict]:
    return load_trained(path, device)


@task(cache_policy=NO_CACHE)
def score_model(
    path: Path,
    model: torch.nn.Module,
    spec: dict,
    directory: Path,
    ecfg: EvaluateConfig,
    device: str,
    name: str = "",
) -> tasks.Evaluation:
    """Every split's metrics, the sample rows and the confusion pairs, as the model's task
    scores them (one task: the model is already in memory, decoding dominates); a text model
    decodes as ``evaluate.models.<name>`` says."""
    return tasks.for_spec(spec).evaluate(
        path,
        model,
        spec,
        directory,
        ecfg.batch_size,
        device,
        ecfg.amp,
        ecfg.confusion_max_classes,
        ecfg.decode(name),
    )


def record_path(layout: Layout, name: str) -> Path:
    """Everything evaluate measured for ``name``: ``reports/evaluate/<name>.json``."""
    return layout.reports / "evaluate" / layout.metrics(name).name


def headline(metrics: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """The DVC metrics file's body: per split, the task's headline metric only."""
    head = tasks.for_spec(spec).headline
    return {s: {head: metrics[s][head]} for s in SPLITS if head in metrics.get(s, {})}


def write_samples(layout: Layout, name: str, task_name: str, rows: list[dict[str, Any]]) -> None:
    write_json(layout.samples(name), {"model": name, "task": task_name, "rows": rows})


@task(cache_policy=NO_CACHE)
def write_outputs(
    layout: Layout,
    name: str,
    spec: dict,
    result: tasks.Evaluation,
) -> dict[str, Any]:
    """The record, ``metrics/<model>.json``, the confusion file (always written, so DVC finds
    its declared plot) and the sample rows."""
    metrics = {"model": name, **result.metrics}
    write_metrics(record_path(layout, name), metrics)
    write_metrics(layout.metrics(name), headline(result.metrics, spec))
    assert result.confusion is not None  # every task's evaluate gives the pairs (maybe empty)
    actual, pred = result.confusion
    write_confusion(layout.confusion(name), actual, pred)
    write_samples(layout, name, spec["task"], result.samples)
    return metrics


@flow(name="evaluate")
def evaluate(
    model: str,
    params_path: str = "params.yaml",
    root: str | None = None,
) -> dict[str, Any]:
    """Score ``model`` on the test and validation splits of its corpus."""
    layout = Layout(Path(root)) if root else Layout()
    ecfg = parse(EvaluateConfig, load_params(layout.params(params_path)), "evaluate")
    device = dev.resolve(ecfg.device)
    verify(layout.model(model), layout.root)
    net, cfg, spec = load_model(layout.model(model), str(device))
    verify(layout.tokens(cfg.corpus), layout.root)
    result = score_model(
        layout.model(model), net, spec, layout.tokens(cfg.corpus), ecfg, str(device), model
    )
    metrics = write_outputs(layout, model, spec, result)
    publish_run(model, metrics, result.samples if tasks.for_spec(spec).text else [])
    return metrics


def metric_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per numeric metric (dotted names for nested ones), test beside validation."""

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, float]:
        out: dict[str, float] = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"{prefix}{k}"] = v
        return out

    test, val = flat(metrics.get("test", {})), flat(metrics.get("validation", {}))
    return [{"metric": k, "test": test.get(k), "validation": val.get(k)} for k in test | val]


def publish_run(name: str, metrics: dict[str, Any], samples: list[dict[str, Any]]) -> None:
    """The run in the Prefect UI: its metrics, and the first of ``samples`` (text models')."""
    publish_table(metric_rows(metrics), artifact_key("evaluate", name), f"evaluate {name}")
    text = [{k: v for k, v in row.items() if isinstance(v, str)} for row in samples[:SAMPLE_ROWS]]
    if text:
        publish_table(text, artifact_key("evaluate", name, "samples"), f"evaluate {name}: samples")


def main(argv: list[str] | None = None) -> int:
    metrics = stage_main(evaluate, __doc__, argv)
    print({k: v for k, v in metrics["test"].items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
