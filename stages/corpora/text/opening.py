"""Opening a text source file for reading bytes: plain, ``.gz`` or a zip member.

Archives are read in memory, never extracted, and hostile ones are refused: zip members with
absolute or ``..`` paths or symlinks, and compressed data expanding past
``max_expanded_bytes`` (a "bomb"; the one cap every decompressor of a corpus shares,
``fetch.<corpus>.max_expanded_bytes``, default :data:`stages.core.config.MAX_EXPANDED_BYTES`),
or holding a line longer than :data:`MAX_LINE_BYTES`. Bad input raises
:class:`TextSourceError` naming the file and the problem.
"""

from __future__ import annotations

import contextlib
import contextvars
import gzip
import io
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

import pyarrow as pa

from stages.core.config import MAX_EXPANDED_BYTES


class TextSourceError(ValueError):
    """A source file cannot be read as the format it is declared to be."""


#: Longest line read (bytes): a file without line breaks must not be read into memory whole.
MAX_LINE_BYTES = 256 << 20
#: The limit readers use when not given one; :func:`naming` sets it (from
#: ``fetch.<corpus>.max_expanded_bytes``) while a source is read.
_EXPAND_LIMIT: contextvars.ContextVar[int] = contextvars.ContextVar(
    "max_expanded_bytes", default=MAX_EXPANDED_BYTES
)


class _Guard(io.RawIOBase):
    """Counts bytes read from ``inner``: raises past ``limit`` (compressed sources only)
    or on a line longer than ``max_line``."""

    def __init__(
        self, inner: IO[bytes] | io.BufferedIOBase, label: str, limit: int | None, max_line: int
    ) -> None:
        self._inner: Any = inner  # a binary file object with readinto()
        self._label = label
        self._limit = limit
        self._max_line = max_line
        self.total = 0
        self._run = 0  # bytes since the last line break

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._inner.readinto(buffer)
        if not n:
            return n
        self.total += n
        if self._limit is not None and self.total > self._limit:
            raise TextSourceError(
                f"{self._label}: expands to more than {self._limit:,} bytes "
                f"(max_expanded_bytes): a decompression bomb or a far bigger file than "
                f"expected; reading stopped (raise fetch.<corpus>.max_expanded_bytes if "
                f"the file is genuine)"
            )
        last = bytes(memoryview(buffer)[:n]).rfind(b"\n")
        self._run = self._run + n if last < 0 else n - last - 1
        if self._run > self._max_line:
            raise TextSourceError(
                f"{self._label}: a line longer than {self._max_line:,} "
                f"bytes (no line breaks): not a text file of this format"
            )
        return n


def _guarded(fh: IO[bytes] | io.BufferedIOBase, label: str, limit: int | None) -> BinaryIO:
    return io.BufferedReader(_Guard(fh, label, limit, MAX_LINE_BYTES), buffer_size=1 << 20)


def _unsafe_member(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member must not be read (absolute or ``..`` path, symlink), or None."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if ".." in name.split("/"):
        return "a '..' path component"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    return None


def describe(path: Path, member: str | None = None) -> str:
    """How a file (or a zip member) is named in messages."""
    return f"{path} (zip member {member})" if member else str(path)


def zip_member(path: Path, member: str | None = None, suffix: str | None = None) -> str:
    """The one member of a zip archive to read: named, or the only one ending in ``suffix``."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise TextSourceError(
            f"{path}: not a readable zip archive, truncated or corrupt ({exc})"
        ) from exc
    for info in infos:
        why = _unsafe_member(info)
        if why:
            raise TextSourceError(
                f"{path}: refusing a zip archive with member "
                f"{info.filename!r}: {why} (a hostile or broken archive)"
            )
    names = [i.filename for i in infos if not i.is_dir()]
    if member is not None:
        if member not in names:
            raise TextSourceError(f"{path}: zip has no member {member!r} (has {names})")
        return member
    found = [n for n in names if suffix is None or n.endswith(suffix)]
    if len(found) != 1:
        want = f"ending in {suffix!r}" if suffix else "(set `member` in params)"
        raise TextSourceError(
            f"{path}: expected exactly one zip member {want}, found {found or 'none'} among {names}"
        )
    return found[0]


@contextlib.contextmanager
def open_binary(
    path: Path, member: str | None = None, max_expanded_bytes: int | None = None
) -> Iterator[BinaryIO]:
    """Open a plain, ``.gz`` or zip-member file for reading bytes.

    Decompressed bytes are counted: past ``max_expanded_bytes`` (default: the corpus's
    ``max_expanded_bytes`` while :func:`naming` reads it, else :data:`MAX_EXPANDED_BYTES`),
    and on a line longer than :data:`MAX_LINE_BYTES`, reading raises
    :class:`TextSourceError`. Hostile zip archives are refused (see :func:`zip_member`).
    """
    path = Path(path)
    limit = _EXPAND_LIMIT.get() if max_expanded_bytes is None else max_expanded_bytes
    if path.suffix == ".zip":
        name = zip_member(path, member)
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(name)
            label = describe(path, name)
            if info.file_size > limit:
                raise TextSourceError(
                    f"{label}: declares {info.file_size:,} bytes "
                    f"uncompressed, more than max_expanded_bytes "
                    f"({limit:,}); refusing to expand it"
                )
            with zf.open(info) as member_fh, _guarded(member_fh, label, limit) as guarded:
                yield guarded
    elif path.suffix == ".gz":
        with gzip.open(path, "rb") as gz_fh, _guarded(gz_fh, str(path), limit) as guarded:
            yield guarded
    else:
        with path.open("rb") as fh, _guarded(fh, str(path), None) as guarded:
            yield guarded


def naming(
    tables: Iterator[pa.Table], key: str, max_expanded_bytes: int | None = None
) -> Iterator[pa.Table]:
    """Add the params key of the source to reading errors (the file is already named);
    the readers inside get ``max_expanded_bytes`` (the corpus's, when given) as default."""
    token = _EXPAND_LIMIT.set(max_expanded_bytes or MAX_EXPANDED_BYTES)
    try:
        yield from tables
    except TextSourceError as exc:
        raise TextSourceError(f"{exc} [source: params {key}]") from exc
    finally:
        with contextlib.suppress(ValueError):
            _EXPAND_LIMIT.reset(token)
