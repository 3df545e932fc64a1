"""Fetch source files: verified local mirror first, then resumable HTTPS downloads.

Every corpus names its files as ``FileSpec``s (relative path + checksum) and calls
``obtain``. A file only ever appears at its final path after its checksum verified, so
an interrupted or corrupted fetch can never be mistaken for data. Downloads use https (every
redirect too); plain http only for a file pinned by a sha256, whose bytes decide whatever
the transport. Paths never leave the mirror or the download directory, symbolic links
included. Standard library only (urllib), so fetching adds no dependency.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from stages.core.filecheck import (
    CHUNK,
    ChecksumMismatch,
    FileSpec,
    check_file,
    hasher,
    parse_checksum,
)
from stages.core.httpdownload import download

log = logging.getLogger(__name__)


class UnsafePath(ValueError):
    """A path that resolves outside the directory it must stay in (``..``, absolute, a link)."""


def inside(path: Path, root: Path, what: str, root_name: str = "") -> Path:
    """``path`` unchanged if it resolves (symbolic links followed) inside ``root``; else
    :class:`UnsafePath` naming ``what`` (and ``root_name``, e.g. "the mirror")."""
    resolved, base = Path(path).resolve(), Path(root).resolve()
    if not resolved.is_relative_to(base):
        where = f"{root_name} ({base})" if root_name else str(base)
        raise UnsafePath(f"{what}: {path} resolves to {resolved}, outside {where}; refusing it")
    return path


@dataclass(frozen=True)
class Fetched:
    """A fetched file and where its bytes came from."""

    path: Path
    served_by: str  # "cache" (an earlier verified copy), "mirror" or "download"
    url: str  # the mirror path or URL the bytes came from ("" for the cache)


def obtain(
    spec: FileSpec,
    *,
    urls: list[str],
    mirror: Path | None,
    dest_dir: Path,
    retries: int = 4,
    timeout_s: float = 60.0,
    backoff_s: float = 1.0,
    progress: bool = True,
    refresh: bool = False,
) -> Fetched:
    """Return ``dest_dir / spec.path`` holding verified bytes, fetching it if needed.

    Order: an existing verified copy in ``dest_dir``; then ``mirror / spec.path`` (which must
    verify, else ``ChecksumMismatch``: a corrupt mirror is an error, never skipped); then each
    base URL in ``urls`` (file URL = base + ``spec.path``), ``retries`` attempts each with
    backoff ``backoff_s * 2**attempt``. Downloads go to ``<final>.part`` and resume with an
    HTTP Range request; the final path appears only after the checksum verified.

    With ``spec.checksum`` None (trust on first use) nothing is verified but the size, if
    given; ``refresh`` ignores an earlier copy in ``dest_dir`` (to take new upstream bytes).

    Raises ``DownloadError`` (``ChecksumMismatch`` if some attempt got wrong bytes) naming the
    file, every URL tried and where the mirror copy was looked for.
    """
    dest_dir = Path(dest_dir)
    final = inside(dest_dir / spec.path, dest_dir, spec.path, "the download directory")
    mirror_file = None
    if mirror is not None:
        mirror_file = inside(Path(mirror) / spec.path, Path(mirror), spec.path, "the mirror")
    final.parent.mkdir(parents=True, exist_ok=True)

    origin = final.with_name(final.name + ".origin")
    if final.exists() and refresh:
        final.unlink()
    if final.exists():
        try:
            check_file(final, spec)
            # A verified earlier copy: report where its bytes first came from, so the fetch
            # report does not depend on what this workspace happened to cache.
            return Fetched(final, *_read_origin(origin))
        except ChecksumMismatch as exc:
            # Remove it now so nothing downstream can pick up the bad copy while we refetch.
            log.warning("%s; fetching it again", exc)
            final.unlink()

    if mirror_file is not None and mirror_file.is_file():
        _copy_verified(mirror_file, final, spec)
        fetched = Fetched(final, "mirror", str(mirror_file))
    else:
        url = download(
            spec,
            urls=urls,
            mirror_file=mirror_file,
            final=final,
            retries=retries,
            timeout_s=timeout_s,
            backoff_s=backoff_s,
            progress=progress,
        )
        fetched = Fetched(final, "download", url)
    origin.write_text(f"{fetched.served_by} {fetched.url}\n")
    return fetched


def _read_origin(origin: Path) -> tuple[str, str]:
    """(served_by, url) recorded beside a cached copy; ("cache", "") if there is none."""
    try:
        served_by, _, url = origin.read_text().strip().partition(" ")
    except OSError:
        return "cache", ""
    return (served_by, url) if served_by in ("mirror", "download") else ("cache", "")


def _copy_verified(src: Path, final: Path, spec: FileSpec) -> None:
    """Copy ``src`` to ``final`` atomically, hashing while copying (one read of the source)."""
    if spec.size is not None and src.stat().st_size != spec.size:
        raise ChecksumMismatch(
            f"mirror file {src}: expected {spec.size} bytes, found "
            f"{src.stat().st_size}; fix or remove the mirror copy"
        )
    algo, expected = parse_checksum(spec.checksum) if spec.checksum else ("sha256", None)
    h = hasher(algo)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    try:
        with os.fdopen(fd, "wb") as out, src.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
                out.write(chunk)
        if expected is not None and h.hexdigest() != expected:
            raise ChecksumMismatch(
                f"mirror file {src}: checksum mismatch: expected "
                f"{algo}:{expected}, got {algo}:{h.hexdigest()}; "
                f"fix or remove the mirror copy"
            )
        shutil.copymode(src, tmp)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
