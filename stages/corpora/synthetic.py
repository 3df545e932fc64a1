"""The synthetic tasks of the classic RNN tutorials, generated from a seed.

Their *fetch* is generation: deterministic from ``fetch.<task>.seed``, so a rerun with
the same params produces the same bytes. They are synthetic and are reported as such.

- ``parity``: 50-bit strings; the model may predict the count of ones (51 classes) and
  derive the parity from it, as in the tutorial.
- ``counting``: count the ones in 16-bit strings (17 classes); strings drawn without
  replacement from the 65,536 possible.
- ``addition``: add two binary numbers bit by bit (LSB first), one output bit per step.
- ``timeseries``: a noisy sum of sines; predict the next value from a 20-step window.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.core.config import CleanConfig, FetchConfig, FormatConfig, SplitConfig
from stages.core.sources import FetchContext
from stages.core.validate import Expect, Suite
from stages.corpora.base import Corpus


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


def fixed_list(matrix: np.ndarray, dtype: pa.DataType) -> pa.FixedSizeListArray:
    """(N, K) array → fixed_size_list<dtype>[K] column."""
    n, k = matrix.shape
    return pa.FixedSizeListArray.from_arrays(
        pa.array(np.ascontiguousarray(matrix).reshape(-1), dtype), k
    )


class GeneratedConfig(FetchConfig):
    """How many examples to generate, from which seed."""

    n: int
    seed: int = 0


class BitsConfig(GeneratedConfig):
    width: int


class SyntheticCleanConfig(CleanConfig):
    # Generation is exact; nothing may be dropped.
    max_drop_fraction: float = 0.0


class _BitStrings(Corpus):
    """Shared by parity and counting: rows of '0'/'1' strings, target = count of ones."""

    clean_key = ("bits",)
    key_columns = ("bits",)
    FetchConfig = BitsConfig
    CleanConfig = SyntheticCleanConfig
    #: Parity draws with replacement from 2**50 (no collisions in practice); counting
    #: draws without replacement from 2**16 so every string is distinct.
    with_replacement = True

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

    def expected_rows(self, part: str, cfg: BitsConfig) -> tuple[int, int | None]:
        return cfg.n, cfg.n

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
        return {"spec.json": self.spec(width)}

    def spec(self, width: int) -> dict[str, Any]:
        return {
            "task": "classify",
            "x_shape": [width, 1],
            "x_dtype": "int8",
            "num_classes": width + 1,
            "y_shape": [],
            "target": "count of ones",
        }

    def tokenize(self, table: pa.Table, artifacts: dict[str, Any], cfg: Any) -> pa.Table:
        width = artifacts["spec.json"]["x_shape"][0]
        x = bits_matrix(table.column("bits"), width)
        return pa.table(
            {
                "row_id": table.column("row_id"),
                "x": fixed_list(x, pa.int8()),
                "y": table.column("ones"),
            }
        )

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

    def spec(self, width: int) -> dict[str, Any]:
        return {**super().spec(width), "derived": "parity"}


class Counting(_BitStrings):
    """Count the ones in 16-bit strings (17 classes)."""

    name = "counting"
    with_replacement = False


class AdditionConfig(GeneratedConfig):
    bits: int = 8


class Addition(Corpus):
    """Binary addition, bit by bit: inputs (a_i, b_i), output the sum's bit i, LSB first."""

    name = "addition"
    clean_key = ("a", "b")
    key_columns = ("a", "b")
    FetchConfig = AdditionConfig
    CleanConfig = SyntheticCleanConfig

    def fetch(self, cfg: AdditionConfig, ctx: FetchContext) -> dict[str, pa.Table]:
        space = 2 ** (2 * cfg.bits)
        if cfg.n > space:
            raise ValueError(
                f"addition: n={cfg.n} > {space} distinct pairs of {cfg.bits}-bit numbers"
            )
        pairs = np.random.default_rng(cfg.seed).choice(space, size=cfg.n, replace=False)
        a, b = pairs >> cfg.bits, pairs & (2**cfg.bits - 1)
        return {
            "all": pa.table(
                {
                    "a": a.astype(np.int64),
                    "b": b.astype(np.int64),
                    "bits": np.full(cfg.n, cfg.bits, np.int64),
                }
            )
        }

    def expected_rows(self, part: str, cfg: AdditionConfig) -> tuple[int, int | None]:
        return cfg.n, cfg.n

    def raw_suite(self, part: str, cfg: Any) -> Suite:
        return Suite(
            "addition.raw",
            (
                Expect.between("a", 0, None),
                Expect.between("b", 0, None),
                Expect.between("bits", 1, 62),
            ),
            schema={"a": "int64", "b": "int64", "bits": "int64"},
        )

    def format(self, table: pa.Table, cfg: Any) -> pa.Table:
        return pa.table(
            {
                "a": table.column("a"),
                "b": table.column("b"),
                "sum": pc.add(table.column("a"), table.column("b")),
                "bits": table.column("bits"),
            }
        )

    def formatted_suite(self, cfg: Any) -> Suite:
        return Suite(
            "addition.formatted",
            (
                Expect.between("a", 0, None),
                Expect.between("b", 0, None),
                Expect.between("sum", 0, None),
                Expect.not_null("row_id"),
            ),
            schema={
                "row_id": "uint64",
                "a": "int64",
                "b": "int64",
                "sum": "int64",
                "bits": "int64",
            },
        )

    def fit(self, train: Iterable[pa.RecordBatch], cfg: Any) -> dict[str, Any]:
        widths = {int(w) for batch in train for w in pc.unique(batch.column("bits")).to_pylist()}
        if len(widths) != 1:
            raise ValueError(
                f"addition: expected one operand width in train, found {sorted(widths)}"
            )
        steps = widths.pop() + 1  # the carry can add one bit
        return {
            "spec.json": {
                "task": "tag",
                "x_shape": [steps, 2],
                "x_dtype": "int8",
                "num_classes": 2,
                "y_shape": [steps],
                "bit_order": "lsb_first",
            }
        }

    def tokenize(self, table: pa.Table, artifacts: dict[str, Any], cfg: Any) -> pa.Table:
        steps = artifacts["spec.json"]["x_shape"][0]
        shifts = np.arange(steps, dtype=np.int64)  # LSB first: step i holds bit i

        def lsb(col: str) -> np.ndarray:
            return ((table.column(col).to_numpy()[:, None] >> shifts) & 1).astype(np.int8)

        x = np.stack([lsb("a"), lsb("b")], axis=2).reshape(table.num_rows, steps * 2)
        return pa.table(
            {
                "row_id": table.column("row_id"),
                "x": fixed_list(x, pa.int8()),
                "y": fixed_list(lsb("sum"), pa.int8()),
            }
        )

    def tokens_suite(self, artifacts: dict[str, Any], cfg: Any) -> Suite:
        steps = artifacts["spec.json"]["x_shape"][0]
        return Suite(
            "addition.tokens",
            (
                Expect.between("x.min", 0, 1),
                Expect.between("x.max", 0, 1),
                Expect.between("y.min", 0, 1),
                Expect.between("y.max", 0, 1),
                Expect.between("y.len", steps, steps),
            ),
            schema={
                "row_id": "uint64",
                "x": str(pa.list_(pa.int8(), steps * 2)),
                "y": str(pa.list_(pa.int8(), steps)),
            },
        )


