"""Small helpers every flow shares: atomic file writes and the run logger (no torch import)."""

from __future__ import annotations

import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Any


def logger(name: str = "pipelines") -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a flow/task run, a plain logger elsewhere (tests)."""
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:
        return logging.getLogger(name)


def write_atomic(path: Path, payload: bytes) -> None:
    """Write bytes to a temp file beside ``path``, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch(path: Path, obj: Any) -> None:
    """``torch.save`` atomically."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_atomic(path, buf.getvalue())
