"""What every block of ``benchmarks/summary.py`` shares: reading a result file (or saying it is
missing, and how to make it) and writing Markdown tables."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rnnflow.config import load_params

#: benchmarks/results/main_job.json: the train timings of the runs that made the committed models
MAIN_JOB = "main_job"


def read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


class Missing(Exception):
    """A block's source is not there: the block says so, and how to make it."""


def result(root: Path, name: str, how: str, part: str | None = None) -> dict[str, Any]:
    """``benchmarks/results/<name>.json`` (holding ``part``), or :class:`Missing`."""
    doc = read_json(root / "benchmarks" / "results" / f"{name}.json")
    if doc is None or (part and part not in doc):
        what = f"{part} in " if part else ""
        raise Missing(f"{what}benchmarks/results/{name}.json", how)
    return doc


def table(head: list[str], rows: list[list[Any]], *notes: str) -> list[str]:
    """A Markdown table (the header, its rule, one line per row), then a blank line and the
    ``notes`` when there are any."""
    lines = [head, *([str(c) for c in r] for r in rows)]
    out = ["|" + "|".join(f" {c} " if c else " " for c in cells) + "|" for cells in lines]
    return [out[0], "|" + "---|" * len(head), *out[1:], *(["", *notes] if notes else [])]


def rows_of(items: Iterable[dict[str, Any]], *cells: str) -> list[list[str]]:
    """One row per item, each cell a ``str.format`` template over the item's keys."""
    return [[cell.format(**item) for cell in cells] for item in items]


def mib(x: float) -> str:
    return f"{x / 2**30:.1f} GiB" if x >= 2**30 else f"{x / 2**20:,.0f} MiB"


def cpus(doc: dict[str, Any]) -> str:
    """The CPU count, and the CPU model where the result recorded it."""
    m = doc.get("machine", {})
    return f"{m.get('cpus')} CPUs" + (f" ({m['cpu']})" if m.get("cpu") else "")


def load_note(doc: dict[str, Any]) -> str:
    m = doc.get("machine", {})
    loads = [m.get(k) for k in ("load_avg_at_start", "load_avg_at_end")]
    shown = ", ".join(f"{x[0]:.1f}" for x in loads if x)
    return f"load average {shown}" if shown else ""


def models(root: Path) -> dict[str, dict[str, Any]]:
    return load_params(root / "params.yaml")["train"]["models"]
