"""The adapter contract: what a corpus must say at each hop.

Every method is a pure function of Arrow tables and typed config; the hop modules do the
streaming, validation and writing. Defaults cover the common case (no cleaning beyond
nulls/duplicates, nothing to fit).

Imports only point down: an adapter builds on :mod:`rnnflow` (config bases in
:mod:`stages.core.config`, source resolution in :mod:`stages.core.sources`, suites in
:mod:`stages.core.validate`) and on other ``stages.corpora`` modules, never on a hop module
(``stages/<hop>.py`` imports the adapters; the contracts in pyproject.toml check it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from stages.core.config import CleanConfig, FetchConfig, FormatConfig, TokenizeConfig
from stages.core.context import FetchContext
from stages.core.validate import Suite


class Corpus:
    """Base adapter. Subclasses set the class attributes and override the hop methods."""

    name: ClassVar[str] = ""
    #: Columns identifying a raw row's content (exact-duplicate detection in clean).
    clean_key: ClassVar[tuple[str, ...]] = ()
    #: Formatted columns identifying a row's content (its ``row_id``).
    key_columns: ClassVar[tuple[str, ...]] = ()
    #: Whether format needs a whole input file at once (e.g. sliding windows).
    format_whole_part: ClassVar[bool] = False
    #: Formatted text columns whose sentences may not occur in both test and train (pooled:
    #: a sentence in any of them). format drops the train rows that share one with test,
    #: counts them, and checks the written splits. ``key_columns`` already keep rows with
    #: the same key in one split.
    held_out_columns: ClassVar[tuple[str, ...]] = ()

    FetchConfig: ClassVar[type[FetchConfig]] = FetchConfig
    CleanConfig: ClassVar[type[CleanConfig]] = CleanConfig
    FormatConfig: ClassVar[type[FormatConfig]] = FormatConfig
    TokenizeConfig: ClassVar[type[TokenizeConfig]] = TokenizeConfig

    # fetch ---------------------------------------------------------------------------
    def fetch(self, cfg: Any, ctx: FetchContext) -> dict[str, pa.Table | Iterable[pa.Table]]:
        """Return the raw corpus as named parts (e.g. ``train``/``test`` or ``all``): each a
        table, or an iterable of tables for sources streamed in chunks."""
        raise NotImplementedError

    def expected_rows(self, part: str, cfg: Any) -> tuple[int, int | None]:
        """Inclusive bounds on the rows of a fetched part."""
        return 1, None

    def raw_suite(self, part: str, cfg: Any) -> Suite:
        raise NotImplementedError

    # clean ---------------------------------------------------------------------------
    def clean(self, table: pa.Table, cfg: Any) -> tuple[pa.Table, dict[str, int]]:
        """Corpus-specific row filters; returns kept rows and drop counts by reason."""
        return table, {}

    def clean_suite(self, part: str, cfg: Any) -> Suite:
        return self.raw_suite(part, None)

    # format --------------------------------------------------------------------------
    def format(self, table: pa.Table, cfg: Any) -> pa.Table:
        """Map cleaned rows to the task's schema (``row_id`` and split are added for you)."""
        raise NotImplementedError

    def formatted_rows(self, rows_in: int, cfg: Any) -> int:
        """Rows format must produce from ``rows_in`` input rows."""
        return rows_in

    def formatted_suite(self, cfg: Any) -> Suite:
        raise NotImplementedError

    # sample --------------------------------------------------------------------------
    def lengths(self, table: pa.Table) -> np.ndarray:
        """Length of each formatted row for ``sample.max_length`` (e.g. words)."""
        raise NotImplementedError(f"{self.name}: sample.max_length is not supported")

    # tokenize ------------------------------------------------------------------------
    def fit(self, train: Iterable[pa.RecordBatch], cfg: Any) -> dict[str, Any]:
        """Fit on the train split; return artifacts by file name (``spec.json`` at least)."""
        raise NotImplementedError

    def tokenize(self, table: pa.Table, artifacts: dict[str, Any], cfg: Any) -> pa.Table:
        raise NotImplementedError

    def tokens_suite(self, artifacts: dict[str, Any], cfg: Any) -> Suite:
        raise NotImplementedError
