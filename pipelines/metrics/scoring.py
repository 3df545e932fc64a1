"""Losses and metrics per corpus task — shared by training (validation each epoch) and
evaluation, so both report the same numbers the same way.

- ``classify``: cross-entropy; accuracy (+ ``parity_accuracy`` when ``spec.derived == "parity"``:
  the model predicts the count of ones, parity is ``count % 2``).
- ``tag``: per-step cross-entropy; ``bit_accuracy`` (per step) and ``sequence_accuracy``
  (every step right). ``accuracy`` is the bit accuracy.
- ``regress``: MSE on normalised targets; ``mse``/``rmse`` in the data's own units (undoing
  ``y_mean``/``y_std``) beside the naive last-value baseline's ``baseline_rmse``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F


def loss(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training objective for a batch of model outputs."""
    if task == "classify":
        return F.cross_entropy(out.float(), y)
    if task == "tag":
        return F.cross_entropy(out.float().flatten(0, -2), y.flatten())
    if task == "regress":
        return F.mse_loss(out.float(), y)
    raise ValueError(f"unknown task {task!r}")


TEXT_TASKS = ("lm", "translate", "dialogue")


def headline(task: str) -> str:
    """The one validation number tracked per epoch: ``accuracy``, ``rmse`` or (text tasks)
    ``perplexity``."""
    if task in TEXT_TASKS:
        return "perplexity"
    return "rmse" if task == "regress" else "accuracy"


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better."""
    return metric.removeprefix("val_") not in ("rmse", "perplexity", "loss", "mse")


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` on CUDA when a low-precision dtype is chosen, else a no-op."""
    if dtype is None or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=dtype)


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int,
            device: torch.device, amp_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Model outputs (float32, on CPU) for all of ``x``, in order, in eval mode."""
    was_training = model.training
    model.eval()
    outs = []
    try:
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].to(device, non_blocking=True)
            with autocast(device, amp_dtype):
                outs.append(model(xb).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


def metrics(spec: dict[str, Any], out: torch.Tensor, y: torch.Tensor,
            x: torch.Tensor | None = None) -> dict[str, Any]:
    """All metrics of one split from its outputs ``out`` and targets ``y`` (CPU tensors)."""
    task = spec["task"]
    n = int(len(y))
    res: dict[str, Any] = {"n": n, "loss": float(loss(task, out, y)) if n else float("nan")}
    if task == "classify":
        pred = out.argmax(-1)
        res["accuracy"] = _mean(pred == y)
        if spec.get("derived") == "parity":
            res["parity_accuracy"] = _mean(pred % 2 == y % 2)
    elif task == "tag":
        right = out.argmax(-1) == y
        res["accuracy"] = res["bit_accuracy"] = _mean(right)
        res["sequence_accuracy"] = _mean(right.flatten(1).all(1))
    elif task == "regress":
        std = float(spec.get("y_std") or 1.0)
        mse = float(F.mse_loss(out, y)) * std**2 if n else float("nan")
        res["mse"], res["rmse"] = mse, mse**0.5
        if x is not None and n:
            # The naive forecast: the series' last observed value (x and y share normalisation).
            last = x.reshape(n, x.shape[1] if x.dim() > 1 else 1, -1)[:, -1, 0]
            res["baseline_rmse"] = float(F.mse_loss(last, y)) ** 0.5 * std
    else:
        raise ValueError(f"unknown task {task!r}")
    return res


def _mean(b: torch.Tensor) -> float:
    return float(b.float().mean()) if b.numel() else float("nan")


def predictions(spec: dict[str, Any], out: torch.Tensor) -> torch.Tensor:
    """Predicted classes (classify/tag) or de-normalised values (regress)."""
    if spec["task"] == "regress":
        return out * float(spec.get("y_std") or 1.0) + float(spec.get("y_mean") or 0.0)
    return out.argmax(-1)
