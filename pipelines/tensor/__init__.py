"""Fixed-shape tensor corpora (MNIST, the synthetic ones): their token format, the base of the
``classify``/``tag``/``regress`` tasks, and the epoch runner they share.

Reads the ``tokenize`` hop's contract: ``data/05_tokens/<corpus>/{train,validation,test}.parquet``
(``row_id``, ``x`` fixed-size list, ``y`` scalar or fixed-size list) plus ``spec.json``. Columns
are converted whole (Arrow → NumPy → torch), never example by example, in the spirit of
nanoGPT's memmapped token files. Batching (:mod:`pipelines.data`) is an index permutation from
the epoch's generator; images may be shifted by a few pixels (:func:`random_shift`, same
generator). This module registers no task: :mod:`.classify`, :mod:`.tag` and :mod:`.regress`
subclass :class:`TensorTask`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from pipelines import data as D
from pipelines import scoring, tasks
from rnnflow.io import read_table

VAL_BATCH = 1024  # examples per forward when validating
SAMPLE_ROWS = 12  # test predictions written to reports/samples/<model>.json


# --- the format --------------------------------------------------------------------------


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


def read_raw(
    directory: Path | str,
    split: str,
    spec: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray]:
    """One split's stored ``x`` and ``y`` as ``(N, *x_shape)`` / ``(N, *y_shape)`` arrays."""
    path = Path(directory) / f"{split}.parquet"
    table = read_table(path, columns=["x", "y"])
    return (
        _values(table.column("x"), list(spec["x_shape"]), path),
        _values(table.column("y"), list(spec["y_shape"]), path),
    )


def load_split(directory: Path | str, split: str) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """``(x, y, spec)`` for one split: x float32 ``(N, *x_shape)``; y as its task stores
    targets (int64 labels ``(N,)`` or ``(N, *y_shape)``, float32 regression targets)."""
    spec = tasks.read_spec(directory)
    x, y = read_raw(directory, split, spec)
    task = tasks.for_spec(spec)
    assert isinstance(task, TensorTask)  # read_raw found the x/y columns of a tensor corpus
    y = y.astype(task.target_dtype)
    return torch.from_numpy(features(x, spec)), torch.from_numpy(y), spec


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


def random_shift(
    x: torch.Tensor, max_shift: int, generator: torch.Generator, fill: float = 0.0
) -> torch.Tensor:
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


def write_corpus(
    directory: Path | str,
    spec: Mapping[str, Any],
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
) -> Path:
    """Write ``spec.json`` and every split of a corpus directory."""
    from rnnflow.io import write_json

    directory = Path(directory)
    for split, (x, y) in splits.items():
        write_split(directory, split, x, y)
    write_json(directory / "spec.json", dict(spec))
    return directory


# --- the epoch runner --------------------------------------------------------------------


