"""Cache language models (``pipelines.text.cache``, ``pipelines.text.lm``): the count cache
and the continuous cache equal brute-force definitions, the model's probabilities are the
ones perplexity is computed from, and the mix is chosen on validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipelines.text import cache
from pipelines.text.lm import neural_cache_probs, stream_nll
from pipelines.text.lm_model import RNNLanguageModel


def test_unigram_cache_counts_the_last_size_targets():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, size=200)
    for size in (1, 3, 10, 500):
        got = cache.unigram_cache_probs(y, size)
        assert math.isnan(got[0])
        for t in range(1, len(y)):
            past = y[max(0, t - size) : t]
            assert got[t] == pytest.approx(np.mean(past == y[t])), (size, t)


def test_mix_skips_an_empty_cache_and_choice_minimises_nll():
    p_model = np.array([0.5, 0.2, 0.1])
    p_cache = np.array([np.nan, 0.9, 0.0])
    lam = 0.3
    want = -(math.log(0.5) + math.log(0.7 * 0.2 + 0.3 * 0.9) + math.log(0.7 * 0.1))
    assert cache.mixed_nll(p_model, p_cache, lam) == pytest.approx(want)
    caches = [np.array([np.nan, 0.0, 0.0]), p_cache]
    i, best_lam, nll = cache.choose_mix(p_model, caches, lambdas=(0.1, 0.3, 0.5))
    grid = {
        (j, la): cache.mixed_nll(p_model, c, la)
        for j, c in enumerate(caches)
        for la in (0.1, 0.3, 0.5)
    }
    assert (i, best_lam) == min(grid, key=grid.get)
    assert nll == pytest.approx(min(grid.values()))
    # a cache that never holds the target is not mixed in at all
    assert cache.choose_mix(p_model, [caches[0]], lambdas=(0.0, 0.1, 0.5))[1] == 0.0


@pytest.mark.parametrize("softmax", ["full", "adaptive"])
def test_neural_cache_matches_its_definition(softmax):
    torch.manual_seed(0)
    vocab, size = 12, 7
    model = RNNLanguageModel(vocab, 8, 8, 1, softmax=softmax, cutoffs=[6]).eval()
    stream = np.random.default_rng(1).integers(2, vocab, size=41)
    thetas = (0.5, 2.0)
    p_model, p_cache = neural_cache_probs(
        model, stream, torch.device("cpu"), size, thetas, rows=1, window=5
    )
    n = len(stream) - 1
    assert p_model.shape == (n,) and p_cache.shape == (2, n)
    # the model's probabilities are the ones its perplexity is computed from
    nll, count = stream_nll(model, stream, torch.device("cpu"), rows=1, window=5)
    assert count == n and -np.log(p_model).sum() == pytest.approx(nll, rel=1e-5)
    # brute force: one forward over the whole stream, attention over the previous `size` states
    x = torch.from_numpy(stream[:-1])[None]
    with torch.no_grad():
        h = model.features(x)[0][0]
    y = stream[1:]
    assert math.isnan(p_cache[0, 0])
    for k, theta in enumerate(thetas):
        for t in range(1, n):
            lo = max(0, t - size)
            w = torch.softmax(theta * (h[lo:t] @ h[t]), 0).numpy()
            want = float(w[y[lo:t] == y[t]].sum())
            assert p_cache[k, t] == pytest.approx(want, abs=1e-5), (theta, t)


def test_neural_cache_rows_and_tail_keep_stream_order():
    torch.manual_seed(0)
    model = RNNLanguageModel(10, 8, 8, 1).eval()
    stream = np.random.default_rng(2).integers(2, 10, size=53)
    one, _ = neural_cache_probs(model, stream, torch.device("cpu"), 4, (1.0,), rows=1, window=8)
    many, c = neural_cache_probs(model, stream, torch.device("cpu"), 4, (1.0,), rows=3, window=8)
    # each row starts from a zero state: the probabilities differ, their count does not ...
    assert many.shape == one.shape == (52,) and c.shape == (1, 52)
    # ... and each row's first target has an empty cache (3 rows + the tail row)
    assert int(np.isnan(c[0]).sum()) == 4
