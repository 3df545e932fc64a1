"""Books (format ``gutenberg``): one row per paragraph, the Project Gutenberg header and licence
footer stripped (at fetch, because the markers are line-level state)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.core.config import MAX_EXPANDED_BYTES
from stages.corpora.text.formats import TextSourceError, describe, read_lines

#: The "End of the Project Gutenberg EBook of …" line just before the END marker.
_TRAILER = r"(?i)^end of (the )?project gutenberg"
#: The transcriber credits that open most Gutenberg texts (first two paragraphs only).
_CREDITS = (
    r"(?i)^(produced by|transcribed from|e-?text prepared by)"
    r"|anonymous (project gutenberg )?volunteer"
)
_START_RE2 = r"(?i)^\s*\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG E-?BOOK"
_END_RE2 = r"(?i)^\s*\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG E-?BOOK"


def _matches(lines: pa.Array, regex: str) -> np.ndarray:
    return pc.match_substring_regex(lines, regex).to_numpy(zero_copy_only=False)


def paragraphs(lines: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Join runs of non-blank lines with spaces: (complete paragraphs, open last run).

    The last run is returned separately (it may continue in the next chunk).
    """
    blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(lines)), 0).to_numpy(
        zero_copy_only=False
    )
    keep = np.flatnonzero(~blank)
    if not len(keep):
        return pa.array([], pa.string()), pa.array([], pa.string())
    group = np.cumsum(blank)[keep]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    offsets = np.r_[starts, len(keep)].astype(np.int32)
    values = lines.take(pa.array(keep))
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), values), " ")
    if blank[-1]:
        return joined, pa.array([], pa.string())
    return joined.slice(0, len(joined) - 1), values.slice(int(starts[-1]))


def read_book(
    path: Path,
    chunk_lines: int,
    gutenberg_header: bool = True,
    member: str | None = None,
    max_expanded_bytes: int = MAX_EXPANDED_BYTES,
) -> Iterator[pa.Array]:
    """Stream a plain-text book as arrays of paragraphs, Gutenberg header/footer stripped.

    With ``gutenberg_header`` the text between the ``*** START OF THE PROJECT GUTENBERG
    EBOOK … ***`` and ``*** END OF …`` lines is kept, less the transcriber credits that
    open it ("Produced by …") and the "End of the Project Gutenberg EBook of …" trailer; a
    file without either marker is an error, so a licence never reaches the corpus unnoticed.
    """
    lines = read_lines(path, chunk_lines, member, max_expanded_bytes)
    yield from book_paragraphs(lines, describe(path, member), gutenberg_header)


def book_paragraphs(
    chunks: Iterable[tuple[int, pa.Array]], label: str, gutenberg_header: bool = True
) -> Iterator[pa.Array]:
    """:func:`read_book` on lines already read: ``(first line number, lines)`` chunks."""
    inside = not gutenberg_header
    ended = False
    emitted = 0
    pending = pa.array([], pa.string())
    for _start, lines in chunks:
        if ended:
            continue  # the licence: read (so damage is still detected) but not kept
        if not inside:
            hit = np.flatnonzero(_matches(lines, _START_RE2))
            if not len(hit):
                continue
            inside = True
            lines = lines.slice(int(hit[0]) + 1)
        if gutenberg_header:
            hit = np.flatnonzero(_matches(lines, _END_RE2))
            if len(hit):
                lines = lines.slice(0, int(hit[0]))
                ended = True
        lines = pa.concat_arrays([pending, lines]) if len(pending) else lines
        if ended:
            lines = pa.concat_arrays([lines, pa.array([""])])  # close the last paragraph
        done, pending = paragraphs(lines)
        if gutenberg_header:
            opening = np.arange(emitted, emitted + len(done)) < 2
            boiler = _matches(done, _TRAILER) | (opening & _matches(done, _CREDITS))
            emitted += len(done)
            done = done.filter(pa.array(~boiler))
        if len(done):
            yield done
    if not inside:
        raise TextSourceError(
            f"{label}: no Project Gutenberg header line ('*** START OF THE "
            f"PROJECT GUTENBERG EBOOK … ***'); if this text has none, set "
            f"`gutenberg_header: false` on its source in params"
        )
    if gutenberg_header and not ended:
        raise TextSourceError(
            f"{label}: no Project Gutenberg footer line ('*** END OF THE "
            f"PROJECT GUTENBERG EBOOK … ***') after the header: truncated "
            f"file, or the licence would end up in the corpus"
        )
    if len(pending):
        done, _ = paragraphs(pa.concat_arrays([pending, pa.array([""])]))
        yield done
