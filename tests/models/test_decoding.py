"""How text models decode: beam search against greedy, limits, eval mode, the sampling
controls, and ``no_repeat_ngram`` over pieces and over the words a reply spells (a trigram can
come back in pieces that differ, another case or other splits, and still be the same words)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines import tasks, text
from pipelines.config import DecodeConfig, model_config
from pipelines.models import EOS, UNK, build_model
from pipelines.text import data as T
from pipelines.text import scorers
from tests.models.conftest import CFGS, load
from tests.textdata import write_text_corpus


def test_beam_one_is_greedy_and_decoding_respects_limits(corpora, trained):
    cfg, corpus, result = trained[1]["translate"]
    model = result.model.eval()
    split = T.prepare(cfg, corpus).validation
    idx = np.arange(24)
    src, src_len = T.padded(split.sides["source"], idx, eos=True)
    src, src_len = torch.from_numpy(src), torch.from_numpy(src_len)
    greedy = model.greedy(src, src_len, 12)
    assert model.beam_search(src, src_len, 1, 12) == greedy
    assert any(len(g) > 2 for g in greedy)
    blocked = model.greedy(src, src_len, 12, block_unk=True)
    assert model.beam_search(src, src_len, 1, 12, block_unk=True) == blocked
    assert not any(
        UNK in r for r in blocked + model.beam_search(src, src_len, 3, 12, block_unk=True)
    )
    torch.manual_seed(1)  # an untrained model: long, arbitrary outputs hit the length limit
    fresh = build_model("seq2seq", cfg, T.prepare(cfg, corpus).spec).eval()
    rough = fresh.greedy(src, src_len, 5)
    assert fresh.beam_search(src, src_len, 1, 5) == rough
    assert (
        max(len(r) for r in rough) <= 5
        and max(len(r) for r in fresh.beam_search(src, src_len, 4, 5)) <= 5
    )


def test_no_repeat_ngram_blocks_loops_in_greedy_and_sampled_outputs(corpora, trained):
    cfg, corpus, _ = trained[1]["dialogue"]
    split = T.prepare(cfg, corpus)
    torch.manual_seed(3)  # an untrained model loops: many of its outputs repeat a bigram
    fresh = build_model("seq2seq", cfg, split.spec).eval()
    rows = split.validation.sides["source"]
    plain = DecodeConfig(max_decode_len=20, min_decode_len=20)
    blocked = plain.model_copy(update={"no_repeat_ngram": 2})
    looping = lambda out: scorers.repeats(out, 2)  # noqa: E731
    cpu = torch.device("cpu")
    for mode in ("greedy", "sample"):
        out = {
            c.no_repeat_ngram: text.decode_rows(
                fresh, rows, mode, c, cpu, generator=torch.Generator().manual_seed(0)
            )
            for c in (plain, blocked)
        }
        assert looping(out[0]) > 0.1, mode
        assert looping(out[2]) == 0 and max(map(len, out[2])) >= 10, mode


def test_decoding_is_in_eval_mode_whatever_mode_the_model_is_in(corpora):
    """Replies decoded from a model left in train mode are the eval-mode replies (dropout
    off), and the model stays in train mode."""
    cfg = model_config(**{**CFGS["dialogue"], "dropout": 0.5})
    prepared = T.prepare(cfg, tasks.load_corpus(corpora["dialogue"]))
    torch.manual_seed(0)
    model = build_model(cfg.family, cfg, prepared.spec)
    src = prepared.validation.sides["source"]
    decode = DecodeConfig(max_decode_len=8)
    cpu = torch.device("cpu")
    model.eval()
    expected = text.decode_rows(model, src, "greedy", decode, cpu)
    model.train()
    assert [text.decode_rows(model, src, "greedy", decode, cpu) for _ in "ab"] == [expected] * 2
    assert model.training


def test_sampling_length_floor_and_repetition_penalty(trained, corpora):

    layout, _ = trained
    bundle = load(layout, "dialogue")
    part, _ = T.load_split(corpora["dialogue"], "test", bundle.spec)
    rows = part.sides["source"]
    cfg = bundle.decode.model_copy(update={"min_decode_len": 6, "max_decode_len": 12, "top_k": 0})
    out = text.decode_rows(
        bundle.model,
        rows,
        "sample",
        cfg,
        torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
    )
    assert all(len(r) >= 6 for r in out), out  # no <eos> before 6 tokens
    assert all(EOS not in r for r in out)
    strict = cfg.model_copy(
        update={"repetition_penalty": 1e9, "min_decode_len": 6, "max_decode_len": 6}
    )
    out = text.decode_rows(
        bundle.model,
        rows,
        "sample",
        strict,
        torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
    )
    bad = [r for r in out if not len(set(r)) == len(r) == 6]
    assert not bad, bad  # nothing repeats


def test_decoding_is_the_evaluate_side_and_no_field_of_training(corpora, trained):
    """How a model decodes is evaluate's (``evaluate.models.<model>``): a train entry naming
    a decoding field is an error, and the same weights decode as the bundle's settings say."""
    from pipelines.config import ConfigError, TrainConfig
    from rnnflow.config import parse

    entry = {**CFGS["translate"], "beam": 9}
    with pytest.raises(ConfigError, match="model 'toy': 'beam' is not a field of family 'seq2seq'"):
        parse(TrainConfig, {"train": {"models": {"toy": entry}}}, "train")
    layout, _ = trained
    wide = text.load_bundle(layout.model("toy_translate"), decode=DecodeConfig(max_decode_len=3))
    src = T.Ragged.from_lists([[5, 6, 7, 8, 9, 10]])
    (row,) = text.decode_rows(wide.model, src, "greedy", wide.decode, torch.device("cpu"))
    assert len(row) <= 3


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
