"""Where a corpus's files come from: its sources, tried in order, and the lock.

The machinery behind the fetch hop that adapters call from ``Corpus.fetch``: a
:class:`FetchContext` (network policy, mirror, download cache, the lock), :func:`resolve`
(the first listed source whose files can all be had and verified) and :class:`SourceLock`
(``sources/<corpus>.lock``: trust on first use). Bytes are obtained by
:mod:`stages.core.download`; the source configs are :mod:`stages.core.config`'s. The hop itself
(``stages/fetch.py``) builds the context, runs the adapter and writes the fetch report.

A source with ``dataset`` set (format ``hf``) is a Hugging Face dataset instead of files:
:func:`resolve` loads it (the local cache offline, the Hub online; not loadable = passed
over, like a 404) and hands the adapter an :class:`HFDataset`, whose
:meth:`HFDataset.tables` streams the mapped columns in record batches while computing a
content digest (:class:`ContentDigest`); at the end of the stream the digest is verified
against the lock (or recorded there on first use).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rnnflow import io
from rnnflow.config import ConfigError, check_identifier, load_params
from stages.core.config import DatasetSourceConfig, NetworkConfig, SourceConfig

#: A corpus's own source config (e.g. a text corpus's, with a file format).
S = TypeVar("S", bound=SourceConfig)


class UpstreamChanged(RuntimeError):
    """A locked file's bytes changed where it is fetched from; never silently replaced."""


class NoSource(RuntimeError):
    """None of a corpus's sources could be had; the message lists why, source by source."""


# --- the lock --------------------------------------------------------------------------------


def lock_path(root: Path, corpus: str) -> Path:
    """``sources/<corpus>.lock``: what trust-on-first-use recorded for ``corpus`` (in git)."""
    return root / "sources" / f"{check_identifier(corpus, 'corpus')}.lock"


def catalogue_path(root: Path, corpus: str) -> Path:
    """``sources/<corpus>.yaml``: the corpus's source catalogue (in git, beside its lock)."""
    return root / "sources" / f"{check_identifier(corpus, 'corpus')}.yaml"


def with_catalogue(params: dict[str, Any], corpus: str, root: Path) -> dict[str, Any]:
    """``params`` with ``fetch.<corpus>.sources`` read from ``sources/<corpus>.yaml``.

    The catalogue (URLs, files, checksums, rows) is not something a user tunes, so it lives
    beside the lock rather than in params.yaml, whose ``fetch.<corpus>.source`` picks and
    orders its entries. Without the file, params as given (a sources mapping written inline,
    as small test projects do); with it, an inline one too is refused: one place each.
    """
    path = catalogue_path(root, corpus)
    section = (params.get("fetch") or {}).get(corpus)
    if not path.exists() or not isinstance(section, dict):
        return params
    if "sources" in section:
        raise ConfigError(
            f"fetch.{corpus}.sources is set in params and in {path}: keep the catalogue "
            f"in {path.name} only"
        )
    from ruamel.yaml.error import YAMLError

    try:
        catalogue = load_params(path)
    except YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return {**params, "fetch": {**params["fetch"], corpus: {**section, "sources": catalogue}}}


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
            _discard(path)
        self.first_use.clear()


def _discard(path: Path) -> None:
    """Delete a downloaded file and the note of where it came from."""
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".origin").unlink(missing_ok=True)


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
    from stages.core.download import ChecksumMismatch, FileSpec, file_digest, obtain

    if isinstance(source, DatasetSourceConfig) and source.dataset is not None:
        return [_obtain_dataset(name, source, ctx, params_key, part_of("dataset"))]
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
                _discard(path)
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
    from stages.core.download import ChecksumMismatch, DownloadError

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


# --- Hugging Face datasets (format ``hf``) ---------------------------------------------------

#: The lock key of a dataset source (a file source's keys are its file keys).
DATASET_KEY = "dataset"


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
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        n = pc.fill_null(pc.list_value_length(arr).cast(pa.int64()), -1)
        level = lengths.setdefault(depth, hashlib.sha256())
        level.update(n.to_numpy(zero_copy_only=False).astype("<i8").tobytes())
        _feed(lengths, data, pc.list_flatten(arr), depth + 1)
        return
    if not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())
    n = pc.fill_null(pc.binary_length(arr).cast(pa.int64()), -1)
    lengths.setdefault(depth, hashlib.sha256()).update(
        n.to_numpy(zero_copy_only=False).astype("<i8").tobytes()
    )
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
        where = ".".join([head, *rest[:i]])
        col = _field(col, name, where)
    return col


def _field(arr: Any, name: str, where: str) -> Any:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

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


def _local(value: str, root: Path) -> str:
    """A relative path that exists under the project root, made absolute; else as given."""
    path = Path(value).expanduser()
    if not path.is_absolute() and (root / path).exists():
        return str(root / path)
    return str(path) if path.is_absolute() or value.startswith(("./", "../", "~")) else value


def _data_files(value: Any, root: Path) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return _local(value, root)
    if isinstance(value, list):
        return [_local(v, root) for v in value]
    return {k: _data_files(v, root) for k, v in value.items()}


