"""``dialogue``: a seq2seq chatbot (Twitter context → reply).

Perplexity of the human replies beside two count models of the train replies on the same
tokens: an add-one unigram (``unigram_perplexity``) and an interpolated Kneser–Ney trigram
(``ngram_perplexity``; its history runs across reply boundaries, as for the LM). On the test
contexts: distinct-1/2 of sampled (top-k, nucleus, repetition penalty, length floor) and greedy
replies, and the share of replies that repeat a training reply verbatim (``copied``,
``copied_greedy``); sample rows: context, human reply, greedy and sampled replies.
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
    report_extras = ("ngram_perplexity", "unigram_perplexity", "distinct_1", "distinct_2", "copied")

    def baseline(self, bundle: Bundle, directory: Path):
        # both count models see every train reply token + <eos> per row
        vocab = T.text_vocab(bundle.spec, "target")
        train_stream = T.lm_stream(self.split(bundle, directory, "train")[0].sides["target"])
        kn = ngram.KneserNey(vocab).fit(train_stream)

        def count_models(part: T.TextSplit) -> dict[str, Any]:
            stream = T.lm_stream(part.sides["target"])
            return {
                "unigram_perplexity": ngram.unigram_perplexity(train_stream[1:], stream[1:], vocab),
                "ngram_perplexity": kn.perplexity(stream),
            }

        return count_models

    def test_scores(self, bundle, test, table, src_col, tgt_col, device, batch, directory):
        cfg, codec = bundle.cfg, bundle.codec
        train = self.split(bundle, directory, "train")[0].sides["target"]
        seen = {tuple(train.row(i).tolist()) for i in range(len(train))}
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
            "copied": copied(sampled, seen),
            "copied_greedy": copied(greedy, seen),
            "sampling": {
                "top_k": cfg.top_k,
                "top_p": cfg.top_p,
                "temperature": cfg.temperature,
                "repetition_penalty": cfg.repetition_penalty,
                "min_decode_len": cfg.min_decode_len,
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


def copied(replies: list[list[int]], seen: set[tuple[int, ...]]) -> float:
    """Share of ``replies`` (token ids, no ``<eos>``) equal to some training reply."""
    return sum(tuple(r) in seen for r in replies) / max(len(replies), 1)
