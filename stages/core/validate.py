"""One thin adapter over Great Expectations 1.x.

Stages declare *what* must hold as plain data (:class:`Suite` of :class:`Expect`); this
module turns it into GX expectations, runs them on a pandas view of an Arrow table and
raises :class:`ValidationFailed` naming the file, the expectation and a few offending
rows/values. GX is imported lazily, through :mod:`stages.core.gxload`.

GX checks scalar columns, so list columns are summarised into derived scalar columns
before validation (:mod:`stages.core.tableview`): ``<col>.len`` (elements; characters for
strings), ``<col>.min`` and ``<col>.max`` (numeric lists). Suites refer to those names,
e.g. ``Expect.between("image.max", 0, 255)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from rnnflow.env import PROJECT_ROOT
from stages.core.gxload import expectation_class, gx_context, load_gx
from stages.core.tableview import view


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
