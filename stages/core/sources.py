"""Where a corpus's files come from: :func:`resolve` tries its sources in order and hands
the adapter the first whose files can all be had (:mod:`stages.core.download`) and verified,
by a pinned checksum or by ``sources/<corpus>.lock`` (trust on first use). A source with
``dataset`` set (format ``hf``) is a Hugging Face dataset instead, loaded from the local
cache (offline) or the Hub; its content is verified as it streams
(:class:`~stages.core.context.HFDataset`). A source that cannot be had is passed over, like
a 404; wrong bytes stop the run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from stages.core.catalogue import DATASET_KEY, SourceLock, UpstreamChanged
from stages.core.config import DatasetSourceConfig, SourceConfig
from stages.core.context import FetchContext, HFDataset, Served, discard

#: A corpus's own source config (e.g. a text corpus's, with a file format).
S = TypeVar("S", bound=SourceConfig)


class NoSource(RuntimeError):
    """None of a corpus's sources could be had; the message lists why, source by source."""


def _unlocked(ctx: FetchContext, what: str, pin: str, how: str) -> PermissionError:
    """Strict mode's refusal of ``what``: neither pinned (by a ``pin``) nor locked."""
    return PermissionError(
        f"{what} has no pinned {pin} and no entry in sources/{ctx.corpus}.lock, and "
        f"fetch.require_pinned is true: run `rnnflow fetch {ctx.corpus}` once with "
        f"fetch.require_pinned: false to record it, or pin {how} in params"
    )


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
            raise _unlocked(ctx, f"{params_key}.files.{key} ({f.path})", "checksum", "its checksum")
        else:
            plan.append((key, FileSpec(f.path, None, f.size), None, False))
    served: list[Served] = []
    trusted: list[tuple[str, dict[str, Any]]] = []
    first_use: list[Path] = []
    for key, spec, entry, pinned in plan:
        try:
            # A copy nothing verifies (not pinned, not locked) was never checked by a
            # successful hop: fetch it afresh rather than serve it.
            refresh = spec.checksum is None
            got = obtain(
                spec,
                urls=source.urls,
                mirror=ctx.mirror,
                dest_dir=ctx.downloads,
                network=ctx.network,
                refresh=refresh,
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
        size = got.path.stat().st_size
        served.append(Served(key, name, part_of(key), got.path, sha, size, got.served_by, got.url))
        if spec.checksum is None:
            first_use.append(got.path)
        if not pinned:
            record = {
                "path": spec.path,
                "url": got.url or (entry or {}).get("url", ""),
                "sha256": sha,
                "size": size,
                "date": entry["date"] if entry else dt.date.today().isoformat(),
            }
            trusted.append((key, record))
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


# --- a dataset source (format hf) ----------------------------------------------------------


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
        path, source.config, data_files=data_files, revision=source.revision, cache_dir=cache_dir
    )
    builder.download_and_prepare()
    data = builder.as_dataset(split=source.split)
    revision = (builder.hash if getattr(builder, "repo_id", None) else None) or None
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
    from stages.core.filecheck import DownloadError

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
        what = f"{params_key} (dataset {source.dataset!r})"
        raise _unlocked(ctx, what, "revision", "`revision` (a commit)")
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
    revision = revision or source.revision
    path = Path(data.cache_files[0]["filename"]).parent if data.cache_files else Path(where)
    sha = (entry or {}).get("sha256", "")
    extra = {"dataset": source.dataset, "config": source.config, "split": source.split}
    extra["revision"] = revision
    served = Served(DATASET_KEY, name, part, path, sha, size, "hf", where, extra)
    ctx.datasets[name] = HFDataset(
        name, source, params_key, data, revision, served, ctx, entry, request
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
