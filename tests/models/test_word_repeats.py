"""``no_repeat_ngram`` over the words a reply spells, as the scores count them: a trigram can
come back in pieces that differ (another case, other splits) and still be the same words."""

from __future__ import annotations

import torch

from pipelines import tasks, text
from pipelines.config import DecodeConfig, model_config
from pipelines.models import EOS, build_model
from pipelines.text import data as T
from tests.models.conftest import CFGS
from tests.textdata import write_text_corpus


class FoldedWords:
    """A codec whose words are the ids mod 10: 13 and 23 are one word in two spellings."""

    def repeats(self, ids: list[int], side: str, n: int) -> bool:
        words = [i % 10 for i in ids]
        grams = list(zip(*(words[i:] for i in range(n))))
        return len(grams) != len(set(grams))


def test_greedy_never_repeats_a_word_trigram_spelt_by_other_pieces(corpora):
    cfg = model_config(**CFGS["dialogue"])
    prepared = T.prepare(cfg, tasks.load_corpus(corpora["dialogue"]))
    model = build_model(cfg.family, cfg, prepared.spec)
    script = [13, 14, 15, 23, 14, 15, 16, EOS]  # the words 3 4 5 3 4 5 6
    steps = iter(range(100))

    def step(tok, state, enc, ids):  # the script's token first, <eos> second
        logp = torch.full((tok.size(0), 40), -10.0)
        logp[:, script[min(next(steps), len(script) - 1)]] = 0.0
        logp[:, EOS] = -1.0
        return logp.log_softmax(-1), state

    model.step = step
    src = prepared.validation.sides["source"].take([0])
    decode = DecodeConfig(max_decode_len=10, no_repeat_ngram=3)
    cpu = torch.device("cpu")
    # no trigram of pieces repeats, so the piece ban lets the words 3 4 5 come back
    assert text.decode_rows(model, src, "greedy", decode, cpu) == [script[:-1]]
    steps = iter(range(100))
    # with the codec, the second 15 would say "3 4 5" twice: <eos> comes instead
    got = text.decode_rows(model, src, "greedy", decode, cpu, codec=FoldedWords())
    assert got == [[13, 14, 15, 23, 14]]


def test_codec_counts_words_as_the_scores_do(tmp_path):
    corpus = tasks.load_corpus(write_text_corpus(tmp_path, "dialogue", kind="bpe", vocab_size=40))
    codec = text.Codec(corpus.spec, corpus.artifacts)
    ids = codec.encode(["yes i like tea? i like tea", "yes i like tea? you like tea"], "target")
    looping, fine = (ids.row(i).tolist() for i in range(2))
    assert codec.repeats(looping, "target", 3)
    assert not codec.repeats(fine, "target", 3)
    assert codec.words([fine], "target") == [["yes", "i", "like", "tea", "?", "you", "like", "tea"]]
