"""Text → token ids, shared by the text corpora (es–en, Twitter, books).

Two kinds, chosen by ``tokenize.<corpus>.kind``:

- ``word``: Arrow-vectorised pre-tokenisation (``pc.utf8_lower``, punctuation split off
  with ``pc.replace_substring_regex``, ``pc.utf8_split_whitespace``), a vocabulary counted
  batch by batch with ``pc.value_counts`` (memory bounded by the vocabulary, not the
  corpus), encoded with ``pc.index_in`` — no Python loop per token or per row.
- ``bpe``: a byte-pair-encoding model trained with the ``tokenizers`` library.

Both are fitted on the **train split only** and share one vocabulary over all text columns
of a corpus. The four special tokens, pre-tokenisation and encode/decode are the
core's text codec (``rnnflow/codec.py``), shared with the models. Encoded
``<col>_ids`` columns are ``list<int32>`` and carry **no** ``<bos>``/``<eos>``: the models
add them (and pad with ``<pad>``) where their task needs them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from rnnflow.codec import (
    PRETOKENIZER,
    PUNCT_RE,
    SPECIAL_IDS,
    SPECIALS,
    UNK,
    _plain,
    encode_column,
    pretokenize,
)
from rnnflow.config import Config
from stages.core.config import TokenizeConfig
from stages.core.validate import Expect


class MonolingualConfig(Config):
    """Extra target-side text from another corpus's train split, encoded with this corpus's
    vocabulary into ``monolingual.parquet`` (a decoder can learn the language from it before
    the pairs: ``pretrain`` in ``train.models``). Never that corpus's validation or test."""

    corpus: str  # a corpus whose sampled train split holds the text (data/04_sampled/<corpus>)
    column: str  # its text column (es_en: ``tgt``, the English side)
    into: str  # this corpus's text column the lines stand for (twitter: ``response``)
    max_length: int | None = Field(None, ge=1)  # longest line kept, in tokens (None: all)


class TextTokenizeConfig(TokenizeConfig):
    """params.yaml ``tokenize.<corpus>`` of a text corpus."""

    kind: Literal["word", "bpe"] = "word"
    lowercase: bool = True
    #: Tokens seen fewer times than this in train map to ``<unk>`` (BPE: merge frequency).
    min_freq: int = 2
    #: Word only: cap on the whole vocabulary, the four specials included.
    max_vocab: int | None = None
    #: BPE only: target vocabulary size, the four specials included.
    vocab_size: int = 8000
    monolingual: MonolingualConfig | None = None

    @model_validator(mode="after")
    def _sizes(self) -> TextTokenizeConfig:
        if self.min_freq < 1:
            raise ValueError("min_freq must be >= 1")
        if self.max_vocab is not None and self.max_vocab <= len(SPECIALS):
            raise ValueError(f"max_vocab must exceed the {len(SPECIALS)} special tokens")
        if self.vocab_size <= len(SPECIALS):
            raise ValueError(f"vocab_size must exceed the {len(SPECIALS)} special tokens")
        return self


# --- word level: counting ------------------------------------------------------


def count_tokens(
    batches: Iterable[pa.RecordBatch | pa.Table], columns: tuple[str, ...], lowercase: bool = True
) -> tuple[pa.Table, int, int]:
    """Token counts over ``columns`` of all batches: (table token/count, rows, tokens).

    Streaming: each batch's counts are merged into the running table with an Arrow
    group-by, so memory grows with the vocabulary, not with the corpus.
    """
    acc = pa.table({"token": pa.array([], pa.string()), "count": pa.array([], pa.int64())})
    rows = tokens = 0
    for batch in batches:
        rows += batch.num_rows
        flat = [pc.list_flatten(pretokenize(batch.column(c), lowercase)) for c in columns]
        flat = pa.chunked_array(flat, pa.string())
        tokens += len(flat)
        vc = pc.value_counts(flat)
        counted = pa.table({"token": vc.field("values"), "count": vc.field("counts")})
        acc = (
            pa.concat_tables([acc, counted])
            .group_by("token")
            .aggregate([("count", "sum")])
            .rename_columns(["token", "count"])
        )
    return acc, rows, tokens


def build_vocab(counts: pa.Table, min_freq: int, max_vocab: int | None) -> list[str]:
    """Specials + tokens with count ≥ min_freq, most frequent first, ties alphabetical."""
    kept = counts.filter(
        pc.and_(
            pc.greater_equal(counts["count"], min_freq),
            pc.invert(pc.is_in(counts["token"], pa.array(SPECIALS))),
        )
    )
    ranked = kept.sort_by([("count", "descending"), ("token", "ascending")])
    limit = None if max_vocab is None else max_vocab - len(SPECIALS)
    return list(SPECIALS) + ranked["token"].to_pylist()[:limit]


