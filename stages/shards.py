"""sample and tokenize shard by shard on Dask, through Prefect's Dask task runner.

    python -m stages.shards tokenize es_en                       # local Dask cluster
    python -m stages.shards sample es_en --address tcp://host:8786

For corpora that outgrow one machine. A *shard* is a range of Parquet row groups of one
input split (hops write ~64k-row groups, so by default one group per shard). Each shard is
one Prefect task — a pure function of (input path, shard, adapter, artifacts/mask, cfg)
that writes one part file and validates it with the hop's own suite — mapped over a
``prefect_dask.DaskTaskRunner``. The flow then streams the parts, in order, into **one**
Parquet file per split and removes them, so the output equals the serial hop's row for
row (``tests/data/test_shards.py`` checks it) and the layout stays "few big files".

What stays serial, in the flow process: tokenize's ``fit`` (one streaming pass over train;
its result is shipped to every task) and sample's global choice of rows (the ``row_id``
column — 8 bytes a row — ranked exactly as ``stages.sample`` does; each task gets its
slice of the mask). The DVC stages stay the serial hops; this flow writes the same
directory (atomically) for a user who runs a big corpus by hand or from a scheduler. It does
not write ``reports/validation`` (a failing shard fails its task and the flow instead).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import Flow, flow, task
from prefect.cache_policies import NO_CACHE

import rnnflow  # noqa: F401,I001  first: offline/telemetry env before Prefect reads it
from rnnflow import io
from rnnflow.config import load_params, parse
from rnnflow.env import PROJECT_ROOT
from stages.core.hop import SPLITS, data_dir, input_dir

LOCAL_CLUSTER = {
    "n_workers": 2,
    "threads_per_worker": 1,
    "processes": True,
    "dashboard_address": None,
}


def dask_runner(address: str | None = None, cluster_kwargs: dict[str, Any] | None = None):
    """A ``DaskTaskRunner``: an existing scheduler at ``address``, else a local cluster."""
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={**LOCAL_CLUSTER, **(cluster_kwargs or {})})


# --- shards: pure functions ------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    """Row groups ``[group_start, group_stop)`` of a file = rows ``[row_start, row_stop)``."""

    index: int
    group_start: int
    group_stop: int
    row_start: int
    row_stop: int


def plan_shards(path: Path | str, rows_per_shard: int = io.ROW_GROUP_ROWS) -> list[Shard]:
    """Consecutive row groups, grouped until each shard has ≥ ``rows_per_shard`` rows."""
    meta = pq.ParquetFile(path).metadata
    shards: list[Shard] = []
    start = row = first_row = 0
    for g in range(meta.num_row_groups):
        row += meta.row_group(g).num_rows
        if row - first_row >= rows_per_shard or g == meta.num_row_groups - 1:
            shards.append(Shard(len(shards), start, g + 1, first_row, row))
            start, first_row = g + 1, row
    return shards


def read_shard(path: Path | str, shard: Shard) -> pa.Table:
    """The rows of one shard (only its row groups are read)."""
    with pq.ParquetFile(path) as pf:
        return pf.read_row_groups(range(shard.group_start, shard.group_stop))


def load_adapter(name: str):
    """A registered corpus name, or ``module:Class`` for an adapter outside the registry."""
    from stages import corpora

    if ":" not in name:
        return corpora.get(name)
    module, cls = name.split(":")
    return getattr(importlib.import_module(module), cls)()


def _part_path(out_dir: str, split: str, shard: Shard) -> Path:
    return Path(out_dir) / f"{split}-{shard.index:06d}.parquet"


def _validated(table: pa.Table, suite, where: str, row_offset: int) -> None:
    from stages.core.validate import validate

    if suite is None:
        return
    res = validate(table, suite, where=where, row_offset=row_offset)
    if not res.success:
        # ValidationFailed does not survive pickling across processes: send its text.
        lines = [f"validation failed: suite {res.suite!r} on {res.where}"]
        raise RuntimeError("\n".join(lines + [f"  - {f}" for f in res.failures]))


def tokenize_part(
    src: str,
    shard: Shard,
    adapter: str,
    artifacts: dict[str, Any],
    cfg: Any,
    split: str,
    out_dir: str,
    check: bool = True,
) -> int:
    """Tokenize one shard with the adapter's transform, validate it, write its part file."""
    corpus = load_adapter(adapter)
    table = read_shard(src, shard)
    tokens = pa.concat_tables(
        [
            corpus.tokenize(pa.Table.from_batches([b], table.schema), artifacts, cfg)
            for b in table.to_batches(max_chunksize=io.BATCH_ROWS)
        ]
        or [corpus.tokenize(table, artifacts, cfg)]
    )
    if check:
        _validated(tokens, corpus.tokens_suite(artifacts, cfg), f"{split}.parquet", shard.row_start)
    io.write_table(_part_path(out_dir, split, shard), tokens)
    return tokens.num_rows


