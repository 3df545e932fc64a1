"""What a fetch carries: the :class:`FetchContext` the adapters get, the files it
:class:`Served`, and the datasets (format ``hf``) it loaded (:class:`HFDataset`): their
mapped columns, dotted paths into struct columns (:func:`column_path`), and a digest of the
values read (:class:`ContentDigest`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.core.catalogue import DATASET_KEY, SourceLock, UpstreamChanged
from stages.core.config import DatasetSourceConfig, NetworkConfig, SourceConfig


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

    def tables(self, columns: dict[str, str], batch_rows: int) -> Iterator[pa.Table]:
        """Record batches of ``{name: dotted column path}`` as ``pyarrow.Table``s."""
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


class ContentDigest:
    """sha256 of the values read from a dataset, independent of how they are batched.

    Each mapped column feeds running hashes: the value lengths (int64 little-endian, -1
    for null; a list column's list lengths go to a hash of their own, one per nesting
    level) and the value bytes (UTF-8; other scalar types as their string form). The
    digest is a sha256 over the column names, the row count and those per-column hashes,
    so it depends only on the values rnnflow reads, in order: not on the cache location,
    the Arrow file layout, the ``datasets``/``pyarrow`` versions or columns the mapping
    leaves out.
    """

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.rows = 0
        #: column → (data hash, lengths hash per nesting level)
        self._hashes: dict[str, tuple[Any, dict[int, Any]]] = {
            c: (hashlib.sha256(), {}) for c in self.columns
        }

    def update(self, table: Any) -> None:
        """Feed one ``pyarrow.Table`` holding (at least) the digest's columns."""
        self.rows += table.num_rows
        for col in self.columns:
            data, lengths = self._hashes[col]
            for chunk in table.column(col).chunks:
                _feed(lengths, data, chunk, 0)

    def hexdigest(self) -> str:
        h = hashlib.sha256(json.dumps({"columns": self.columns, "rows": self.rows}).encode())
        for col in self.columns:
            data, lengths = self._hashes[col]
            h.update(b"".join(lengths[d].digest() for d in sorted(lengths)) + data.digest())
        return h.hexdigest()


def _feed(lengths: dict[int, Any], data: Any, arr: Any, depth: int) -> None:
    listed = pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)
    if not listed and not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())
    n = pc.list_value_length(arr) if listed else pc.binary_length(arr)
    n = pc.fill_null(n.cast(pa.int64()), -1).to_numpy(zero_copy_only=False)
    lengths.setdefault(depth, hashlib.sha256()).update(n.astype("<i8").tobytes())
    if listed:
        _feed(lengths, data, pc.list_flatten(arr), depth + 1)
        return
    values = pc.fill_null(arr, "")
    if not isinstance(values, pa.Array):
        values = pa.array(values)
    if len(values) == 0:
        return
    offsets_buf, data_buf = values.buffers()[1], values.buffers()[2]
    offsets = np.frombuffer(offsets_buf, dtype="<i8")[
        values.offset : values.offset + len(values) + 1
    ]
    if data_buf is not None and offsets[-1] > offsets[0]:
        data.update(memoryview(data_buf)[int(offsets[0]) : int(offsets[-1])])


def column_path(table: Any, path: str) -> Any:
    """The column ``path`` of a ``pyarrow.Table``: a top-level column, or a dotted path into
    struct columns (``translation.es``) and lists of structs (``messages.content``: a list
    of each message's content). Raises ``KeyError`` naming what exists."""
    if path in table.column_names:
        return table.column(path)
    head, *rest = path.split(".")
    if head not in table.column_names:
        raise KeyError(f"no column {head!r} (have {table.column_names})")
    col = table.column(head).combine_chunks()
    for i, name in enumerate(rest):
        col = _field(col, name, where=".".join([head, *rest[:i]]))
    return col


def _field(arr: Any, name: str, where: str) -> Any:
    listed = pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)
    struct = arr.type.value_type if listed else arr.type
    fields = [f.name for f in struct] if pa.types.is_struct(struct) else []
    if name not in fields:
        raise KeyError(f"{where} has no field {name!r} (type {arr.type})")
    if not listed:
        return pc.struct_field(arr, name)
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
    offsets = pa.array(np.r_[0, np.cumsum(lengths, dtype=np.int64)])
    values = pc.struct_field(arr.flatten(), name)
    return pa.LargeListArray.from_arrays(offsets, values, mask=arr.is_null())
