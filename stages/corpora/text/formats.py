"""Reading a text source file in its format (``moses``, ``tsv``, ``alternating``,
``gutenberg``: see :mod:`stages.corpora.text`): opened plain, as ``.gz`` or as a zip member,
and streamed as chunks of decoded lines, each chunk one Arrow array, so memory stays flat
however big the file.

Archives are read in memory, never extracted, and hostile ones are refused: zip members with
absolute or ``..`` paths or symlinks, and compressed data expanding past
``max_expanded_bytes`` (a "bomb"; the one cap every decompressor of a corpus shares,
``fetch.<corpus>.max_expanded_bytes``, default :data:`stages.core.config.MAX_EXPANDED_BYTES`),
or holding a line longer than :data:`MAX_LINE_BYTES`. Bad input raises
:class:`TextSourceError` naming the file, the problem and, where there is one, the line.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import stat
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.core.config import MAX_EXPANDED_BYTES


class TextSourceError(ValueError):
    """A source file cannot be read as the format it is declared to be."""


#: Longest line read (bytes): a file without line breaks must not be read into memory whole.
MAX_LINE_BYTES = 256 << 20
_BOM = b"\xef\xbb\xbf"


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
    path: Path, member: str | None = None, limit: int = MAX_EXPANDED_BYTES
) -> Iterator[BinaryIO]:
    """Open a plain, ``.gz`` or zip-member file for reading bytes.

    Decompressed bytes are counted: past ``limit`` (the corpus's ``max_expanded_bytes``), and
    on a line longer than :data:`MAX_LINE_BYTES`, reading raises :class:`TextSourceError`.
    Hostile zip archives are refused (see :func:`zip_member`).
    """
    path = Path(path)
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


def naming(tables: Iterator[pa.Table], key: str) -> Iterator[pa.Table]:
    """Add the params key of the source to reading errors (the file is already named)."""
    try:
        yield from tables
    except TextSourceError as exc:
        raise TextSourceError(f"{exc} [source: params {key}]") from exc


def _decode(lines: list[bytes], label: str, first_line: int) -> pa.Array:
    """Bytes lines → string array without line endings; non-UTF-8 names the line."""
    try:
        arr = pc.cast(pa.array(lines, pa.binary()), pa.string())
    except pa.ArrowInvalid:
        for i, raw in enumerate(lines):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise TextSourceError(
                    f"{label}: line {first_line + i}: not valid UTF-8 ({exc.reason} at byte "
                    f"{exc.start}: {raw[max(exc.start - 10, 0) : exc.start + 10]!r})"
                ) from None
        raise
    return pc.utf8_rtrim(arr, characters="\r\n")


def read_lines(
    path: Path,
    chunk_lines: int,
    member: str | None = None,
    max_expanded_bytes: int = MAX_EXPANDED_BYTES,
) -> Iterator[tuple[int, pa.Array]]:
    """Stream a text file as ``(first line number, lines)`` chunks (1-based numbers).

    Raises :class:`TextSourceError` for an empty file, bytes that are not UTF-8 (with the
    line) and truncated or corrupt gzip/zip data (with the lines read before the damage).
    """
    label = describe(path, member)
    line = 1
    try:
        with open_binary(path, member, max_expanded_bytes) as fh:
            while True:
                lines = list(itertools.islice(fh, chunk_lines))
                if not lines:
                    break
                if line == 1 and lines[0].startswith(_BOM):
                    lines[0] = lines[0][len(_BOM) :]
                yield line, _decode(lines, label, line)
                line += len(lines)
    except TextSourceError:
        raise
    except (EOFError, zlib.error, zipfile.BadZipFile, gzip.BadGzipFile, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        kind = {".zip": "zip", ".gz": "gzip"}.get(Path(path).suffix, "file")
        raise TextSourceError(
            f"{label}: truncated or corrupt {kind} data after {line - 1:,} "
            f"complete lines ({type(exc).__name__}: {exc})"
        ) from exc
    if line == 1:
        raise TextSourceError(f"{label}: empty file (no lines)")


# --- the formats -----------------------------------------------------------------------------


def read_parallel(
    sources: list[tuple[Path, str | None]],
    chunk_lines: int,
    max_expanded_bytes: int = MAX_EXPANDED_BYTES,
) -> Iterator[list[pa.Array]]:
    """Stream line-aligned files in lockstep; differing line counts are an error."""
    readers = [read_lines(p, chunk_lines, m, max_expanded_bytes) for p, m in sources]
    totals = [0] * len(readers)
    while True:
        chunks = [next(r, None) for r in readers]
        if all(c is None for c in chunks):
            return
        sizes = [len(c[1]) if c is not None else 0 for c in chunks]
        for i, n in enumerate(sizes):
            totals[i] += n
        if len(set(sizes)) != 1:
            for i, reader in enumerate(readers):  # count the rest, for an exact message
                totals[i] += sum(len(c) for _, c in reader)
            counts = ", ".join(
                f"{describe(p, m)} has {t:,} lines" for (p, m), t in zip(sources, totals)
            )
            raise TextSourceError(f"parallel files differ in length: {counts}")
        yield [c[1] for c in chunks]  # type: ignore[index]  # all present: same sizes, not all None


def read_tsv(
    path: Path,
    columns: list[str],
    chunk_lines: int,
    member: str | None = None,
    max_expanded_bytes: int = MAX_EXPANDED_BYTES,
) -> Iterator[pa.Table]:
    """Stream a tab-separated file as tables with ``columns``.

    Every line must have exactly ``len(columns)`` fields: fewer or more (a sentence with a
    tab in it, an undeclared column) raise :class:`TextSourceError` naming the line.
    """
    if not columns:
        raise ValueError(f"{path}: a tsv source needs `columns` (names of its fields)")
    for start, lines in read_lines(path, chunk_lines, member, max_expanded_bytes):
        fields = pc.split_pattern(lines, "\t")
        bad = np.flatnonzero(pc.list_value_length(fields).to_numpy() != len(columns))
        if len(bad):
            i = int(bad[0])
            found = len(fields[i])
            more = (
                " (a tab inside a sentence, or a column missing from `columns` in params)"
                if found > len(columns)
                else ""
            )
            raise TextSourceError(
                f"{describe(path, member)}: line {start + i}: expected {len(columns)} "
                f"tab-separated fields ({', '.join(columns)}), found "
                f"{found}{more}: {lines[i].as_py()[:80]!r}"
            )
        yield pa.table({c: pc.list_element(fields, k) for k, c in enumerate(columns)})


def read_alternating(
    path: Path,
    chunk_lines: int,
    member: str | None = None,
    max_expanded_bytes: int = MAX_EXPANDED_BYTES,
) -> Iterator[pa.Table]:
    """Stream alternating utterance/reply lines as ``(context, response)`` tables."""
    chunk_lines += chunk_lines % 2  # even, so a pair never straddles two chunks
    for start, lines in read_lines(path, chunk_lines, member, max_expanded_bytes):
        if len(lines) % 2:
            last = start + len(lines) - 1
            raise TextSourceError(
                f"{describe(path, member)}: odd number of lines ({last:,}): "
                f"line {last:,} has no reply line after it"
            )
        idx = np.arange(0, len(lines), 2)
        yield pa.table({"context": lines.take(idx), "response": lines.take(idx + 1)})
