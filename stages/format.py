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
from stages.core.hashing import in_sorted, row_hash, uniform, value_hashes
from stages.core.hop import SPLITS, HopRun, batches_of, cli, parts


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

        def formatted(table: pa.Table) -> pa.Table:
            """The task's schema, ``row_id`` (a hash of the key columns: the content) first."""
            table = adapter.format(table, cfg)
            return table.add_column(0, "row_id", row_hash(table, adapter.key_columns))

        def split_tables(part: str):
            """Formatted tables of one input part with their split labels."""
            src = run.inputs / f"{part}.parquet"
            if adapter.format_whole_part or ordered:
                whole = formatted(io.read_table(src))
                stream, total = batches_of(whole), whole.num_rows
            else:
                stream, total = map(formatted, run.tables(part)), 0
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
                    seen_docs.update(pc.unique(docs).to_pylist())
                else:
                    split = assign_hash(table.column("row_id"), part, cfg.split)
                start += table.num_rows
                yield table, pa.array(split)

        held = np.zeros(0, np.uint64)
        if held_cols:  # first pass: the held-out splits' sentences
            held_out = pa.array(["validation", "test"])
            hashes = [
                value_hashes(table.filter(pc.is_in(labels, held_out)), held_cols)
                for part in parts(run.inputs)
                for table, labels in split_tables(part)
            ]
            held = np.unique(np.concatenate([held, *hashes]))

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
                            # A row goes if any of its held-out columns holds such a sentence.
                            shared = in_sorted(value_hashes(chunk, held_cols), held)
                            hit = shared.reshape(len(held_cols), -1).any(axis=0)
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
        kept = sum(counts.values())
        dropped = {"train_shares_sentence_with_held_out": held_out_dropped} if held_cols else {}
        report = {
            "corpus": corpus,
            "rows_in": rows_in,
            "rows_out": dict(counts),
            "dropped": dropped,
        }
        if by_document:
            listed = cfg.split.validation_docs + cfg.split.test_docs
            report["documents"] = {
                "validation": sorted(cfg.split.validation_docs),
                "test": sorted(cfg.split.test_docs),
                "train": sorted(seen_docs - set(listed)),
            }
        io.write_json(run.root / "reports" / "format" / f"{corpus}.json", report)
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
        why = "format keeps every row"
        run.check_rows("all splits", kept + held_out_dropped, expected, expected, why)
        run.check_disjoint()
        if held_cols:
            key, why = f"format.{corpus}.max_held_out_drop", " for sharing a held-out sentence"
            run.check_dropped("all splits", kept, expected, cfg.max_held_out_drop, key, why)
            run.check_shared(held_cols, ("test", "train"))
            run.check_shared(held_cols, ("validation", "train"))

    return body


def main(argv: list[str] | None = None) -> int:
    """``python -m stages.format CORPUS``."""
    return cli("format", __doc__, body_for, argv, corpora=corpora.names())


if __name__ == "__main__":
    sys.exit(main())
