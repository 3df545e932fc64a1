"""``timeseries``, generated from a seed (see :mod:`stages.corpora.synthetic`): a noisy sum
of sines; predict the next value from a 20-step window."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from stages.core.config import FormatConfig, SplitConfig
from stages.core.context import FetchContext
from stages.core.validate import Expect, Suite
from stages.corpora.synthetic import Generated, GeneratedConfig, fixed_list


class SeriesConfig(GeneratedConfig):
    periods: list[float] = [50.0, 13.0]
    amplitudes: list[float] = [1.0, 0.5]
    noise: float = 0.1


class SeriesFormatConfig(FormatConfig):
    window: int = 20
    split: SplitConfig = SplitConfig(method="ordered", validation=0.1, test=0.1)


class TimeSeries(Generated):
    """Next-value prediction on a generated series, from sliding windows."""

    name = "timeseries"
    clean_key = ("t",)
    key_columns = ("t",)
    format_whole_part = True
    FetchConfig = SeriesConfig
    FormatConfig = SeriesFormatConfig

    def fetch(self, cfg: SeriesConfig, ctx: FetchContext) -> dict[str, pa.Table]:
        if len(cfg.periods) != len(cfg.amplitudes):
            raise ValueError("timeseries: periods and amplitudes must have the same length")
        t = np.arange(cfg.n, dtype=np.int64)
        value = sum(a * np.sin(2 * np.pi * t / p) for p, a in zip(cfg.periods, cfg.amplitudes))
        value = value + np.random.default_rng(cfg.seed).normal(0.0, cfg.noise, cfg.n)
        return {"all": pa.table({"t": t, "value": value.astype(np.float64)})}

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
