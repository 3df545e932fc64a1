"""Text models on tiny corpora in the real token contract (``conftest.py``): every family
learns, beam 1 is greedy, decoding limits and selection hold, subword models are scored per
word, a copying decoder copies, resume is exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipelines import tasks, text
from pipelines.config import VALIDATION_DECODE, DecodeConfig, Layout, model_config
from pipelines.flows.train import save_outputs
from pipelines.models import build_model
from pipelines.text import data as T
from pipelines.text import scorers
from pipelines.text.seq2seq import face_weights, pair_batch
from pipelines.training import fit
from tests.models.conftest import CFGS, DECODE, SMALL, load
from tests.textdata import write_text_corpus


@pytest.mark.parametrize("task", sorted(CFGS))
def test_text_model_loss_goes_down(corpora, trained, task):
    cfg, corpus, result = trained[1][task]
    prepared = T.prepare(cfg, corpus)
    torch.manual_seed(cfg.seed)
    untrained = build_model(cfg.family, cfg, prepared.spec)
    before = text.make_job(cfg, prepared, torch.device("cpu")).validate(untrained)
    assert len(result.history) == cfg.epochs
    # ratios reached: lm 0.22, translate and dialogue 0.04; with three of every four
    # optimizer steps lost: 0.73, 0.34 and 0.52
    bound = {"lm": 0.35, "translate": 0.15, "dialogue": 0.15}[task]
    assert result.history[-1]["val_loss"] < bound * before["loss"]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    monitor = f"val_{tasks.get(task).monitor}"  # the translator's is BLEU
    assert monitor in result.history[-1]
    if monitor == "val_perplexity":
        assert result.history[-1][monitor] == pytest.approx(
            math.exp(result.history[-1]["val_loss"])
        )


def test_translator_scores_with_sacrebleu_on_raw_references(corpora, trained):
    layout, models = trained
    cfg, _, _ = models["translate"]
    bundle = load(layout, "translate")
    metrics, samples = text.evaluate(bundle, corpora["translate"], torch.device("cpu"))
    test = metrics["test"]
    assert test["tatoeba"]["n"] + test["opensubtitles"]["n"] == test["n"] == 40
    assert test["tatoeba"]["bleu"] > 50 and test["chrf"] > 60  # a word-for-word toy mapping
    assert test["signature"]["bleu"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert "chrf" in test["signature"] and test["perplexity"] > 1
    assert {"source", "reference", "greedy", "beam", "origin"} <= set(samples[0])
    # Hypotheses are detokenised and truecased: "Tom" as in the references, "." attached.
    toms = [s for s in samples if "Tom" in s["reference"]]
    assert all(s["beam"].endswith(".") and not s["beam"].endswith(" .") for s in samples)
    assert all("Tom" in s["beam"] for s in toms if s["beam"] == s["reference"])
    assert sum(s["beam"] == s["reference"] for s in samples) >= len(samples) // 2


def test_translator_keeps_the_epoch_with_the_best_validation_bleu(trained):
    """The translate task monitors greedy validation BLEU every epoch and keeps its best."""
    cfg, _, result = trained[1]["translate"]
    scores = [row["val_bleu"] for row in result.history]
    assert len(scores) == cfg.epochs and all(0 <= b <= 100 for b in scores)
    assert result.best_epoch == 1 + int(np.argmax(scores))  # ties keep the earlier epoch
    assert tasks.get("translate").monitor == "bleu"


def test_bpe_translator_writes_cased_text_and_picks_its_epoch_by_sacrebleu(tmp_path):
    """On a cased subword vocabulary the model itself writes "Tom" and the full stop: no
    <unk>, no truecaser, no pasted source word. The epoch is chosen by the test metric
    (sacreBLEU on detokenised greedy output) on validation rows drawn by hash."""
    import sacrebleu

    directory = write_text_corpus(tmp_path / "bpe", "translate", kind="bpe")
    corpus = tasks.load_corpus(directory)
    assert corpus.spec["kind"] == "bpe" and "truecase" not in corpus.artifacts
    cfg = model_config(**{**CFGS["translate"], "epochs": 6})
    result = fit(cfg, corpus, progress=False)
    job = text.make_job(cfg, T.prepare(cfg, corpus), torch.device("cpu"))
    rows = job.bleu_rows
    assert len(rows) == len(corpus.validation)  # fewer than VAL_BLEU_ROWS: all of them
    model = result.model.eval()
    hyps = text.decode_rows(
        model, rows.sides["source"], "greedy", VALIDATION_DECODE, torch.device("cpu")
    )
    want = sacrebleu.corpus_bleu(
        [job.codec.text(h, "target") for h in hyps], [rows.text.tolist()]
    ).score
    best = result.history[result.best_epoch - 1]["val_bleu"]
    assert job.greedy_bleu(model) == pytest.approx(want) == pytest.approx(best)
    layout = Layout(tmp_path)
    save_outputs(layout, "bpe_tr", cfg, corpus, result)
    bundle = text.load_bundle(layout.model("bpe_tr"), decode=DECODE["translate"])
    metrics, samples = text.evaluate(bundle, directory, torch.device("cpu"))
    test = metrics["test"]
    assert test["bleu"] > 60 and test["unk_rate"] == 0.0
    assert test["outputs_with_copied_source_words"] < 0.05
    assert all("<unk>" not in s["beam"] and s["beam"].endswith(".") for s in samples)
    assert any("Tom" in s["beam"] for s in samples if "Tom" in s["reference"])
    (out,) = text.translate_lines(bundle, ["el gato come pan."])
    assert out == "The cat eats bread."


def test_samples_are_the_first_rows_by_hash(corpora, trained):
    """Samples are not picked by hand or by a seed: the lowest row ids of each origin."""
    layout, _ = trained
    bundle = load(layout, "translate")
    _, samples = text.evaluate(bundle, corpora["translate"], torch.device("cpu"))
    part, table = T.load_split(corpora["translate"], "test", bundle.spec, ["src"])
    per = bundle.decode.samples // 2
    want = set()
    for origin in ("opensubtitles", "tatoeba"):
        idx = np.nonzero(part.origin == origin)[0]
        want |= {
            table.column("src")[int(i)].as_py() for i in idx[np.argsort(part.row_id[idx])][:per]
        }
    assert {s["source"] for s in samples} == want


def test_lm_scores_every_token_and_beats_nothing_for_free(corpora, trained):
    layout, _ = trained
    bundle = load(layout, "lm")
    metrics, samples = text.evaluate(bundle, corpora["lm"], torch.device("cpu"))
    part, _ = T.load_split(corpora["lm"], "test", bundle.spec)
    want = int(part.sides["ids"].lengths.sum()) + len(part)  # every token + one <eos> each
    assert metrics["test"]["n"] == want
    assert 1 < metrics["test"]["perplexity"] < metrics["test"]["ngram_perplexity"] * 3
    assert {"prompt", "decoding", "text"} <= set(samples[0])
    assert samples[0]["text"].startswith(samples[0]["prompt"])
    assert "cache_perplexity" not in metrics["test"]  # cache_size 0: off


def test_lm_cache_metrics_are_chosen_on_validation(corpora, trained):
    layout, _ = trained
    bundle = load(layout, "lm")
    bundle.decode = bundle.decode.model_copy(update={"cache_size": 50, "samples": 0})
    metrics, _ = text.evaluate(bundle, corpora["lm"], torch.device("cpu"))
    val, test = metrics["validation"], metrics["test"]
    assert val["cache"] == test["cache"] and test["cache"]["chosen_on"] == "validation"
    # lambda 0 (no cache) is among the choices: on validation the mix cannot be worse
    assert val["cache_perplexity"] <= val["perplexity"] * (1 + 1e-9)
    assert val["ngram_cache_perplexity"] <= val["ngram_perplexity"] * (1 + 1e-9)
    assert 1 < test["cache_perplexity"] and 1 < test["ngram_cache_perplexity"]


def test_chatbot_metrics(corpora, trained):
    layout, _ = trained
    bundle = load(layout, "dialogue")
    metrics, samples = text.evaluate(bundle, corpora["dialogue"], torch.device("cpu"))
    test = metrics["test"]
    # The context tells which reply follows: the model beats the trigram of the same replies
    # (1.16 vs 1.40 here; with three of four optimizer steps lost it scores 5.8)
    assert test["perplexity"] < test["ngram_perplexity"] < test["unigram_perplexity"]
    assert test["ngram_perplexity"] > 1  # the toy replies repeat, but not perfectly
    assert 0 < test["distinct_1"] <= 1 and 0 < test["distinct_2"] <= 1
    assert 0 <= test["copied"] <= 1 and 0 <= test["copied_greedy"] <= 1
    assert {"context", "reply (human)", "greedy", "sampled"} <= set(samples[0])


def test_subword_chatbot_is_scored_per_word(tmp_path):
    """On a subword vocabulary the chatbot's perplexities (model and count models) are per
    word, on the scale of a word vocabulary's, and distinct-n counts words, not pieces."""
    from rnnflow.codec import pretokenize

    # few pieces: most words are cut in two or more
    directory = write_text_corpus(tmp_path / "bpe", "dialogue", kind="bpe", vocab_size=40)
    corpus = tasks.load_corpus(directory)
    cfg = model_config(**{**CFGS["dialogue"], "epochs": 4})
    layout = Layout(tmp_path)
    save_outputs(layout, "bpe_chat", cfg, corpus, fit(cfg, corpus, progress=False))
    bundle = text.load_bundle(layout.model("bpe_chat"), decode=DECODE["dialogue"])
    metrics, _ = text.evaluate(bundle, directory, torch.device("cpu"))
    test = metrics["test"]
    _, table = T.load_split(directory, "test", bundle.spec, ["response"])
    words = pretokenize(table.column("response")).to_pylist()
    assert test["words"] == sum(map(len, words)) + len(words) < test["tokens"]
    assert test["unk_rate"] == 0.0
    ratio = test["tokens"] / test["words"]
    assert test["perplexity"] == pytest.approx(test["token_perplexity"] ** ratio)
    # the context tells which reply follows: per word too, the model beats the trigram
    assert test["perplexity"] < test["ngram_perplexity"] < test["unigram_perplexity"]
    assert test["distinct_2_reference"] == pytest.approx(scorers.distinct(words, 2))


