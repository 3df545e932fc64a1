"""Decoder pretraining on monolingual lines (``pretrain`` of a seq2seq model): the lines are
read from the corpus's ``monolingual.parquet``, each once per epoch with an empty source; the
pretrained decoder knows them; a resumed run keeps the record and does not pretrain again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pipelines import tasks
from pipelines.config import model_config
from pipelines.text import data as T
from pipelines.text.seq2seq import pair_batch
from pipelines.training import fit
from tests.textdata import write_text_corpus

LINE = "i like tea at home"
BASE = dict(
    corpus="dialogue", family="seq2seq", embedding=32, hidden=32, layers=1, dropout=0.0,
    batch_size=16, lr=0.01, seed=0, epochs=1, max_batches=2,
)  # fmt: skip


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    directory = write_text_corpus(tmp_path_factory.mktemp("chat") / "dialogue", "dialogue")
    vocab = json.loads((directory / "vocab.json").read_text())
    lines = [LINE] * 40 + ["good night to you"] * 8
    ids = [[vocab.index(w) for w in line.split()] for line in lines]
    pq.write_table(
        pa.table(
            {
                "row_id": pa.array(np.arange(len(lines), dtype=np.uint64)),
                "response": lines,
                "response_ids": pa.array(ids, pa.list_(pa.int32())),
            }
        ),
        directory / "monolingual.parquet",
    )
    return directory


def line_nll(model: torch.nn.Module, corpus: T.TextCorpus) -> float:
    """Per-token NLL of LINE (+ <eos>) after an empty context."""
    lines = T.TextSplit(
        {"source": T.Ragged.from_lists([[]]), "target": corpus.monolingual.take(np.array([0]))}
    )
    model.eval()
    with torch.no_grad():
        nll, n = model(*pair_batch(lines, np.array([0]), torch.device("cpu")))
    return float(nll) / n


def test_lines_load_in_the_model_vocabulary(corpus_dir):
    corpus = tasks.load_corpus(corpus_dir)
    assert len(corpus.monolingual) == 48 and corpus.monolingual.lengths[0] == 5
    # the model's own vocabulary (min_freq) maps the lines like the pairs' targets
    cfg = model_config(**BASE, min_freq=1000)  # nothing is frequent enough: all <unk>
    prepared = tasks.get("dialogue").prepare(cfg, corpus)
    assert set(prepared.monolingual.values.tolist()) == {T.UNK}


def test_pretrained_decoder_knows_the_lines(corpus_dir):
    corpus = tasks.load_corpus(corpus_dir)
    plain = fit(model_config(**BASE), corpus, progress=False)
    cfg = model_config(**BASE, pretrain={"epochs": 3, "batch_size": 16})
    pre = fit(cfg, corpus, progress=False)
    assert plain.pretrain in (None, {})
    # every line once an epoch: 3 batches of <= 16, each token and its <eos>
    assert pre.pretrain["batches"] == 3 * 3
    assert pre.pretrain["tokens"] == 3 * (40 * 6 + 8 * 5)
    assert line_nll(pre.model, corpus) < 0.5 * line_nll(plain.model, corpus)
    # same seed, same pair epochs: only the pretraining differs
    assert pre.history[0]["train_loss"] != plain.history[0]["train_loss"]


def test_resumed_run_keeps_the_record_and_skips_pretraining(corpus_dir, tmp_path):
    corpus = tasks.load_corpus(corpus_dir)
    pretrain = {"epochs": 1, "batch_size": 8, "max_batches": 2}
    cfg = model_config(**{**BASE, "epochs": 2}, pretrain=pretrain)
    ckpt = tmp_path / "ckpt.pt"
    first = fit(cfg, corpus, checkpoint=ckpt, stop_after=1, progress=False)
    assert first.pretrain["batches"] == 2 and not first.complete
    again = fit(cfg, corpus, checkpoint=ckpt, progress=False)
    assert again.resumed_from == 1 and again.pretrain == first.pretrain
    straight = fit(cfg, corpus, progress=False)
    assert again.history == [
        {**r, "seconds": again.history[i]["seconds"]} for i, r in enumerate(straight.history)
    ]


def test_pretrain_without_lines_names_the_params_key(tmp_path):
    directory = write_text_corpus(tmp_path / "dialogue", "dialogue")
    corpus = tasks.load_corpus(directory)
    assert corpus.monolingual is None
    with pytest.raises(ValueError, match="tokenize.<corpus>.monolingual"):
        fit(model_config(**BASE, pretrain={"epochs": 1}), corpus, progress=False)


def test_count_baseline_reads_what_the_model_learned_from(corpus_dir, tmp_path):
    """With pretraining, the chatbot's KN trigram is fitted on the pretraining lines and the
    train replies, like the model; the replies-only trigram is reported beside it."""
    from pipelines.config import Layout
    from pipelines.flows.train import save_outputs
    from pipelines.text import load_bundle

    corpus = tasks.load_corpus(corpus_dir)
    cfg = model_config(**BASE, pretrain={"epochs": 1, "batch_size": 16})
    layout = Layout(tmp_path)
    save_outputs(layout, "chat", cfg, corpus, fit(cfg, corpus, progress=False))
    bundle = load_bundle(layout.model("chat"))
    task = tasks.get("dialogue")
    scores = task.baseline(bundle, corpus_dir)
    test, _ = task.split(bundle, corpus_dir, "test")
    got = scores(test, None)  # a word vocabulary: per token is per word
    replies = task.split(bundle, corpus_dir, "train")[0].sides["target"]
    # every reply token + <eos> per reply, and every line token + <eos> per line
    assert got["ngram_tokens"] == len(replies.values) + len(replies) + 40 * 6 + 8 * 5
    # the lines ("i like tea at home" x 40) pull the trigram away from the replies
    assert got["ngram_perplexity"] != pytest.approx(got["ngram_replies_perplexity"])
    plain = tmp_path / "plain"
    save_outputs(
        Layout(plain),
        "chat",
        model_config(**BASE),
        corpus,
        fit(model_config(**BASE), corpus, progress=False),
    )
    alone = task.baseline(load_bundle(Layout(plain).model("chat")), corpus_dir)(test, None)
    assert alone["ngram_tokens"] == len(replies.values) + len(replies)
    assert alone["ngram_perplexity"] == pytest.approx(got["ngram_replies_perplexity"])
