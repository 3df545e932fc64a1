"""Bit-string tasks, generated from a seed (see :mod:`stages.corpora.synthetic`).

- ``parity``: 50-bit strings; the model may predict the count of ones (51 classes) and
  derive the parity from it, as in the tutorial.
- ``counting``: count the ones in 16-bit strings (17 classes); strings drawn without
  replacement from the 65,536 possible.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.core.context import FetchContext
from stages.core.validate import Expect, Suite
from stages.corpora.synthetic import Generated, GeneratedConfig, fixed_list


def bits_strings(values: np.ndarray, width: int) -> pa.Array:
    """Integers → '0'/'1' strings of ``width`` characters, most significant bit first."""
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    bits = ((values.astype(np.uint64)[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return strings_of(bits)


def strings_of(bits: np.ndarray) -> pa.Array:
    """(N, W) array of 0/1 → N strings, built from one buffer (no per-row Python)."""
    n, width = bits.shape
    data = pa.py_buffer((bits + ord("0")).astype(np.uint8).tobytes())
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * width).tobytes())
    return pa.StringArray.from_buffers(n, offsets, data)


def bits_matrix(column: pa.Array | pa.ChunkedArray, width: int) -> np.ndarray:
    """N fixed-width '0'/'1' strings → (N, width) int8, from the string buffer directly."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(arr) == 0:
        return np.zeros((0, width), np.int8)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[
        arr.offset : arr.offset + len(arr) + 1
    ]
    if not np.all(np.diff(offsets) == width):
        raise ValueError(f"bit strings must all have {width} characters")
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return (data.reshape(len(arr), width) - ord("0")).astype(np.int8)


class BitsConfig(GeneratedConfig):
    width: int


class _BitStrings(Generated):
    """Shared by parity and counting: rows of '0'/'1' strings, target = count of ones."""

    clean_key = ("bits",)
    key_columns = ("bits",)
    FetchConfig = BitsConfig
    #: Parity draws with replacement from 2**50 (no collisions in practice); counting
    #: draws without replacement from 2**16 so every string is distinct.
    with_replacement = True
    #: More ``spec.json`` entries (parity: what the count of ones is used to derive).
    extra_spec: dict[str, str] = {}

    def fetch(self, cfg: BitsConfig, ctx: FetchContext) -> dict[str, pa.Table]:
        rng = np.random.default_rng(cfg.seed)
        if self.with_replacement:
            bits = rng.integers(0, 2, size=(cfg.n, cfg.width), dtype=np.uint8)
            strings = strings_of(bits)
        else:
            if cfg.n > 2**cfg.width:
                raise ValueError(f"{self.name}: n={cfg.n} > 2**{cfg.width} distinct strings")
            strings = bits_strings(rng.choice(2**cfg.width, size=cfg.n, replace=False), cfg.width)
        return {"all": pa.table({"bits": strings})}

    def raw_suite(self, part: str, cfg: Any) -> Suite:
        return Suite(
            f"{self.name}.raw",
            (Expect.matches("bits", r"^[01]+$"), Expect.not_null("bits")),
            schema={"bits": "string"},
        )

    def format(self, table: pa.Table, cfg: Any) -> pa.Table:
        bits = table.column("bits").combine_chunks()
        width = len(bits[0].as_py()) if len(bits) else 0
        ones = bits_matrix(bits, width).sum(axis=1).astype(np.int64)
        return pa.table({"bits": bits, "ones": ones, "parity": (ones % 2).astype(np.int8)})

    def formatted_suite(self, cfg: Any) -> Suite:
        return Suite(
            f"{self.name}.formatted",
            (
                Expect.matches("bits", r"^[01]+$"),
                Expect.between("parity", 0, 1),
                Expect.between("ones", 0, None),
                Expect.not_null("row_id"),
            ),
            schema={"row_id": "uint64", "bits": "string", "ones": "int64", "parity": "int8"},
        )

    def fit(self, train: Iterable[pa.RecordBatch], cfg: Any) -> dict[str, Any]:
        width = None
        rows = 0
        for batch in train:
            lengths = pc.utf8_length(batch.column("bits"))
            lo, hi = pc.min_max(lengths).values()
            if lo.as_py() != hi.as_py() or (width is not None and lo.as_py() != width):
                raise ValueError(f"{self.name}: bit strings of different lengths in train")
            width = lo.as_py() if width is None else width
            rows += batch.num_rows
        if not rows:
            raise ValueError(f"{self.name} tokenize: the train split is empty")
        assert width is not None  # set by the first batch with rows
        spec = {
            "task": "classify",
            "x_shape": [width, 1],
            "x_dtype": "int8",
            "num_classes": width + 1,
            "y_shape": [],
            "target": "count of ones",
        }
        return {"spec.json": {**spec, **self.extra_spec}}

    def tokenize(self, table: pa.Table, artifacts: dict[str, Any], cfg: Any) -> pa.Table:
        width = artifacts["spec.json"]["x_shape"][0]
        x = fixed_list(bits_matrix(table.column("bits"), width), pa.int8())
        return pa.table({"row_id": table.column("row_id"), "x": x, "y": table.column("ones")})

    def tokens_suite(self, artifacts: dict[str, Any], cfg: Any) -> Suite:
        width = artifacts["spec.json"]["x_shape"][0]
        return Suite(
            f"{self.name}.tokens",
            (
                Expect.between("x.len", width, width),
                Expect.between("x.min", 0, 1),
                Expect.between("x.max", 0, 1),
                Expect.between("y", 0, width),
            ),
            schema={"row_id": "uint64", "x": str(pa.list_(pa.int8(), width)), "y": "int64"},
        )


class Parity(_BitStrings):
    """Parity of 50-bit strings (predict the count of ones, derive the parity)."""

    name = "parity"
    extra_spec = {"derived": "parity"}


class Counting(_BitStrings):
    """Count the ones in 16-bit strings (17 classes)."""

    name = "counting"
    with_replacement = False