def greedy_test_replies(root, cfg, corpus, result, directory, column):
    """Save ``result`` as the train stage does under ``root``, reload it and answer the test
    contexts of ``directory`` greedily: the lowercased replies and the test table with
    ``column``."""
    layout = Layout(root)
    save_outputs(layout, "chat", cfg, corpus, result)
    bundle = text.load_bundle(layout.model("chat"), decode=DecodeConfig(max_decode_len=8))
    part, table = tasks.get("dialogue").split(bundle, directory, "test", text=[column])
    assert table is not None
    rows = text.decode_rows(
        bundle.model, part.sides["source"], "greedy", bundle.decode, torch.device("cpu")
    )
    return [bundle.codec.text(r, "target").lower() for r in rows], table


def test_copying_decoder_takes_the_name_from_its_context(tmp_path):
    """With ``copy_source`` (pointer-generator) the decoder writes a rare context word: on 60
    made-up names, a few rows each, after 3 epochs the copying model answers every test
    context exactly; the same model without copying answers none."""
    directory = write_text_corpus(tmp_path / "echo", "echo")
    corpus = tasks.load_corpus(directory)
    exact = {}
    for copy in (False, True):
        cfg = model_config(corpus="echo", family="seq2seq", epochs=3, copy_source=copy, **SMALL)
        result = fit(cfg, corpus, progress=False)
        replies, table = greedy_test_replies(
            tmp_path / str(copy), cfg, corpus, result, directory, "response"
        )
        want = table.column("response").to_pylist()
        exact[copy] = sum(r == w for r, w in zip(replies, want)) / len(want)
    assert exact[False] < 0.5 < 0.9 < exact[True]  # 0.0 and 1.0 here


