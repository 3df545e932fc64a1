"""``dialogue``: a seq2seq chatbot (Twitter context → reply).

Perplexity of the human replies beside an add-one unigram model of the train replies
(``unigram_perplexity``), and distinct-1/2 of top-k sampled (and greedy) replies on the test
contexts; sample rows: context, human reply, greedy and sampled replies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines import text_data as T
from pipelines.metrics import ngram, scorers
from pipelines.tasks import register
from pipelines.tasks.seq2seq import Seq2SeqTask
from pipelines.tasks.text import Bundle, decode_rows


@register("dialogue")
class Dialogue(Seq2SeqTask):
    headline = "perplexity"
    higher_is_better = False
    report_extras = ("unigram_perplexity", "distinct_1", "distinct_2")

    def baseline(self, bundle: Bundle, directory: Path):
        # the unigram baseline's counts: every token + <eos> per row
        vocab = T.text_vocab(bundle.spec, "target")
        train_targets = T.lm_stream(self.split(bundle, directory, "train")[0].sides["target"])[1:]

        def unigram(part: T.TextSplit) -> dict[str, Any]:
            return {
                "unigram_perplexity": ngram.unigram_perplexity(
                    train_targets, T.lm_stream(part.sides["target"])[1:], vocab
                )
            }

        return unigram

    def test_scores(self, bundle, test, table, src_col, tgt_col, device, batch):
        cfg, codec = bundle.cfg, bundle.codec
        gen = torch.Generator().manual_seed(cfg.seed)
        sampled = decode_rows(
            bundle.model, test.sides["source"], "sample", cfg, device, batch=batch, generator=gen
        )
        greedy = decode_rows(bundle.model, test.sides["source"], "greedy", cfg, device, batch=batch)
        toks = lambda rows: [codec.tokens(r, "target") for r in rows]  # noqa: E731
        refs = [codec.tokens(test.sides["target"].row(i), "target") for i in range(len(test))]
        out = {
            "distinct_1": scorers.distinct(toks(sampled), 1),
            "distinct_2": scorers.distinct(toks(sampled), 2),
            "distinct_1_greedy": scorers.distinct(toks(greedy), 1),
            "distinct_2_greedy": scorers.distinct(toks(greedy), 2),
            "distinct_2_reference": scorers.distinct(refs, 2),
            "unique_replies_sampled": len({tuple(r) for r in sampled}) / max(len(sampled), 1),
            "sampling": {
                "top_k": cfg.top_k,
                "temperature": cfg.temperature,
                "max_decode_len": cfg.max_decode_len,
            },
        }
        contexts, replies = table.column(src_col).to_pylist(), table.column(tgt_col).to_pylist()
        rng = np.random.default_rng(cfg.seed)
        pick = rng.choice(len(test), size=min(len(test), cfg.samples), replace=False)
        samples = [
            {
                "context": contexts[i],
                "reply (human)": replies[i],
                "greedy": codec.text(greedy[i], "target"),
                "sampled": codec.text(sampled[i], "target"),
            }
            for i in sorted(pick.tolist())
        ]
        return out, samples
