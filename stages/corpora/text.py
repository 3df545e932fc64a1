"""What the text corpora share: source configs, streaming readers, pure cleaning functions.

Reading (fetch). A text source names its files (with checksums) and a ``format``:

- ``moses``: line-aligned parallel files, one per language (``files: {es: …, en: …}``), or
  one zip holding them (the OPUS download; members found by their ``.<lang>`` suffix).
- ``tsv``: tab-separated fields named by ``columns`` (Tatoeba: ``[en, es]``, or
  ``[en, es, attribution]`` for the newer manythings files); every line must have exactly
  that many fields (a sentence holding a tab is an error naming the line, not a silently
  truncated row). Declared columns an adapter does not use are read and ignored.
- ``alternating``: one utterance a line, tweet then reply (``twitter_en.txt.gz``).
- ``gutenberg``: a plain-text book, one row per paragraph; the Project Gutenberg header
  and licence footer are stripped here, at fetch, because the markers are line-level
  state (``gutenberg_header: false`` for texts without them, e.g. tiny-shakespeare).
- ``hf``: a Hugging Face dataset (``dataset``, ``config``, ``split``, ``revision``,
  ``data_files``; see :class:`stages.core.config.DatasetSourceConfig`) read through
  ``datasets``, with ``columns`` mapping the corpus's raw columns onto dataset columns
  (dotted paths reach into structs: ``{src: translation.es, tgt: translation.en}``). Each
  adapter says which names it takes (:meth:`TextCorpus.read_hf`). Rows stream in batches
  of ``chunk_lines``; the lock records a digest of the mapped values
  (:class:`stages.core.sources.ContentDigest`).

A file ending in ``.gz`` is read through gzip; a ``.zip`` through its ``member``. Files are
read in chunks of ``chunk_lines`` lines, each chunk one Arrow table, so memory stays flat
however big the file. Bad input raises :class:`TextSourceError` naming the file, the
problem and, where there is one, the line. Archives are read in memory, never extracted,
and hostile ones are refused: zip members with absolute or ``..`` paths or symlinks, and
compressed data expanding past ``max_expanded_bytes`` (a "bomb"; the one cap every
decompressor of a corpus shares, ``fetch.<corpus>.max_expanded_bytes``, default
:data:`stages.core.config.MAX_EXPANDED_BYTES`), or
holding a line longer than :data:`MAX_LINE_BYTES`.

Cleaning (clean). Pure functions on Arrow string arrays, vectorised with
``pyarrow.compute``: :func:`normalize` (NFC, control characters out, whitespace
collapsed), :func:`mask_urls_and_handles`, :func:`words` and :func:`length_ratio`;
:meth:`TextCorpus.clean` applies them and counts every dropped row by reason.

Tokenizing goes through :mod:`stages.corpora.texttok` (one vocabulary over a corpus's text
columns, fitted on train); each adapter adds its task to ``spec.json``.
"""

from __future__ import annotations

import contextlib
import contextvars
import gzip
import io
import itertools
import stat
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from stages.core.config import (
    MAX_EXPANDED_BYTES,
    CleanConfig,
    DatasetSourceConfig,
    FetchConfig,
    listed,
)
from stages.core.sources import FetchContext, HFDataset, resolve
from stages.core.validate import Expect, Suite
from stages.corpora import texttok
from stages.corpora.base import Corpus
from stages.corpora.texttok import TextTokenizeConfig

# --- configuration ------------------------------------------------------------------------


