"""tokenize: turn formatted rows into model-ready arrays, fitted on train only.

The adapter fits what needs fitting (a vocabulary, normalisation statistics) on the train
split alone, saves it next to the data (``spec.json`` and any tokenizer files), then
streams every split through the same transform. Token and feature columns are
fixed-size or variable Arrow lists, so training reads them without Python loops.

The hop writes ``reports/tokenize/<corpus>.json`` (a DVC metric): rows per split, plus,
for adapters that define ``token_stats(path, artifacts, cfg) -> dict`` (the text corpora:
unknown-token rate, mean/max length), those statistics per split.

params.yaml section ``tokenize.<corpus>``.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pyarrow as pa

from rnnflow import io
from rnnflow.config import parse
from rnnflow.env import PROJECT_ROOT
from stages import corpora
from stages.core.hop import SPLITS, HopRun, cli
from stages.core.validate import Suite


def stats_path(corpus: str, root: Path = PROJECT_ROOT) -> Path:
    """Where the per-split token statistics of ``corpus`` are written."""
    return root / "reports" / "tokenize" / f"{corpus}.json"


def body_for(corpus: str, _args: object):
    """Build the hop body for ``corpus``."""

    def body(run: HopRun) -> None:
        adapter = corpora.get(corpus)
        cfg = parse(adapter.TokenizeConfig, run.params, f"tokenize.{corpus}")
        train = run.inputs / "train.parquet"
        artifacts = adapter.fit(io.iter_batches(train), cfg)
        for name, content in artifacts.items():  # spec.json, vocab.json, tokenizer.json …
            if isinstance(content, str):
                (run.out / name).write_text(content)
            else:
                io.write_json(run.out / name, content)
        suite = adapter.tokens_suite(artifacts, cfg)
        # One batch in the fitted vocabulary: a pure function of the batch.
        work = functools.partial(adapter.tokenize, artifacts=artifacts, cfg=cfg)
        stats_of = getattr(adapter, "token_stats", None)
        stats: dict[str, dict] = {}
        for split in SPLITS:
            rows_in = io.parquet_rows(run.inputs / f"{split}.parquet")
            rows = run.write_stream(split, run.engine.map(work, run.tables(split)), suite)
            key = f"tokenize.{corpus}.max_drop_fraction"
            run.check_dropped(split, rows, rows_in, cfg.max_drop_fraction, key)
            stats[split] = {"rows": rows}
            if stats_of is not None:
                stats[split].update(stats_of(run.out / f"{split}.parquet", artifacts, cfg))
        run.check_disjoint()
        mono = getattr(cfg, "monolingual", None)
        if mono is not None:
            stats["monolingual"] = write_monolingual(run, corpus, mono, artifacts)
        io.write_json(stats_path(corpus, run.root), {"corpus": corpus, "splits": stats})

    return body


def write_monolingual(run: HopRun, corpus: str, mono, artifacts: dict) -> dict:
    """``monolingual.parquet``: the train split of ``mono.corpus`` (its sampled hop output, a
    declared dependency of this stage), column ``mono.column``, encoded with this corpus's
    vocabulary and validated like a split's ``<into>`` column. Returns its statistics."""
    from stages.corpora import texttok

    src = run.inputs.parent / mono.corpus / "train.parquet"
    if not src.exists():
        raise FileNotFoundError(
            f"tokenize.{corpus}.monolingual.corpus: {run.rel(src)} does not exist "
            f"(run the sample hop of {mono.corpus!r} first: dvc repro sample@{mono.corpus})"
        )
    import pyarrow.parquet as pq

    columns = pq.read_schema(src).names
    if mono.column not in columns or "row_id" not in columns:
        raise ValueError(
            f"tokenize.{corpus}.monolingual.column: {run.rel(src)} has no column "
            f"{mono.column!r} (or row_id); its columns: {columns}"
        )
    into = (mono.into,)  # validated like a split's ``<into>`` column
    expectations = texttok.suite_expectations(into, artifacts)
    suite = Suite(f"{corpus}.monolingual", expectations, schema=texttok.tokens_schema(into))
    stream = (
        texttok.encode_monolingual(pa.Table.from_batches([b]), mono, artifacts)
        for b in io.iter_batches(src, columns=["row_id", mono.column])
    )
    rows = run.write_stream("monolingual", stream, suite)
    key = f"tokenize.{corpus}.monolingual"
    run.check_rows("monolingual", rows, 1, None, "at least one line", params_key=key)
    table = io.read_table(run.out / "monolingual.parquet", columns=[f"{mono.into}_ids"])
    return {
        "rows": rows,
        "from": f"{mono.corpus}/train.{mono.column}",
        "unk_rate": texttok.unk_rate(table, into, artifacts)[mono.into],
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m stages.tokenize CORPUS``."""
    return cli("tokenize", __doc__, body_for, argv, corpora=corpora.names())


if __name__ == "__main__":
    sys.exit(main())
