"""format: give each corpus its task's schema, a content ``row_id`` and a split.

Splits are decided by hashing content (``method: hash``), by the source's own split plus a
hashed validation hold-out from train (``given``), or by position for series
(``ordered``). Hash splits depend only on a row's content and the seed, so adding data
never moves earlier rows between splits; identical rows always share a split. The hop
fails if any ``row_id`` lands in two splits or if a row went missing.

Corpora with ``held_out_columns`` (text: sentences) also keep the validation and test
sentences out of train: a first pass collects the held-out rows' sentences, and train rows
sharing one are dropped, counted in ``reports/format/<corpus>.json`` (at most
``max_held_out_drop`` of the rows), and the written splits are checked for shared sentences.

params.yaml section ``format.<corpus>``.
"""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rnnflow import io
from rnnflow.config import parse
from stages import corpora
from stages.core.config import SplitConfig
from stages.core.hashing import row_hash, uniform
from stages.core.hop import SPLITS, HopRun, batches_of, cli, parts


def with_row_id(table: pa.Table, key: tuple[str, ...]) -> pa.Table:
    """Prepend ``row_id``: a hash of the key columns (the row's content)."""
    return table.add_column(0, "row_id", row_hash(table, key))


def assign_hash(row_id: pa.Array, part: str, cfg: SplitConfig) -> np.ndarray:
    """Split name per row for the ``hash`` and ``given`` methods."""
    u = uniform(row_id, cfg.seed)
    if cfg.method == "hash":
        return np.where(
            u < cfg.test, "test", np.where(u < cfg.test + cfg.validation, "validation", "train")
        )
    if part in ("test", "validation"):
        return np.full(len(u), part)
    if part != "train":
        raise ValueError(f"split method 'given' expects parts train/test, got {part!r}")
    return np.where(u < cfg.validation, "validation", "train")


def sentence_hashes(table: pa.Table, columns: tuple[str, ...]) -> np.ndarray:
    """64-bit content hashes of the values of ``columns`` (pooled, one array)."""
    if not columns or table.num_rows == 0:
        return np.zeros(0, np.uint64)
    return np.concatenate([row_hash(table, (c,)).to_numpy() for c in columns])


def shares_sentence(table: pa.Table, columns: tuple[str, ...], held: np.ndarray) -> np.ndarray:
    """Per row: does any of ``columns`` hold a sentence whose hash is in ``held`` (sorted,
    as ``np.unique`` returns it)?"""
    hit = np.zeros(table.num_rows, dtype=bool)
    for c in columns:
        hit |= in_sorted(row_hash(table, (c,)).to_numpy(), held)
    return hit


