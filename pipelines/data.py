"""What every task's data shares: reading a corpus ``spec.json``, the identity of its training
files, fingerprints, and the seeded batching every family trains with.

Batching is an index permutation drawn from a ``torch.Generator`` seeded with ``(seed, epoch)``,
so epoch *k* sees the same order whether or not training was interrupted before it.

Nothing here knows a task: the tensor format lives in :mod:`pipelines.tensor`, the text
format in :mod:`pipelines.text.data`, and a corpus is loaded by its task
(:func:`pipelines.tasks.load_corpus`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from rnnflow.io import parquet_rows, read_json

SPLITS = ("train", "validation", "test")


def read_spec(directory: Path | str) -> dict[str, Any]:
    """The corpus ``spec.json`` as stored (it must name its ``task``); the task's own checks
    are :func:`pipelines.tasks.read_spec`."""
    path = Path(directory) / "spec.json"
    spec = read_json(path)
    if "task" not in spec:
        raise ValueError(f"{path}: missing keys ['task']")
    return spec


def data_identity(directory: Path | str) -> list[dict[str, Any]]:
    """Sizes and row counts of the training files (cheap: file stat + Parquet footer)."""
    directory = Path(directory)
    train = directory / "train.parquet"
    out = [
        {"file": "train.parquet", "bytes": train.stat().st_size, "rows": parquet_rows(train)},
        {"file": "spec.json", "bytes": (directory / "spec.json").stat().st_size},
    ]
    mono = directory / "monolingual.parquet"  # text: lines a decoder may pretrain on
    if mono.exists():
        out.append({"file": mono.name, "bytes": mono.stat().st_size, "rows": parquet_rows(mono)})
    return out


def fingerprint(*parts: Any) -> str:
    """sha256 of the canonical JSON of ``parts``."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# --- batching ---------------------------------------------------------------------------


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator that depends only on ``(seed, epoch)``: the epoch's shuffle and augments."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def batches(
    n: int,
    batch_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Iterator[torch.Tensor]:
    """Index batches over ``range(n)``: shuffled by ``generator``, in order without one."""
    order = (
        torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    ).to(device)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def num_batches(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size
