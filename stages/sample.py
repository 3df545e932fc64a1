"""sample: a deterministic subset of each split, by count or fraction.

Rows are ranked by ``splitmix64(row_id ^ seed)`` — a pseudo-random order fixed by content —
and the first *n* kept, so the sample is uniform (it keeps the length and label
distribution), repeatable, and stable when unrelated rows are added. ``null`` keeps the
whole split: the default, full-size run samples nothing.

params.yaml section ``sample.<corpus>``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pydantic import field_validator

from rnnflow import io
from rnnflow.config import Config, parse
from stages import corpora
from stages.core.hashing import uniform
from stages.core.hop import SPLITS, HopRun, cli


class SampleConfig(Config):
    """Per split: an int is a row count, a float in (0, 1] a fraction, null everything."""

    seed: int = 0
    #: Drop rows longer than this (in the corpus's own length unit, e.g. words) before
    #: sampling; null keeps every length. The tutorials use 15 words for translation.
    max_length: int | None = None
    train: int | float | None = None
    validation: int | float | None = None
    test: int | float | None = None

    @field_validator("train", "validation", "test")
    @classmethod
    def _positive(cls, v: int | float | None) -> int | float | None:
        if v is not None and (v <= 0 or (isinstance(v, float) and v > 1)):
            raise ValueError("a sample size is a count > 0 or a fraction in (0, 1]")
        return v


def target_rows(spec: int | float | None, available: int) -> int:
    """How many rows to keep of ``available`` for one split's setting."""
    if spec is None:
        return available
    if isinstance(spec, float):
        return int(round(available * spec))
    return min(int(spec), available)


def keep_mask(
    row_id: np.ndarray, n: int, seed: int, eligible: np.ndarray | None = None
) -> np.ndarray:
    """Mask selecting exactly ``n`` eligible rows: those ranked first by the seeded hash."""
    candidates = np.arange(len(row_id)) if eligible is None else np.flatnonzero(eligible)
    mask = np.zeros(len(row_id), dtype=bool)
    if n >= len(candidates):
        mask[candidates] = True
    elif n > 0:
        rank = uniform(row_id[candidates], seed)
        mask[candidates[np.argpartition(rank, n - 1)[:n]]] = True
    return mask


def body_for(corpus: str, _args: object):
    """Build the hop body for ``corpus``."""

    def body(run: HopRun) -> None:
        adapter = corpora.get(corpus)
        cfg = parse(SampleConfig, run.params, f"sample.{corpus}")
        fmt_suite = adapter.formatted_suite(None)
        for split in SPLITS:
            src = run.inputs / f"{split}.parquet"
            ids = io.read_table(src, columns=["row_id"])["row_id"].to_numpy()
            eligible = np.ones(len(ids), dtype=bool)
            if cfg.max_length is not None:  # the adapter's length of each row, batch by batch
                lengths = list(run.engine.map(adapter.lengths, run.tables(split)))
                eligible = np.concatenate(lengths or [np.zeros(0)]) <= cfg.max_length
            n = target_rows(getattr(cfg, split), int(eligible.sum()))
            mask = keep_mask(ids, n, cfg.seed, eligible)

            def kept(split: str, mask: np.ndarray) -> Iterator[pa.Table]:
                offset = 0
                for table in run.tables(split):
                    yield table.filter(pa.array(mask[offset : offset + table.num_rows]))
                    offset += table.num_rows

            rows = run.write_stream(split, kept(split, mask), fmt_suite)
            run.check_rows(
                split,
                rows,
                max(n, 1),
                n,
                f"sample of {n:,} rows",
                params_key=f"sample.{corpus}.{split}",
            )
        run.check_disjoint()

    return body


def main(argv: list[str] | None = None) -> int:
    """``python -m stages.sample CORPUS``."""
    return cli("sample", __doc__, body_for, argv, corpora=corpora.names())


if __name__ == "__main__":
    sys.exit(main())