def in_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin(values, sorted_set)`` by binary search. ``np.isin`` sorts both arrays on every
    call, so checking a corpus chunk by chunk against its held-out sentences grew with the
    corpus squared (31× the time for 10× the pairs)."""
    if not len(sorted_set):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[at] == values


def assign_document(docs: pa.Array | pa.ChunkedArray, cfg: SplitConfig) -> np.ndarray:
    """Split name per row by its document: listed test/validation documents, else train."""
    test = pc.is_in(docs, value_set=pa.array(cfg.test_docs, pa.string())).to_numpy(False)
    val = pc.is_in(docs, value_set=pa.array(cfg.validation_docs, pa.string())).to_numpy(False)
    return np.where(test, "test", np.where(val, "validation", "train"))


def assign_ordered(start: int, n: int, total: int, cfg: SplitConfig) -> np.ndarray:
    """Split name per row by position: train, then validation, then test (series)."""
    pos = np.arange(start, start + n)
    test_from = total - int(round(total * cfg.test))
    val_from = test_from - int(round(total * cfg.validation))
    return np.where(pos >= test_from, "test", np.where(pos >= val_from, "validation", "train"))


def body_for(corpus: str, _args: object):
    """Build the hop body for ``corpus``."""

    def body(run: HopRun) -> None:
        adapter = corpora.get(corpus)
        cfg = parse(adapter.FormatConfig, run.params, f"format.{corpus}")
        suite = adapter.formatted_suite(cfg)
        ordered = cfg.split.method == "ordered"
        by_document = cfg.split.method == "document"
        seen_docs: set[str] = set()
        held_cols = () if ordered else tuple(adapter.held_out_columns)

        def split_tables(part: str):
            """Formatted tables of one input part with their split labels."""
            src = run.inputs / f"{part}.parquet"
            if adapter.format_whole_part or ordered:
                whole = with_row_id(adapter.format(io.read_table(src), cfg), adapter.key_columns)
                stream = batches_of(whole)
                total = whole.num_rows
            else:
                stream = (
                    with_row_id(
                        adapter.format(pa.Table.from_batches([b]), cfg), adapter.key_columns
                    )
                    for b in io.iter_batches(src)
                )
                total = 0
            start = 0
            for table in stream:
                if ordered:
                    split = assign_ordered(start, table.num_rows, total, cfg.split)
                elif by_document:
                    if cfg.split.document_column not in table.column_names:
                        raise ValueError(
                            f"format.{corpus}.split.document_column: no column "
                            f"{cfg.split.document_column!r} in {src} "
                            f"(columns: {table.column_names})"
                        )
                    docs = table.column(cfg.split.document_column)
                    split = assign_document(docs, cfg.split)
                    for doc in pc.unique(docs).to_pylist():
                        seen_docs.add(doc)
                else:
                    split = assign_hash(table.column("row_id"), part, cfg.split)
                start += table.num_rows
                yield table, pa.array(split)

        held = np.zeros(0, np.uint64)
        if held_cols:  # first pass: the held-out splits' sentences
            held = np.unique(
                np.concatenate(
                    [np.zeros(0, np.uint64)]
                    + [
                        sentence_hashes(
                            table.filter(pc.is_in(labels, pa.array(["validation", "test"]))),
                            held_cols,
                        )
                        for part in parts(run.inputs)
                        for table, labels in split_tables(part)
                    ]
                )
            )

        writers = {s: io.BatchWriter(run.out / f"{s}.parquet") for s in SPLITS}
        counts = dict.fromkeys(SPLITS, 0)
        rows_in = held_out_dropped = 0
        try:
            for part in parts(run.inputs):
                rows_in += io.parquet_rows(run.inputs / f"{part}.parquet")
                for table, labels in split_tables(part):
                    for name in SPLITS:
                        chunk = table.filter(pc.equal(labels, name))
                        if name == "train" and len(held) and chunk.num_rows:
                            hit = shares_sentence(chunk, held_cols, held)
                            held_out_dropped += int(hit.sum())
                            chunk = chunk.filter(pa.array(~hit))
                        if chunk.num_rows:
                            run.validate(chunk, suite, name, row_offset=counts[name])
                            writers[name].write(chunk)
                            counts[name] += chunk.num_rows
        finally:
            for writer in writers.values():
                writer.close()
        run.rows_out.update(counts)
        io.write_json(
            run.root / "reports" / "format" / f"{corpus}.json",
            {
                "corpus": corpus,
                "rows_in": rows_in,
                "rows_out": dict(counts),
                "dropped": {"train_shares_sentence_with_held_out": held_out_dropped}
                if held_cols
                else {},
                **(
                    {
                        "documents": {
                            "validation": sorted(cfg.split.validation_docs),
                            "test": sorted(cfg.split.test_docs),
                            "train": sorted(
                                seen_docs - set(cfg.split.validation_docs + cfg.split.test_docs)
                            ),
                        }
                    }
                    if by_document
                    else {}
                ),
            },
        )
        if by_document:
            for key in ("validation_docs", "test_docs"):
                missing = sorted(set(getattr(cfg.split, key)) - seen_docs)
                if missing:
                    raise ValueError(
                        f"format.{corpus}.split.{key}: {missing} not in the corpus "
                        f"(its documents: {sorted(seen_docs)})"
                    )
        for name in SPLITS:
            run.check_rows(name, counts[name], 1, None, "every split has rows")
        expected = adapter.formatted_rows(rows_in, cfg)
        run.check_rows(
            "all splits",
            sum(counts.values()) + held_out_dropped,
            expected,
            expected,
            "format keeps every row",
        )
        run.check_disjoint()
        if held_cols:
            low = int(np.ceil(expected * (1 - cfg.max_held_out_drop)))
            run.check_rows(
                "all splits",
                sum(counts.values()),
                low,
                expected,
                params_key=f"format.{corpus}.max_held_out_drop",
                why=f"at most {cfg.max_held_out_drop:.1%} dropped for sharing a held-out sentence",
            )
            run.check_shared(held_cols, ("test", "train"))
            run.check_shared(held_cols, ("validation", "train"))

    return body


def main(argv: list[str] | None = None) -> int:
    """``python -m stages.format CORPUS``."""
    return cli("format", __doc__.split("\n\n")[0], body_for, argv, corpora=corpora.names())


if __name__ == "__main__":
    sys.exit(main())
