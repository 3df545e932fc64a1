"""Cache language models: mix a model's next-token probability with a distribution over the
words seen in the recent past (documents repeat their own words: names, places, topics).

- :func:`unigram_cache_probs`: the classic count cache (Kuhn & De Mori 1990): the share of the
  last ``size`` targets equal to the current one. Beside the Kneser–Ney trigram.
- The continuous cache (Grave et al. 2017, *Improving neural language models with a continuous
  cache*) weights each recent position by ``exp(theta * h_t . h_i)`` of the LM's hidden states;
  it lives next to the model (``pipelines.text.lm.neural_cache_probs``).
- :func:`choose_mix`: the cache flatness and mixing weight are chosen on validation tokens
  (:func:`mixed_nll` then scores any split at that choice).

Every function takes per-token probabilities of the *targets* (``stream[1:]``) in stream order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: mixing weights of the cache tried on validation (Grave et al. report 0.1–0.3; 0: no cache)
LAMBDAS: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
#: flatness of the continuous cache's attention tried on validation
THETAS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8)


def unigram_cache_probs(targets: np.ndarray, size: int) -> np.ndarray:
    """``p[t]`` = share of ``targets[max(0, t-size):t]`` equal to ``targets[t]`` (NaN at
    ``t = 0``, where the cache is empty)."""
    y = np.asarray(targets, dtype=np.int64)
    n = len(y)
    pos = np.arange(n, dtype=np.int64)
    span = n + size + 1
    keys = y * span + pos + size  # per word, increasing positions; offset keeps t - size >= 0
    order = np.sort(keys)
    before = np.searchsorted(order, keys)  # occurrences of y[t] at positions < t ...
    older = np.searchsorted(order, keys - size)  # ... minus those before t - size
    with np.errstate(invalid="ignore", divide="ignore"):
        p = (before - older) / np.minimum(pos, size).astype(np.float64)
    return p


def mixed_nll(p_model: np.ndarray, p_cache: np.ndarray, lam: float) -> float:
    """Summed NLL of ``(1 - lam) p_model + lam p_cache`` (where the cache is empty, NaN:
    ``p_model`` alone)."""
    p_model = np.asarray(p_model, dtype=np.float64)
    p_cache = np.asarray(p_cache, dtype=np.float64)
    mix = np.where(np.isnan(p_cache), p_model, (1 - lam) * p_model + lam * p_cache)
    return float(-np.log(np.maximum(mix, 1e-300)).sum())


def choose_mix(
    p_model: np.ndarray,
    p_caches: Sequence[np.ndarray],
    lambdas: Sequence[float] = LAMBDAS,
) -> tuple[int, float, float]:
    """``(index into p_caches, lambda, summed NLL)`` with the lowest NLL: the choice made on
    validation."""
    best = (0, 0.0, math.inf)
    for i, pc in enumerate(p_caches):
        for lam in lambdas:
            nll = mixed_nll(p_model, pc, lam)
            if nll < best[2]:
                best = (i, float(lam), nll)
    return best
