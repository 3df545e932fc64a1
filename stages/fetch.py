"""fetch: bring a corpus in — from its first source that can be had and verified (a local
mirror copy or a download with checksums, retries and resume), or generate it from a seed —
and write it as Parquet, validated.

params.yaml section ``fetch``: ``fetch.network`` (retries, timeouts), ``fetch.require_pinned``
(strict mode) and one subsection per corpus: an ordered list of ``source`` names, or its
generator settings. The ``sources`` they name (URLs, files with checksums, rows) are the
corpus's catalogue, ``sources/<corpus>.yaml`` beside its lock.

Sources are tried in the listed order; among sources of one origin the first that can be had
wins (e.g. the published MNIST files, then the mirror's partial training set). A file with no
pinned checksum is *trusted on first use*: downloaded once, checked structurally by reading it,
and its sha256, size, URL and date are written to ``sources/<corpus>.lock`` (committed). Every
later run verifies against that lock; changed upstream bytes stop the run and say how to accept
them (``rnnflow fetch CORPUS --update``). ``reports/fetch/<corpus>.json`` records which source
served each file. The mirror directory comes from ``$RNNFLOW_MIRROR`` (a transport, not
content: the checksums decide what the data is).

Names are identifiers and paths stay inside their roots: the corpus and its source names,
file paths and ``mirror_dir`` (inside the mirror), and everything written or deleted
(``data/downloads``, the lock, the report: inside the project). Downloads use https, plain
http only for sha256-pinned files; a first-use download that fails any check is deleted,
never served later. ``fetch.<corpus>.max_expanded_bytes`` caps every decompressor.

A text source may instead be a Hugging Face dataset (format ``hf``, see
:mod:`stages.corpora.text`): without a pinned ``revision`` the lock records a digest of the
values read (and the resolved revision), verified on every later run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from rnnflow import io
from rnnflow.config import ConfigError, check_identifier, parse
from rnnflow.env import MIRROR_ENV, mirror_dir
from stages import corpora
from stages.core.catalogue import SourceLock, catalogue_path, lock_path, with_catalogue
from stages.core.config import NetworkConfig
from stages.core.context import FetchContext
from stages.core.download import inside
from stages.core.hop import HopRun, batches_of, cli


def fetch_report(
    ctx: FetchContext, rows: dict[str, int], mirror: Path | None = None
) -> dict[str, Any]:
    """``reports/fetch/<corpus>.json``: which source served each file, its bytes and rows;
    files of the ``mirror`` are named under ``$RNNFLOW_MIRROR``."""
    files = {}
    for name, _, served in ctx.resolved.values():
        for s in served:
            files[s.key if s.key not in files else f"{name}/{s.key}"] = {
                "source": name,
                "served_by": s.served_by,
                "url": s.url,
                "sha256": s.sha256,
                "bytes": s.size,
                "rows": rows.get(s.part, 0),
                **s.extra,
            }
    report = {
        "sources": {part: name for part, (name, _, _) in ctx.resolved.items()},
        "passed_over": ctx.skipped,
        "files": files,
        "rows": rows,
    }
    return portable(report, {mirror: f"${MIRROR_ENV}", ctx.root: "."})


def portable(node: Any, prefixes: dict[Path | None, str]) -> Any:
    """``node`` with each path prefix in its strings named as ``prefixes`` says (the mirror
    root as ``$RNNFLOW_MIRROR``, the project root as ``.``): a committed report names no
    path of the machine that wrote it."""
    if isinstance(node, dict):
        return {k: portable(v, prefixes) for k, v in node.items()}
    if isinstance(node, list):
        return [portable(v, prefixes) for v in node]
    if isinstance(node, str):
        for prefix, name in prefixes.items():
            if prefix is not None:
                node = node.replace(f"{prefix.resolve()}/", f"{name}/")
    return node


# --- the hop ---------------------------------------------------------------------------------


def in_project(run: HopRun, rel: str) -> Path:
    """``run.root / rel``, confirmed to resolve inside the project root (a symlinked
    ``data/`` or ``sources/`` must not carry writes and deletions elsewhere)."""
    return inside(run.root / rel, run.root, rel, "the project root")


def body_for(corpus: str, args: argparse.Namespace | None):
    """Build the hop body for ``corpus`` (an identifier: it names files and directories)."""
    check_identifier(corpus, "corpus")
    update = bool(getattr(args, "update", False))

    def body(run: HopRun) -> None:
        adapter = corpora.get(corpus)
        catalogue = catalogue_path(run.root, corpus)
        try:
            cfg = parse(
                adapter.FetchConfig, with_catalogue(run.params, corpus, run.root), f"fetch.{corpus}"
            )
        except ConfigError as exc:
            if f"fetch.{corpus}.sources" in str(exc) and catalogue.exists():
                raise ConfigError(
                    f"{exc} (fetch.{corpus}.sources: {catalogue.relative_to(run.root)})"
                ) from None
            raise
        net = parse(NetworkConfig, run.params, "fetch.network")
        strict = run.params.get("fetch", {}).get("require_pinned", False)
        if not isinstance(strict, bool):
            raise ConfigError(f"params fetch.require_pinned must be true or false, got {strict!r}")
        mirror = mirror_dir()
        # The corpus's directory of the mirror: ``fetch.<corpus>.mirror_dir`` (a text corpus
        # may set it; default: the corpus name) must stay inside.
        sub = getattr(cfg, "mirror_dir", None) or corpus
        sub_key = f"params fetch.{corpus}.mirror_dir {sub!r}"
        lock_file = in_project(run, lock_path(Path(), corpus).as_posix())
        report = in_project(run, f"reports/fetch/{corpus}.json")
        lock = SourceLock.load(lock_file, corpus)
        ctx = FetchContext(
            net,
            inside(mirror / sub, mirror, sub_key, "the mirror") if mirror else None,
            in_project(run, f"data/downloads/{corpus}"),
            corpus=corpus,
            lock=lock,
            require_pinned=strict,
            update=update,
            root=run.root,
        )
        try:
            for part, data in adapter.fetch(cfg, ctx).items():
                # A part is a whole table or (for big sources) an iterable of tables, streamed.
                stream: Iterable[pa.Table] = (
                    batches_of(data) if isinstance(data, pa.Table) else data
                )
                rows = run.write_stream(part, stream, adapter.raw_suite(part, cfg))
                low, high = adapter.expected_rows(part, cfg)
                key, where = None, "params"
                for name, source, _ in ctx.resolved.values():
                    if part in source.rows:  # the source that served it says its row count
                        low = high = source.rows[part]
                        key = f"fetch.{corpus}.sources.{name}.rows.{part}"
                        if catalogue.exists():
                            key = f"{name}.rows.{part}"
                            where = catalogue.relative_to(run.root).as_posix()
                run.check_rows(part, rows, low, high, "rows fetched", params_key=key, where=where)
            # Reached only when every part read, validated and counted: first uses are
            # trusted now.
            lock.save(lock_file)
        except BaseException:
            ctx.discard_first_uses()
            raise
        io.write_json(report, fetch_report(ctx, dict(run.rows_out), mirror))

    return body


def _add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--update",
        action="store_true",
        help="accept new upstream bytes of files that have no pinned checksum: "
        "fetch them again and rewrite sources/CORPUS.lock",
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m stages.fetch CORPUS [--update]``."""
    return cli("fetch", __doc__, body_for, argv, add_args=_add_args, corpora=corpora.names())


if __name__ == "__main__":
    sys.exit(main())