# --- fit -------------------------------------------------------------------------------


def _spec(
    kind: str, vocab_size: int, columns: tuple[str, ...], cfg: TextTokenizeConfig, **extra: Any
) -> dict[str, Any]:
    return {
        "kind": kind,
        "vocab_size": vocab_size,
        "specials": dict(SPECIAL_IDS),
        "columns": list(columns),
        "ids_columns": [f"{c}_ids" for c in columns],
        "ids_dtype": "int32",
        "bos_eos_added": False,  # models add <bos>/<eos> (and pad with <pad>) themselves
        "lowercase": cfg.lowercase,
        "min_freq": cfg.min_freq,
        "fitted_on": "train",
        **extra,
    }


def fit(
    batches: Iterable[pa.RecordBatch], columns: tuple[str, ...], cfg: TextTokenizeConfig
) -> dict[str, Any]:
    """Fit one vocabulary over ``columns`` of the train batches; artifacts by file name.

    Word: ``spec.json`` + ``vocab.json`` (list of tokens, index = id). BPE: ``spec.json`` +
    ``tokenizer.json`` (the ``tokenizers`` library's JSON string).
    """
    columns = tuple(columns)
    if cfg.kind == "bpe":
        return _fit_bpe(batches, columns, cfg)
    counts, rows, tokens = count_tokens(batches, columns, cfg.lowercase)
    if not rows:
        raise ValueError("texttok: the train split is empty")
    vocab = build_vocab(counts, cfg.min_freq, cfg.max_vocab)
    covered = pc.sum(counts.filter(pc.is_in(counts["token"], pa.array(vocab)))["count"]).as_py()
    spec = _spec(
        "word",
        len(vocab),
        columns,
        cfg,
        max_vocab=cfg.max_vocab,
        pretokenizer=PRETOKENIZER,
        punct_regex=PUNCT_RE,
        n_train_rows=rows,
        n_train_tokens=tokens,
        n_train_types=counts.num_rows,
        train_coverage=round((covered or 0) / tokens, 6) if tokens else 0.0,
    )
    return {"spec.json": spec, "vocab.json": vocab}


def _bpe_tokenizer(cfg: TextTokenizeConfig):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    tok = Tokenizer(models.BPE(unk_token=SPECIALS[UNK]))
    norms = [normalizers.NFC()] + ([normalizers.Lowercase()] if cfg.lowercase else [])
    tok.normalizer = normalizers.Sequence(norms)
    # Metaspace (SentencePiece's scheme): spaces become "▁" inside the pieces, so decoding
    # gives back the text as written, case and punctuation spacing included.
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    return tok


def _fit_bpe(
    batches: Iterable[pa.RecordBatch], columns: tuple[str, ...], cfg: TextTokenizeConfig
) -> dict[str, Any]:
    from tokenizers import trainers

    seen = {"rows": 0}

    def texts() -> Iterator[list[str]]:
        for batch in batches:
            seen["rows"] += batch.num_rows
            for col in columns:
                yield _plain(batch.column(col)).to_pylist()

    tok = _bpe_tokenizer(cfg)
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_freq,
        special_tokens=list(SPECIALS),
        show_progress=False,
    )
    tok.train_from_iterator(texts(), trainer=trainer)
    if not seen["rows"]:
        raise ValueError("texttok: the train split is empty")
    for i, name in enumerate(SPECIALS):
        if tok.token_to_id(name) != i:
            raise RuntimeError(f"texttok: BPE put {name} at id {tok.token_to_id(name)}, not {i}")
    spec = _spec(
        "bpe",
        tok.get_vocab_size(),
        columns,
        cfg,
        target_vocab_size=cfg.vocab_size,
        normalizer="NFC" + (" + lowercase" if cfg.lowercase else ""),
        pretokenizer="Metaspace",
        n_train_rows=seen["rows"],
    )
    return {"spec.json": spec, "tokenizer.json": tok.to_str()}


# --- encode ----------------------------------------------------------------------------


def encode(
    table: pa.Table, columns: tuple[str, ...], artifacts: dict[str, Any], cfg: Any = None
) -> pa.Table:
    """``row_id``, each text column unchanged, then ``<col>_ids`` (list<int32>) per column.

    No ``<bos>``/``<eos>`` are added. ``cfg`` is unused: everything needed is in
    ``artifacts`` (so a model or a Dask worker can encode from the saved files alone).
    """
    ids = {f"{c}_ids": encode_column(table.column(c), artifacts) for c in columns}
    return pa.table(
        {"row_id": table.column("row_id"), **{c: table.column(c) for c in columns}, **ids}
    )


