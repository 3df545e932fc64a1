"""Text → token ids, shared by the text corpora (es–en, Twitter, books).

Two kinds, chosen by ``tokenize.<corpus>.kind``:

- ``word``: Arrow-vectorised pre-tokenisation (``pc.utf8_lower``, punctuation split off
  with ``pc.replace_substring_regex``, ``pc.utf8_split_whitespace``), a vocabulary counted
  batch by batch with ``pc.value_counts`` (memory bounded by the vocabulary, not the
  corpus), encoded with ``pc.index_in`` — no Python loop per token or per row.
- ``bpe``: a byte-pair-encoding model trained with the ``tokenizers`` library.

Both are fitted on the **train split only** and share one vocabulary over all text columns
of a corpus. The four special tokens are defined once, here, with fixed ids 0–3. Encoded
``<col>_ids`` columns are ``list<int32>`` and carry **no** ``<bos>``/``<eos>``: the models
add them (and pad with ``<pad>``) where their task needs them.

An adapter uses this module as::

    class EsEnTokenizeConfig(TextTokenizeConfig): ...
    def fit(self, train, cfg):            return texttok.fit(train, ("src", "tgt"), cfg)
    def tokenize(self, table, art, cfg):  return texttok.encode(table, ("src", "tgt"), art, cfg)
    def tokens_suite(self, art, cfg):     return Suite("es_en.tokens",
                                                texttok.suite_expectations(cols, art),
                                                schema=texttok.tokens_schema(cols))
    def token_stats(self, path, art, cfg): return texttok.token_stats(path, cols, art)
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import model_validator

from rnnflow.validate import Expect
from stages.tokenize import TokenizeConfig

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD, BOS, EOS, UNK = range(len(SPECIALS))
SPECIAL_IDS = {name.strip("<>"): i for i, name in enumerate(SPECIALS)}

#: A token is a run of letters, digits and combining marks, or any other single
#: non-space character (punctuation and symbols stand alone): RE2 syntax, for
#: ``pc.replace_substring_regex``. ``regex`` (not ``re``) understands it too.
PUNCT_RE = r"([^\p{L}\p{N}\p{M}\s])"
PRETOKENIZER = "lowercase (optional), punctuation/symbols split off, split on whitespace"


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

    @model_validator(mode="after")
    def _sizes(self) -> "TextTokenizeConfig":
        if self.min_freq < 1:
            raise ValueError("min_freq must be >= 1")
        if self.max_vocab is not None and self.max_vocab <= len(SPECIALS):
            raise ValueError(f"max_vocab must exceed the {len(SPECIALS)} special tokens")
        if self.vocab_size <= len(SPECIALS):
            raise ValueError(f"vocab_size must exceed the {len(SPECIALS)} special tokens")
        return self


# --- word level: pre-tokenisation ------------------------------------------------------

def _plain(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count:
        raise ValueError("texttok: text column has nulls (format should have dropped them)")
    return arr


def pretokenize(texts: pa.Array | pa.ChunkedArray, lowercase: bool = True) -> pa.ListArray:
    """Strings → list<string> of word tokens, vectorised; empty text → empty list."""
    arr = _plain(texts)
    if lowercase:
        arr = pc.utf8_lower(arr)
    arr = pc.utf8_trim_whitespace(pc.replace_substring_regex(arr, PUNCT_RE, r" \1 "))
    lists = pc.utf8_split_whitespace(arr)
    # Trimmed, a string splits into [""] only if it was blank: give those rows no tokens.
    blank = pc.equal(pc.binary_length(arr), 0)
    if not pc.any(blank).as_py():
        return lists
    lengths = pc.if_else(blank, 0, pc.list_value_length(lists)).to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    keep = pc.invert(pc.take(blank, pc.list_parent_indices(lists)))
    return pa.ListArray.from_arrays(pa.array(offsets), pc.list_flatten(lists).filter(keep))


def count_tokens(batches: Iterable[pa.RecordBatch | pa.Table], columns: tuple[str, ...],
                 lowercase: bool = True) -> tuple[pa.Table, int, int]:
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
        acc = (pa.concat_tables([acc, counted]).group_by("token").aggregate([("count", "sum")])
               .rename_columns(["token", "count"]))
    return acc, rows, tokens


def build_vocab(counts: pa.Table, min_freq: int, max_vocab: int | None) -> list[str]:
    """Specials + tokens with count ≥ min_freq, most frequent first, ties alphabetical."""
    kept = counts.filter(pc.and_(pc.greater_equal(counts["count"], min_freq),
                                 pc.invert(pc.is_in(counts["token"], pa.array(SPECIALS)))))
    ranked = kept.sort_by([("count", "descending"), ("token", "ascending")])
    limit = None if max_vocab is None else max_vocab - len(SPECIALS)
    return list(SPECIALS) + ranked["token"].to_pylist()[:limit]


# --- fit -------------------------------------------------------------------------------

def _spec(kind: str, vocab_size: int, columns: tuple[str, ...], cfg: TextTokenizeConfig,
          **extra: Any) -> dict[str, Any]:
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


def fit(batches: Iterable[pa.RecordBatch], columns: tuple[str, ...],
        cfg: TextTokenizeConfig) -> dict[str, Any]:
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
    spec = _spec("word", len(vocab), columns, cfg, max_vocab=cfg.max_vocab,
                 pretokenizer=PRETOKENIZER, punct_regex=PUNCT_RE,
                 n_train_rows=rows, n_train_tokens=tokens, n_train_types=counts.num_rows,
                 train_coverage=round((covered or 0) / tokens, 6) if tokens else 0.0)
    return {"spec.json": spec, "vocab.json": vocab}


def _bpe_tokenizer(cfg: TextTokenizeConfig):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    tok = Tokenizer(models.BPE(unk_token=SPECIALS[UNK]))
    norms = [normalizers.NFC()] + ([normalizers.Lowercase()] if cfg.lowercase else [])
    tok.normalizer = normalizers.Sequence(norms)
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(),
                                                 pre_tokenizers.Punctuation()])
    return tok


def _fit_bpe(batches: Iterable[pa.RecordBatch], columns: tuple[str, ...],
             cfg: TextTokenizeConfig) -> dict[str, Any]:
    from tokenizers import trainers

    seen = {"rows": 0}

    def texts() -> Iterator[list[str]]:
        for batch in batches:
            seen["rows"] += batch.num_rows
            for col in columns:
                yield _plain(batch.column(col)).to_pylist()

    tok = _bpe_tokenizer(cfg)
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_freq,
                                  special_tokens=list(SPECIALS), show_progress=False)
    tok.train_from_iterator(texts(), trainer=trainer)
    if not seen["rows"]:
        raise ValueError("texttok: the train split is empty")
    for i, name in enumerate(SPECIALS):
        if tok.token_to_id(name) != i:
            raise RuntimeError(f"texttok: BPE put {name} at id {tok.token_to_id(name)}, not {i}")
    spec = _spec("bpe", tok.get_vocab_size(), columns, cfg, target_vocab_size=cfg.vocab_size,
                 normalizer="NFC" + (" + lowercase" if cfg.lowercase else ""),
                 pretokenizer="Whitespace + Punctuation", n_train_rows=seen["rows"])
    return {"spec.json": spec, "tokenizer.json": tok.to_str()}


# --- encode ----------------------------------------------------------------------------

class _VocabIndex:
    """The vocabulary as an Arrow array (built once per vocabulary object)."""

    _cache: dict[int, tuple[list[str], pa.Array]] = {}

    @classmethod
    def of(cls, vocab: list[str]) -> pa.Array:
        hit = cls._cache.get(id(vocab))
        if hit is None or hit[0] is not vocab:
            if len(cls._cache) > 8:
                cls._cache.clear()
            hit = (vocab, pa.array(vocab, pa.string()))
            cls._cache[id(vocab)] = hit  # keeps ``vocab`` alive, so its id is not reused
        return hit[1]


@functools.lru_cache(maxsize=4)
def _bpe_from_str(text: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(text)


def encode_word(texts: pa.Array | pa.ChunkedArray, vocab: list[str] | pa.Array,
                lowercase: bool = True) -> pa.ListArray:
    """Strings → list<int32> ids against ``vocab`` (unknown → ``<unk>``), vectorised."""
    values = vocab if isinstance(vocab, pa.Array) else _VocabIndex.of(vocab)
    lists = pretokenize(texts, lowercase)
    ids = pc.index_in(pc.list_flatten(lists), value_set=values)
    ids = pc.fill_null(ids, UNK).cast(pa.int32())
    offsets = lists.offsets
    if offsets[0].as_py() != 0:
        offsets = pc.subtract(offsets, offsets[0])
    return pa.ListArray.from_arrays(offsets, ids)


def encode_bpe(texts: pa.Array | pa.ChunkedArray, tokenizer_json: str) -> pa.ListArray:
    """Strings → list<int32> BPE ids (the library's batch encoder; one call per batch)."""
    tok = _bpe_from_str(tokenizer_json)
    strings = _plain(texts).to_pylist()
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    encs = encode(strings, add_special_tokens=False)
    # One attribute read per row; pyarrow converts the id lists in C.
    return pa.array([e.ids for e in encs], pa.list_(pa.int32()))


def encode_column(texts: pa.Array | pa.ChunkedArray, artifacts: dict[str, Any]) -> pa.ListArray:
    """One text column → list<int32> ids, with the fitted word vocabulary or BPE model."""
    spec = artifacts["spec.json"]
    if spec["kind"] == "bpe":
        return encode_bpe(texts, artifacts["tokenizer.json"])
    return encode_word(texts, artifacts["vocab.json"], spec["lowercase"])


def encode(table: pa.Table, columns: tuple[str, ...], artifacts: dict[str, Any],
           cfg: Any = None) -> pa.Table:
    """``row_id``, each text column unchanged, then ``<col>_ids`` (list<int32>) per column.

    No ``<bos>``/``<eos>`` are added. ``cfg`` is unused: everything needed is in
    ``artifacts`` (so a model or a Dask worker can encode from the saved files alone).
    """
    out: dict[str, Any] = {"row_id": table.column("row_id")}
    for col in columns:
        out[col] = table.column(col)
    for col in columns:
        out[f"{col}_ids"] = encode_column(table.column(col), artifacts)
    return pa.table(out)


def decode(ids: list[int], artifacts: dict[str, Any]) -> list[str]:
    """Ids → tokens (for tests, debugging and model output)."""
    if artifacts["spec.json"]["kind"] == "bpe":
        tok = _bpe_from_str(artifacts["tokenizer.json"])
        return [tok.id_to_token(i) for i in ids]
    vocab = artifacts["vocab.json"]
    return [vocab[i] for i in ids]


def load_artifacts(directory: Path | str) -> dict[str, Any]:
    """Read the artifacts the tokenize hop saved (``spec.json`` + vocabulary/tokenizer)."""
    directory = Path(directory)
    out: dict[str, Any] = {"spec.json": json.loads((directory / "spec.json").read_text())}
    if (directory / "vocab.json").exists():
        out["vocab.json"] = json.loads((directory / "vocab.json").read_text())
    if (directory / "tokenizer.json").exists():
        out["tokenizer.json"] = (directory / "tokenizer.json").read_text()
    return out


# --- validation and statistics ---------------------------------------------------------

def tokens_schema(columns: tuple[str, ...], text_type: str = "string") -> dict[str, str]:
    """The Arrow schema :func:`encode` produces, for a :class:`~rnnflow.validate.Suite`."""
    schema = {"row_id": "uint64"}
    schema.update({c: text_type for c in columns})
    schema.update({f"{c}_ids": "list<int32>" for c in columns})
    return schema


def suite_expectations(columns: tuple[str, ...], artifacts: dict[str, Any]) -> tuple[Expect, ...]:
    """Every id in [0, vocab_size); no empty id lists; ≤ one token per character; text set."""
    top = artifacts["spec.json"]["vocab_size"] - 1
    out: list[Expect] = [Expect.not_null("row_id")]
    for col in columns:
        ids = f"{col}_ids"
        out += [
            Expect.not_null(col),
            Expect.between(f"{col}.len", 1, None),          # text not empty
            Expect.not_null(f"{ids}.len"),
            Expect.between(f"{ids}.len", 1, None),          # no empty id lists
            Expect.between(f"{ids}.min", 0, top),
            Expect.between(f"{ids}.max", 0, top),
            # Every token covers at least one character: more ids than characters is a bug.
            Expect("expect_column_pair_values_a_to_be_greater_than_b",
                   {"column_A": f"{col}.len", "column_B": f"{ids}.len", "or_equal": True}),
        ]
    return tuple(out)


def _ids_column(table: pa.Table, col: str, artifacts: dict[str, Any]) -> pa.ListArray:
    name = f"{col}_ids"
    if name in table.column_names:
        return table.column(name).combine_chunks()
    return encode_column(table.column(col), artifacts)


def unk_rate(table: pa.Table, columns: tuple[str, ...], artifacts: dict[str, Any]) -> dict[str, float]:
    """Fraction of ``<unk>`` ids per column (of an encoded table, or text encoded here)."""
    out = {}
    for col in columns:
        flat = pc.list_flatten(_ids_column(table, col, artifacts))
        unk = pc.sum(pc.equal(flat, UNK).cast(pa.int64())).as_py() or 0
        out[col] = unk / len(flat) if len(flat) else 0.0
    return out


def token_stats(table_or_path: pa.Table | Path | str, columns: tuple[str, ...],
                artifacts: dict[str, Any]) -> dict[str, Any]:
    """Rows and, per column, tokens, ``<unk>`` rate and mean/max length; streams a file."""
    if isinstance(table_or_path, pa.Table):
        batches: Iterable[pa.Table | pa.RecordBatch] = [table_or_path]
    else:
        from rnnflow import io

        names = ["row_id"] + [f"{c}_ids" for c in columns]
        batches = io.iter_batches(table_or_path, columns=names)
    rows = 0
    acc = {c: {"tokens": 0, "unk": 0, "max": 0} for c in columns}
    for batch in batches:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        rows += table.num_rows
        for col in columns:
            ids = _ids_column(table, col, artifacts)
            flat = pc.list_flatten(ids)
            a = acc[col]
            a["tokens"] += len(flat)
            a["unk"] += pc.sum(pc.equal(flat, UNK).cast(pa.int64())).as_py() or 0
            a["max"] = max(a["max"], pc.max(pc.list_value_length(ids)).as_py() or 0)
    return {"rows": rows, "columns": {
        c: {"tokens": a["tokens"],
            "unk_rate": round(a["unk"] / a["tokens"], 6) if a["tokens"] else 0.0,
            "mean_length": round(a["tokens"] / rows, 3) if rows else 0.0,
            "max_length": a["max"]}
        for c, a in acc.items()}}
