"""One thin adapter over Great Expectations 1.x.

Stages declare *what* must hold as plain data (:class:`Suite` of :class:`Expect`); this
module turns it into GX expectations, runs them on a pandas view of an Arrow table and
raises :class:`ValidationFailed` naming the file, the expectation and a few offending
rows/values. GX is imported lazily, once per process (:func:`load_gx`).

GX checks scalar columns, so list columns are summarised into derived scalar columns
before validation (:func:`view`): ``<col>.len`` (elements; characters for strings),
``<col>.min`` and ``<col>.max`` (numeric lists). Suites refer to those names,
e.g. ``Expect.between("image.max", 0, 255)``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rnnflow.env import PROJECT_ROOT
from rnnflow.io import write_json
from stages.core.gxload import expectation_class, gx_context, load_gx


@dataclass(frozen=True)
class Expect:
    """One expectation: a GX expectation type name and its keyword arguments."""

    type: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    # Convenience constructors for the expectations stages use most.
    @classmethod
    def not_null(cls, column: str) -> Expect:
        return cls("expect_column_values_to_not_be_null", {"column": column})

    @classmethod
    def between(
        cls, column: str, min_value: float | None = None, max_value: float | None = None
    ) -> Expect:
        return cls(
            "expect_column_values_to_be_between",
            {"column": column, "min_value": min_value, "max_value": max_value},
        )

    @classmethod
    def in_set(cls, column: str, values: list[Any]) -> Expect:
        return cls(
            "expect_column_values_to_be_in_set", {"column": column, "value_set": list(values)}
        )

    @classmethod
    def unique(cls, column: str) -> Expect:
        return cls("expect_column_values_to_be_unique", {"column": column})

    @classmethod
    def matches(cls, column: str, regex: str) -> Expect:
        return cls("expect_column_values_to_match_regex", {"column": column, "regex": regex})

    @classmethod
    def at_least(cls, column_a: str, column_b: str) -> Expect:
        """Each row's ``column_a`` ≥ its ``column_b``."""
        kwargs = {"column_A": column_a, "column_B": column_b, "or_equal": True}
        return cls("expect_column_pair_values_a_to_be_greater_than_b", kwargs)

    def describe(self) -> str:
        """``type(k=v, ...)`` for messages."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items() if v is not None)
        return f"{self.type}({args})"


@dataclass(frozen=True)
class Suite:
    """A named set of expectations plus the Arrow schema the table must have.

    ``schema`` maps column name → Arrow type string (``str(pa.int64())`` = ``"int64"``);
    ``None`` skips the schema check (e.g. for derived summary frames).
    """

    name: str
    expectations: tuple[Expect, ...]
    schema: dict[str, str] | None = None

    def plus(self, *expectations: Expect) -> Suite:
        """This suite with more expectations."""
        return Suite(self.name, self.expectations + expectations, self.schema)


@dataclass
class Failure:
    """One failed expectation, with a few offending values and their row numbers."""

    expectation: str
    detail: str
    values: list[Any] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        shown = ", ".join(
            f"{v!r} (row {r})" if r is not None else repr(v)
            for v, r in zip(self.values, self.rows + [None] * len(self.values))
        )
        return f"{self.expectation}: {self.detail}" + (f"; e.g. {shown}" if shown else "")


@dataclass
class Result:
    """What one suite found on one table (or one batch of it)."""

    suite: str
    where: str
    success: bool
    evaluated: int
    failures: list[Failure]
    gx: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "where": self.where,
            "success": self.success,
            "expectations_evaluated": self.evaluated,
            "failures": [f.__dict__ for f in self.failures],
            "gx_result": self.gx,
        }


class ValidationFailed(RuntimeError):
    """Raised when a suite fails; ``str()`` is the report a user reads."""

    def __init__(self, results: list[Result], report_path: Path | None = None) -> None:
        self.results = results
        self.report_path = report_path
        super().__init__(self.render())

    def render(self) -> str:
        lines = []
        for res in self.results:
            if res.success:
                continue
            lines.append(f"validation failed: suite {res.suite!r} on {res.where}")
            lines.extend(f"  - {f}" for f in res.failures)
        if self.report_path is not None:
            lines.append(f"  full result: {self.report_path}")
        return "\n".join(lines)


# --- the pandas frame GX checks: list columns summarised into scalar ones -----------------


def _list_summary(arr: pa.Array, name: str) -> dict[str, pa.Array]:
    out: dict[str, pa.Array] = {}
    typ = arr.type
    if pa.types.is_fixed_size_list(typ) or pa.types.is_list(typ) or pa.types.is_large_list(typ):
        lengths = pc.list_value_length(arr)
        out[f"{name}.len"] = lengths
        inner = typ.value_type
        if pa.types.is_integer(inner) or pa.types.is_floating(inner):
            stats = _row_min_max(arr)
            if stats is None:
                stats = _row_min_max_grouped(arr)
            # Rows with empty lists get null min/max (and are caught by .len checks).
            for stat, full in zip(("min", "max"), stats):
                out[f"{name}.{stat}"] = pa.array(full, from_pandas=True)
    elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
        out[f"{name}.len"] = pc.utf8_length(arr)
        # + the word separator a SentencePiece-style tokenizer puts before the first word
        out[f"{name}.len1"] = pc.add(out[f"{name}.len"], 1)
    return out


def _row_min_max(arr: pa.Array) -> tuple[Any, Any] | None:
    """Per-row min and max of a numeric list column as float64 (NaN for empty rows), by
    numpy reductions over the flat values; None where nulls or NaNs need Arrow's rules."""
    if arr.null_count:
        return None
    flat = arr.flatten()  # respects slicing
    if flat.null_count:
        return None
    values = flat.to_numpy()
    if values.dtype.kind == "f" and np.isnan(values).any():
        return None
    n = len(arr)
    if pa.types.is_fixed_size_list(arr.type):
        width = arr.type.list_size
        if n == 0 or width == 0:
            return np.full(n, np.nan), np.full(n, np.nan)
        rows = values.reshape(n, width)
        return rows.min(axis=1).astype("float64"), rows.max(axis=1).astype("float64")
    offsets = arr.offsets.to_numpy()
    offsets = offsets - offsets[0]
    lengths = np.diff(offsets)
    nonempty = lengths > 0
    lo, hi = np.full(n, np.nan), np.full(n, np.nan)
    if nonempty.any():
        starts = offsets[:-1][nonempty]
        lo[nonempty] = np.minimum.reduceat(values, starts).astype("float64")
        hi[nonempty] = np.maximum.reduceat(values, starts).astype("float64")
    return lo, hi