def test_negative_training_turns_one_generic_reply_into_answers(tmp_path):
    """Most train rows answer any name with "i do not know", the rest with the name: greedy,
    a copying model trained on likelihood alone gives the generic reply to every context;
    after ``negative`` epochs (the reply pushed down once it recurs, its pieces weighed down)
    it answers with the name
    (0.0 and 1.0 of the test contexts here), and those epochs' weights are the model's."""
    directory = write_text_corpus(tmp_path / "generic", "generic", n=400)
    corpus = tasks.load_corpus(directory)
    named = {}
    for key, negative in (("none", None), ("on", {"epochs": 2, "lr": 0.003, "window": 200})):
        cfg = model_config(
            corpus="generic", family="seq2seq", epochs=4, copy_source=True, negative=negative,
            **SMALL,
        )  # fmt: skip
        result = fit(cfg, corpus, progress=False)
        assert [r["epoch"] for r in result.history] == list(range(1, 5 + 2 * bool(negative)))
        replies, table = greedy_test_replies(
            tmp_path / key, cfg, corpus, result, directory, "context"
        )
        names = [c.split()[-1] for c in table.column("context").to_pylist()]
        named[key] = sum(n in r for r, n in zip(replies, names)) / len(names)
    assert named["none"] < 0.2 and named["on"] > 0.8, named