class SeriesConfig(GeneratedConfig):
    periods: list[float] = [50.0, 13.0]
    amplitudes: list[float] = [1.0, 0.5]
    noise: float = 0.1


class SeriesFormatConfig(FormatConfig):
    window: int = 20
    split: SplitConfig = SplitConfig(method="ordered", validation=0.1, test=0.1)


class TimeSeries(Corpus):
    """Next-value prediction on a generated series, from sliding windows."""

    name = "timeseries"
    clean_key = ("t",)
    key_columns = ("t",)
    format_whole_part = True
    FetchConfig = SeriesConfig
    CleanConfig = SyntheticCleanConfig
    FormatConfig = SeriesFormatConfig

    def fetch(self, cfg: SeriesConfig, ctx: FetchContext) -> dict[str, pa.Table]:
        if len(cfg.periods) != len(cfg.amplitudes):
            raise ValueError("timeseries: periods and amplitudes must have the same length")
        t = np.arange(cfg.n, dtype=np.int64)
        value = sum(a * np.sin(2 * np.pi * t / p) for p, a in zip(cfg.periods, cfg.amplitudes))
        value = value + np.random.default_rng(cfg.seed).normal(0.0, cfg.noise, cfg.n)
        return {"all": pa.table({"t": t, "value": value.astype(np.float64)})}

    def expected_rows(self, part: str, cfg: SeriesConfig) -> tuple[int, int | None]:
        return cfg.n, cfg.n

    def raw_suite(self, part: str, cfg: Any) -> Suite:
        return Suite(
            "timeseries.raw",
            (Expect.unique("t"), Expect.not_null("value"), Expect.between("value", -100, 100)),
            schema={"t": "int64", "value": "double"},
        )

    def format(self, table: pa.Table, cfg: SeriesFormatConfig) -> pa.Table:
        table = table.sort_by("t")
        values = table.column("value").to_numpy()
        w = cfg.window
        if len(values) <= w:
            raise ValueError(f"timeseries: {len(values)} points, need more than window={w}")
        windows = np.lib.stride_tricks.sliding_window_view(values[:-1], w)
        return pa.table(
            {
                "t": table.column("t").slice(w),
                "x": fixed_list(windows, pa.float64()),
                "y": values[w:],
            }
        )

    def formatted_rows(self, rows_in: int, cfg: SeriesFormatConfig) -> int:
        return max(rows_in - cfg.window, 0)

    def formatted_suite(self, cfg: Any) -> Suite:
        return Suite(
            "timeseries.formatted",
            (Expect.unique("t"), Expect.not_null("y"), Expect.between("x.len", 1, None)),
        )

    def fit(self, train: Iterable[pa.RecordBatch], cfg: Any) -> dict[str, Any]:
        ys, window = [], None
        for batch in train:
            ys.append(batch.column("y").to_numpy())
            window = batch.schema.field("x").type.list_size
        y = np.concatenate(ys) if ys else np.zeros(0)
        if not len(y):
            raise ValueError("timeseries tokenize: the train split is empty")
        # Windows and targets share one scale: statistics of the train targets only.
        return {
            "spec.json": {
                "task": "regress",
                "x_shape": [window, 1],
                "x_dtype": "float32",
                "y_shape": [],
                "y_mean": float(y.mean()),
                "y_std": float(y.std()),
                "fitted_on": "train",
                "n_train": int(len(y)),
            }
        }

    def tokenize(self, table: pa.Table, artifacts: dict[str, Any], cfg: Any) -> pa.Table:
        spec = artifacts["spec.json"]
        x = table.column("x").combine_chunks()
        w = x.type.list_size
        mat = (x.flatten().to_numpy().reshape(-1, w) - spec["y_mean"]) / spec["y_std"]
        y = (table.column("y").to_numpy() - spec["y_mean"]) / spec["y_std"]
        return pa.table(
            {
                "row_id": table.column("row_id"),
                "x": fixed_list(mat.astype(np.float32), pa.float32()),
                "y": pa.array(y.astype(np.float32), pa.float32()),
            }
        )

    def tokens_suite(self, artifacts: dict[str, Any], cfg: Any) -> Suite:
        return Suite(
            "timeseries.tokens",
            (
                Expect.not_null("y"),
                Expect.between("y", -50, 50),
                Expect.between("x.min", -50, None),
                Expect.between("x.max", None, 50),
            ),
        )