class TensorJob:
    """Epochs over fixed-shape tensors (the MNIST and synthetic models).

    Under ``torchrun`` each rank takes rows ``rank::world`` of every batch.
    """

    def __init__(
        self,
        cfg: Any,
        corpus: Corpus,
        device: torch.device,
        amp_dtype: torch.dtype | None = None,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        spec = corpus.spec
        if cfg.augment and len(spec["x_shape"]) != 2:
            raise ValueError(f"augment needs 2-D images, spec x_shape is {spec['x_shape']}")
        task: TensorTask = tasks.for_spec(spec)  # type: ignore[assignment]
        self.task, self.cfg, self.spec = task, cfg, spec
        self.device, self.amp_dtype = device, amp_dtype
        self.rank, self.world = rank, world
        self.headline = task.monitor
        self.fill = background(spec)
        self.x, self.y = (t.to(device) for t in corpus.train)
        self.xv, self.yv = corpus.validation
        self.n_train, self.n_validation = len(self.y), len(self.yv)

    def num_batches(self) -> int:
        return D.num_batches(self.n_train, self.cfg.batch_size)

    def losses(self, model: torch.nn.Module, epoch: int, gen: torch.Generator):
        for idx in D.batches(self.n_train, self.cfg.batch_size, gen, self.device):
            if self.world > 1:
                if len(idx) < self.world:
                    continue
                idx = idx[self.rank :: self.world]
            xb, yb = self.x[idx], self.y[idx]
            if self.cfg.augment:
                xb = random_shift(xb, self.cfg.max_shift, gen, self.fill)
            with scoring.autocast(self.device, self.amp_dtype):
                loss = self.task.loss(model(xb), yb)
            yield loss, loss.detach().float() * len(idx), len(idx)

    def validate(self, model: torch.nn.Module) -> dict[str, Any]:
        out = scoring.predict(model, self.xv, VAL_BATCH, self.device, self.amp_dtype)
        return self.task.metrics(self.spec, out, self.yv, self.xv)


# --- the task base -----------------------------------------------------------------------


def _png(image: np.ndarray) -> str:
    """A 2-D uint8 image as a base64 grayscale PNG (written by hand: no imaging library)."""
    import struct
    import zlib

    h, w = image.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(
        b"\x00" + np.ascontiguousarray(image[r], dtype=np.uint8).tobytes() for r in range(h)
    )
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(png).decode()


class TensorTask(tasks.Task):
    """A task over fixed-shape ``x``/``y`` tensors; subclasses give the loss and metrics."""

    target_dtype: type = np.int64
    needs_classes = True  # spec must give num_classes

    def check_spec(self, spec: dict[str, Any], path: Path) -> None:
        missing = [k for k in ("task", "x_shape", "x_dtype", "y_shape") if k not in spec]
        if missing:
            raise ValueError(f"{path}: missing keys {missing}")
        if self.needs_classes and "num_classes" not in spec:
            raise ValueError(f"{path}: task {spec['task']!r} needs num_classes")

    def load_corpus(self, directory: Path) -> Corpus:
        x, y, spec = load_split(directory, "train")
        xv, yv, _ = load_split(directory, "validation")
        return Corpus(Path(directory).name, spec, (x, y), (xv, yv), D.data_identity(directory))

    def make_job(self, cfg, corpus, device, amp_dtype=None, rank=0, world=1) -> TensorJob:
        return TensorJob(cfg, corpus, device, amp_dtype, rank, world)

    # what subclasses define
    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training objective for a batch of model outputs."""
        raise NotImplementedError

    def scores(
        self,
        spec: dict[str, Any],
        out: torch.Tensor,
        y: torch.Tensor,
        x: torch.Tensor | None,
        res: dict[str, Any],
    ) -> None:
        """Add the task's metrics of one split to ``res`` (which has ``n`` and ``loss``)."""
        raise NotImplementedError

    def predictions(self, spec: dict[str, Any], out: torch.Tensor) -> torch.Tensor:
        """Predicted classes (default) — regression overrides with de-normalised values."""
        return out.argmax(-1)

    def targets(self, spec: dict[str, Any], y: torch.Tensor) -> torch.Tensor:
        """Stored targets in the units of :meth:`predictions` (default: as stored)."""
        return y

    def confusion_rows(self, spec: dict[str, Any], max_classes: int) -> bool:
        """Whether ``plots/<model>/confusion.csv`` gets a row per test example."""
        return False

    # shared
    def metrics(
        self,
        spec: dict[str, Any],
        out: torch.Tensor,
        y: torch.Tensor,
        x: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """All metrics of one split from its outputs ``out`` and targets ``y`` (CPU tensors)."""
        n = int(len(y))
        res: dict[str, Any] = {"n": n, "loss": float(self.loss(out, y)) if n else float("nan")}
        self.scores(spec, out, y, x, res)
        return res

    def score(
        self,
        model: torch.nn.Module,
        directory: Path,
        split: str,
        batch_size: int,
        device: torch.device,
        amp_dtype: torch.dtype | None = None,
    ) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
        """Metrics of one split, plus its predictions and targets."""
        x, y, spec = load_split(directory, split)
        out = scoring.predict(model, x, batch_size, device, amp_dtype)
        return self.metrics(spec, out, y, x), self.predictions(spec, out), y

    def sample_rows(
        self,
        spec: dict[str, Any],
        directory: Path,
        predicted: torch.Tensor,
        actual: torch.Tensor,
        n: int = SAMPLE_ROWS,
    ) -> list[dict[str, Any]]:
        """The first ``n`` test examples: index, actual, predicted (and, for 2-D uint8 images,
        the stored pixels as a 28×28-style list and a base64 PNG). Reads the stored split
        again; draws no random numbers."""
        k = min(n, len(actual))
        image = len(spec["x_shape"]) == 2 and spec.get("x_dtype") == "uint8"
        raw = read_raw(directory, "test", spec)[0][:k] if image else None
        actual = self.targets(spec, actual[:k])
        rows = []
        for i in range(k):
            row: dict[str, Any] = {
                "index": i,
                "actual": actual[i].tolist(),
                "predicted": predicted[i].tolist(),
            }
            if raw is not None:
                row["pixels"] = raw[i].astype(int).tolist()
                row["png"] = _png(raw[i].astype(np.uint8))
            rows.append(row)
        return rows

    def evaluate(
        self,
        path,
        model,
        spec,
        directory,
        batch_size,
        device,
        amp,
        confusion_max_classes=20,
        decode=None,
    ) -> tasks.Evaluation:
        from pipelines import device as dev

        device_ = torch.device(device)
        amp_dtype = dev.amp_dtype(device_, amp)
        scored = {
            s: self.score(model, directory, s, batch_size, device_, amp_dtype)
            for s in ("test", "validation")
        }
        metrics = {s: m for s, (m, _, _) in scored.items()}
        _, pred, actual = scored["test"]
        samples = self.sample_rows(spec, Path(directory), pred, actual)
        if not self.confusion_rows(spec, confusion_max_classes):
            pred = actual = torch.empty(0, dtype=torch.int64)
        return tasks.Evaluation(metrics, samples, (actual, pred))


def mean(b: torch.Tensor) -> float:
    """The mean of a boolean tensor as a float (NaN when empty)."""
    return float(b.float().mean()) if b.numel() else float("nan")
