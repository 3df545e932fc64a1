"""What training (validation each epoch) and evaluation share to score a model the same way:
batched prediction in eval mode, mixed precision, and which way a metric is better.

The losses and metrics of each task are the task's own (:mod:`pipelines.tasks`: e.g.
``tasks.get("classify").metrics(spec, out, y, x)``).
"""

from __future__ import annotations

import contextlib

import torch


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better."""
    return metric.removeprefix("val_") not in ("rmse", "perplexity", "loss", "mse")


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` on CUDA when a low-precision dtype is chosen, else a no-op."""
    if dtype is None or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=dtype)


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    x: torch.Tensor,
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Model outputs (float32, on CPU) for all of ``x``, in order, in eval mode."""
    was_training = model.training
    model.eval()
    outs = []
    try:
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(device, non_blocking=True)
            with autocast(device, amp_dtype):
                outs.append(model(xb).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)
