"""Streaming a text file as chunks of decoded lines, each chunk one Arrow array, so memory
stays flat however big the file; bad input raises :class:`TextSourceError` naming the file,
the problem and, where there is one, the line."""

from __future__ import annotations

import gzip
import itertools
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from stages.corpora.text.opening import TextSourceError, describe, open_binary

_BOM = b"\xef\xbb\xbf"


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
    path: Path, chunk_lines: int, member: str | None = None, max_expanded_bytes: int | None = None
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
