"""The text codec: special tokens, pre-tokenisation, encode/decode and tokenizer artifacts.

One definition shared by both sides of the project: the ``tokenize`` hop (``stages/``) fits a
vocabulary or BPE model and encodes with it; the models, the flows and the CLIs
(``pipelines/``) encode user text and decode model output with the same functions and the
artifacts the hop saved (``spec.json`` + ``vocab.json`` or ``tokenizer.json``).

- ``word``: Arrow-vectorised pre-tokenisation (``pc.utf8_lower``, punctuation split off with
  ``pc.replace_substring_regex``, ``pc.utf8_split_whitespace``), encoded with ``pc.index_in``;
- ``bpe``: a byte-pair-encoding model of the ``tokenizers`` library.

The four special tokens have fixed ids 0–3 in every text vocabulary.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD, BOS, EOS, UNK = range(len(SPECIALS))
SPECIAL_IDS = {name.strip("<>"): i for i, name in enumerate(SPECIALS)}

#: A token is a run of letters, digits and combining marks, or any other single
#: non-space character (punctuation and symbols stand alone): RE2 syntax, for
#: ``pc.replace_substring_regex``. ``regex`` (not ``re``) understands it too.
PUNCT_RE = r"([^\p{L}\p{N}\p{M}\s])"
PRETOKENIZER = "lowercase (optional), punctuation/symbols split off, split on whitespace"


def _plain(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count:
        raise ValueError("codec: text column has nulls (format should have dropped them)")
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


# --- encode / decode ------------------------------------------------------------------


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
def bpe_from_str(text: str) -> Any:
    """A ``tokenizers.Tokenizer`` from its JSON (cached: the artifacts hold one string)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(text)


def encode_word(
    texts: pa.Array | pa.ChunkedArray, vocab: list[str] | pa.Array, lowercase: bool = True
) -> pa.ListArray:
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
    tok = bpe_from_str(tokenizer_json)
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


def decode(ids: list[int], artifacts: dict[str, Any]) -> list[str]:
    """Ids → tokens (for tests, debugging and model output)."""
    if artifacts["spec.json"]["kind"] == "bpe":
        tok = bpe_from_str(artifacts["tokenizer.json"])
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
