"""Fetch source files (:func:`obtain`): verified local mirror first, then resumable HTTPS
downloads. A file only ever appears at its final path after its checksum verified, so an
interrupted or corrupted fetch can never be mistaken for data. Downloads use https (every
redirect too), plain http only for a file pinned by a sha256, whose bytes decide whatever the
transport. Paths never leave the mirror or the download directory, symbolic links included.
Standard library only (urllib), so fetching adds no dependency.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rnnflow.env import MIRROR_ENV
from stages.core.config import NetworkConfig
from stages.core.filecheck import (
    CHUNK,
    ChecksumMismatch,
    DownloadError,
    FileSpec,
    check_file,
    hasher,
    parse_checksum,
)

log = logging.getLogger(__name__)

# Client errors that another try cannot fix (a missing file stays missing); 408/429 can.
_RETRYABLE_4XX = {408, 429}


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
    network: NetworkConfig | None = None,
    progress: bool = True,
    refresh: bool = False,
) -> Fetched:
    """Return ``dest_dir / spec.path`` holding verified bytes, fetching it if needed.

    Order: an existing verified copy in ``dest_dir``; then ``mirror / spec.path`` (which must
    verify, else ``ChecksumMismatch``: a corrupt mirror is an error, never skipped); then each
    base URL in ``urls`` (file URL = base + ``spec.path``), ``network.retries`` attempts each
    with backoff ``network.backoff_s * 2**attempt`` (default: :class:`NetworkConfig`'s).
    Downloads go to ``<final>.part`` and resume with an HTTP Range request; the final path
    appears only after the checksum verified.

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
        url = _download(spec, urls, mirror_file, final, network or NetworkConfig(), progress)
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


def _transport_refusal(url: str, spec: FileSpec) -> str | None:
    """Why ``url`` must not serve ``spec`` (not https, and http without a sha256 pin)."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    sha256_pinned = spec.checksum is not None and parse_checksum(spec.checksum)[0] == "sha256"
    if scheme == "https" or (scheme == "http" and sha256_pinned):
        return None
    return f"{url}: refused: only https may serve a file not pinned by a sha256 checksum"


class _AttemptFailed(Exception):
    """One download attempt failed; ``retry`` says whether the same URL is worth another try."""

    def __init__(self, reason: str, *, retry: bool = True, checksum: bool = False) -> None:
        super().__init__(reason)
        self.retry = retry
        self.checksum = checksum


def _download(
    spec: FileSpec,
    urls: list[str],
    mirror_file: Path | None,
    final: Path,
    network: NetworkConfig,
    progress: bool,
) -> str:
    """Download ``spec`` to ``final`` from the first URL that serves it; return the URL the
    bytes finally came from (after redirects)."""
    part = final.with_name(final.name + ".part")
    tried: list[str] = []
    any_checksum = False
    for base in urls:
        url = (base if base.endswith("/") else base + "/") + urllib.parse.quote(spec.path)
        refusal = _transport_refusal(url, spec)
        if refusal:
            tried.append(refusal)
            log.warning("%s", refusal)
            continue
        for attempt in range(max(1, network.retries)):
            if attempt and network.backoff_s > 0:
                time.sleep(network.backoff_s * 2 ** (attempt - 1))
            try:
                served_url = _download_once(url, part, spec, network.timeout_s, progress)
                check_file(part, spec)
            except ChecksumMismatch as exc:
                # The bytes (possibly an old resumed prefix) are wrong: start clean next time.
                part.unlink(missing_ok=True)
                failure = _AttemptFailed(str(exc), checksum=True)
            except _AttemptFailed as exc:
                failure = exc
            else:
                os.replace(part, final)
                return served_url
            any_checksum |= failure.checksum
            tried.append(f"{url} (attempt {attempt + 1}): {failure}")
            log.warning("fetching %s failed: %s", url, failure)
            if not failure.retry:
                break

    # A checksum failure leaves no .part behind; a network failure keeps it for resuming,
    # unless nothing will verify the resumed whole (trust on first use): then it goes.
    if spec.checksum is None:
        part.unlink(missing_ok=True)
    if mirror_file is not None:
        where = f"the mirror has no {mirror_file}"
    else:
        where = (
            f"no local mirror is set: set {MIRROR_ENV}=/path/to/mirror (e.g. "
            f"../shared/corpora) to read the corpus's files from there"
        )
    detail = "tried:\n  " + "\n  ".join(tried) if urls else "no download URLs are configured"
    message = f"{spec.path}: could not be downloaded from {list(urls)}; {where}.\n{detail}"
    raise (ChecksumMismatch if any_checksum else DownloadError)(message)


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to a URL that may serve ``spec`` (see _transport_refusal)."""

    def __init__(self, spec: FileSpec) -> None:
        self.spec = spec

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        refusal = _transport_refusal(newurl, self.spec)
        if refusal:
            fp.close()
            raise _AttemptFailed(f"redirected to {refusal}", retry=False)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _download_once(url: str, part: Path, spec: FileSpec, timeout_s: float, progress: bool) -> str:
    """One HTTP request appending to (or restarting) ``part``; returns the URL that served
    it (after redirects); raises ``_AttemptFailed``."""
    offset = part.stat().st_size if part.exists() else 0
    if spec.size is not None and offset > spec.size:
        part.unlink()  # longer than the file can be: not a prefix of it
        offset = 0
    headers = {"User-Agent": "rnnflow", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener(_CheckedRedirects(spec))
    served_url = url
    try:
        with opener.open(request, timeout=timeout_s) as resp:
            served_url = resp.url
            if offset and resp.status == 206:
                start = _content_range_start(resp.headers.get("Content-Range", ""))
                if start != offset:
                    part.unlink()
                    raise _AttemptFailed(
                        f"asked for bytes from {offset}, server sent "
                        f"Content-Range {resp.headers.get('Content-Range')!r}"
                    )
                mode = "ab"
            else:
                # 200 to a Range request means the server sends the whole file: start over.
                mode, offset = "wb", 0
            length = resp.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else spec.size
            from tqdm import tqdm  # only needed when something is actually downloaded

            with (
                part.open(mode) as out,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=spec.path,
                    file=sys.stderr,
                    leave=False,
                    disable=None if progress else True,
                ) as bar,
            ):
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # Range beyond the end: the .part may already be complete; the checksum decides.
            return exc.url
        retry = exc.code >= 500 or exc.code in _RETRYABLE_4XX
        raise _AttemptFailed(f"HTTP {exc.code} {exc.reason}", retry=retry) from exc
    except urllib.error.URLError as exc:
        # A host that does not resolve will not resolve a second later either: offline
        # machines must fail at once and point at the mirror, not sit through backoffs.
        offline = isinstance(exc.reason, socket.gaierror)
        raise _AttemptFailed(f"network error: {exc.reason}", retry=not offline) from exc
    except (http.client.HTTPException, OSError) as exc:
        # IncompleteRead, resets, timeouts: whatever reached .part stays there for resuming.
        raise _AttemptFailed(f"transfer interrupted: {exc!r}") from exc

    got = part.stat().st_size
    if total is not None and got < total:
        # http.client returns b"" rather than raising when a read(n) is cut short.
        raise _AttemptFailed(f"connection closed after {got} of {total} bytes; will resume")
    return served_url


def _content_range_start(value: str) -> int | None:
    # "bytes 100-199/200"
    unit, _, rng = value.strip().partition(" ")
    if unit != "bytes":
        return None
    start, _, _ = rng.partition("-")
    return int(start) if start.isdigit() else None
