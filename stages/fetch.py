"""fetch: bring a corpus in — from its first source that can be had and verified (a local
mirror copy or a download with checksums, retries and resume), or generate it from a seed —
and write it as Parquet, validated.

params.yaml section ``fetch``: ``fetch.network`` (retries, timeouts), ``fetch.require_pinned``
(strict mode) and one subsection per corpus: an ordered list of ``source`` names and the
``sources`` they name (files with checksums), or its generator settings.

Sources are tried in the listed order; among sources of one origin the first that can be had
wins (e.g. the published MNIST files, then the mirror's partial training set). A file with no
pinned checksum is *trusted on first use*: downloaded once, checked structurally by reading it,
and its sha256, size, URL and date are written to ``sources/<corpus>.lock`` (committed). Every
later run verifies against that lock; changed upstream bytes stop the run and say how to accept
them (``rnnflow fetch CORPUS --update``). ``reports/fetch/<corpus>.json`` records which source
served each file. The mirror directory comes from ``$RNNFLOW_MIRROR`` (a transport, not
content: the checksums decide what the data is).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from rnnflow import io
from rnnflow.config import Config, ConfigError, parse, section
from rnnflow.env import mirror_dir
from rnnflow.hop import HopRun, batches_of, cli


class NetworkConfig(Config):
    """How hard to try the network before giving up."""

    retries: int = 4
    timeout_s: float = 60.0
    backoff_s: float = 1.0


class FetchConfig(Config):
    """Base of every corpus's fetch section (adapters extend it)."""


class FileConfig(Config):
    """One file of a source: its path (relative to the URL base and the mirror) and checksum.

    No ``checksum`` (or the legacy ``sha256:unpinned``) means trust on first use: the bytes
    first fetched are recorded in ``sources/<corpus>.lock`` and verified ever after.
    """

    path: str
    checksum: str | None = None
    size: int | None = None

    @property
    def pinned(self) -> bool:
        return self.checksum is not None and self.checksum.strip().lower() != UNPINNED


class SourceConfig(Config):
    """A source: base URLs tried in order, the files, the rows they hold."""

    urls: list[str] = []
    files: dict[str, FileConfig]
    rows: dict[str, int] = {}
    note: str = ""
    #: Parts (and ``origin`` where a corpus keeps one) this source serves; sources of one
    #: origin are alternatives, tried in the order ``source`` lists them.
    origin: str | None = None


class SourcedFetchConfig(FetchConfig):
    """Fetch config of a corpus with named sources; ``source`` lists them in order of
    preference (a single name is a list of one)."""

    source: str | list[str]
    sources: dict[str, SourceConfig]

    def candidates(self) -> list[tuple[str, SourceConfig]]:
        """The listed sources, in order; errors list the defined ones."""
        return listed(self.source, self.sources)


def listed(source: str | list[str], sources: dict[str, Any]) -> list[tuple[str, Any]]:
    """``source`` (a name or a list of names) resolved against ``sources``, in order."""
    names = [source] if isinstance(source, str) else list(source)
    missing = [n for n in names if n not in sources]
    if missing or not names:
        raise ValueError(f"fetch source(s) {missing or names} not defined (have {sorted(sources)})")
    return [(n, sources[n]) for n in names]


#: The legacy checksum for "not pinned yet"; same as leaving ``checksum`` out.
UNPINNED = "sha256:unpinned"


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
    def load(cls, path: Path, corpus: str) -> "SourceLock":
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
        io.write_json(path, {
            "corpus": self.corpus,
            "note": "Trust on first use: bytes recorded when first fetched, verified on every "
                    "later fetch. `rnnflow fetch CORPUS --update` accepts a new upstream version.",
            "sources": self.entries,
        })


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


def _obtain(name: str, source: SourceConfig, ctx: FetchContext, params_key: str,
            part_of: Callable[[str], str]) -> list[Served]:
    """Every file of one source, verified (pinned or locked) or trusted on first use.

    Raises ``DownloadError`` when a file cannot be had (the next source may serve),
    ``UpstreamChanged``/``ChecksumMismatch`` when bytes are wrong (never skipped), and
    ``PermissionError`` (strict mode) for a file that is neither pinned nor locked.
    """
    from rnnflow.download import ChecksumMismatch, FileSpec, file_digest, obtain

    lock = ctx.lock or SourceLock(ctx.corpus)
    plan = []
    for key, f in source.files.items():
        entry = None if ctx.update else lock.get(name, key)
        if f.pinned:
            plan.append((key, FileSpec(f.path, f.checksum, f.size), None, True))
        elif entry is not None:
            plan.append((key, FileSpec(f.path, "sha256:" + entry["sha256"], entry["size"]), entry,
                         False))
        elif ctx.require_pinned:
            raise PermissionError(
                f"{params_key}.files.{key} ({f.path}) has no pinned checksum and no entry in "
                f"sources/{ctx.corpus}.lock, and fetch.require_pinned is true: run "
                f"`rnnflow fetch {ctx.corpus}` once with fetch.require_pinned: false to record "
                f"it, or pin its checksum in params")
        else:
            plan.append((key, FileSpec(f.path, None, f.size), None, False))
    served, trusted = [], []
    for key, spec, entry, pinned in plan:
        try:
            got = obtain(spec, urls=source.urls, mirror=ctx.mirror, dest_dir=ctx.downloads,
                         retries=ctx.network.retries, timeout_s=ctx.network.timeout_s,
                         backoff_s=ctx.network.backoff_s, refresh=ctx.update and spec.checksum is None)
        except ChecksumMismatch as exc:
            if entry is None:
                raise
            raise UpstreamChanged(
                f"{params_key}.files.{key} ({spec.path}) changed upstream: "
                f"sources/{ctx.corpus}.lock recorded sha256 {entry['sha256']} "
                f"({entry['size']:,} bytes, from {entry['url']} on {entry['date']}).\n{exc}\n"
                f"If the new version is expected, accept it with "
                f"`rnnflow fetch {ctx.corpus} --update`, then `dvc repro` and commit "
                f"sources/{ctx.corpus}.lock.") from exc
        algo, _, digest = (spec.checksum or "").partition(":")
        sha = digest if algo == "sha256" else file_digest(got.path, "sha256")
        served.append(Served(key, name, part_of(key), got.path, sha, got.path.stat().st_size,
                             got.served_by, got.url))
        if not pinned:
            trusted.append((key, {
                "path": spec.path, "url": got.url or (entry or {}).get("url", ""), "sha256": sha,
                "size": got.path.stat().st_size,
                "date": entry["date"] if entry else dt.date.today().isoformat()}))
    # Only a source whose every file was had enters the lock (still in memory: it is written
    # after the hop read and validated them); a source passed over half-way records nothing.
    for key, record in trusted:
        lock.record(name, key, record)
    return served