def encode_monolingual(
    table: pa.Table, mono: MonolingualConfig, artifacts: dict[str, Any]
) -> pa.Table:
    """Rows of another corpus (``row_id`` + ``mono.column``) as ``row_id``, ``<into>``,
    ``<into>_ids`` in this corpus's vocabulary; lines longer than ``mono.max_length`` tokens
    (and empty ones) dropped."""
    text = table.column(mono.column)
    ids = encode_column(text, artifacts)
    n = pc.list_value_length(ids)
    keep = pc.greater(n, 0)
    if mono.max_length is not None:
        keep = pc.and_(keep, pc.less_equal(n, mono.max_length))
    out = pa.table({"row_id": table.column("row_id"), mono.into: text, f"{mono.into}_ids": ids})
    return out.filter(keep)


# --- validation and statistics ---------------------------------------------------------


def tokens_schema(columns: tuple[str, ...]) -> dict[str, str]:
    """The Arrow schema :func:`encode` produces, for a :class:`~stages.core.validate.Suite`."""
    ids = {f"{c}_ids": "list<int32>" for c in columns}
    return {"row_id": "uint64", **dict.fromkeys(columns, "string"), **ids}


def suite_expectations(columns: tuple[str, ...], artifacts: dict[str, Any]) -> tuple[Expect, ...]:
    """Every id in [0, vocab_size); no empty id lists; ≤ one token per character; text set."""
    top = artifacts["spec.json"]["vocab_size"] - 1
    # BPE pieces carry the spaces ("▁"), and the text's start counts as one
    chars = ".len1" if artifacts["spec.json"]["kind"] == "bpe" else ".len"
    out: list[Expect] = [Expect.not_null("row_id")]
    for col in columns:
        ids = f"{col}_ids"
        out += [
            Expect.not_null(col),
            Expect.between(f"{col}.len", 1, None),  # text not empty
            Expect.not_null(f"{ids}.len"),
            Expect.between(f"{ids}.len", 1, None),  # no empty id lists
            Expect.between(f"{ids}.min", 0, top),
            Expect.between(f"{ids}.max", 0, top),
            # Every token covers at least one character: more ids than characters is a bug.
            Expect.at_least(f"{col}{chars}", f"{ids}.len"),
        ]
    return tuple(out)


def _counts(
    batches: Iterable[pa.Table | pa.RecordBatch], columns: tuple[str, ...], artifacts: dict
) -> tuple[int, dict[str, dict[str, int]]]:
    """Rows and, per column, tokens, ``<unk>`` ids and the longest row (in tokens), of encoded
    batches (or of text encoded here)."""
    rows = 0
    acc = {c: {"tokens": 0, "unk": 0, "max": 0} for c in columns}
    for batch in batches:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        rows += table.num_rows
        for col in columns:
            name = f"{col}_ids"
            if name in table.column_names:
                ids = table.column(name).combine_chunks()
            else:
                ids = encode_column(table.column(col), artifacts)
            flat = pc.list_flatten(ids)
            a = acc[col]
            a["tokens"] += len(flat)
            a["unk"] += pc.sum(pc.equal(flat, UNK).cast(pa.int64())).as_py() or 0
            a["max"] = max(a["max"], pc.max(pc.list_value_length(ids)).as_py() or 0)
    return rows, acc


def unk_rate(
    table: pa.Table, columns: tuple[str, ...], artifacts: dict[str, Any]
) -> dict[str, float]:
    """Fraction of ``<unk>`` ids per column (of an encoded table, or text encoded here)."""
    _, acc = _counts([table], columns, artifacts)
    return {c: a["unk"] / a["tokens"] if a["tokens"] else 0.0 for c, a in acc.items()}


def token_stats(
    table_or_path: pa.Table | Path | str, columns: tuple[str, ...], artifacts: dict[str, Any]
) -> dict[str, Any]:
    """Rows and, per column, tokens, ``<unk>`` rate and mean/max length; streams a file."""
    if isinstance(table_or_path, pa.Table):
        batches: Iterable[pa.Table | pa.RecordBatch] = [table_or_path]
    else:
        from rnnflow import io

        names = ["row_id"] + [f"{c}_ids" for c in columns]
        batches = io.iter_batches(table_or_path, columns=names)
    rows, acc = _counts(batches, columns, artifacts)
    return {
        "rows": rows,
        "columns": {
            c: {
                "tokens": a["tokens"],
                "unk_rate": round(a["unk"] / a["tokens"], 6) if a["tokens"] else 0.0,
                "mean_length": round(a["tokens"] / rows, 3) if rows else 0.0,
                "max_length": a["max"],
            }
            for c, a in acc.items()
        },
    }
