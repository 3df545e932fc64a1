"""Small helpers every flow shares: atomic file writes and the run logger (no torch import)."""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path
from typing import Any

from rnnflow.io import write_bytes, write_json


def logger(name: str = "pipelines") -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a flow/task run, a plain logger elsewhere (tests)."""
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:
        return logging.getLogger(name)


def write_atomic(path: Path, payload: bytes) -> None:
    """Write bytes to a temp file beside ``path``, then rename over it (one writer for every
    output: :func:`rnnflow.io.write_bytes`, umask mode, errors name the file)."""
    write_bytes(path, payload)


def write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    """Write a metrics JSON file, refusing any non-finite number.

    ``Infinity``/``NaN`` are not JSON: DVC cannot read such a file, and a number like that
    is a broken model or a broken metric, never a result. The error names the file and the
    metric's key path.
    """
    bad = non_finite(metrics)
    if bad:
        raise ValueError(
            f"{path}: metric {bad[0]} is {bad[1]!r}, not a finite number: "
            "the model or its scoring is broken; nothing was written"
        )
    write_json(path, metrics)


def non_finite(obj: Any, where: str = "") -> tuple[str, float] | None:
    """The first ``(dotted.key, value)`` in ``obj`` that is a non-finite float, or None."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (where or "<value>", obj)
    if isinstance(obj, dict):
        items = list(obj.items())
    elif isinstance(obj, list):
        items = list(enumerate(obj))
    else:
        return None
    for key, value in items:
        found = non_finite(value, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def save_torch(path: Path, obj: Any) -> None:
    """``torch.save`` atomically."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_atomic(path, buf.getvalue())
