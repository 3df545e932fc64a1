"""Cleaning text (the clean hop): pure functions on Arrow string arrays, vectorised with
``pyarrow.compute``; :meth:`stages.corpora.text.corpus.TextCorpus.clean` applies them and
counts every dropped row by reason."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Unicode whitespace (RE2's \s is ASCII only): collapsed to one space.
_SPACE = r"[\s\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]+"
#: Control characters and invisible format characters (BOM, zero-width space, direction
#: marks, soft hyphen); the zero-width joiners that build emoji and scripts are kept.
_INVISIBLE = r"[\p{Cc}\x{AD}\x{200B}\x{200E}\x{200F}\x{202A}-\x{202E}\x{2060}-\x{2064}\x{FEFF}]"
_URL = r"(?i)(?:\bhttps?://|\bwww\.|\bpic\.twitter\.com/)\S+"
_HANDLE = r"(^|[^\w@])@\w{1,15}\b"


def normalize(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """NFC, whitespace runs → one space, control/invisible characters out, trimmed."""
    arr = pc.utf8_normalize(arr, "NFC")
    arr = pc.replace_substring_regex(arr, _SPACE, " ")
    arr = pc.replace_substring_regex(arr, _INVISIBLE, "")
    return pc.utf8_trim_whitespace(arr)


def mask_urls_and_handles(
    arr: pa.Array | pa.ChunkedArray, url_token: str = "<url>", user_token: str = "<user>"
) -> pa.Array | pa.ChunkedArray:
    """URLs → ``url_token``, @handles → ``user_token`` (space-separated; run before
    :func:`normalize`, which collapses the spaces)."""
    arr = pc.replace_substring_regex(arr, _URL, f" {url_token} ")
    return pc.replace_substring_regex(arr, _HANDLE, rf"\1 {user_token} ")


def words(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Whitespace-separated word count per string (0 for a blank one)."""
    trimmed = pc.utf8_trim_whitespace(arr)
    n = pc.list_value_length(pc.utf8_split_whitespace(trimmed)).to_numpy(zero_copy_only=False)
    return np.where(chars(trimmed) == 0, 0, n)


def chars(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Character (code point) count per string."""
    return pc.utf8_length(arr).to_numpy(zero_copy_only=False)


def length_ratio(
    a: pa.Array | pa.ChunkedArray, b: pa.Array | pa.ChunkedArray, smoothing: int = 10
) -> np.ndarray:
    """Longer over shorter side, in characters plus ``smoothing`` (so "Sí." / "Yes." is 1)."""
    la, lb = chars(a) + smoothing, chars(b) + smoothing
    return np.maximum(la, lb) / np.maximum(np.minimum(la, lb), 1)


def drop_rows(
    table: pa.Table, reasons: list[tuple[str, np.ndarray]]
) -> tuple[pa.Table, dict[str, int]]:
    """Drop rows flagged by ``(reason, mask)``; each row counted under its first reason."""
    dropped = np.zeros(table.num_rows, dtype=bool)
    counts: dict[str, int] = {}
    for reason, mask in reasons:
        new = mask & ~dropped
        counts[reason] = counts.get(reason, 0) + int(new.sum())
        dropped |= new
    return table.filter(pa.array(~dropped)), counts
