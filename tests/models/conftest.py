"""The toy text models the model tests share: tiny corpora in the real token contract, and
each family trained on them once per test session (package scope), saved as the train stage
saves it."""

from __future__ import annotations

import pytest

from pipelines import tasks, text
from pipelines.config import DecodeConfig, Layout, model_config
from pipelines.flows.train import save_outputs
from pipelines.training import fit
from tests.textdata import write_text_corpus

SMALL = dict(embedding=32, hidden=32, layers=1, dropout=0.0, batch_size=16, lr=0.01, seed=0)
CFGS = {
    "lm": dict(
        corpus="lm",
        family="lm",
        epochs=2,
        bptt=8,
        softmax="adaptive",
        cutoffs=[10],
        **{**SMALL, "dropout": 0.1},
    ),
    "translate": dict(corpus="translate", family="seq2seq", epochs=4, **SMALL),
    "dialogue": dict(corpus="dialogue", family="seq2seq", epochs=2, **SMALL),
}
#: how each toy model decodes (evaluate.models.<model> in a project's params.yaml)
DECODE = {
    "lm": DecodeConfig(),
    "translate": DecodeConfig(beam=3, max_decode_len=12),
    "dialogue": DecodeConfig(top_k=3, max_decode_len=8),
}


def load(layout: Layout, task: str) -> text.Bundle:
    """A toy model of ``trained``, decoding as :data:`DECODE` says."""
    return text.load_bundle(layout.model(f"toy_{task}"), decode=DECODE[task])


@pytest.fixture(scope="package")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    return {task: write_text_corpus(root / task, task) for task in CFGS}


@pytest.fixture(scope="package")
def trained(corpora, tmp_path_factory):
    """Each toy model trained once, saved as the train stage saves it."""
    layout = Layout(tmp_path_factory.mktemp("root"))
    out = {}
    for task, params in CFGS.items():
        cfg = model_config(**params)
        corpus = tasks.load_corpus(corpora[task])
        result = fit(cfg, corpus, progress=False)
        save_outputs(layout, f"toy_{task}", cfg, corpus, result)
        out[task] = (cfg, corpus, result)
    return layout, out