class TextSourceConfig(DatasetSourceConfig):
    """One text source: files with checksums (see :class:`SourceConfig`) and how to read them,
    or (format ``hf``) a Hugging Face dataset (see :class:`DatasetSourceConfig`)."""

    format: Literal["moses", "tsv", "alternating", "gutenberg", "hf"]
    # ``origin`` (from SourceConfig): the fetched part and ``origin`` column; default: the
    # source's own name. Published and mirror copies share an origin: alternatives.
    #: tsv: names of the tab-separated fields, in file order. hf: raw column → dataset
    #: column (dotted into structs), e.g. ``{src: translation.es, tgt: translation.en}``.
    columns: list[str] | dict[str, str] = []
    #: The member to read when a (single-file) source is a zip archive.
    member: str | None = None
    #: gutenberg: require and strip the ``*** START/END OF THE PROJECT GUTENBERG EBOOK`` lines
    #: (also for an hf book dataset: each row's text is one book).
    gutenberg_header: bool = True

    @model_validator(mode="after")
    def _files_or_dataset(self) -> TextSourceConfig:
        if self.format == "hf":
            if not self.dataset:
                raise ValueError("a source of format hf names its `dataset`")
            if self.files:
                raise ValueError("a source of format hf has a `dataset`, not `files`")
            if not isinstance(self.columns, dict) or not self.columns:
                raise ValueError(
                    "a source of format hf maps columns: `columns: {name: dataset column}`"
                )
        else:
            if self.dataset is not None:
                raise ValueError(f"`dataset` is for format hf, not {self.format}")
            if not self.files:
                raise ValueError(f"a source of format {self.format} names its `files`")
            if isinstance(self.columns, dict):
                raise ValueError(f"format {self.format}: `columns` is a list of field names")
        return self

    @property
    def column_map(self) -> dict[str, str]:
        """hf: raw column → dataset column."""
        return dict(self.columns) if isinstance(self.columns, dict) else {}

    @property
    def column_list(self) -> list[str]:
        """tsv: the field names."""
        return list(self.columns) if isinstance(self.columns, list) else []


class TextFetchConfig(FetchConfig):
    """fetch.<text corpus>: named sources; ``source`` lists them in order of preference.

    Sources of different origins are combined (one part each); sources of one origin are
    alternatives, the first that can be had serving it (e.g. ``[tatoeba, tatoeba_mirror]``).
    """

    source: str | list[str]
    sources: dict[str, TextSourceConfig]
    #: Sub-directory of ``$RNNFLOW_MIRROR`` holding this corpus (default: the corpus name).
    mirror_dir: str | None = None
    #: Lines read per chunk (one Arrow table each).
    chunk_lines: int = Field(50_000, ge=2)

    def origins(self) -> dict[str, list[tuple[str, TextSourceConfig]]]:
        """The listed sources grouped by origin (part), each group in listed order."""
        groups: dict[str, list[tuple[str, TextSourceConfig]]] = {}
        for name, source in listed(self.source, self.sources):
            groups.setdefault(part_name(name, source), []).append((name, source))
        return groups


def part_name(name: str, source: TextSourceConfig) -> str:
    """The fetched part (and ``origin``) a source is written to."""
    return source.origin or name


class TextCleanConfig(CleanConfig):
    """clean.<text corpus>: length limits (characters, after normalisation)."""

    max_chars: int = 1000


# --- reading ------------------------------------------------------------------------------


class TextSourceError(ValueError):
    """A source file cannot be read as the format it is declared to be."""


_BOM = b"\xef\xbb\xbf"

#: Longest line read (bytes): a file without line breaks must not be read into memory whole.
MAX_LINE_BYTES = 256 << 20
#: The limit readers use when not given one; :func:`_naming` sets it (from
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
    ``max_expanded_bytes`` while :func:`_naming` reads it, else :data:`MAX_EXPANDED_BYTES`),
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


