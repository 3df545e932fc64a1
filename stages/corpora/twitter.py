"""Twitter dialogue pairs: alternating tweet / reply lines (``twitter_en.txt.gz`` format).

fetch reads the lines two at a time into ``(thread, context, response)`` rows. Consecutive
pairs where a pair's tweet is the previous pair's reply are one conversation; ``thread``
is the hash of the conversation's first tweet (content, so adding data moves nothing).

clean replaces URLs and @handles by ``<url>`` / ``<user>``, normalises, drops empty and
over-long tweets, then exact duplicate pairs.

format splits by ``thread``, so a conversation never straddles splits (its tweets are
both replies and contexts); a train pair that still shares a tweet with a test pair (in
either column: generic replies such as "yes") is dropped and counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.core.context import HFDataset
from stages.core.hashing import row_hash
from stages.core.validate import Expect, Suite
from stages.corpora.text.config import TextCleanConfig, TextFetchConfig, TextSourceConfig
from stages.corpora.text.corpus import TextCorpus, as_text, mask_urls_and_handles
from stages.corpora.text.formats import read_alternating


class TwitterCleanConfig(TextCleanConfig):
    max_chars: int = 300
    url_token: str = "<url>"
    user_token: str = "<user>"


def with_threads(pairs: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """Prepend ``thread`` (uint64) to streamed ``(context, response)`` tables.

    A pair continues the previous pair's thread when its context equals the previous
    response (also across chunk boundaries); otherwise it starts a thread whose id is the
    hash of its context.
    """
    last_response: str | None = None
    last_thread = np.uint64(0)
    for table in pairs:
        ctx, rsp = table.column("context"), table.column("response")
        prev = pa.concat_arrays(
            [pa.array([last_response], pa.string()), rsp.slice(0, len(rsp) - 1).combine_chunks()]
        )
        starts = pc.fill_null(pc.not_equal(ctx, prev), True).to_numpy(zero_copy_only=False)
        first = np.where(starts, np.arange(len(starts)), -1)
        np.maximum.accumulate(first, out=first)
        ids = row_hash(table, ("context",)).to_numpy()
        thread = np.where(first >= 0, ids[np.maximum(first, 0)], last_thread).astype(np.uint64)
        if len(thread):
            last_response, last_thread = rsp[-1].as_py(), thread[-1]
        yield table.add_column(0, "thread", pa.array(thread, pa.uint64()))


def dialogue_pairs(turns: pa.ChunkedArray, key: str) -> pa.Table:
    """Dialogues (a list of utterances a row) → ``(context, response)`` rows: each pair of
    consecutive turns, dialogue by dialogue (a dialogue of n turns gives n - 1 rows)."""
    arr = turns.combine_chunks()
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        raise ValueError(f"{key}: expected a list of utterances a row, got {arr.type}")
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
    flat = as_text(pc.list_flatten(arr))
    pairs = np.maximum(lengths.astype(np.int64) - 1, 0)
    starts = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
    first = np.cumsum(pairs) - pairs
    idx = np.repeat(starts, pairs) + np.arange(int(pairs.sum())) - np.repeat(first, pairs)
    return pa.table({"context": flat.take(pa.array(idx)), "response": flat.take(pa.array(idx + 1))})


class Twitter(TextCorpus):
    """The Twitter dialogue adapter."""

    name = "twitter"
    text_columns = ("context", "response")
    clean_key = ("context", "response")
    key_columns = ("thread",)
    held_out_columns = ("context", "response")
    task = {"task": "dialogue", "source": "context_ids", "target": "response_ids"}
    CleanConfig = TwitterCleanConfig

    def read_source(
        self, name: str, source: TextSourceConfig, files: dict[str, Path], cfg: TextFetchConfig
    ) -> Iterator[pa.Table]:
        if source.format != "alternating" or len(files) != 1:
            raise ValueError(
                f"fetch.twitter.sources.{name}: expected one file of format "
                f"alternating, got format {source.format!r} with files "
                f"{sorted(files)}"
            )
        (path,) = files.values()
        lines = read_alternating(path, cfg.chunk_lines, source.member, cfg.max_expanded_bytes)
        yield from with_threads(lines)

    #: hf: ``columns: {context: …, response: …}`` (a pair a row), or ``{turns: …}`` (a
    #: list of utterances a row: a dialogue, read as the pairs of consecutive turns, which
    #: chain into one thread like alternating lines do).
    hf_columns = (frozenset({"context", "response"}), frozenset({"turns"}))

    def read_hf(
        self, name: str, source: TextSourceConfig, data: HFDataset, cfg: TextFetchConfig
    ) -> Iterator[pa.Table]:
        mapping = self.hf_mapping(name, source)
        tables = data.tables(mapping, cfg.chunk_lines)
        if "turns" in mapping:
            key = f"fetch.twitter.sources.{name}.columns.turns"
            yield from with_threads(dialogue_pairs(t.column("turns"), key) for t in tables)
        else:
            yield from with_threads(
                pa.table({c: as_text(t.column(c)) for c in ("context", "response")}) for t in tables
            )

    def raw_schema(self) -> dict[str, str]:
        return {"thread": "uint64", "context": "string", "response": "string"}

    def raw_suite(self, part: str, cfg: Any) -> Suite:
        return super().raw_suite(part, cfg).plus(Expect.not_null("thread"))

    def prepare(self, arr: pa.ChunkedArray, cfg: TwitterCleanConfig) -> pa.ChunkedArray:
        return mask_urls_and_handles(arr, cfg.url_token, cfg.user_token)
