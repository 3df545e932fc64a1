"""What every DVC hop shares: paths, CLI, streaming, validation, atomic output.

A hop's ``main`` parses ``CORPUS`` (and ``--params``), then :func:`execute` runs the hop
into a temporary directory, validates, writes the validation report, and swaps the
directory into place only if everything passed (:func:`rnnflow.io.atomic_dir`). Failures
print one readable report to stderr and exit non-zero; nothing half-written stays behind
and the previous output, if any, is left as it was (DVC itself removes outputs before it
runs a stage; a direct ``python -m stages.<hop>`` run with a params typo or a failing
check no longer destroys the last good output). Temp directories left by a killed run of
the same hop are removed by the next one.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from rnnflow import io
from rnnflow.config import ConfigError
from rnnflow.env import PROJECT_ROOT
from stages.core.config import read_params
from stages.core.engine import Engine
from stages.core.validate import Expect, Result, Suite, ValidationFailed, validate, write_report

# Data layers by name (Kedro's convention): the number says where in the flow a file is.
LAYERS = {
    "fetch": "01_raw",
    "clean": "02_clean",
    "format": "03_formatted",
    "sample": "04_sampled",
    "tokenize": "05_tokens",
}
HOPS = list(LAYERS)
SPLITS = ("train", "validation", "test")


def data_dir(hop: str, corpus: str, root: Path = PROJECT_ROOT) -> Path:
    """Output directory of ``hop`` for ``corpus``."""
    return root / "data" / LAYERS[hop] / corpus


def parts(directory: Path) -> list[str]:
    """Parquet file stems in a hop directory, in a stable order (test first)."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: input directory missing (did the previous hop run?)")
    found = sorted(p.stem for p in directory.glob("*.parquet"))
    if not found:
        raise FileNotFoundError(f"{directory}: no .parquet files")
    # Test first: when deduplicating, the held-out set is never the one that loses rows.
    return sorted(found, key=lambda s: (s != "test", s != "validation", s))


