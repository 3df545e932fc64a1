"""``addition``, generated from a seed (see :mod:`stages.corpora.synthetic`): add two binary
numbers bit by bit (LSB first), one output bit per step."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.core.context import FetchContext
from stages.core.validate import Expect, Suite
from stages.corpora.synthetic import Generated, GeneratedConfig, fixed_list


class AdditionConfig(GeneratedConfig):
    bits: int = 8


class Addition(Generated):
    """Binary addition, bit by bit: inputs (a_i, b_i), output the sum's bit i, LSB first."""

    name = "addition"
    clean_key = ("a", "b")
    key_columns = ("a", "b")
    FetchConfig = AdditionConfig

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
        a, b = table.column("a"), table.column("b")
        return pa.table({"a": a, "b": b, "sum": pc.add(a, b), "bits": table.column("bits")})

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
        y = fixed_list(lsb("sum"), pa.int8())
        return pa.table({"row_id": table.column("row_id"), "x": fixed_list(x, pa.int8()), "y": y})

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
