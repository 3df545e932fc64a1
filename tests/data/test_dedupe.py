"""clean's streaming deduplication keeps exactly the first copy of every row, batch after
batch, as a plain Python set would (Hypothesis: random batches with repeats across them)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.clean import Deduper


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30), max_size=25), min_size=1, max_size=8))
def test_deduper_keeps_first_copies_across_batches(batches: list[list[int]]) -> None:
    dedupe = Deduper(("x",))
    seen: set[int] = set()
    for batch in batches:
        table = pa.table({"x": pa.array([str(v) for v in batch], pa.string())})
        kept, dropped = dedupe(table)
        expected = []
        for v in batch:
            if v not in seen:
                seen.add(v)
                expected.append(str(v))
        assert kept.column("x").to_pylist() == expected
        assert dropped == len(batch) - len(expected)
    assert len(dedupe.seen) == len(seen)
    assert bool(np.all(dedupe.seen[1:] > dedupe.seen[:-1]))  # sorted, no repeats