def resolve(candidates: list[tuple[str, SourceConfig]], ctx: FetchContext, part: str,
            params_prefix: str, part_of: Callable[[str], str] | None = None,
            ) -> tuple[str, SourceConfig, dict[str, Path]]:
    """The first of ``candidates`` whose files can all be had and verified, for ``part``
    (``part_of`` maps a file key to the part it feeds when one source serves several).

    A source whose files cannot be reached (no mirror copy, network down, 404) or that
    strict mode refuses is passed over and the next one tried; wrong bytes stop the run.
    """
    from rnnflow.download import DownloadError, ChecksumMismatch

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
    raise NoSource(f"{params_prefix}: no source of {part!r} could be had "
                   f"(tried {[n for n, _ in candidates]} in order):\n" + "\n".join(reasons))


def fetch_report(ctx: FetchContext, rows: dict[str, int]) -> dict[str, Any]:
    """``reports/fetch/<corpus>.json``: which source served each file, its bytes and rows."""
    files = {}
    for name, _, served in ctx.resolved.values():
        for s in served:
            files[s.key if s.key not in files else f"{name}/{s.key}"] = {
                "source": name, "served_by": s.served_by, "url": s.url, "sha256": s.sha256,
                "bytes": s.size, "rows": rows.get(s.part, 0)}
    return {"sources": {part: name for part, (name, _, _) in ctx.resolved.items()},
            "passed_over": ctx.skipped, "files": files, "rows": rows}


# --- the hop ---------------------------------------------------------------------------------


def body_for(corpus: str, args: argparse.Namespace | None):
    """Build the hop body for ``corpus``."""
    from stages import corpora

    update = bool(getattr(args, "update", False))

    def body(run: HopRun) -> None:
        adapter = corpora.get(corpus)
        cfg = parse(adapter.FetchConfig, run.params, f"fetch.{corpus}")
        net = parse(NetworkConfig, run.params, "fetch.network")
        strict = run.params.get("fetch", {}).get("require_pinned", False)
        if not isinstance(strict, bool):
            raise ConfigError(f"params fetch.require_pinned must be true or false, got {strict!r}")
        mirror = mirror_dir()
        sub = adapter.mirror_subdir(cfg) or corpus
        lock_file = lock_path(run.root, corpus)
        ctx = FetchContext(net, mirror / sub if mirror else None,
                           run.root / "data" / "downloads" / corpus, corpus=corpus,
                           lock=SourceLock.load(lock_file, corpus), require_pinned=strict,
                           update=update)
        for part, data in adapter.fetch(cfg, ctx).items():
            # A part is a whole table or (for big sources) an iterable of tables, streamed.
            stream: Iterable[pa.Table] = batches_of(data) if isinstance(data, pa.Table) else data
            rows = run.write_stream(part, stream, adapter.raw_suite(part, cfg))
            low, high = adapter.expected_rows(part, cfg)
            key = None
            for name, source, _ in ctx.resolved.values():
                if part in source.rows:  # the source that served it says how many rows it has
                    low = high = source.rows[part]
                    key = f"fetch.{corpus}.sources.{name}.rows.{part}"
            run.check_rows(part, rows, low, high, "rows fetched", params_key=key)
        # Reached only when every part read, validated and counted: first uses are trusted now.
        ctx.lock.save(lock_file)
        io.write_json(run.root / "reports" / "fetch" / f"{corpus}.json",
                      fetch_report(ctx, dict(run.rows_out)))

    return body


def _add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--update", action="store_true",
                        help="accept new upstream bytes of files that have no pinned checksum: "
                             "fetch them again and rewrite sources/CORPUS.lock")


def main(argv: list[str] | None = None) -> int:
    """``python -m stages.fetch CORPUS [--update]``."""
    return cli("fetch", __doc__.split("\n\n")[0], body_for, argv, add_args=_add_args)


if __name__ == "__main__":
    sys.exit(main())
