"""Text in, text out: what a trained text model reads and writes (ids ↔ readable text)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.models import UNK
from pipelines.text import data as T

_NO_SPACE_BEFORE = re.compile(r" ([.,!?;:%)\]}…»”])")
_NO_SPACE_AFTER = re.compile(r"([(\[{¿¡«“$]) ")
_JOINED = re.compile(r"(?<=\w) ([-'’]) (?=\w)")
_NUMBER = re.compile(r"(?<=\d) ([.,:]) (?=\d)")
_SENTENCE = re.compile(r"([.!?][\"»)]? )(\w)")


def detokenize(tokens: Sequence[str], truecase: dict[str, str] | None = None) -> str:
    """Word tokens (lowercased, punctuation split off, as ``rnnflow.codec.pretokenize`` makes them)
    → readable text: spacing around punctuation undone, and cased with a truecaser (the most
    frequent casing of each word in the training references) plus a capital letter at the
    start of each sentence."""
    if truecase:
        tokens = [truecase.get(t, t) for t in tokens]
    text = " ".join(tokens)
    text = _JOINED.sub(r"\1", text)
    text = _NUMBER.sub(r"\1", text)
    text = _NO_SPACE_BEFORE.sub(r"\1", text)
    text = _NO_SPACE_AFTER.sub(r"\1", text)
    parts = text.split('"')  # straight quotes: open, close, open, ...
    if len(parts) > 1:
        text = parts[0]
        for i, part in enumerate(parts[1:]):
            text = (
                (text.rstrip() + ' "' + part.lstrip())
                if i % 2 == 0
                else (text.rstrip() + '"' + part)
            )
        text = text.strip()
    text = _SENTENCE.sub(lambda m: m.group(1) + m.group(2).upper(), text)
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1 :]
    return text


class Codec:
    """Text ↔ model ids for a trained text model (its spec + the corpus tokenizer files)."""

    def __init__(self, spec: dict[str, Any], artifacts: dict[str, Any]) -> None:
        self.spec = spec
        self.artifacts = {"spec.json": spec, **artifacts}  # what rnnflow.codec encode/decode read
        vocab = int(spec["vocab_size"])
        own = spec.get("model_vocab") or {}
        self.keep = {s: np.asarray(k, dtype=np.int64) for s, k in own.items()}
        self.luts = {s: T.lookup(k, vocab) for s, k in self.keep.items()}
        self.truecase: dict[str, str] = dict(artifacts.get("truecase") or {})

    def encode(self, texts: Sequence[str], side: str) -> T.Ragged:
        """Raw strings → model ids (unknown words → ``<unk>``), no ``<bos>``/``<eos>``."""
        from rnnflow.codec import encode_column

        ids = encode_column(pa.array(list(texts), pa.string()), self.artifacts)
        return T.Ragged.from_arrow(ids).map(self.luts.get(side))

    def tokens(self, ids: Sequence[int], side: str) -> list[str]:
        from rnnflow.codec import decode

        arr = np.asarray(list(ids), dtype=np.int64)
        if side in self.keep:
            arr = self.keep[side][arr]
        return decode(arr.tolist(), self.artifacts)

    def text(self, ids: Sequence[int], side: str, prompt: str = "") -> str:
        """Model ids → readable text (specials dropped, ``<unk>`` kept visible); ``prompt``:
        text the ids continue, kept as typed (its unknown words too)."""
        case = self.truecase if self.spec.get("kind") != "bpe" else {}
        out = [
            case.get(t, t) for t in self.tokens(ids, side) if t not in ("<pad>", "<bos>", "<eos>")
        ]
        return self._join(out, prompt)

    def _join(self, toks: list[str], prompt: str) -> str:
        if self.spec.get("kind") == "bpe":
            from rnnflow.codec import bpe_from_str

            tok = bpe_from_str(self.artifacts["tokenizer.json"])
            out = tok.decode([tok.token_to_id(t) for t in toks])
            return f"{prompt} {out}".strip() if prompt else out
        if prompt:
            from rnnflow.codec import pretokenize

            toks = pretokenize(pa.array([prompt]), lowercase=False)[0].as_py() + toks
        return detokenize(toks)

    def words(self, rows: Sequence[Sequence[int]], side: str) -> list[list[str]]:
        """Each row's words as the scores count them (distinct-n, repeats): a word vocabulary's
        tokens; a subword row's text split by ``pretokenize`` (lowercased)."""
        if self.spec.get("kind") != "bpe":
            return [self.tokens(r, side) for r in rows]
        from rnnflow.codec import pretokenize

        texts = pa.array([self.text(r, side) for r in rows], pa.string())
        return pretokenize(texts).to_pylist()

    def repeats(self, ids: Sequence[int], side: str, n: int) -> bool:
        """Whether the words of ``ids`` hold some n-gram twice."""
        words = self.words([ids], side)[0]
        grams = list(zip(*(words[i:] for i in range(n))))
        return len(grams) != len(set(grams))

    def unknown_words(self, text: str, side: str) -> list[str]:
        """Words of ``text`` the model reads as ``<unk>``."""
        from rnnflow.codec import pretokenize

        words = pretokenize(pa.array([text]), self.spec.get("lowercase", True))[0].as_py()
        ids = self.encode([text], side).values
        if len(words) != len(ids):  # BPE: pieces, not words
            return []
        return [w for w, i in zip(words, ids) if i == UNK]
