"""Token splits → tensors, and the batching every family trains with.

Reads the ``tokenize`` hop's contract: ``data/05_tokens/<corpus>/{train,validation,test}.parquet``
(``row_id``, ``x`` fixed-size list, ``y`` scalar or fixed-size list) plus ``spec.json``. Columns
are converted whole (Arrow → NumPy → torch), never example by example, in the spirit of
nanoGPT's memmapped token files.

Batching is an index permutation drawn from a ``torch.Generator`` seeded with ``(seed, epoch)``,
so epoch *k* sees the same order whether or not training was interrupted before it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from rnnflow.io import parquet_rows, read_json, read_table

SPLITS = ("train", "validation", "test")
TEXT_TASKS = ("lm", "translate", "dialogue")  # read by pipelines.text_data instead
TEXT_KEYS = {"lm": ("ids",), "translate": ("source", "target"), "dialogue": ("source", "target")}


def read_spec(directory: Path | str) -> dict[str, Any]:
    """The corpus ``spec.json``, with its required keys checked."""
    path = Path(directory) / "spec.json"
    spec = read_json(path)
    if spec.get("task") in TEXT_TASKS:  # the text contract: rnnflow/codec.py
        required = ("vocab_size", "specials", *TEXT_KEYS[spec["task"]])
        missing = [k for k in required if k not in spec]
        if missing:
            raise ValueError(f"{path}: missing keys {missing}")
        return spec
    missing = [k for k in ("task", "x_shape", "x_dtype", "y_shape") if k not in spec]
    if missing:
        raise ValueError(f"{path}: missing keys {missing}")
    if spec["task"] not in ("classify", "tag", "regress"):
        raise ValueError(f"{path}: unknown task {spec['task']!r}")
    if spec["task"] != "regress" and "num_classes" not in spec:
        raise ValueError(f"{path}: task {spec['task']!r} needs num_classes")
    return spec


def _values(col: pa.ChunkedArray | pa.Array, shape: list[int], path: Path) -> np.ndarray:
    """A fixed-size-list (or scalar) column as one ``(N, *shape)`` array, no Python loop."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    if pa.types.is_fixed_size_list(arr.type):
        flat = arr.flatten().to_numpy(zero_copy_only=False)  # flatten() honours slicing
    else:
        flat = arr.to_numpy(zero_copy_only=False)
    want = int(np.prod(shape)) if shape else 1
    if flat.size != n * want:
        raise ValueError(f"{path}: {flat.size} values for {n} rows of shape {shape}")
    return flat.reshape((n, *shape))


def features(raw: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """Stored values → model inputs (float32): ``/x_scale``, then ``(x - x_mean) / x_std``."""
    x = raw.astype(np.float32)
    if spec.get("x_scale"):
        x /= np.float32(spec["x_scale"])
    if spec.get("x_mean") is not None:
        x -= np.float32(spec["x_mean"])
    if spec.get("x_std"):
        x /= np.float32(spec["x_std"])
    return x


def background(spec: Mapping[str, Any]) -> float:
    """The model-input value of a stored 0 (MNIST's black background): the shift fill."""
    return float(features(np.zeros(1), spec)[0])


def load_split(directory: Path | str, split: str) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """``(x, y, spec)`` for one split: x float32 ``(N, *x_shape)``; y int64 labels
    (``(N,)`` or ``(N, *y_shape)``) or float32 targets for regression."""
    directory = Path(directory)
    spec = read_spec(directory)
    path = directory / f"{split}.parquet"
    table = read_table(path, columns=["x", "y"])
    x = features(_values(table.column("x"), list(spec["x_shape"]), path), spec)
    y = _values(table.column("y"), list(spec["y_shape"]), path)
    y = y.astype(np.float32 if spec["task"] == "regress" else np.int64)
    return torch.from_numpy(x), torch.from_numpy(y), spec


@dataclass
class Corpus:
    """The splits a training run needs, already as tensors."""

    name: str
    spec: dict[str, Any]
    train: tuple[torch.Tensor, torch.Tensor]
    validation: tuple[torch.Tensor, torch.Tensor]
    files: list[dict[str, Any]] = field(default_factory=list)  # identity of the train data

    @property
    def task(self) -> str:
        return self.spec["task"]


def load_corpus(directory: Path | str) -> Corpus:
    """Train and validation splits of one corpus, plus what identifies the training data
    (a :class:`pipelines.text_data.TextCorpus` for the text tasks)."""
    directory = Path(directory)
    if read_spec(directory)["task"] in TEXT_TASKS:
        from pipelines import text_data

        return text_data.load_corpus(directory)
    x, y, spec = load_split(directory, "train")
    xv, yv, _ = load_split(directory, "validation")
    return Corpus(directory.name, spec, (x, y), (xv, yv), data_identity(directory))


def data_identity(directory: Path | str) -> list[dict[str, Any]]:
    """Sizes and row counts of the training files (cheap: file stat + Parquet footer)."""
    directory = Path(directory)
    train = directory / "train.parquet"
    return [
        {"file": "train.parquet", "bytes": train.stat().st_size, "rows": parquet_rows(train)},
        {"file": "spec.json", "bytes": (directory / "spec.json").stat().st_size},
    ]


def fingerprint(*parts: Any) -> str:
    """sha256 of the canonical JSON of ``parts``."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# --- batching ---------------------------------------------------------------------------

def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator that depends only on ``(seed, epoch)``: the epoch's shuffle and augments."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def batches(n: int, batch_size: int, generator: torch.Generator | None = None,
            device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
    """Index batches over ``range(n)``: shuffled by ``generator``, in order without one."""
    order = (torch.randperm(n, generator=generator) if generator is not None
             else torch.arange(n)).to(device)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def num_batches(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator,
                 fill: float = 0.0) -> torch.Tensor:
    """Shift each image of ``x`` ``(B, H, W)`` by up to ``±max_shift`` pixels on each axis.

    One gather for the whole batch (pad with ``fill``, then crop at per-example offsets);
    the offsets come from ``generator`` (CPU), so augmentation is part of the epoch's seed.
    """
    if max_shift <= 0:
        return x
    b, h, w = x.shape
    s = max_shift
    padded = torch.nn.functional.pad(x, (s, s, s, s), value=fill)
    dy = torch.randint(0, 2 * s + 1, (b,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * s + 1, (b,), generator=generator).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]
    return padded[torch.arange(b, device=x.device)[:, None, None], rows, cols]


# --- writing (the producer side of the contract; tests and smoke runs use it) -----------

def write_split(directory: Path | str, split: str, x: np.ndarray, y: np.ndarray) -> Path:
    """Write one split in the token format: ``row_id``, ``x`` (and list ``y``) flattened."""
    import pyarrow.parquet as pq

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n = len(x)

    def fixed(a: np.ndarray) -> pa.Array:
        flat = np.ascontiguousarray(a).reshape(n, -1)
        return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])

    ycol = fixed(y) if y.ndim > 1 else pa.array(y)
    table = pa.table({"row_id": pa.array(np.arange(n, dtype=np.uint64)), "x": fixed(x), "y": ycol})
    path = directory / f"{split}.parquet"
    pq.write_table(table, path)
    return path


def write_corpus(directory: Path | str, spec: Mapping[str, Any],
                 splits: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """Write ``spec.json`` and every split of a corpus directory."""
    from rnnflow.io import write_json

    directory = Path(directory)
    for split, (x, y) in splits.items():
        write_split(directory, split, x, y)
    write_json(directory / "spec.json", dict(spec))
    return directory
