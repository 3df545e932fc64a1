"""Where a corpus's files come from: its sources, tried in order, and the lock.

The machinery behind the fetch hop that adapters call from ``Corpus.fetch``: a
:class:`~stages.core.context.FetchContext` (network policy, mirror, download cache, the
lock), :func:`resolve` (the first listed source whose files can all be had and verified) and
:class:`~stages.core.lock.SourceLock` (``sources/<corpus>.lock``: trust on first use). Bytes
are obtained by :mod:`stages.core.download`; the source configs are
:mod:`stages.core.config`'s. The hop itself (``stages/fetch.py``) builds the context, runs
the adapter and writes the fetch report.

A source with ``dataset`` set (format ``hf``) is a Hugging Face dataset instead of files:
:func:`resolve` loads it (:mod:`stages.core.hfsource`: the local cache offline, the Hub
online; not loadable = passed over, like a 404) and hands the adapter an
:class:`~stages.core.context.HFDataset`, whose :meth:`~stages.core.context.HFDataset.tables`
streams the mapped columns in record batches while computing a content digest
(:class:`~stages.core.hfcolumns.ContentDigest`); at the end of the stream the digest is
verified against the lock (or recorded there on first use).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from stages.core.config import DatasetSourceConfig, SourceConfig
from stages.core.context import FetchContext, Served, discard
from stages.core.hfsource import obtain_dataset
from stages.core.lock import SourceLock, UpstreamChanged

#: A corpus's own source config (e.g. a text corpus's, with a file format).
S = TypeVar("S", bound=SourceConfig)


class NoSource(RuntimeError):
    """None of a corpus's sources could be had; the message lists why, source by source."""


def _obtain(
    name: str,
    source: SourceConfig,
    ctx: FetchContext,
    params_key: str,
    part_of: Callable[[str], str],
) -> list[Served]:
    """Every file of one source, verified (pinned or locked) or trusted on first use.

    Raises ``DownloadError`` when a file cannot be had (the next source may serve),
    ``UpstreamChanged``/``ChecksumMismatch`` when bytes are wrong (never skipped), and
    ``PermissionError`` (strict mode) for a file that is neither pinned nor locked.
    """
    from stages.core.download import obtain
    from stages.core.filecheck import ChecksumMismatch, FileSpec, file_digest

    if isinstance(source, DatasetSourceConfig) and source.dataset is not None:
        return [obtain_dataset(name, source, ctx, params_key, part_of("dataset"))]
    lock = ctx.lock or SourceLock(ctx.corpus)
    plan: list[tuple[str, FileSpec, dict[str, Any] | None, bool]] = []
    for key, f in source.files.items():
        entry = None if ctx.update else lock.get(name, key)
        if f.pinned:
            plan.append((key, FileSpec(f.path, f.checksum, f.size), None, True))
        elif entry is not None:
            plan.append(
                (key, FileSpec(f.path, "sha256:" + entry["sha256"], entry["size"]), entry, False)
            )
        elif ctx.require_pinned:
            raise PermissionError(
                f"{params_key}.files.{key} ({f.path}) has no pinned checksum and no entry in "
                f"sources/{ctx.corpus}.lock, and fetch.require_pinned is true: run "
                f"`rnnflow fetch {ctx.corpus}` once with fetch.require_pinned: false to record "
                f"it, or pin its checksum in params"
            )
        else:
            plan.append((key, FileSpec(f.path, None, f.size), None, False))
    served: list[Served] = []
    trusted: list[tuple[str, dict[str, Any]]] = []
    first_use: list[Path] = []
    for key, spec, entry, pinned in plan:
        try:
            got = obtain(
                spec,
                urls=source.urls,
                mirror=ctx.mirror,
                dest_dir=ctx.downloads,
                retries=ctx.network.retries,
                timeout_s=ctx.network.timeout_s,
                backoff_s=ctx.network.backoff_s,
                # A copy nothing verifies (not pinned, not locked) was never checked by a
                # successful hop: fetch it afresh rather than serve it.
                refresh=spec.checksum is None,
            )
        except BaseException as exc:
            # A source given up half-way leaves none of its unverified files behind.
            for path in first_use:
                discard(path)
            if not isinstance(exc, ChecksumMismatch) or entry is None:
                raise
            raise UpstreamChanged(
                f"{params_key}.files.{key} ({spec.path}) changed upstream: "
                f"sources/{ctx.corpus}.lock recorded sha256 {entry['sha256']} "
                f"({entry['size']:,} bytes, from {entry['url']} on {entry['date']}).\n{exc}\n"
                f"If the new version is expected, accept it with "
                f"`rnnflow fetch {ctx.corpus} --update`, then `dvc repro` and commit "
                f"sources/{ctx.corpus}.lock."
            ) from exc
        algo, _, digest = (spec.checksum or "").partition(":")
        sha = digest if algo == "sha256" else file_digest(got.path, "sha256")
        served.append(
            Served(
                key,
                name,
                part_of(key),
                got.path,
                sha,
                got.path.stat().st_size,
                got.served_by,
                got.url,
            )
        )
        if spec.checksum is None:
            first_use.append(got.path)
        if not pinned:
            trusted.append(
                (
                    key,
                    {
                        "path": spec.path,
                        "url": got.url or (entry or {}).get("url", ""),
                        "sha256": sha,
                        "size": got.path.stat().st_size,
                        "date": entry["date"] if entry else dt.date.today().isoformat(),
                    },
                )
            )
    # Only a source whose every file was had enters the lock (still in memory: it is written
    # after the hop read and validated them); a source passed over half-way records nothing.
    for key, record in trusted:
        lock.record(name, key, record)
    ctx.first_use.extend(first_use)
    return served


def resolve(
    candidates: Sequence[tuple[str, S]],
    ctx: FetchContext,
    part: str,
    params_prefix: str,
    part_of: Callable[[str], str] | None = None,
) -> tuple[str, S, dict[str, Path]]:
    """The first of ``candidates`` whose files can all be had and verified, for ``part``
    (``part_of`` maps a file key to the part it feeds when one source serves several).

    A source whose files cannot be reached (no mirror copy, network down, 404) or that
    strict mode refuses is passed over and the next one tried; wrong bytes stop the run.
    """
    from stages.core.filecheck import ChecksumMismatch, DownloadError

    reasons = []
    for name, source in candidates:
        key = f"{params_prefix}.sources.{name}"
        try:
            served = _obtain(name, source, ctx, key, part_of or (lambda _key: part))
        except (UpstreamChanged, ChecksumMismatch):
            raise
        except (DownloadError, PermissionError) as exc:
            ctx.skipped[name] = str(exc).splitlines()[0]
            reasons.append(f"- {key}: {exc}")
            continue
        ctx.resolved[part] = (name, source, served)
        return name, source, {s.key: s.path for s in served}
    raise NoSource(
        f"{params_prefix}: no source of {part!r} could be had "
        f"(tried {[n for n, _ in candidates]} in order):\n" + "\n".join(reasons)
    )
