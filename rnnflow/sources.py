"""Where a corpus's files come from: its sources, tried in order, and the lock.

The machinery behind the fetch hop that adapters call from ``Corpus.fetch``: a
:class:`FetchContext` (network policy, mirror, download cache, the lock), :func:`resolve`
(the first listed source whose files can all be had and verified) and :class:`SourceLock`
(``sources/<corpus>.lock``: trust on first use). Bytes are obtained by
:mod:`rnnflow.download`; the source configs are :mod:`rnnflow.hopconfig`'s. The hop itself
(``stages/fetch.py``) builds the context, runs the adapter and writes the fetch report.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rnnflow import io
from rnnflow.config import ConfigError
from rnnflow.hopconfig import NetworkConfig, SourceConfig

#: A corpus's own source config (e.g. a text corpus's, with a file format).
S = TypeVar("S", bound=SourceConfig)


class UpstreamChanged(RuntimeError):
    """A locked file's bytes changed where it is fetched from; never silently replaced."""


class NoSource(RuntimeError):
    """None of a corpus's sources could be had; the message lists why, source by source."""


# --- the lock --------------------------------------------------------------------------------


def lock_path(root: Path, corpus: str) -> Path:
    """``sources/<corpus>.lock``: what trust-on-first-use recorded for ``corpus`` (in git)."""
    return root / "sources" / f"{corpus}.lock"


@dataclass
class SourceLock:
    """The recorded bytes of every trusted-on-first-use file of one corpus.

    ``entries[source][file] = {path, url, sha256, size, date}``. Loaded at the start of a
    fetch, updated in memory by first uses, written back only when the hop succeeded.
    """

    corpus: str
    entries: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, corpus: str) -> SourceLock:
        if not path.exists():
            return cls(corpus)
        data = io.read_json(path)
        if not isinstance(data, dict) or data.get("corpus") != corpus:
            raise ConfigError(f"{path}: not a source lock for {corpus!r}")
        return cls(corpus, data.get("sources", {}))

    def get(self, source: str, key: str) -> dict[str, Any] | None:
        return self.entries.get(source, {}).get(key)

    def record(self, source: str, key: str, entry: dict[str, Any]) -> None:
        self.entries.setdefault(source, {})[key] = entry

    def save(self, path: Path) -> None:
        io.write_json(
            path,
            {
                "corpus": self.corpus,
                "note": "Trust on first use: bytes recorded when first fetched, verified on every "
                "later fetch. `rnnflow fetch CORPUS --update` accepts a new upstream version.",
                "sources": self.entries,
            },
        )


# --- obtaining the files of a source ---------------------------------------------------------


@dataclass
class Served:
    """One file as fetched: where it is, where it came from, its bytes."""

    key: str
    source: str
    part: str
    path: Path
    sha256: str
    size: int
    served_by: str  # "mirror", "download" or "cache"
    url: str


@dataclass
class FetchContext:
    """What a fetch needs besides its config: network policy, mirror, download cache, the
    lock, and what it served (for the lock and the fetch report)."""

    network: NetworkConfig
    mirror: Path | None
    downloads: Path
    corpus: str = ""
    lock: SourceLock | None = None
    require_pinned: bool = False
    update: bool = False
    #: part → (source name, its config, files served)
    resolved: dict[str, tuple[str, SourceConfig, list[Served]]] = field(default_factory=dict)
    #: source name → why it was passed over
    skipped: dict[str, str] = field(default_factory=dict)


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
    from rnnflow.download import ChecksumMismatch, FileSpec, file_digest, obtain

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
    served, trusted = [], []
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
                refresh=ctx.update and spec.checksum is None,
            )
        except ChecksumMismatch as exc:
            if entry is None:
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
    from rnnflow.download import ChecksumMismatch, DownloadError

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
