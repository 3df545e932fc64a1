"""The text models' scores by hand: sacreBLEU/chrF passed through unchanged, distinct-n,
repeated n-grams, pasted source words, verbatim copies, the n-gram baselines and nucleus
sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipelines.text import ngram, scorers


def test_copied_source_words_counts_only_pasted_spanish():
    from pipelines.text.translate import copied_source_words

    got = copied_source_words(
        ["The gato eats.", "María eats 3 breads.", "No, no."],
        ["El gato come.", "María come 3 panes.", "No, no."],
        ["The cat eats.", "María eats 3 loaves.", "No."],
        {"the", "cat", "eats", "loaves", "no"},
    )
    # "gato" is pasted; "María" is in the reference; "3" is not a word; "no" is English
    assert got == {"copied_source_words": 1, "outputs_with_copied_source_words": 1 / 3}


def test_bleu_and_chrf_match_sacrebleu():
    import sacrebleu

    hyps = ["The cat sat on the mat.", "I like green tea very much.", "Where is it?"]
    refs = ["The cat sat on the mat.", "I really like green tea.", "Where is the station?"]
    refs2 = ["A cat sat on the mat.", None, "Where's the station?"]
    got = scorers.bleu(hyps, [refs])
    assert got["score"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert (
        got["signature"]
        == "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" + sacrebleu.__version__
    )
    multi = scorers.bleu(hyps, [refs, refs2])["score"]
    assert multi == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs, refs2]).score)
    assert multi >= got["score"]
    assert scorers.chrf(hyps, [refs])["score"] == pytest.approx(
        sacrebleu.corpus_chrf(hyps, [refs]).score
    )
    assert scorers.bleu(refs, [refs])["score"] == pytest.approx(100.0)


def test_distinct_n():
    assert scorers.distinct(["a b a b", "a b c"], 1) == pytest.approx(3 / 7)
    assert scorers.distinct(["a b a b", "a b c"], 2) == pytest.approx(3 / 5)  # ab ba bc / 5
    assert scorers.distinct([], 2) == 0.0


def test_repeats_counts_outputs_holding_an_ngram_twice():
    rows = [["a", "b", "c", "a", "b", "c"], ["a", "b", "a"], ["x"]]
    assert scorers.repeats(rows, 3) == pytest.approx(1 / 3)  # only "a b c" comes back
    assert scorers.repeats(rows, 2) == pytest.approx(1 / 3)
    assert scorers.repeats(rows, 1) == pytest.approx(2 / 3)
    assert scorers.repeats([], 3) == 0.0


def test_kneser_ney_by_hand():
    # stream <eos> 5 6 <eos> 5 6 <eos> 5 7 <eos>, vocabulary 0..7. Trigram counts (with the
    # leading <eos> repeated): (2,2,5)1 (2,5,6)2 (5,6,2)2 (6,2,5)2 (2,5,7)1 (5,7,2)1 → D3 = 3/9.
    # Continuation bigram counts (2,5)2 (5,6)1 (6,2)1 (5,7)1 (7,2)1 → D2 = 4/6; unigram
    # continuation counts 2:2 5:1 6:1 7:1 (total 5, 4 types) → D1 = 3/5.
    kn = ngram.KneserNey(8).fit(np.array([2, 5, 6, 2, 5, 6, 2, 5, 7, 2]))
    assert (kn.d3, kn.d2, kn.d1) == pytest.approx((1 / 3, 2 / 3, 3 / 5))
    p1_6 = (1 - 0.6 + 0.6 * 4 / 8) / 5  # 0.14
    p2_6 = (1 - 2 / 3 + 2 / 3 * 2 * p1_6) / 2  # context 5: two types, total 2
    p3_6 = (2 - 1 / 3 + 1 / 3 * 2 * p2_6) / 3  # context (2,5): (2,5,6)2 (2,5,7)1
    assert kn.probs([2], [5], [6])[0] == pytest.approx(p3_6) == pytest.approx(0.6133333)
    for ctx in ((2, 5), (7, 7), (6, 2), (0, 3)):  # seen and unseen histories: sums to one
        assert kn.probs(
            np.full(8, ctx[0]), np.full(8, ctx[1]), np.arange(8)
        ).sum() == pytest.approx(1.0)
    p1_5 = (1 - 0.6 + 0.6 * 4 / 8) / 5
    p3_5 = (1 - 1 / 3) + 1 / 3 * (2 - 2 / 3 + 2 / 3 * p1_5) / 2  # context (2,2), then (2)
    want = math.exp(-(math.log(p3_5) + math.log(p3_6)) / 2)
    assert kn.perplexity(np.array([2, 5, 6])) == pytest.approx(want)
    assert kn.nll(np.array([2, 5, 6]))[1] == 2


def test_unigram_perplexity_by_hand():
    # add-one over 3 ids, train a a b: P(a)=3/6, P(b)=2/6, P(c)=1/6; test a c → sqrt(12)
    assert ngram.unigram_perplexity(np.array([0, 0, 1]), np.array([0, 2]), 3) == pytest.approx(
        math.sqrt(12)
    )


def test_copied_counts_verbatim_training_replies():
    from pipelines.text.dialogue import copied

    seen = {(1, 2, 3), (4,)}
    assert copied([[1, 2, 3], [1, 2], [4], [5]], seen) == 0.5
    assert copied([], seen) == 0.0


def test_nucleus_keeps_the_smallest_set_reaching_top_p():
    from pipelines.text.lm_model import pick

    logp = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    gen = torch.Generator().manual_seed(0)
    draws = {int(pick(logp, False, 1.0, 0, gen, top_p=0.7)) for _ in range(300)}
    assert draws == {0, 1}  # 0.5 < 0.7 <= 0.5 + 0.3
    draws = {int(pick(logp, False, 1.0, 0, gen, top_p=0.4)) for _ in range(100)}
    assert draws == {0}  # the most likely token always stays
    draws = {int(pick(logp, False, 1.0, 0, gen, top_p=0.0)) for _ in range(600)}
    assert draws == {0, 1, 2, 3}  # off