def read_parallel(
    sources: list[tuple[Path, str | None]], chunk_lines: int, max_expanded_bytes: int | None = None
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
    max_expanded_bytes: int | None = None,
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
    path: Path, chunk_lines: int, member: str | None = None, max_expanded_bytes: int | None = None
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


#: The "End of the Project Gutenberg EBook of …" line just before the END marker.
_TRAILER = r"(?i)^end of (the )?project gutenberg"
#: The transcriber credits that open most Gutenberg texts (first two paragraphs only).
_CREDITS = (
    r"(?i)^(produced by|transcribed from|e-?text prepared by)"
    r"|anonymous (project gutenberg )?volunteer"
)
_START_RE2 = r"(?i)^\s*\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG E-?BOOK"
_END_RE2 = r"(?i)^\s*\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG E-?BOOK"


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
    max_expanded_bytes: int | None = None,
) -> Iterator[pa.Array]:
    """Stream a plain-text book as arrays of paragraphs, Gutenberg header/footer stripped.

    With ``gutenberg_header`` the text between the ``*** START OF THE PROJECT GUTENBERG
    EBOOK … ***`` and ``*** END OF …`` lines is kept, less the transcriber credits that
    open it ("Produced by …") and the "End of the Project Gutenberg EBook of …" trailer; a
    file without either marker is an error, so a licence never reaches the corpus unnoticed.
    """
    yield from book_paragraphs(
        read_lines(path, chunk_lines, member, max_expanded_bytes),
        describe(path, member),
        gutenberg_header,
    )


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
            hit = np.flatnonzero(
                pc.match_substring_regex(lines, _START_RE2).to_numpy(zero_copy_only=False)
            )
            if not len(hit):
                continue
            inside = True
            lines = lines.slice(int(hit[0]) + 1)
        if gutenberg_header:
            hit = np.flatnonzero(
                pc.match_substring_regex(lines, _END_RE2).to_numpy(zero_copy_only=False)
            )
            if len(hit):
                lines = lines.slice(0, int(hit[0]))
                ended = True
        lines = pa.concat_arrays([pending, lines]) if len(pending) else lines
        if ended:
            lines = pa.concat_arrays([lines, pa.array([""])])  # close the last paragraph
        done, pending = paragraphs(lines)
        if gutenberg_header:
            boiler = pc.match_substring_regex(done, _TRAILER).to_numpy(zero_copy_only=False)
            opening = np.arange(emitted, emitted + len(done)) < 2
            boiler |= opening & pc.match_substring_regex(done, _CREDITS).to_numpy(
                zero_copy_only=False
            )
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


# --- cleaning -----------------------------------------------------------------------------

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