@dataclass
class HopRun:
    """One execution of a hop for one corpus: where to write, what was validated."""

    hop: str
    corpus: str
    params: dict[str, Any]
    out: Path
    root: Path = PROJECT_ROOT
    results: list[Result] = field(default_factory=list)
    rows_out: dict[str, int] = field(default_factory=dict)
    #: Where a hop's per-batch work runs (``data.engine``: this process or Dask workers).
    engine: Engine = field(default_factory=Engine)

    @property
    def inputs(self) -> Path:
        """Output directory of the hop before this one."""
        return data_dir(HOPS[HOPS.index(self.hop) - 1], self.corpus, self.root)

    def tables(self, part: str, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """The input file of ``part``, streamed as one table a record batch."""
        for batch in io.iter_batches(self.inputs / f"{part}.parquet", columns=columns):
            yield pa.Table.from_batches([batch])

    def final_path(self, part: str) -> Path:
        """Where ``part`` will live once the hop succeeds (used in messages)."""
        return data_dir(self.hop, self.corpus, self.root) / f"{part}.parquet"

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def validate(self, table: pa.Table, suite: Suite, part: str, row_offset: int = 0) -> None:
        """Validate rows of ``part``; failures are collected, raised at the end."""
        res = validate(table, suite, where=self.rel(self.final_path(part)), row_offset=row_offset)
        self._keep(res)

    def _keep(self, res: Result) -> None:
        # One result per (suite, file) unless it failed: batch-wise validation of a big file
        # would otherwise fill the report with identical successes.
        for i, old in enumerate(self.results):
            if old.suite == res.suite and old.where == res.where:
                if old.success and not res.success:
                    self.results[i] = res
                elif old.success and res.success:
                    old.evaluated += res.evaluated
                return
        self.results.append(res)
        if not res.success:
            raise ValidationFailed([res])

    def write_stream(self, part: str, tables: Iterable[pa.Table], suite: Suite) -> int:
        """Validate and write tables to ``<part>.parquet``; return the row count."""
        rows = 0
        path = self.out / f"{part}.parquet"
        try:
            with io.BatchWriter(path) as writer:
                for table in tables:
                    self.validate(table, suite, part, row_offset=rows)
                    writer.write(table)
                    rows += table.num_rows
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) or str(path) not in str(exc):
                raise
            # Name the file as the user knows it, not its temporary directory.
            text = (exc.strerror or str(exc)).replace(
                str(path), f"{self.rel(self.final_path(part))} (written in {self.rel(self.out)})"
            )
            raise OSError(exc.errno, text) from exc
        self.rows_out[part] = rows
        return rows

    def check_rows(
        self,
        part: str,
        rows: int,
        min_rows: int,
        max_rows: int | None,
        why: str,
        params_key: str | None = None,
        where: str = "params",
    ) -> None:
        """Row-count bound for one output file, checked through the same adapter.

        ``params_key`` (e.g. ``sample.mnist.train``) names the entry of ``where`` (params,
        or a source catalogue such as ``sources/mnist.yaml``) that sets the bound; a failure
        says to change it there if the data is right.
        """
        rows, min_rows = int(rows), int(min_rows)
        max_rows = int(max_rows) if max_rows is not None else None
        high = max_rows if max_rows is not None else rows
        frame = pa.table({"rows": [rows], "min_rows": [min_rows], "max_rows": [high]})
        suite = Suite(
            f"{self.corpus}.{self.hop}.row_count ({why})",
            (Expect.at_least("rows", "min_rows"), Expect.at_least("max_rows", "rows")),
        )
        try:
            self.validate(frame, suite, part)
        except ValidationFailed as exc:
            # GX reports the offending (a, b) pair as numpy scalars: say it in plain numbers.
            if max_rows is None:
                want = f"at least {min_rows:,}"
            elif min_rows == max_rows:
                want = f"exactly {min_rows:,}"
            else:
                want = f"{min_rows:,} to {max_rows:,}"
            detail = f"{rows:,} rows, expected {want}"
            if params_key:
                detail += (
                    f"; if the data is right, change the expected count in {where} {params_key}"
                )
            for res in exc.results:  # one line says it all
                res.failures = res.failures[:1]
                for failure in res.failures:
                    failure.detail, failure.values, failure.rows = detail, [], []
            raise ValidationFailed(exc.results, exc.report_path) from None

    def check_dropped(
        self, part: str, rows: int, rows_in: int, fraction: float, params_key: str, why: str = ""
    ) -> None:
        """At most ``fraction`` of ``rows_in`` dropped (``params_key`` sets it)."""
        low = int(np.ceil(rows_in * (1 - fraction)))
        reason = f"at most {fraction:.1%} dropped{why}"
        self.check_rows(part, rows, low, rows_in, reason, params_key=params_key)

    def check_disjoint(self) -> None:
        """No ``row_id`` may occur in two splits (checked on the written files)."""
        values = {}
        for part in self.rows_out:
            path = self.out / f"{part}.parquet"
            values[part] = np.unique(io.read_table(path, columns=["row_id"])["row_id"].to_numpy())
        self._check_unique(values, "row_id", f"{self.corpus}.{self.hop}.splits_disjoint")

    def check_shared(
        self, columns: tuple[str, ...], splits: tuple[str, ...] = ("test", "train")
    ) -> None:
        """No sentence (a value in any of ``columns``, pooled) may occur in two of ``splits``.

        Checked on the written files through the same adapter, by 64-bit content hash; a
        failure quotes a few of the shared sentences.
        """
        from stages.core.hashing import value_hashes

        values = {}
        for part in splits:
            hashes = [np.zeros(0, np.uint64)] + [
                value_hashes(pa.Table.from_batches([batch]), columns)
                for batch in io.iter_batches(self.out / f"{part}.parquet", columns=list(columns))
            ]
            values[part] = np.unique(np.concatenate(hashes))
        name = f"{self.corpus}.{self.hop}.sentences_disjoint[{','.join(columns)}]"
        try:
            self._check_unique(values, "sentence", name)
        except ValidationFailed:
            res = self.results[-1]
            shared = np.intersect1d(values[splits[0]], values[splits[1]])
            examples = self._sentences(splits[0], columns, shared[:3])
            failure = res.failures[0]
            failure.detail += (
                f" ({len(shared):,} sentences of {splits[0]} also in {splits[1]}, e.g. {examples})"
            )
            raise

    def _sentences(self, part: str, columns: tuple[str, ...], hashes: np.ndarray) -> list[str]:
        """The texts in ``part`` whose hashes are ``hashes`` (for messages)."""
        from stages.core.hashing import row_hash

        found: list[str] = []
        for batch in io.iter_batches(self.out / f"{part}.parquet", columns=list(columns)):
            table = pa.Table.from_batches([batch])
            for col in columns:
                hit = np.isin(row_hash(table, (col,)).to_numpy(), hashes)
                found += [
                    t for t in table.column(col).filter(pa.array(hit)).to_pylist() if t not in found
                ]
            if len(found) >= len(hashes):
                break
        return found[: len(hashes)]

    def _check_unique(self, values: dict[str, np.ndarray], column: str, suite_name: str) -> None:
        """Validate that each value (already unique within its split) is in one split only.

        Overlaps are counted with numpy on sorted hashes (memory: 8 bytes a row); GX then
        checks a one-row-per-pair summary, so the check stays flat as the corpus grows.
        """
        names = list(values)
        pairs, shared, examples = [], [], []
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                common = np.intersect1d(values[first], values[second], assume_unique=True)
                pairs.append(f"{first}∩{second}")
                shared.append(len(common))
                examples.append(", ".join(str(v) for v in common[:3]))
        if not pairs:
            return
        table = pa.table(
            {"pair": pairs, "shared": pa.array(shared, pa.int64()), f"example_{column}s": examples}
        )
        suite = Suite(suite_name, (Expect.between("shared", 0, 0),))
        res = validate(table, suite, where=self.rel(data_dir(self.hop, self.corpus, self.root)))
        if not res.success:
            bad = [
                f"{p}: {n:,} shared {column}s (e.g. {e})"
                for p, n, e in zip(pairs, shared, examples)
                if n
            ]
            res.failures[0].detail += " — rows shared between splits: " + "; ".join(bad)
        self._keep(res)


