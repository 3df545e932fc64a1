"""Books for a word-level language model: Project Gutenberg texts and tiny-shakespeare.

fetch reads each book file of the chosen sources (``files`` keyed by ``doc_id``, e.g.
``pg11``) into one row per paragraph, ``(doc_id, text)``; the Gutenberg header and licence
footer are stripped there (see :func:`stages.corpora.text.gutenberg.read_book`), and a
Gutenberg source without them is an error unless it says ``gutenberg_header: false``.

clean normalises paragraphs (line breaks inside a paragraph become spaces), drops empty and
over-long ones, then exact duplicates (chapter headings repeated across books).

format splits by paragraph text (``row_id`` = its hash): a paragraph is in one split only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from stages.core.context import HFDataset
from stages.corpora.text.config import TextCleanConfig, TextFetchConfig, TextSourceConfig
from stages.corpora.text.corpus import TextCorpus
from stages.corpora.text.gutenberg import book_paragraphs, read_book


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
        header, limit = source.gutenberg_header, cfg.max_expanded_bytes
        for doc_id, path in files.items():
            yield from _rows(doc_id, read_book(path, cfg.chunk_lines, header, source.member, limit))

    #: hf: ``columns: {text: …}`` or ``{doc_id: …, text: …}``: one book a row (its whole
    #: text; ``doc_id`` defaults to ``<source>/<row number>``), read into paragraphs as a
    #: book file is (``gutenberg_header`` as for format gutenberg).
    hf_columns = (frozenset({"text"}), frozenset({"doc_id", "text"}))
    #: Books a batch (a book can be megabytes).
    hf_batch_rows = 16

    def read_hf(
        self, name: str, source: TextSourceConfig, data: HFDataset, cfg: TextFetchConfig
    ) -> Iterator[pa.Table]:
        row = 0
        for table in data.tables(self.hf_mapping(name, source), self.hf_batch_rows):
            texts = table.column("text").to_pylist()
            ids = (
                [str(v) for v in table.column("doc_id").to_pylist()]
                if "doc_id" in table.column_names
                else [f"{name}/{row + i}" for i in range(len(texts))]
            )
            for i, (doc_id, body) in enumerate(zip(ids, texts)):
                label = f"dataset {source.dataset!r} row {row + i} (doc_id {doc_id})"
                lines = _lines(body or "", cfg.chunk_lines)
                yield from _rows(doc_id, book_paragraphs(lines, label, source.gutenberg_header))
            row += len(texts)

    def raw_schema(self) -> dict[str, str]:
        return {"doc_id": "string", "text": "string"}


def _rows(doc_id: str, paragraphs: Iterator[pa.Array]) -> Iterator[pa.Table]:
    """One ``(doc_id, text)`` row per paragraph of one book."""
    for text in paragraphs:
        yield pa.table({"doc_id": pa.array([doc_id] * len(text), pa.string()), "text": text})


def _lines(body: str, chunk_lines: int) -> Iterator[tuple[int, pa.Array]]:
    """A book's text as ``(first line number, lines)`` chunks, line endings dropped."""
    lines = body.removeprefix("\ufeff").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for start in range(0, len(lines), chunk_lines):
        chunk = pa.array(lines[start : start + chunk_lines], pa.string())
        yield start + 1, pc.utf8_rtrim(chunk, characters="\r")
