"""The line-based formats of a text source: ``moses`` (line-aligned parallel files),
``tsv`` (tab-separated fields) and ``alternating`` (utterance and reply lines)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.corpora.text.lines import read_lines
from stages.corpora.text.opening import TextSourceError, describe


def read_parallel(
    sources: list[tuple[Path, str | None]], chunk_lines: int, max_expanded_bytes: int | None = None
) -> Iterator[list[pa.Array]]:
    """Stream line-aligned files in lockstep; differing line counts are an error."""
    readers = [read_lines(p, chunk_lines, m, max_expanded_bytes) for p, m in sources]
    totals = [0] * len(readers)
    while True:
        chunks = [next(r, None) for r in readers]
        if all(c is None for c in chunks):
            return
        sizes = [len(c[1]) if c is not None else 0 for c in chunks]
        for i, n in enumerate(sizes):
            totals[i] += n
        if len(set(sizes)) != 1:
            for i, reader in enumerate(readers):  # count the rest, for an exact message
                totals[i] += sum(len(c) for _, c in reader)
            counts = ", ".join(
                f"{describe(p, m)} has {t:,} lines" for (p, m), t in zip(sources, totals)
            )
            raise TextSourceError(f"parallel files differ in length: {counts}")
        yield [c[1] for c in chunks]  # type: ignore[index]  # all present: same sizes, not all None


def read_tsv(
    path: Path,
    columns: list[str],
    chunk_lines: int,
    member: str | None = None,
    max_expanded_bytes: int | None = None,
) -> Iterator[pa.Table]:
    """Stream a tab-separated file as tables with ``columns``.

    Every line must have exactly ``len(columns)`` fields: fewer or more (a sentence with a
    tab in it, an undeclared column) raise :class:`TextSourceError` naming the line.
    """
    if not columns:
        raise ValueError(f"{path}: a tsv source needs `columns` (names of its fields)")
    for start, lines in read_lines(path, chunk_lines, member, max_expanded_bytes):
        fields = pc.split_pattern(lines, "\t")
        bad = np.flatnonzero(pc.list_value_length(fields).to_numpy() != len(columns))
        if len(bad):
            i = int(bad[0])
            found = len(fields[i])
            more = (
                " (a tab inside a sentence, or a column missing from `columns` in params)"
                if found > len(columns)
                else ""
            )
            raise TextSourceError(
                f"{describe(path, member)}: line {start + i}: expected {len(columns)} "
                f"tab-separated fields ({', '.join(columns)}), found "
                f"{found}{more}: {lines[i].as_py()[:80]!r}"
            )
        yield pa.table({c: pc.list_element(fields, k) for k, c in enumerate(columns)})


def read_alternating(
    path: Path, chunk_lines: int, member: str | None = None, max_expanded_bytes: int | None = None
) -> Iterator[pa.Table]:
    """Stream alternating utterance/reply lines as ``(context, response)`` tables."""
    chunk_lines += chunk_lines % 2  # even, so a pair never straddles two chunks
    for start, lines in read_lines(path, chunk_lines, member, max_expanded_bytes):
        if len(lines) % 2:
            last = start + len(lines) - 1
            raise TextSourceError(
                f"{describe(path, member)}: odd number of lines ({last:,}): "
                f"line {last:,} has no reply line after it"
            )
        idx = np.arange(0, len(lines), 2)
        yield pa.table({"context": lines.take(idx), "response": lines.take(idx + 1)})