def sample_part(
    src: str,
    shard: Shard,
    keep: np.ndarray,
    adapter: str,
    split: str,
    out_dir: str,
    check: bool = True,
) -> int:
    """Keep the masked rows of one shard, validate them, write its part file."""
    table = read_shard(src, shard).filter(pa.array(keep))
    if check:
        _validated(
            table, load_adapter(adapter).formatted_suite(None), f"{split}.parquet", shard.row_start
        )
    io.write_table(_part_path(out_dir, split, shard), table)
    return table.num_rows


def lengths_part(src: str, shard: Shard, adapter: str) -> np.ndarray:
    """``adapter.lengths`` of one shard's rows (for ``sample.max_length``)."""
    return np.asarray(load_adapter(adapter).lengths(read_shard(src, shard)))


def concat_parts(parts: list[Path], dst: Path, schema: pa.Schema) -> int:
    """Stream part files, in order, into one Parquet file; remove them; return the rows."""
    with io.BatchWriter(dst, schema) as writer:
        for part in parts:
            for batch in io.iter_batches(part):
                writer.write(batch)
            part.unlink()
    return writer.rows


# --- Prefect: one task per shard ---------------------------------------------------------


class Held:
    """An argument Prefect hands to a task without walking it (artifacts, masks).

    Prefect looks for futures inside every list/dict/dataclass argument of every task:
    ~0.1 s per task for a 50k-word vocabulary. ``prefect.utilities.annotations.quote``
    would stop that, but in Prefect 3.9 it does not survive pickling to a Dask worker
    (``quote('x')`` arrives as ``quote(('x',))``), so this plain holder is used instead.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __getstate__(self) -> Any:
        return self.value

    def __setstate__(self, value: Any) -> None:
        self.value = value


@task(name="shard", cache_policy=NO_CACHE)
def shard_task(fn: Callable[..., Any], shard: Shard, fixed: Held) -> Any:
    """Run one of the pure ``*_part`` functions above on one shard."""
    return fn(shard=shard, **fixed.value)


def _map(fn: Callable[..., Any], shards: list[Shard], **fixed: Any) -> list[Any]:
    """``fn`` on every shard as Prefect tasks on the flow's task runner; results in order."""
    held = Held(fixed)
    named = shard_task.with_options(name=fn.__name__.replace("_part", "-shard"))
    futures = [named.submit(fn, s, held) for s in shards]
    return [f.result() for f in futures]


def _out_dir(hop: str, corpus: str, root: Path, out: str | None) -> Path:
    return Path(out) if out else data_dir(hop, corpus, root)


@flow(name="tokenize-sharded", task_runner=dask_runner(), log_prints=True)
def tokenize_sharded(
    corpus: str,
    root: str = str(PROJECT_ROOT),
    params: str | None = None,
    out: str | None = None,
    rows_per_shard: int = io.ROW_GROUP_ROWS,
    adapter: str | None = None,
    check: bool = True,
) -> dict[str, int]:
    """The tokenize hop of ``corpus``, shard by shard: artifacts + one file per split."""
    root_p = Path(root)
    name = adapter or corpus
    corpus_ad = load_adapter(name)
    cfg = parse(
        corpus_ad.TokenizeConfig,
        load_params(params or root_p / "params.yaml"),
        f"tokenize.{corpus}",
    )
    if getattr(cfg, "monolingual", None) is not None:
        # the lines of another corpus are one small serial pass: the hop writes them
        raise ValueError(
            f"tokenize-sharded {corpus}: tokenize.{corpus}.monolingual is written by the hop "
            f"only (dvc repro tokenize@{corpus}), not shard by shard"
        )
    src_dir = input_dir("tokenize", corpus, root_p)
    artifacts = corpus_ad.fit(io.iter_batches(src_dir / "train.parquet"), cfg)
    final = _out_dir("tokenize", corpus, root_p, out)
    rows: dict[str, int] = {}
    with io.atomic_dir(final) as tmp:
        for fname, content in artifacts.items():
            if isinstance(content, (dict, list)):
                io.write_json(tmp / fname, content)
            else:
                (tmp / fname).write_text(
                    content if isinstance(content, str) else json.dumps(content)
                )
        for split in SPLITS:
            src = src_dir / f"{split}.parquet"
            shards = plan_shards(src, rows_per_shard)
            counts = _map(
                tokenize_part,
                shards,
                src=str(src),
                adapter=name,
                artifacts=artifacts,
                cfg=cfg,
                split=split,
                out_dir=str(tmp),
                check=check,
            )
            empty = pq.read_schema(src).empty_table()
            schema = corpus_ad.tokenize(empty, artifacts, cfg).schema
            rows[split] = concat_parts(
                [_part_path(str(tmp), split, s) for s in shards], tmp / f"{split}.parquet", schema
            )
            if rows[split] != sum(counts) or rows[split] < io.parquet_rows(src) * (
                1 - cfg.max_drop_fraction
            ):
                raise RuntimeError(
                    f"tokenize-sharded {corpus} {split}: {rows[split]} rows written "
                    f"of {io.parquet_rows(src)}"
                )
    print(f"tokenize-sharded {corpus}: {rows} → {final}")
    return rows


