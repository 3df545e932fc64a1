"""Books for a word-level language model: Project Gutenberg texts and tiny-shakespeare.

fetch reads each book file of the chosen sources (``files`` keyed by ``doc_id``, e.g.
``pg11``) into one row per paragraph, ``(doc_id, text)``; the Gutenberg header and licence
footer are stripped there (see :func:`stages.corpora.text.read_book`), and a Gutenberg
source without them is an error unless it says ``gutenberg_header: false``.

clean normalises paragraphs (line breaks inside a paragraph become spaces), drops empty and
over-long ones, then exact duplicates (chapter headings repeated across books).

format splits by paragraph text (``row_id`` = its hash): a paragraph is in one split only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from stages.corpora.text import (
    TextCleanConfig,
    TextCorpus,
    TextFetchConfig,
    TextSourceConfig,
    read_book,
)


class BooksCleanConfig(TextCleanConfig):
    max_chars: int = 5000


class Books(TextCorpus):
    """The books adapter (LM documents)."""

    name = "books"
    text_columns = ("text",)
    clean_key = ("text",)
    key_columns = ("text",)
    task = {"task": "lm", "ids": "text_ids"}
    CleanConfig = BooksCleanConfig

    def read_source(
        self, name: str, source: TextSourceConfig, files: dict[str, Path], cfg: TextFetchConfig
    ) -> Iterator[pa.Table]:
        if source.format != "gutenberg":
            raise ValueError(
                f"fetch.books.sources.{name}: format {source.format!r} is not a "
                f"book format (gutenberg)"
            )
        for doc_id, path in files.items():
            for text in read_book(path, cfg.chunk_lines, source.gutenberg_header, source.member):
                yield pa.table(
                    {"doc_id": pa.array([doc_id] * len(text), pa.string()), "text": text}
                )

    def raw_schema(self) -> dict[str, str]:
        return {"doc_id": "string", "text": "string"}