def _row_min_max_grouped(arr: pa.Array) -> tuple[Any, Any]:
    """Per-row min and max by an Arrow group-by (skips null elements)."""
    n = len(arr)
    flat = pc.list_flatten(arr)
    parents = pc.list_parent_indices(arr)
    grouped = (
        pa.table({"p": parents, "v": flat}).group_by("p").aggregate([("v", "min"), ("v", "max")])
    )
    idx = grouped["p"].to_numpy()
    lo, hi = np.full(n, np.nan), np.full(n, np.nan)
    lo[idx] = grouped["v_min"].to_numpy().astype("float64")
    hi[idx] = grouped["v_max"].to_numpy().astype("float64")
    return lo, hi


def view(table: pa.Table) -> Any:
    """A pandas frame GX can check: scalar columns as they are, list/string summaries added."""
    cols: dict[str, pa.Array] = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if not pa.types.is_nested(col.type):
            cols[name] = col
        cols.update(_list_summary(col, name))
    return pa.table(cols).to_pandas()


_counter = iter(range(10**9))


def _type_name(typ: pa.DataType | str) -> str:
    # Parquet round trips rename list children ("item" ↔ "element"); the name is not data.
    return re.sub(r"<(item|element): ", "<", str(typ))


def _check_schema(table: pa.Table, suite: Suite) -> list[Failure]:
    if suite.schema is None:
        return []
    have = {f.name: _type_name(f.type) for f in table.schema}
    missing = [c for c in suite.schema if c not in have]
    extra = [c for c in have if c not in suite.schema]
    want = {c: _type_name(t) for c, t in suite.schema.items() if c in have}
    parts = [f"missing columns {missing}"] if missing else []
    parts += [f"unexpected columns {extra}"] if extra else []
    parts += [f"column {c!r} is {have[c]}, expected {t}" for c, t in want.items() if have[c] != t]
    return [Failure("expect_arrow_schema", "; ".join(parts))] if parts else []


def validate(table: pa.Table, suite: Suite, *, where: str, row_offset: int = 0) -> Result:
    """Run ``suite`` on ``table``; ``where`` names the file (and split) in messages.

    ``row_offset`` turns batch-local row numbers into file row numbers when a caller
    validates a file batch by batch.
    """
    failures = _check_schema(table, suite)
    frame = view(table)
    columns = {e.kwargs["column"] for e in suite.expectations if "column" in e.kwargs}
    missing = sorted(columns - set(frame.columns))
    if missing:
        detail = f"columns {missing} not in the table (has {list(frame.columns)})"
        failures.append(Failure("expect_columns_present", detail))
        return Result(suite.name, where, False, len(suite.expectations), failures)
    gx = load_gx()
    ctx, batch_def = gx_context()
    n = next(_counter)
    gx_suite = ctx.suites.add(gx.ExpectationSuite(name=f"{suite.name}#{n}"))
    for exp in suite.expectations:
        gx_suite.add_expectation(expectation_class(exp.type)(**exp.kwargs))
    vd = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=f"vd#{n}", data=batch_def, suite=gx_suite)
    )
    try:
        res = vd.run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
        )
    finally:
        ctx.validation_definitions.delete(f"vd#{n}")
        ctx.suites.delete(f"{suite.name}#{n}")
    for r in res.results:
        if r.success:
            continue
        kw = {k: v for k, v in r.expectation_config.kwargs.items() if k != "batch_id"}
        exp_name = Expect(r.expectation_config.type, kw).describe()
        info = r.result or {}
        if r.exception_info and r.exception_info.get("raised_exception"):
            detail = f"raised {r.exception_info.get('exception_message')}"
            failures.append(Failure(exp_name, detail))
            continue
        if "unexpected_count" in info:
            detail = (
                f"{info['unexpected_count']} of {info.get('element_count')} values "
                f"unexpected ({info.get('unexpected_percent', 0):.3g}%)"
            )
        else:
            detail = f"observed {info.get('observed_value')!r}"
        values = list(info.get("partial_unexpected_list") or [])[:5]
        rows = [int(i) + row_offset for i in (info.get("partial_unexpected_index_list") or [])[:5]]
        failures.append(Failure(exp_name, detail, values, rows))
    gx_json = json.loads(json.dumps(res.to_json_dict(), default=str))
    return Result(suite.name, where, not failures, len(suite.expectations), failures, gx_json)


def write_report(hop: str, corpus: str, results: list[Result], root: Path = PROJECT_ROOT) -> Path:
    """Write all results of one hop run as JSON (success or not) and return the path."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", corpus)
    path = root / "reports" / "validation" / hop / f"{safe}.json"
    write_json(
        path,
        {
            "hop": hop,
            "corpus": corpus,
            "success": all(r.success for r in results),
            "results": [r.to_json() for r in results],
        },
    )
    return path