def _load(source: DatasetSourceConfig, root: Path) -> tuple[Any, str | None, str]:
    """``(dataset split, resolved revision or None, where it was read)``.

    A directory written by ``save_to_disk`` is read with ``load_from_disk``; anything else
    through ``load_dataset``'s own steps (``load_dataset_builder``, ``download_and_prepare``,
    ``as_dataset``), keeping the builder for its resolved revision: a Hub dataset's builder
    hash is its commit (also when served from the offline cache).
    """
    import datasets  # type: ignore[import-untyped]

    assert source.dataset is not None
    path = _local(source.dataset, root)
    local = Path(path)
    if local.is_dir() and (
        (local / "dataset_dict.json").exists() or (local / "state.json").exists()
    ):
        loaded = datasets.load_from_disk(str(local))
        if isinstance(loaded, datasets.DatasetDict):
            names = [s.strip() for s in source.split.split("+")]
            missing = [s for s in names if s not in loaded]
            if missing:
                raise FileNotFoundError(f"{local} has no split(s) {missing} (has {sorted(loaded)})")
            parts = [loaded[s] for s in names]
            loaded = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
        return loaded, None, str(local)
    cache_dir = os.environ.get("HF_DATASETS_CACHE") or None
    data_files = _data_files(source.data_files, root)
    builder = datasets.load_dataset_builder(
        path,
        source.config,
        data_files=data_files,
        revision=source.revision,
        cache_dir=cache_dir,
    )
    builder.download_and_prepare()
    data = builder.as_dataset(split=source.split)
    revision = builder.hash if getattr(builder, "repo_id", None) else None
    if isinstance(revision, str) and not revision:
        revision = None
    if revision:
        where = f"hf://datasets/{source.dataset}@{revision}"
    elif data_files is not None:
        where = f"{path}:{json.dumps(data_files)}"
    else:
        where = path
    return data, revision, where


def _obtain_dataset(
    name: str, source: DatasetSourceConfig, ctx: FetchContext, params_key: str, part: str
) -> Served:
    """Load a dataset source; raises ``DownloadError`` when it cannot be had (the next
    source may serve) and ``PermissionError`` when strict mode refuses it."""
    from stages.core.download import DownloadError

    lock = ctx.lock or SourceLock(ctx.corpus)
    request: dict[str, Any] = {
        "dataset": source.dataset,
        "config": source.config,
        "split": source.split,
        "data_files": source.data_files,
        "params_revision": source.revision,
    }
    columns = getattr(source, "columns", None)
    if isinstance(columns, dict):
        request["columns"] = dict(columns)
    entry = None if ctx.update else lock.get(name, DATASET_KEY)
    if entry is not None and any(entry.get(k) != v for k, v in request.items()):
        entry = None  # params now ask for another dataset/split/mapping: a new first use
    if entry is None and not source.pinned_revision and ctx.require_pinned:
        raise PermissionError(
            f"{params_key} (dataset {source.dataset!r}) has no pinned revision and no entry "
            f"in sources/{ctx.corpus}.lock, and fetch.require_pinned is true: run "
            f"`rnnflow fetch {ctx.corpus}` once with fetch.require_pinned: false to record "
            f"it, or pin `revision` (a commit) in params"
        )
    root = ctx.root or Path.cwd()
    try:
        data, revision, where = _load(source, root)
    except (UpstreamChanged, PermissionError):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever datasets raises for "cannot be had"
        if not _unreachable(exc):
            raise
        offline = os.environ.get("HF_DATASETS_OFFLINE", "") not in ("", "0", "false")
        raise DownloadError(
            f"dataset {source.dataset!r}"
            f"{f' (config {source.config!r})' if source.config else ''} could not be loaded"
            f"{' (offline: not in the local cache)' if offline else ''}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    size = sum(
        Path(f["filename"]).stat().st_size for f in data.cache_files if Path(f["filename"]).exists()
    )
    served = Served(
        DATASET_KEY,
        name,
        part,
        Path(data.cache_files[0]["filename"]).parent if data.cache_files else Path(where),
        (entry or {}).get("sha256", ""),
        size,
        "hf",
        where,
        {
            "dataset": source.dataset,
            "config": source.config,
            "split": source.split,
            "revision": revision or source.revision,
        },
    )
    ctx.datasets[name] = HFDataset(
        name, source, params_key, data, revision or source.revision, served, ctx, entry, request
    )
    return served


def _unreachable(exc: BaseException) -> bool:
    """Whether a load error means "not available here" (passed over), not "broken"."""
    names = {t.__name__ for t in type(exc).__mro__}
    if names & {
        "FileNotFoundError",
        "ConnectionError",
        "DatasetNotFoundError",
        "DataFilesNotFoundError",
        "EmptyDatasetError",
        "OfflineModeIsEnabled",
        "LocalEntryNotFoundError",
        "RepositoryNotFoundError",
        "GatedRepoError",
        "HTTPError",
        "Timeout",
    }:
        return True
    text = str(exc)
    return "Couldn't find cache" in text or "couldn't be found on the Hugging Face Hub" in text