def test_negative_loss_pushes_down_only_the_replies_the_model_repeats(tmp_path):
    """A model that answers every context with one reply: among 8 such replies, with
    ``max_repeats`` 2 the batch loss grows with ``weight`` (the unlikelihood term is on);
    with ``max_repeats`` above 8 it does not depend on ``weight``."""
    corpus = tasks.load_corpus(write_text_corpus(tmp_path / "generic", "generic", n=400))
    base = dict(corpus="generic", family="seq2seq", epochs=4, copy_source=True, **SMALL)
    model = fit(model_config(**base), corpus, progress=False).model
    losses = {}
    for repeats in (2, 100):
        for weight in (1.0, 2.0):
            negative = {"weight": weight, "max_repeats": repeats}
            cfg = model_config(**base, negative=negative)
            prepared = T.prepare(cfg, corpus)
            job = text.make_job(cfg, prepared, torch.device("cpu"))
            batch = pair_batch(job.train, np.arange(8), torch.device("cpu"))
            losses[repeats, weight] = job.negative_loss(model, *batch)[0].item()
    assert losses[2, 2.0] > losses[2, 1.0] + 0.01, losses
    assert losses[100, 2.0] == pytest.approx(losses[100, 1.0]), losses


def test_context_contrast_charges_replies_that_fit_any_context(tmp_path):
    """With ``contrast``, each reply pays the softplus of ``margin`` minus how much likelier it
    is after its own context than after the previous row's: all of it when the contexts are the
    same, little when the model answers each name from its context (the echo corpus)."""
    corpus = tasks.load_corpus(write_text_corpus(tmp_path / "echo", "echo"))
    base = dict(corpus="echo", family="seq2seq", epochs=3, copy_source=True, **SMALL)
    model = fit(model_config(**base), corpus, progress=False).model
    added = {}
    for rows in ("same", "distinct"):
        idx = np.zeros(8, int) if rows == "same" else np.arange(8)
        loss = {}
        for contrast in (0.0, 2.0):
            negative = {"contrast": contrast, "margin": 3.0, "max_repeats": 100}
            cfg = model_config(**base, negative=negative)
            job = text.make_job(cfg, T.prepare(cfg, corpus), torch.device("cpu"))
            batch = pair_batch(job.train, idx, torch.device("cpu"))
            loss[contrast] = job.negative_loss(model, *batch)[0].item()
        added[rows] = loss[2.0] - loss[0.0]
    full = 2.0 * math.log1p(math.exp(3.0))
    assert added["same"] == pytest.approx(full, rel=1e-4), added
    assert added["distinct"] < 0.5 * full, added


def test_face_weights_weigh_each_token_against_how_often_the_model_says_it():
    w = face_weights(np.array([3, 3, 3, 3, 1, 1]), 5).tolist()
    assert w[3] == 0.0 and 0 < w[1] < w[0] == w[2] == w[4]
    assert sum(w) == pytest.approx(5)
    assert face_weights(np.zeros(0, np.int64), 4).tolist() == [1.0] * 4


@pytest.mark.parametrize("task", ["lm", "dialogue"])
def test_text_resume_equals_uninterrupted(corpora, tmp_path, task):
    params = {**CFGS[task], "epochs": 2, "dropout": 0.2}
    if task == "dialogue":
        params["teacher_forcing"] = 0.5  # per-batch draws from the epoch generator
    cfg = model_config(**params)
    corpus = tasks.load_corpus(corpora[task])
    straight = fit(cfg, corpus, progress=False)
    ckpt = tmp_path / "last.pt"
    first = fit(cfg, corpus, checkpoint=ckpt, stop_after=1, progress=False)
    assert not first.complete
    resumed = fit(cfg, corpus, checkpoint=ckpt, progress=False)
    assert resumed.resumed_from == 1
    a, b = resumed.model.state_dict(), straight.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)
    assert [r["val_loss"] for r in resumed.history] == [r["val_loss"] for r in straight.history]