@flow(name="sample-sharded", task_runner=dask_runner(), log_prints=True)
def sample_sharded(
    corpus: str,
    root: str = str(PROJECT_ROOT),
    params: str | None = None,
    out: str | None = None,
    rows_per_shard: int = io.ROW_GROUP_ROWS,
    adapter: str | None = None,
    check: bool = True,
) -> dict[str, int]:
    """The sample hop of ``corpus``, shard by shard: the same rows as ``stages.sample``."""
    from stages.sample import SampleConfig, keep_mask, target_rows

    root_p = Path(root)
    name = adapter or corpus
    cfg = parse(SampleConfig, load_params(params or root_p / "params.yaml"), f"sample.{corpus}")
    src_dir = input_dir("sample", corpus, root_p)
    final = _out_dir("sample", corpus, root_p, out)
    rows: dict[str, int] = {}
    with io.atomic_dir(final) as tmp:
        for split in SPLITS:
            src = src_dir / f"{split}.parquet"
            shards = plan_shards(src, rows_per_shard)
            ids = io.read_table(src, columns=["row_id"])["row_id"].to_numpy()
            eligible = np.ones(len(ids), dtype=bool)
            if cfg.max_length is not None:
                lengths = _map(lengths_part, shards, src=str(src), adapter=name)
                eligible = np.concatenate(lengths or [np.zeros(0)]) <= cfg.max_length
            n = target_rows(getattr(cfg, split), int(eligible.sum()))
            mask = keep_mask(ids, n, cfg.seed, eligible)
            named = shard_task.with_options(name="sample-shard")
            futures = [
                named.submit(
                    sample_part,
                    s,
                    Held(
                        {
                            "keep": mask[s.row_start : s.row_stop],
                            "src": str(src),
                            "adapter": name,
                            "split": split,
                            "out_dir": str(tmp),
                            "check": check,
                        }
                    ),
                )
                for s in shards
            ]
            kept = [f.result() for f in futures]
            rows[split] = concat_parts(
                [_part_path(str(tmp), split, s) for s in shards],
                tmp / f"{split}.parquet",
                pq.read_schema(src),
            )
            if rows[split] != n or sum(kept) != n:
                raise RuntimeError(
                    f"sample-sharded {corpus} {split}: {rows[split]} rows, expected {n}"
                )
    print(f"sample-sharded {corpus}: {rows} → {final}")
    return rows


FLOWS: dict[str, Flow[..., dict[str, int]]] = {
    "tokenize": tokenize_sharded,
    "sample": sample_sharded,
}


def run(hop: str, corpus: str, *, address: str | None = None, **kwargs: Any) -> dict[str, int]:
    """Run a sharded hop on a local Dask cluster, or on the scheduler at ``address``."""
    chosen = FLOWS[hop]
    if address:
        chosen = chosen.with_options(task_runner=dask_runner(address))
    return chosen(corpus, **kwargs)


def main(argv: list[str] | None = None) -> int:
    """``python -m stages.shards {tokenize,sample} CORPUS``."""
    parser = argparse.ArgumentParser(
        prog="python -m stages.shards", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("hop", choices=sorted(FLOWS), help="which hop to run shard by shard")
    parser.add_argument("corpus", help="corpus name (as in params.yaml)")
    parser.add_argument(
        "--address",
        default=None,
        help="Dask scheduler address (default: a local 2-process cluster)",
    )
    parser.add_argument(
        "--rows-per-shard",
        type=int,
        default=io.ROW_GROUP_ROWS,
        help="rows per task (whole row groups; default %(default)s)",
    )
    parser.add_argument("--root", default=str(PROJECT_ROOT), help="project root")
    parser.add_argument("--params", default=None, help="params file (default: ROOT/params.yaml)")
    parser.add_argument("--out", default=None, help="output directory (default: the hop's)")
    args = parser.parse_args(argv)
    try:
        rows = run(
            args.hop,
            args.corpus,
            address=args.address,
            root=args.root,
            params=args.params,
            out=args.out,
            rows_per_shard=args.rows_per_shard,
        )
    except (RuntimeError, ValueError, FileNotFoundError) as exc:
        print(f"stages.shards {args.hop} {args.corpus}: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
