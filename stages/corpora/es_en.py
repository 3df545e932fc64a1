"""Spanish→English translation pairs: OpenSubtitles (OPUS, Moses) and Tatoeba (TSV).

fetch combines the sources listed in ``fetch.es_en.source`` into one part per origin
(``opensubtitles``, ``tatoeba``), rows ``(src, tgt, origin)`` with ``src`` in ``src_lang``
(Spanish) and ``tgt`` in ``tgt_lang`` (English). ``origin`` stays to the tokens, so the
translator can be scored on the Tatoeba test split alone.

clean normalises both sides and drops empty, over-long (``max_chars``) and absurdly
unbalanced pairs (``max_length_ratio``, characters + ``ratio_smoothing``), then exact
duplicate pairs.

format keys rows on the Spanish sentence (``row_id`` = hash of ``src``): every translation
of one source sentence lands in the same split (and shares its ``row_id``, so evaluation
can use them as multiple references). A target sentence can still have several Spanish
sources; a train row whose English sentence also occurs in test is dropped in format and
counted (``reports/format/es_en.json``), and the written splits are checked for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from stages.core.context import HFDataset
from stages.core.validate import Expect, Suite
from stages.corpora.text.config import TextCleanConfig, TextFetchConfig, TextSourceConfig
from stages.corpora.text.corpus import TextCorpus, as_text, length_ratio
from stages.corpora.text.formats import read_parallel, read_tsv, zip_member


class EsEnFetchConfig(TextFetchConfig):
    """Which language is the source side and which the target."""

    src_lang: str = "es"
    tgt_lang: str = "en"


class EsEnCleanConfig(TextCleanConfig):
    max_chars: int = 400
    #: Drop pairs whose longer side is more than this many times the shorter (in
    #: characters, each plus ``ratio_smoothing`` so short pairs are not judged on one word).
    max_length_ratio: float | None = 3.0
    ratio_smoothing: int = 10


class EsEn(TextCorpus):
    """The Spanish→English adapter."""

    name = "es_en"
    text_columns = ("src", "tgt")
    passthrough = ("origin",)
    clean_key = ("src", "tgt")
    key_columns = ("src",)
    held_out_columns = ("tgt",)
    task = {"task": "translate", "source": "src_ids", "target": "tgt_ids"}
    FetchConfig = EsEnFetchConfig
    CleanConfig = EsEnCleanConfig

    def read_source(
        self, name: str, source: TextSourceConfig, files: dict[str, Path], cfg: EsEnFetchConfig
    ) -> Iterator[pa.Table]:
        origin = source.origin or name
        langs = (cfg.src_lang, cfg.tgt_lang)
        if source.format == "moses":
            if set(langs) <= set(files):
                sides: list[tuple[Path, str | None]] = [(files[lang], None) for lang in langs]
            elif len(files) == 1 and next(iter(files.values())).suffix == ".zip":
                archive = next(iter(files.values()))
                sides = [(archive, zip_member(archive, suffix=f".{lang}")) for lang in langs]
            else:
                raise ValueError(
                    f"fetch.es_en.sources.{name}: a moses source has one file "
                    f"per language (keys {list(langs)}) or one .zip, got "
                    f"{sorted(files)}"
                )
            for src, tgt in read_parallel(sides, cfg.chunk_lines, cfg.max_expanded_bytes):
                yield _pairs(src, tgt, origin)
        elif source.format == "tsv":
            if not set(langs) <= set(source.column_list):
                raise ValueError(
                    f"fetch.es_en.sources.{name}.columns must name {list(langs)}, "
                    f"got {source.columns}"
                )
            (path,) = files.values()
            tables = read_tsv(
                path, source.column_list, cfg.chunk_lines, source.member, cfg.max_expanded_bytes
            )
            for table in tables:
                yield _pairs(table.column(cfg.src_lang), table.column(cfg.tgt_lang), origin)
        else:
            raise ValueError(
                f"fetch.es_en.sources.{name}: format {source.format!r} is not "
                f"a translation format (moses, tsv)"
            )

    #: hf: ``columns: {src: translation.es, tgt: translation.en}`` (an opus dataset's pairs).
    hf_columns = (frozenset({"src", "tgt"}),)

    def read_hf(
        self, name: str, source: TextSourceConfig, data: HFDataset, cfg: EsEnFetchConfig
    ) -> Iterator[pa.Table]:
        origin = source.origin or name
        for table in data.tables(self.hf_mapping(name, source), cfg.chunk_lines):
            yield _pairs(as_text(table.column("src")), as_text(table.column("tgt")), origin)

    def raw_schema(self) -> dict[str, str]:
        return {"src": "string", "tgt": "string", "origin": "string"}

    # Every row's ``origin`` is its part's (a part is one origin).
    def raw_suite(self, part: str, cfg: Any) -> Suite:
        return super().raw_suite(part, cfg).plus(Expect.in_set("origin", [part]))

    def extra_drops(self, table: pa.Table, cfg: EsEnCleanConfig) -> list[tuple[str, np.ndarray]]:
        if cfg.max_length_ratio is None:
            return []
        ratio = length_ratio(table.column("src"), table.column("tgt"), cfg.ratio_smoothing)
        return [("length_ratio", ratio > cfg.max_length_ratio)]

    def clean_suite(self, part: str, cfg: Any) -> Suite:
        return super().clean_suite(part, cfg).plus(Expect.in_set("origin", [part]))


def _pairs(
    src: pa.Array | pa.ChunkedArray, tgt: pa.Array | pa.ChunkedArray, origin: str
) -> pa.Table:
    return pa.table({"src": src, "tgt": tgt, "origin": pa.array([origin] * len(src))})
