"""MNIST handwritten digits (LeCun & Cortes, CC BY-SA 3.0): IDX files → image/label rows.

fetch downloads (or reads from the mirror) the four IDX gz files named with checksums in
``params.yaml``, decodes them with :mod:`stages.corpora.idx` and writes ``train``/``test``.
Images are stored as ``fixed_size_list<uint8>[784]`` — compact and readable by training
without per-example Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.core.config import FormatConfig, SourcedFetchConfig, SplitConfig
from stages.core.context import FetchContext
from stages.core.sources import resolve
from stages.core.validate import Expect, Suite
from stages.corpora.base import Corpus

PIXELS = 28 * 28
IMAGE = pa.list_(pa.uint8(), PIXELS)


class MnistFormatConfig(FormatConfig):
    """MNIST keeps its published train/test split; validation is held out of train."""

    split: SplitConfig = SplitConfig(method="given", validation=1 / 12, test=0.0)


def images_column(images: np.ndarray) -> pa.FixedSizeListArray:
    """(N, 28, 28) uint8 → fixed-size-list column, zero-copy."""
    flat = np.ascontiguousarray(images, dtype=np.uint8).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.uint8()), PIXELS)


def image_matrix(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Fixed-size-list column → (N, 784) uint8, zero-copy where possible."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, PIXELS)


class Mnist(Corpus):
    """The MNIST adapter."""

    name = "mnist"
    clean_key = ("image",)
    key_columns = ("image",)
    FetchConfig = SourcedFetchConfig
    FormatConfig = MnistFormatConfig

    def fetch(self, cfg: SourcedFetchConfig, ctx: FetchContext) -> dict[str, pa.Table]:
        from stages.corpora.idx import read_mnist_pair

        # The published files first, then e.g. the mirror's partial training set: the first
        # source whose four files can be had and verified serves both parts.
        name, source, files = resolve(
            cfg.candidates(), ctx, "mnist", "fetch.mnist", part_of=lambda key: key.split("_")[0]
        )

        def origin(key: str) -> str:  # where a file came from, for decoding errors
            return f"{source.files[key].path}, params fetch.mnist.sources.{name}.files.{key}"

        out = {}
        for part in ("train", "test"):
            images, labels = read_mnist_pair(
                files[f"{part}_images"],
                files[f"{part}_labels"],
                images_origin=origin(f"{part}_images"),
                labels_origin=origin(f"{part}_labels"),
                max_expanded_bytes=cfg.max_expanded_bytes,
            )
            out[part] = pa.table(
                {"image": images_column(images), "label": pa.array(labels, pa.uint8())}
            )
        return out

    def raw_suite(self, part: str, cfg: Any) -> Suite:
        return Suite(
            f"mnist.raw.{part}",
            (
                Expect.not_null("label"),
                Expect.in_set("label", list(range(10))),
                Expect.between("image.len", PIXELS, PIXELS),
                Expect.between("image.min", 0, 255),
                Expect.between("image.max", 0, 255),
                # A blank image carries no digit: a decoding bug, not data.
                Expect.between("image.max", 1, None),
            ),
            schema={"image": str(IMAGE), "label": "uint8"},
        )

    def format(self, table: pa.Table, cfg: Any) -> pa.Table:
        return table.select(["image", "label"])

    def formatted_suite(self, cfg: Any) -> Suite:
        raw = self.raw_suite("formatted", cfg)
        return Suite(
            "mnist.formatted",
            raw.expectations + (Expect.not_null("row_id"),),
            schema={"row_id": "uint64", **raw.schema},  # type: ignore[dict-item]  # raw_suite sets it
        )

    def fit(self, train: Iterable[pa.RecordBatch], cfg: Any) -> dict[str, Any]:
        total = count = sq = 0.0
        for batch in train:
            px = image_matrix(batch.column("image")).astype(np.float64) / 255.0
            total += px.sum()
            sq += (px * px).sum()
            count += px.size
        if not count:
            raise ValueError("mnist tokenize: the train split is empty")
        mean = total / count
        std = float(np.sqrt(max(sq / count - mean * mean, 1e-12)))
        return {
            "spec.json": {
                "task": "classify",
                "x_shape": [28, 28],
                "x_dtype": "uint8",
                "x_scale": 255.0,
                "x_mean": round(mean, 6),
                "x_std": round(std, 6),
                "num_classes": 10,
                "y_shape": [],
                "fitted_on": "train",
                "train_pixels": int(count),
            }
        }

    def tokenize(self, table: pa.Table, artifacts: dict[str, Any], cfg: Any) -> pa.Table:
        y = pc.cast(table.column("label"), pa.int64())
        return pa.table({"row_id": table.column("row_id"), "x": table.column("image"), "y": y})

    def tokens_suite(self, artifacts: dict[str, Any], cfg: Any) -> Suite:
        return Suite(
            "mnist.tokens",
            (
                Expect.between("y", 0, 9),
                Expect.between("x.len", PIXELS, PIXELS),
                Expect.not_null("row_id"),
            ),
            schema={"row_id": "uint64", "x": str(IMAGE), "y": "int64"},
        )
