"""What a fetch carries: the :class:`FetchContext` the adapters get, the files it
:class:`Served`, and the datasets (format ``hf``) it loaded (:class:`HFDataset`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.core.config import DatasetSourceConfig, NetworkConfig, SourceConfig
from stages.core.hfcolumns import ContentDigest, column_path
from stages.core.lock import DATASET_KEY, SourceLock, UpstreamChanged


@dataclass
class Served:
    """One file as fetched: where it is, where it came from, its bytes."""

    key: str
    source: str
    part: str
    path: Path
    sha256: str
    size: int
    served_by: str  # "mirror", "download", "cache" or "hf"
    url: str
    #: More fields for the fetch report (a dataset's name, config, revision …).
    extra: dict[str, Any] = field(default_factory=dict)


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
    #: The project root (relative dataset paths and ``data_files`` are read from it).
    root: Path | None = None
    #: source name → the loaded dataset (format ``hf``) that :func:`resolve` chose
    datasets: dict[str, HFDataset] = field(default_factory=dict)
    #: Files trusted on first use in this fetch, not locked yet (deleted if it fails).
    first_use: list[Path] = field(default_factory=list)

    def discard_first_uses(self) -> None:
        """Delete the files trusted on first use: bytes that failed (or never reached) the
        hop's checks must not be served from ``data/downloads`` on a later run."""
        for path in self.first_use:
            discard(path)
        self.first_use.clear()


def discard(path: Path) -> None:
    """Delete a downloaded file and the note of where it came from."""
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".origin").unlink(missing_ok=True)


@dataclass
class HFDataset:
    """A loaded dataset split (format ``hf``), as :func:`resolve` hands it to the adapter.

    :meth:`tables` streams it; the content digest is checked (or recorded) when the stream
    ends, so a changed dataset stops the hop before anything is written.
    """

    name: str
    source: DatasetSourceConfig
    params_key: str
    data: Any  # a datasets.Dataset
    revision: str | None
    served: Served
    ctx: FetchContext
    entry: dict[str, Any] | None
    request: dict[str, Any]

    @property
    def column_names(self) -> list[str]:
        return list(self.data.column_names)

    def tables(self, columns: dict[str, str], batch_rows: int) -> Iterator[Any]:
        """Record batches of ``{name: dotted column path}`` as ``pyarrow.Table``s."""
        import pyarrow as pa

        if not columns:
            raise ValueError(f"{self.params_key}: format hf needs `columns` (name: column)")
        digest = ContentDigest(list(columns))
        for batch in self.data.with_format("arrow").iter(batch_size=batch_rows):
            try:
                table = pa.table({out: column_path(batch, path) for out, path in columns.items()})
            except KeyError as exc:
                raise ValueError(
                    f"{self.params_key}.columns: {exc.args[0]} in dataset {self.source.dataset!r}"
                ) from None
            digest.update(table)
            yield table
        self._settle(digest)

    def _settle(self, digest: ContentDigest) -> None:
        sha, ctx = digest.hexdigest(), self.ctx
        self.served.sha256 = sha
        self.served.extra["dataset_rows"] = digest.rows
        if self.entry is not None and self.entry.get("sha256") != sha:
            e = self.entry
            raise UpstreamChanged(
                f"{self.params_key} (dataset {self.source.dataset!r}"
                f"{f', config {self.source.config!r}' if self.source.config else ''}, "
                f"split {self.source.split!r}) changed upstream: sources/{ctx.corpus}.lock "
                f"recorded sha256 {e.get('sha256')} ({e.get('rows', 0):,} rows, revision "
                f"{e.get('revision') or '-'}, on {e.get('date')}); now sha256 {sha} "
                f"({digest.rows:,} rows, revision {self.revision or '-'}).\n"
                f"If the new version is expected, accept it with "
                f"`rnnflow fetch {ctx.corpus} --update`, then `dvc repro` and commit "
                f"sources/{ctx.corpus}.lock."
            )
        if self.source.pinned_revision:
            return  # pinned in params, like a file's checksum: nothing to lock
        record = {
            **self.request,
            "revision": (self.entry or {}).get("revision") or self.revision,
            "sha256": sha,
            "rows": digest.rows,
            "date": (self.entry or {}).get("date") or dt.date.today().isoformat(),
        }
        (ctx.lock or SourceLock(ctx.corpus)).record(self.name, DATASET_KEY, record)
