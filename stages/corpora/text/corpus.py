"""The base of the text adapters (:class:`TextCorpus`: sources → parts, shared cleaning,
lengths, tokenizing) and the cleaning functions of the clean hop: pure functions on Arrow
string arrays, vectorised with ``pyarrow.compute``; :meth:`TextCorpus.clean` applies them and
counts every dropped row by reason."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.core.context import FetchContext, HFDataset
from stages.core.sources import resolve
from stages.core.validate import Expect, Suite
from stages.corpora import texttok
from stages.corpora.base import Corpus
from stages.corpora.text.config import TextCleanConfig, TextFetchConfig, TextSourceConfig
from stages.corpora.text.formats import naming
from stages.corpora.texttok import TextTokenizeConfig

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


def as_text(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A dataset column as Arrow ``string`` (e.g. from ``large_string``)."""
    return col if col.type == pa.string() else col.cast(pa.string())


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
            out[part] = naming(tables, key)
        return out

    #: hf: the raw column names ``columns`` may map (each set is one way to read a dataset).
    hf_columns: ClassVar[tuple[frozenset[str], ...]] = ()

    def hf_mapping(self, name: str, source: TextSourceConfig) -> dict[str, str]:
        """The source's ``columns``, checked against what this corpus takes."""
        mapping = dict(source.columns) if isinstance(source.columns, dict) else {}
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
        not_null = tuple(Expect.not_null(c) for c in self.text_columns)
        return Suite(f"{self.name}.raw", not_null, schema=self.raw_schema())

    def _texts_set(self, max_chars: int | None) -> tuple[Expect, ...]:
        """Each text column set and 1 to ``max_chars`` characters long."""
        return tuple(
            e
            for c in self.text_columns
            for e in (Expect.not_null(c), Expect.between(f"{c}.len", 1, max_chars))
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
        return Suite(f"{self.name}.clean", self._texts_set(limit), schema=self.raw_schema())

    # format ------------------------------------------------------------------------------
    def format(self, table: pa.Table, cfg: Any) -> pa.Table:
        return table.select(list(self.raw_schema()))

    def formatted_suite(self, cfg: Any) -> Suite:
        expectations = (Expect.not_null("row_id"), *self._texts_set(None))
        return Suite(
            f"{self.name}.formatted", expectations, schema={"row_id": "uint64", **self.raw_schema()}
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
        passthrough = {c: self.raw_schema()[c] for c in self.passthrough}
        schema = {**texttok.tokens_schema(self.text_columns), **passthrough}
        expectations = texttok.suite_expectations(self.text_columns, artifacts)
        return Suite(f"{self.name}.tokens", expectations, schema=schema)

    def token_stats(
        self, path: Path, artifacts: dict[str, Any], cfg: TextTokenizeConfig
    ) -> dict[str, Any]:
        return texttok.token_stats(path, self.text_columns, artifacts)
