"""Evaluate a trained model on the test (and validation) split — the ``evaluate`` stage.

    python -m pipelines.flows.evaluate mnist_cnn

Reads ``models/<model>/model.pt`` (weights + config + spec) and ``data/05_tokens/<corpus>/``;
writes ``metrics/<model>.json`` (``{"test": {...}, "validation": {...}}``, metrics per task as
in :mod:`pipelines.metrics.scoring`) and ``plots/<model>/confusion.csv`` (``actual,predicted``: one
row per test example for classifiers of up to 20 classes, only the header otherwise, so the
plot DVC declares always exists).

Text models (``lm``, ``translate``, ``dialogue``; see :mod:`pipelines.text`) are scored on
their own terms — perplexity beside an n-gram or unigram baseline, sacrebleu BLEU/chrF,
distinct-n — and also write ``reports/samples/<model>.json`` (generations, translations,
replies) for the report; every other model writes it with no rows, so the DVC output exists.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

import rnnflow  # noqa: F401,I001  first: offline/telemetry env before Prefect reads it
import numpy as np
import torch
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from pipelines import data as D
from pipelines import device as dev
from pipelines.metrics import scoring
from pipelines.config import EvaluateConfig, Layout, ModelConfig
from pipelines.models import TEXT_TASKS, build_model
from pipelines.outputs import write_atomic
from rnnflow.config import load_params, parse
from rnnflow.io import write_json

SPLITS = ("test", "validation")


def load_trained(path: Path, device: torch.device | str = "cpu",
                 ) -> tuple[torch.nn.Module, ModelConfig, dict]:
    """The model saved by ``train`` (in eval mode), its config and its corpus spec."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    cfg = ModelConfig.model_validate(saved["config"])
    model = build_model(cfg.family, cfg, saved["spec"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), cfg, saved["spec"]


def score(model: torch.nn.Module, directory: Path, split: str, batch_size: int,
          device: torch.device, amp_dtype: torch.dtype | None = None,
          ) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """Metrics of one split, plus its predictions and targets (for the confusion file)."""
    x, y, spec = D.load_split(directory, split)
    out = scoring.predict(model, x, batch_size, device, amp_dtype)
    return scoring.metrics(spec, out, y, x), scoring.predictions(spec, out), y


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
def score_splits(model: torch.nn.Module, directory: Path, batch_size: int, device: str,
                 amp: bool) -> dict[str, tuple[dict[str, Any], torch.Tensor, torch.Tensor]]:
    """Every split's metrics and predictions (one task: the model is already in memory)."""
    device_ = torch.device(device)
    amp_dtype = dev.amp_dtype(device_, amp)
    return {s: score(model, directory, s, batch_size, device_, amp_dtype) for s in SPLITS}


@task(cache_policy=NO_CACHE)
def write_outputs(layout: Layout, name: str, spec: dict, ecfg: EvaluateConfig,
                  scored: dict[str, tuple[dict[str, Any], torch.Tensor, torch.Tensor]]
                  ) -> dict[str, Any]:
    metrics = {"model": name, **{s: m for s, (m, _, _) in scored.items()}}
    write_json(layout.metrics(name), metrics)
    # Always written, so DVC finds its declared plot; rows only where a confusion matrix reads.
    _, pred, actual = scored["test"]
    if not (spec["task"] == "classify" and spec["num_classes"] <= ecfg.confusion_max_classes):
        pred = actual = torch.empty(0, dtype=torch.int64)
    write_confusion(layout.confusion(name), actual, pred)
    return metrics


@task(cache_policy=NO_CACHE)
def score_text(path: Path, directory: Path, batch_size: int, device: str, amp: bool,
               ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A text model's metrics and sample outputs (one task: decoding dominates)."""
    from pipelines import text

    device_ = torch.device(device)
    bundle = text.load_bundle(path, device_)
    return text.evaluate(bundle, directory, device_, dev.amp_dtype(device_, amp), batch_size)


def write_samples(layout: Layout, name: str, task_name: str, rows: list[dict[str, Any]]) -> None:
    write_json(layout.samples(name), {"model": name, "task": task_name, "rows": rows})


@task(cache_policy=NO_CACHE)
def write_text_outputs(layout: Layout, name: str, spec: dict, metrics: dict[str, Any],
                       samples: list[dict[str, Any]]) -> dict[str, Any]:
    metrics = {"model": name, "task": spec["task"], **metrics}
    write_json(layout.metrics(name), metrics)
    write_samples(layout, name, spec["task"], samples)
    empty = torch.empty(0, dtype=torch.int64)
    write_confusion(layout.confusion(name), empty, empty)
    return metrics


@flow(name="evaluate")
def evaluate(model: str, params_path: str = "params.yaml", root: str | None = None,
             ) -> dict[str, Any]:
    """Score ``model`` on the test and validation splits of its corpus."""
    layout = Layout(Path(root)) if root else Layout()
    ecfg = parse(EvaluateConfig, load_params(layout.params(params_path)), "evaluate")
    device = dev.resolve(ecfg.device)
    net, cfg, spec = load_model(layout.model(model), str(device))
    if spec["task"] in TEXT_TASKS:
        metrics, samples = score_text(layout.model(model), layout.tokens(cfg.corpus),
                                      ecfg.batch_size, str(device), ecfg.amp)
        return write_text_outputs(layout, model, spec, metrics, samples)
    scored = score_splits(net, layout.tokens(cfg.corpus), ecfg.batch_size, str(device),
                          ecfg.amp)
    out = write_outputs(layout, model, spec, ecfg, scored)
    write_samples(layout, model, spec["task"], [])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.flows.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model name: models/<model>/model.pt must exist")
    parser.add_argument("--params", default="params.yaml",
                        help="params file, relative to the root (default: %(default)s)")
    parser.add_argument("--root", default=None, help="project root (default: this checkout)")
    args = parser.parse_args(argv)
    metrics = evaluate(args.model, args.params, args.root)
    print({k: v for k, v in metrics["test"].items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
