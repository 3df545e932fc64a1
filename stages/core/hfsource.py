"""Loading a dataset source (format ``hf``): the local cache offline, the Hub online; a
dataset that cannot be loaded is passed over like a 404."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from stages.core.config import DatasetSourceConfig
from stages.core.context import FetchContext, HFDataset, Served
from stages.core.lock import DATASET_KEY, SourceLock, UpstreamChanged


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


def obtain_dataset(
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
