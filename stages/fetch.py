"""fetch: bring a corpus in — download (checksums, retries, resume), read a local mirror,
or generate it from a seed — and write it as Parquet, validated.

params.yaml section ``fetch``: ``fetch.network`` (retries, timeouts) and one subsection
per corpus (its sources with file names and checksums, or its generator settings).
The mirror directory comes from ``$RNNFLOW_MIRROR`` (a transport, not content: the
checksums in params decide what the data is).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from rnnflow.config import Config, parse
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
    """One file of a source: its path (relative to the URL base and the mirror) and checksum."""

    path: str
    checksum: str
    size: int | None = None


class SourceConfig(Config):
    """A downloadable source: base URLs tried in order, the files, the rows they hold."""

    urls: list[str] = []
    files: dict[str, FileConfig]
    rows: dict[str, int] = {}
    note: str = ""


class SourcedFetchConfig(FetchConfig):
    """Fetch config of a corpus with named sources; ``source`` picks one."""

    source: str
    sources: dict[str, SourceConfig]

    def chosen(self) -> SourceConfig:
        """The selected source; errors list the defined ones."""
        if self.source not in self.sources:
            raise ValueError(f"fetch source {self.source!r} not defined (have {sorted(self.sources)})")
        return self.sources[self.source]


@dataclass(frozen=True)
class FetchContext:
    """What a fetch needs besides its config: network policy, mirror, download cache."""

    network: NetworkConfig
    mirror: Path | None
    downloads: Path


#: The checksum params give a file whose published bytes nobody has checked yet. Such a
#: file is never fetched: its source fails before any download, saying what to pin.
UNPINNED = "sha256:unpinned"


def require_pinned(source: SourceConfig, params_key: str = "the fetch source") -> None:
    """Raise ``ValueError`` if a file of ``source`` has no pinned checksum (:data:`UNPINNED`);
    ``params_key`` is the source's dotted params key, for the message."""
    for name, f in source.files.items():
        if f.checksum.strip().lower() == UNPINNED:
            where = (source.urls[0].rstrip("/") + "/" + f.path) if source.urls else f.path
            raise ValueError(f"no pinned checksum for {where}: download it, check it, and put "
                             f"its sha256 in params {params_key}.files.{name}.checksum")


def download_source(source: SourceConfig, ctx: FetchContext,
                    params_key: str = "the fetch source") -> dict[str, Path]:
    """Fetch every file of ``source`` (mirror first, then URLs), verified; paths by key.

    ``params_key`` (e.g. ``fetch.twitter.sources.published``) names the source in errors.
    """
    from rnnflow.download import FileSpec, fetch_file

    require_pinned(source, params_key)
    return {
        key: fetch_file(FileSpec(f.path, f.checksum, f.size), urls=source.urls, mirror=ctx.mirror,
                        dest_dir=ctx.downloads, retries=ctx.network.retries,
                        timeout_s=ctx.network.timeout_s, backoff_s=ctx.network.backoff_s)
        for key, f in source.files.items()
    }


def body_for(corpus: str, _args: object):
    """Build the hop body for ``corpus``."""
    from stages import corpora

    def body(run: HopRun) -> None:
        adapter = corpora.get(corpus)
        cfg = parse(adapter.FetchConfig, run.params, f"fetch.{corpus}")
        net = parse(NetworkConfig, run.params, "fetch.network")
        mirror = mirror_dir()
        sub = adapter.mirror_subdir(cfg) or corpus
        ctx = FetchContext(net, mirror / sub if mirror else None,
                           run.root / "data" / "downloads" / corpus)
        for part, data in adapter.fetch(cfg, ctx).items():
            # A part is a whole table or (for big sources) an iterable of tables, streamed.
            stream: Iterable[pa.Table] = batches_of(data) if isinstance(data, pa.Table) else data
            rows = run.write_stream(part, stream, adapter.raw_suite(part, cfg))
            low, high = adapter.expected_rows(part, cfg)
            run.check_rows(part, rows, low, high, "rows fetched")

    return body


def main(argv: list[str] | None = None) -> int:
    """``python -m stages.fetch CORPUS``."""
    return cli("fetch", __doc__.split("\n\n")[0], body_for, argv)


if __name__ == "__main__":
    sys.exit(main())
