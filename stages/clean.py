"""clean: drop what should not be learned from, and count every drop by reason.

Streams record batches: the adapter's row-local cleaning, then null rows, then exact
duplicates (by the corpus's key columns, across all input files, test first so the
held-out set never loses rows to train). Writes ``reports/clean/<corpus>.json`` (a DVC
metric) with the counts, and fails if more than ``max_drop_fraction`` of the rows went.

params.yaml section ``clean.<corpus>``.
"""

from __future__ import annotations

import functools
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from rnnflow import io
from rnnflow.config import parse
from stages import corpora
from stages.core.hashing import in_sorted, row_hash
from stages.core.hop import HopRun, cli, parts


class Deduper:
    """Remembers content hashes across batches and files; drops rows seen before.

    The seen set is a sorted uint64 array (8 bytes a distinct row, no Python objects);
    membership is a vectorised binary search. New hashes are merged in at their sorted
    positions (one linear copy a batch): re-sorting the whole set every batch, as
    ``np.union1d`` does, made a 10M-row corpus take over six minutes in clean.
    """

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self.seen = np.zeros(0, dtype=np.uint64)

    def __call__(self, table: pa.Table) -> tuple[pa.Table, int]:
        if table.num_rows == 0:
            return table, 0
        hashes = row_hash(table, self.columns).to_numpy()
        first = np.zeros(len(hashes), dtype=bool)
        first[np.unique(hashes, return_index=True)[1]] = True  # first copy within the batch
        keep = first & ~in_sorted(hashes, self.seen)
        new = np.sort(hashes[keep])  # unique, and none of them in ``seen``
        self.seen = np.insert(self.seen, np.searchsorted(self.seen, new), new)
        kept = table.filter(pa.array(keep))
        return kept, table.num_rows - kept.num_rows


def clean_batch(adapter: Any, cfg: Any, table: pa.Table) -> tuple[pa.Table, Counter[str]]:
    """One input batch without its null rows, cleaned by the corpus's rules; the drop counts.
    A pure function of the batch, so the engine may run it anywhere (:mod:`stages.core.engine`)."""
    kept = table.drop_null() if any(c.null_count for c in table.columns) else table
    dropped: Counter[str] = Counter({"null": table.num_rows - kept.num_rows})
    table, reasons = adapter.clean(kept, cfg)
    dropped.update(reasons)
    return table, dropped


def body_for(corpus: str, _args: object):
    """Build the hop body for ``corpus``."""

    def body(run: HopRun) -> None:
        adapter = corpora.get(corpus)
        cfg = parse(adapter.CleanConfig, run.params, f"clean.{corpus}")
        dedupe = Deduper(adapter.clean_key) if cfg.dedupe else None
        work = functools.partial(clean_batch, adapter, cfg)
        report: dict[str, dict] = {}
        for part in parts(run.inputs):
            rows_in = io.parquet_rows(run.inputs / f"{part}.parquet")
            dropped: Counter[str] = Counter()

            def cleaned(part: str, dropped: Counter[str]) -> Iterator[pa.Table]:
                for table, reasons in run.engine.map(work, run.tables(part)):
                    dropped.update(reasons)
                    if dedupe is not None:  # across batches: here, in order
                        table, n = dedupe(table)
                        dropped["duplicate"] += n
                    yield table

            rows = run.write_stream(part, cleaned(part, dropped), adapter.clean_suite(part, cfg))
            report[part] = {
                "rows_in": rows_in,
                "rows_out": rows,
                "dropped": dict(sorted((k, v) for k, v in dropped.items() if v)),
            }
            run.check_dropped(
                part, rows, rows_in, cfg.max_drop_fraction, f"clean.{corpus}.max_drop_fraction"
            )
        total_in = sum(p["rows_in"] for p in report.values())
        total_out = sum(p["rows_out"] for p in report.values())
        io.write_json(
            run.root / "reports" / "clean" / f"{corpus}.json",
            {
                "corpus": corpus,
                "rows_in": total_in,
                "rows_out": total_out,
                "dropped_fraction": round(1 - total_out / total_in, 6) if total_in else 0.0,
                "parts": report,
            },
        )

    return body


def main(argv: list[str] | None = None) -> int:
    """``python -m stages.clean CORPUS``."""
    return cli("clean", __doc__, body_for, argv, corpora=corpora.names())


if __name__ == "__main__":
    sys.exit(main())
