"""The base of the text adapters: sources → parts, shared cleaning, lengths, tokenizing."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from stages.core.context import FetchContext, HFDataset
from stages.core.sources import resolve
from stages.core.validate import Expect, Suite
from stages.corpora import texttok
from stages.corpora.base import Corpus
from stages.corpora.text.cleaning import chars, drop_rows, normalize, words
from stages.corpora.text.config import TextCleanConfig, TextFetchConfig, TextSourceConfig
from stages.corpora.text.opening import naming
from stages.corpora.texttok import TextTokenizeConfig


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
            out[part] = naming(tables, key, cfg.max_expanded_bytes)
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