def _naming(
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


# --- the shared adapter -------------------------------------------------------------------


class TextCorpus(Corpus):
    """Base of the text adapters: sources → parts, shared cleaning, lengths, tokenizing.

    Subclasses set :attr:`text_columns` and implement :meth:`read_source`.
    """

    #: Columns holding text (cleaned, length-limited, tokenized).
    text_columns: ClassVar[tuple[str, ...]] = ()
    #: Columns carried unchanged into the tokens.
    passthrough: ClassVar[tuple[str, ...]] = ()
    #: ``spec.json`` entries describing the task for the models.
    task: ClassVar[dict[str, Any]] = {}

    FetchConfig = TextFetchConfig
    CleanConfig = TextCleanConfig
    TokenizeConfig = TextTokenizeConfig

    # fetch -------------------------------------------------------------------------------
    def mirror_subdir(self, cfg: TextFetchConfig) -> str | None:
        return cfg.mirror_dir

    def fetch(self, cfg: TextFetchConfig, ctx: FetchContext) -> dict[str, Iterable[pa.Table]]:
        out: dict[str, Iterable[pa.Table]] = {}
        for part, candidates in cfg.origins().items():
            # Files are had (verified or trusted on first use) now; reading them streams
            # later, and checks them structurally (archive, UTF-8, line counts) on the way.
            # A dataset (format hf) is loaded now and its content verified as it streams.
            name, source, files = resolve(candidates, ctx, part, f"fetch.{self.name}")
            key = f"fetch.{self.name}.sources.{name}"
            tables = (
                self.read_hf(name, source, ctx.datasets[name], cfg)
                if source.format == "hf"
                else self.read_source(name, source, files, cfg)
            )
            out[part] = _naming(tables, key, cfg.max_expanded_bytes)
        return out

    #: hf: the raw column names ``columns`` may map (each set is one way to read a dataset).
    hf_columns: ClassVar[tuple[frozenset[str], ...]] = ()

    def hf_mapping(self, name: str, source: TextSourceConfig) -> dict[str, str]:
        """The source's ``columns``, checked against what this corpus takes."""
        mapping = source.column_map
        if frozenset(mapping) not in self.hf_columns:
            ways = " or ".join(str(sorted(w)) for w in self.hf_columns)
            raise ValueError(
                f"fetch.{self.name}.sources.{name}.columns must map {ways} onto dataset "
                f"columns, got {sorted(mapping)}"
            )
        return mapping

    def read_hf(
        self, name: str, source: TextSourceConfig, data: HFDataset, cfg: Any
    ) -> Iterator[pa.Table]:
        """Raw tables from a dataset source (format hf)."""
        raise ValueError(f"fetch.{self.name}.sources.{name}: format hf is not supported here")

    def read_source(
        self, name: str, source: TextSourceConfig, files: dict[str, Path], cfg: Any
    ) -> Iterator[pa.Table]:
        raise NotImplementedError

    def raw_schema(self) -> dict[str, str]:
        return {c: "string" for c in self.text_columns}

    def raw_suite(self, part: str, cfg: Any) -> Suite:
        return Suite(
            f"{self.name}.raw",
            tuple(Expect.not_null(c) for c in self.text_columns),
            schema=self.raw_schema(),
        )

    # clean -------------------------------------------------------------------------------
    def prepare(self, arr: pa.ChunkedArray, cfg: Any) -> pa.ChunkedArray:
        """Per-column cleaning before :func:`normalize` (e.g. URL placeholders)."""
        return arr

    def extra_drops(self, table: pa.Table, cfg: Any) -> list[tuple[str, np.ndarray]]:
        """Corpus-specific drop reasons, checked after empty/too_long."""
        return []

    def clean(self, table: pa.Table, cfg: TextCleanConfig) -> tuple[pa.Table, dict[str, int]]:
        for col in self.text_columns:
            i = table.schema.get_field_index(col)
            table = table.set_column(i, col, normalize(self.prepare(table.column(col), cfg)))
        lengths = [chars(table.column(c)) for c in self.text_columns]
        reasons = [
            ("empty", np.logical_or.reduce([n == 0 for n in lengths])),
            ("too_long", np.logical_or.reduce([n > cfg.max_chars for n in lengths])),
        ]
        return drop_rows(table, reasons + self.extra_drops(table, cfg))

    def clean_suite(self, part: str, cfg: TextCleanConfig) -> Suite:
        limit = cfg.max_chars if cfg is not None else None
        return Suite(
            f"{self.name}.clean",
            tuple(
                e
                for c in self.text_columns
                for e in (Expect.not_null(c), Expect.between(f"{c}.len", 1, limit))
            ),
            schema=self.raw_schema(),
        )

    # format ------------------------------------------------------------------------------
    def format(self, table: pa.Table, cfg: Any) -> pa.Table:
        return table.select(list(self.formatted_schema()))

    def formatted_schema(self) -> dict[str, str]:
        return self.raw_schema()

    def formatted_suite(self, cfg: Any) -> Suite:
        return Suite(
            f"{self.name}.formatted",
            (Expect.not_null("row_id"),)
            + tuple(
                e
                for c in self.text_columns
                for e in (Expect.not_null(c), Expect.between(f"{c}.len", 1, None))
            ),
            schema={"row_id": "uint64", **self.formatted_schema()},
        )

    # sample ------------------------------------------------------------------------------
    def lengths(self, table: pa.Table) -> np.ndarray:
        """Words in the longest text column of each row."""
        return np.max([words(table.column(c)) for c in self.text_columns], axis=0)

    # tokenize ----------------------------------------------------------------------------
    def fit(self, train: Iterable[pa.RecordBatch], cfg: TextTokenizeConfig) -> dict[str, Any]:
        artifacts = texttok.fit(train, self.text_columns, cfg)
        artifacts["spec.json"] = {**artifacts["spec.json"], **self.task}
        return artifacts

    def tokenize(
        self, table: pa.Table, artifacts: dict[str, Any], cfg: TextTokenizeConfig
    ) -> pa.Table:
        out = texttok.encode(table, self.text_columns, artifacts, cfg)
        for col in self.passthrough:
            out = out.append_column(col, table.column(col))
        return out

    def tokens_suite(self, artifacts: dict[str, Any], cfg: TextTokenizeConfig) -> Suite:
        schema = {
            **texttok.tokens_schema(self.text_columns),
            **{c: self.formatted_schema()[c] for c in self.passthrough},
        }
        return Suite(
            f"{self.name}.tokens",
            texttok.suite_expectations(self.text_columns, artifacts),
            schema=schema,
        )

    def token_stats(
        self, path: Path, artifacts: dict[str, Any], cfg: TextTokenizeConfig
    ) -> dict[str, Any]:
        return texttok.token_stats(path, self.text_columns, artifacts)
