"""Count-based baselines the text models are compared with, vectorised with numpy.

- :class:`KneserNey`: interpolated Kneser–Ney trigram model (Kneser & Ney 1995; Chen & Goodman
  1998, §3: one absolute discount per order, ``D = n1 / (n1 + 2·n2)``; lower orders use
  continuation counts; the unigram level interpolates with the uniform distribution, so every
  id of the vocabulary, ``<unk>`` included, gets probability mass).
- :func:`unigram_log_probs`: add-k unigram model.

n-grams are packed into one ``int64`` key each (``(u·V + v)·V + w``) and counted with
``np.unique``; lookups are ``np.searchsorted`` over the sorted keys — no Python loop per token.
Both read token *streams* (``pipelines.text.data.lm_stream``): the model predicts
``stream[1:]``, with the history running across ``<eos>`` document boundaries exactly as the
recurrent model's hidden state does.
"""

from __future__ import annotations

import math

import numpy as np


def _discount(counts: np.ndarray) -> float:
    n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
    return n1 / (n1 + 2 * n2) if n1 and n2 else 0.5


def _find(keys: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``q`` in sorted ``keys`` and whether each is there."""
    pos = np.searchsorted(keys, q)
    pos = np.minimum(pos, max(len(keys) - 1, 0))
    found = (keys[pos] == q) if len(keys) else np.zeros(len(q), dtype=bool)
    return pos, found


def _groups(
    sorted_keys: np.ndarray,
    counts: np.ndarray,
    div: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Context keys (``key // div``) with their summed counts and number of distinct words."""
    ctx = sorted_keys // div
    starts = np.flatnonzero(np.r_[True, ctx[1:] != ctx[:-1]]) if len(ctx) else np.zeros(0, int)
    total = np.add.reduceat(counts, starts) if len(ctx) else np.zeros(0, np.int64)
    types = np.diff(np.r_[starts, len(ctx)])
    return ctx[starts], total, types


class KneserNey:
    """Interpolated Kneser–Ney trigram model over ids ``0..vocab-1``."""

    order = 3

    def __init__(self, vocab: int) -> None:
        if vocab**3 >= 2**63:
            raise ValueError(f"vocabulary {vocab} too large to pack trigrams in int64")
        self.vocab = vocab

    def fit(self, stream: np.ndarray) -> KneserNey:
        """Count the stream's trigrams (an extra ``stream[0]`` in front gives the first
        target a two-token history)."""
        V = self.vocab
        s = np.r_[stream[:1], stream].astype(np.int64)
        keys = (s[:-2] * V + s[1:-1]) * V + s[2:]
        self.k3, self.c3 = np.unique(keys, return_counts=True)
        self.h3, self.t3, self.n3 = _groups(self.k3, self.c3, V)  # context (u, v)
        # continuation counts: distinct u before each (v, w), distinct v before each w
        self.k2, self.c2 = np.unique(self.k3 % (V * V), return_counts=True)
        self.h2, self.t2, self.n2 = _groups(self.k2, self.c2, V)  # context v
        self.c1 = np.bincount(self.k2 % V, minlength=V)
        self.t1, self.n1 = int(self.c1.sum()), int((self.c1 > 0).sum())
        self.d3, self.d2, self.d1 = (
            _discount(self.c3),
            _discount(self.c2),
            _discount(self.c1[self.c1 > 0]),
        )
        return self

    def probs(self, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        """P(w | u v) for aligned id arrays."""
        V = self.vocab
        u, v, w = (np.asarray(a, dtype=np.int64) for a in (u, v, w))
        p = (np.maximum(self.c1[w] - self.d1, 0) + self.d1 * self.n1 / V) / self.t1
        for keys, counts, ctx, total, types, d, q, h in (
            (self.k2, self.c2, self.h2, self.t2, self.n2, self.d2, v * V + w, v),
            (self.k3, self.c3, self.h3, self.t3, self.n3, self.d3, (u * V + v) * V + w, u * V + v),
        ):
            pos, hit = _find(keys, q)
            c = np.where(hit, counts[pos], 0)
            cpos, seen = _find(ctx, h)
            tot = np.where(seen, total[cpos], 1)
            typ = np.where(seen, types[cpos], 0)
            p = np.where(seen, (np.maximum(c - d, 0) + d * typ * p) / tot, p)
        return p

    def nll(self, stream: np.ndarray) -> tuple[float, int]:
        """Summed negative log-likelihood of ``stream[1:]`` and the number of targets."""
        s = np.r_[stream[:1], stream].astype(np.int64)
        p = self.probs(s[:-2], s[1:-1], s[2:])
        return float(-np.log(p).sum()), len(p)

    def perplexity(self, stream: np.ndarray) -> float:
        nll, n = self.nll(stream)
        return math.exp(nll / n) if n else float("nan")


def unigram_log_probs(train: np.ndarray, vocab: int, k: float = 1.0) -> np.ndarray:
    """Add-``k`` unigram log-probabilities ``(vocab,)`` from the train targets' ids."""
    counts = np.bincount(np.asarray(train, dtype=np.int64), minlength=vocab).astype(np.float64)
    return np.log((counts + k) / (counts.sum() + k * vocab))


def unigram_perplexity(train: np.ndarray, test: np.ndarray, vocab: int, k: float = 1.0) -> float:
    """Perplexity of the add-``k`` unigram model of ``train`` on the ``test`` target ids."""
    logp = unigram_log_probs(train, vocab, k)
    test = np.asarray(test, dtype=np.int64)
    return math.exp(-logp[test].mean()) if len(test) else float("nan")
