"""format: give each corpus its task's schema, a content ``row_id`` and a split.

Splits are decided by hashing content (``method: hash``), by the source's own split plus a
hashed validation hold-out from train (``given``), or by position for series
(``ordered``). Hash splits depend only on a row's content and the seed, so adding data
never moves earlier rows between splits; identical rows always share a split. The hop
fails if any ``row_id`` lands in two splits or if a row went missing.

params.yaml section ``format.<corpus>``.
"""

from __future__ import annotations

import sys
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rnnflow import io
from rnnflow.config import Config, parse
from rnnflow.hashing import row_hash, uniform
from rnnflow.hop import SPLITS, HopRun, batches_of, cli, parts


class SplitConfig(Config):
    """How rows are assigned to train / validation / test."""

    method: Literal["hash", "given", "ordered"] = "hash"
    validation: float = 0.1
    test: float = 0.1
    seed: int = 0


class FormatConfig(Config):
    """Base of every corpus's format section (adapters extend it)."""

    split: SplitConfig = SplitConfig()


def with_row_id(table: pa.Table, key: tuple[str, ...]) -> pa.Table:
    """Prepend ``row_id``: a hash of the key columns (the row's content)."""
    return table.add_column(0, "row_id", row_hash(table, key))


def assign_hash(row_id: pa.Array, part: str, cfg: SplitConfig) -> np.ndarray:
    """Split name per row for the ``hash`` and ``given`` methods."""
    u = uniform(row_id, cfg.seed)
    if cfg.method == "hash":
        return np.where(u < cfg.test, "test",
                        np.where(u < cfg.test + cfg.validation, "validation", "train"))
    if part in ("test", "validation"):
        return np.full(len(u), part)
    if part != "train":
        raise ValueError(f"split method 'given' expects parts train/test, got {part!r}")
    return np.where(u < cfg.validation, "validation", "train")


def assign_ordered(start: int, n: int, total: int, cfg: SplitConfig) -> np.ndarray:
    """Split name per row by position: train, then validation, then test (series)."""
    pos = np.arange(start, start + n)
    test_from = total - int(round(total * cfg.test))
    val_from = test_from - int(round(total * cfg.validation))
    return np.where(pos >= test_from, "test", np.where(pos >= val_from, "validation", "train"))


def body_for(corpus: str, _args: object):
    """Build the hop body for ``corpus``."""
    from stages import corpora

    def body(run: HopRun) -> None:
        adapter = corpora.get(corpus)
        cfg = parse(adapter.FormatConfig, run.params, f"format.{corpus}")
        suite = adapter.formatted_suite(cfg)
        writers = {s: io.BatchWriter(run.out / f"{s}.parquet") for s in SPLITS}
        counts = dict.fromkeys(SPLITS, 0)
        rows_in = 0
        try:
            for part in parts(run.inputs):
                src = run.inputs / f"{part}.parquet"
                rows_in += io.parquet_rows(src)
                ordered = cfg.split.method == "ordered"
                if adapter.format_whole_part or ordered:
                    whole = with_row_id(adapter.format(io.read_table(src), cfg), adapter.key_columns)
                    stream = batches_of(whole)
                    total = whole.num_rows
                else:
                    stream = (with_row_id(adapter.format(pa.Table.from_batches([b]), cfg),
                                          adapter.key_columns) for b in io.iter_batches(src))
                    total = 0
                start = 0
                for table in stream:
                    if ordered:
                        split = assign_ordered(start, table.num_rows, total, cfg.split)
                    else:
                        split = assign_hash(table.column("row_id"), part, cfg.split)
                    start += table.num_rows
                    labels = pa.array(split)
                    for name in SPLITS:
                        chunk = table.filter(pc.equal(labels, name))
                        if chunk.num_rows:
                            run.validate(chunk, suite, name, row_offset=counts[name])
                            writers[name].write(chunk)
                            counts[name] += chunk.num_rows
        finally:
            for writer in writers.values():
                writer.close()
        run.rows_out.update(counts)
        for name in SPLITS:
            run.check_rows(name, counts[name], 1, None, "every split has rows")
        expected = adapter.formatted_rows(rows_in, cfg)
        run.check_rows("all splits", sum(counts.values()), expected, expected,
                       "format keeps every row")
        run.check_disjoint()

    return body


def main(argv: list[str] | None = None) -> int:
    """``python -m stages.format CORPUS``."""
    return cli("format", __doc__.split("\n\n")[0], body_for, argv)


if __name__ == "__main__":
    sys.exit(main())
