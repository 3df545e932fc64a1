"""Downloading one file over HTTPS: retries with backoff, resuming a ``.part`` with Range
requests, every redirect checked; plain http only for a file pinned by a sha256, whose bytes
decide whatever the transport. Standard library only (urllib)."""

from __future__ import annotations

import http.client
import logging
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, BinaryIO

from rnnflow.env import MIRROR_ENV
from stages.core.filecheck import (
    CHUNK,
    ChecksumMismatch,
    DownloadError,
    FileSpec,
    check_file,
    parse_checksum,
)

log = logging.getLogger(__name__)

# Client errors that another try cannot fix (a missing file stays missing); 408/429 can.
_RETRYABLE_4XX = {408, 429}


def _sha256_pinned(spec: FileSpec) -> bool:
    return spec.checksum is not None and parse_checksum(spec.checksum)[0] == "sha256"


def _transport_refusal(url: str, spec: FileSpec) -> str | None:
    """Why ``url`` must not serve ``spec`` (not https, and http without a sha256 pin)."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme == "https" or (scheme == "http" and _sha256_pinned(spec)):
        return None
    return f"{url}: refused: only https may serve a file not pinned by a sha256 checksum"


class _AttemptFailed(Exception):
    """One download attempt failed; ``retry`` says whether the same URL is worth another try."""

    def __init__(self, reason: str, *, retry: bool = True, checksum: bool = False) -> None:
        super().__init__(reason)
        self.retry = retry
        self.checksum = checksum


def download(
    spec: FileSpec,
    *,
    urls: list[str],
    mirror_file: Path | None,
    final: Path,
    retries: int,
    timeout_s: float,
    backoff_s: float,
    progress: bool,
) -> str:
    """Download ``spec`` to ``final`` from the first URL that serves it; return the URL the
    bytes finally came from (after redirects)."""
    part = final.with_name(final.name + ".part")
    tried: list[str] = []
    any_checksum = False
    for base in urls:
        url = _join(base, spec.path)
        refusal = _transport_refusal(url, spec)
        if refusal:
            tried.append(refusal)
            log.warning("%s", refusal)
            continue
        for attempt in range(max(1, retries)):
            if attempt and backoff_s > 0:
                time.sleep(backoff_s * 2 ** (attempt - 1))
            try:
                served_url = _download_once(url, part, spec, timeout_s=timeout_s, progress=progress)
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
    if not urls:
        detail = "no download URLs are configured"
    else:
        detail = "tried:\n  " + "\n  ".join(tried)
    message = f"{spec.path}: could not be downloaded from {list(urls)}; {where}.\n{detail}"
    raise (ChecksumMismatch if any_checksum else DownloadError)(message)


def _join(base: str, rel: str) -> str:
    return (base if base.endswith("/") else base + "/") + urllib.parse.quote(rel)


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


def _download_once(
    url: str, part: Path, spec: FileSpec, *, timeout_s: float, progress: bool
) -> str:
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
            with part.open(mode) as out:
                _copy_body(
                    resp, out, total=total, initial=offset, label=spec.path, progress=progress
                )
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


def _copy_body(
    resp: BinaryIO, out: IO[bytes], *, total: int | None, initial: int, label: str, progress: bool
) -> None:
    from tqdm import tqdm  # only needed when something is actually downloaded

    with tqdm(
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=label,
        file=sys.stderr,
        leave=False,
        disable=None if progress else True,
    ) as bar:
        while chunk := resp.read(CHUNK):
            out.write(chunk)
            bar.update(len(chunk))