def batches_of(table: pa.Table, rows: int = io.BATCH_ROWS) -> Iterator[pa.Table]:
    """Slice a table into batches (zero-copy)."""
    for start in range(0, table.num_rows, rows):
        yield table.slice(start, rows)


def execute(
    hop: str,
    corpus: str,
    body: Callable[[HopRun], None],
    *,
    params_path: Path | None = None,
    root: Path = PROJECT_ROOT,
) -> int:
    """Run ``body`` for one hop/corpus with atomic output; return a process exit code."""
    started = time.perf_counter()
    final = data_dir(hop, corpus, root)
    # The previous output stays until a complete, validated new one replaces it.
    run: HopRun | None = None
    engine: Engine | None = None
    try:
        params = read_params(params_path or root / "params.yaml")
        engine = Engine.from_params(params)
        with io.atomic_dir(final) as tmp:
            run = HopRun(hop, corpus, params, tmp, root, engine=engine)
            body(run)
            if not all(r.success for r in run.results):
                raise ValidationFailed(run.results)
            write_report(hop, corpus, run.results, root)
    except ValidationFailed as exc:
        if run is not None:
            exc.report_path = write_report(hop, corpus, run.results, root)
        print(
            f"rnnflow {hop} {corpus}: stopped, output not written\n{exc.render()}", file=sys.stderr
        )
        return 1
    except io.ParquetReadError as exc:
        print(f"rnnflow {hop} {corpus}: error: {_with_stage_hint(exc, root)}", file=sys.stderr)
        return 1
    except (ConfigError, FileNotFoundError, ValueError, OSError, RuntimeError) as exc:
        print(f"rnnflow {hop} {corpus}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if engine is not None:
            engine.close()
    took = time.perf_counter() - started
    summary = ", ".join(f"{k}={v:,}" for k, v in run.rows_out.items())
    print(
        f"rnnflow {hop} {corpus}: ok in {took:.1f}s ({summary}) → {run.rel(final)}", file=sys.stderr
    )
    return 0


def _with_stage_hint(exc: io.ParquetReadError, root: Path) -> io.ParquetReadError:
    """Name the DVC stage that re-creates a damaged file under ``data/<layer>/<corpus>/``."""
    try:
        layer, corpus = exc.path.resolve().relative_to((root / "data").resolve()).parts[:2]
    except ValueError:
        return exc
    stage = {v: k for k, v in LAYERS.items()}.get(layer)
    if stage is None:
        return exc
    return exc.with_hint(
        f"re-create it with `dvc checkout --force {stage}@{corpus}` "
        f"(or `dvc repro {stage}@{corpus}`)"
    )


def cli(
    hop: str,
    doc: str | None,
    body_for: Callable[[str, argparse.Namespace], Callable[[HopRun], None]],
    argv: list[str] | None = None,
    add_args: Callable[[argparse.ArgumentParser], None] | None = None,
    *,
    corpora: Sequence[str],
) -> int:
    """The shared command line of every hop: ``python -m stages.<hop> CORPUS``, described
    by the first paragraph of the hop module's ``doc``.

    ``corpora`` are the accepted corpus names: the hop passes its registry's
    (``stages.corpora.names()``), so the framework never imports the stages above it.
    ``add_args`` lets a hop add its own flags (e.g. ``fetch --update``); they reach
    ``body_for`` in the parsed namespace.
    """
    description = (doc or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog=f"rnnflow {hop}", description=description)
    parser.add_argument("corpus", choices=list(corpora), help="which corpus to process")
    params_help = "params file (default: params.yaml in the project root)"
    parser.add_argument("--params", type=Path, help=params_help)
    if add_args is not None:
        add_args(parser)
    args = parser.parse_args(argv)
    return execute(hop, args.corpus, body_for(args.corpus, args), params_path=args.params)
