"""One thin adapter over Great Expectations 1.x.

Stages declare *what* must hold as plain data (:class:`Suite` of :class:`Expect`); this
module turns it into GX expectations, runs them on a pandas view of an Arrow table and
raises :class:`ValidationFailed` naming the file, the expectation and a few offending
rows/values. GX is imported lazily (2.5 s) and only here.

GX checks scalar columns, so list columns are summarised into derived scalar columns
before validation: ``<col>.len`` (elements; characters for strings), ``<col>.min`` and
``<col>.max`` (numeric lists). Suites refer to those names, e.g.
``Expect.between("image.max", 0, 255)``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
import sys
import threading
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rnnflow.env import PROJECT_ROOT


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
    def rows_between(cls, min_value: int | None = None, max_value: int | None = None) -> Expect:
        return cls(
            "expect_table_row_count_to_be_between", {"min_value": min_value, "max_value": max_value}
        )

    @classmethod
    def matches(cls, column: str, regex: str) -> Expect:
        return cls("expect_column_values_to_match_regex", {"column": column, "regex": regex})

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


@dataclass
class Failure:
    """One failed expectation, with a few offending values and their row numbers."""

    expectation: str
    detail: str
    values: list[Any]
    rows: list[int]

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


# --- views -----------------------------------------------------------------------------


def _list_summary(col: pa.ChunkedArray | pa.Array, name: str) -> dict[str, pa.Array]:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
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
    import numpy as np

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
    import numpy as np

    n = len(arr)
    flat = pc.list_flatten(arr)
    parents = pc.list_parent_indices(arr)
    grouped = (
        pa.table({"p": parents, "v": flat}).group_by("p").aggregate([("v", "min"), ("v", "max")])
    )
    idx = grouped["p"].to_numpy()
    result = []
    for stat in ("min", "max"):
        full = np.full(n, np.nan)
        full[idx] = grouped[f"v_{stat}"].to_numpy().astype("float64")
        result.append(full)
    return result[0], result[1]


def view(table: pa.Table) -> Any:
    """A pandas frame GX can check: scalar columns as they are, list/string summaries added."""
    cols: dict[str, pa.Array] = {}
    for name in table.column_names:
        col = table.column(name)
        typ = col.type
        if pa.types.is_nested(typ):
            cols.update(_list_summary(col, name))
        else:
            cols[name] = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            if pa.types.is_string(typ) or pa.types.is_large_string(typ):
                cols.update(_list_summary(col, name))
    return pa.table(cols).to_pandas()


# --- GX --------------------------------------------------------------------------------

#: Modules Great Expectations imports at start-up but needs only for expectations and
#: renderers rnnflow never uses (KL divergence / KS tests, Altair charts, JSON-schema and
#: Markdown checks, local time zones in Data Docs): about 1 s of its
#: 2.5 s import. :func:`_gx` leaves them unexecuted until something reads an attribute.
_DEFERRED_GX_DEPS = ("scipy.stats", "altair", "jsonschema", "mistune", "tzlocal")


class _DeferredModule(types.ModuleType):
    """A module registered in ``sys.modules`` whose code runs on first attribute access.

    Unlike :class:`importlib.util.LazyLoader` (which fires on ``__spec__``, read by every
    ``import`` of an already-imported module), only a *missing* attribute triggers the load:
    ``import altair`` and ``from scipy import stats`` bind the module without executing it;
    ``stats.entropy`` (or importing a submodule, which reads ``__path__``) executes it in
    place, so every holder of the module sees the real one.
    """

    _lock = threading.RLock()

    def __getattr__(self, name: str) -> Any:
        with _DeferredModule._lock:
            if type(self) is _DeferredModule:
                spec = self.__spec__
                assert spec is not None and spec.loader is not None  # set by its importer
                self.__class__ = types.ModuleType  # type: ignore[assignment]
                if spec.submodule_search_locations is not None:
                    self.__path__ = spec.submodule_search_locations
                try:
                    spec.loader.exec_module(self)
                except BaseException:
                    sys.modules.pop(spec.name, None)
                    raise
        return object.__getattribute__(self, name)


def _defer(name: str) -> None:
    """Register ``name`` as a :class:`_DeferredModule` (no-op if imported or not installed)."""
    if name in sys.modules:
        return
    parent, _, child = name.rpartition(".")
    try:
        parent_module = importlib.import_module(parent) if parent else None
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return
    if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
        return
    module = importlib.util.module_from_spec(spec)
    if hasattr(module, "__path__"):
        del module.__path__  # a submodule import must load the package first
    module.__class__ = _DeferredModule
    sys.modules[name] = module
    if parent_module is not None:
        setattr(parent_module, child, module)


@functools.lru_cache(maxsize=1)
def _gx():
    """``great_expectations``, imported once per process with its unused deps deferred."""
    for name in _DEFERRED_GX_DEPS:
        _defer(name)
    import great_expectations as gx

    return gx


@functools.lru_cache(maxsize=1)
def _context():
    """One ephemeral (in-memory) GX context per process: no files, no Data Docs."""
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_def = (
        ctx.data_sources.add_pandas("rnnflow")
        .add_dataframe_asset("table")
        .add_batch_definition_whole_dataframe("whole")
    )
    return ctx, batch_def


def _gx_class(type_name: str):
    _gx()
    import great_expectations.expectations as gxe

    camel = "".join(part.capitalize() for part in type_name.split("_"))
    try:
        return getattr(gxe, camel)
    except AttributeError as exc:
        raise ValueError(f"unknown Great Expectations expectation {type_name!r}") from exc


_counter = iter(range(10**9))


def _type_name(typ: pa.DataType) -> str:
    # Parquet round trips rename list children ("item" ↔ "element"); the name is not data.
    return re.sub(r"<(item|element): ", "<", str(typ))


def _check_schema(table: pa.Table, suite: Suite) -> list[Failure]:
    if suite.schema is None:
        return []
    have = {f.name: _type_name(f.type) for f in table.schema}
    problems: list[Failure] = []
    missing = [c for c in suite.schema if c not in have]
    extra = [c for c in have if c not in suite.schema]
    want = {c: re.sub(r"<(item|element): ", "<", t) for c, t in suite.schema.items()}
    wrong = [(c, have[c], t) for c, t in want.items() if c in have and have[c] != t]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if extra:
            parts.append(f"unexpected columns {extra}")
        parts.extend(f"column {c!r} is {h}, expected {t}" for c, h, t in wrong)
        problems.append(Failure("expect_arrow_schema", "; ".join(parts), [], []))
    return problems


def validate(table: pa.Table, suite: Suite, *, where: str, row_offset: int = 0) -> Result:
    """Run ``suite`` on ``table``; ``where`` names the file (and split) in messages.

    ``row_offset`` turns batch-local row numbers into file row numbers when a caller
    validates a file batch by batch.
    """
    failures = _check_schema(table, suite)
    frame = view(table)
    missing = sorted(
        {
            e.kwargs["column"]
            for e in suite.expectations
            if "column" in e.kwargs and e.kwargs["column"] not in frame.columns
        }
    )
    if missing:
        failures.append(
            Failure(
                "expect_columns_present",
                f"columns {missing} not in the table (has {list(frame.columns)})",
                [],
                [],
            )
        )
        return Result(suite.name, where, False, len(suite.expectations), failures)
    gx = _gx()
    ctx, batch_def = _context()
    n = next(_counter)
    gx_suite = ctx.suites.add(gx.ExpectationSuite(name=f"{suite.name}#{n}"))
    for exp in suite.expectations:
        gx_suite.add_expectation(_gx_class(exp.type)(**exp.kwargs))
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
            failures.append(Failure(exp_name, detail, [], []))
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
    return Result(
        suite.name,
        where,
        not failures,
        len(suite.expectations),
        failures,
        gx=_jsonable(res.to_json_dict()),
    )


def _jsonable(obj: Any) -> Any:
    import json

    return json.loads(json.dumps(obj, default=str))


def report_path(hop: str, corpus: str, root: Path = PROJECT_ROOT) -> Path:
    """Where a hop's validation results for a corpus are written."""
    return root / "reports" / "validation" / hop / f"{_safe(corpus)}.json"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def write_report(hop: str, corpus: str, results: list[Result], root: Path = PROJECT_ROOT) -> Path:
    """Write all results of one hop run as JSON (success or not) and return the path."""
    from rnnflow.io import write_json

    path = report_path(hop, corpus, root)
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


def check(hop: str, corpus: str, results: list[Result], root: Path = PROJECT_ROOT) -> Path:
    """Write the report; raise :class:`ValidationFailed` if any result failed."""
    path = write_report(hop, corpus, results, root)
    if not all(r.success for r in results):
        raise ValidationFailed(results, path)
    return path
