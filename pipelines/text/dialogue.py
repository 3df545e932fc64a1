"""``dialogue``: a seq2seq chatbot (Twitter context → reply).

Perplexity of the human replies beside two count models of the same text the model learned
from (the train replies, and the decoder's pretraining lines when it has them), on the same
tokens: an add-one unigram (``unigram_perplexity``) and an interpolated Kneser–Ney trigram
(``ngram_perplexity``; its history runs across line boundaries, as for the LM), and the same
trigram of the train replies alone (``ngram_replies_perplexity``). With a subword vocabulary
every perplexity is per word (``data.word_count``), as with a word vocabulary. On the test
contexts, over words: distinct-1/2 of sampled (top-k, nucleus, repetition penalty, length
floor) and greedy replies, the share of greedy replies holding some trigram twice
(``repeats_greedy``), and the share of replies that repeat a training reply verbatim
(``copied``, ``copied_greedy``); sample rows: context, human reply, greedy and sampled replies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.tasks import register
from pipelines.text import Bundle, decode_rows, ngram, scorers
from pipelines.text import data as T
from pipelines.text.seq2seq import Seq2SeqTask
from rnnflow.io import read_table


@register("dialogue")
class Dialogue(Seq2SeqTask):
    headline = "perplexity"
    higher_is_better = False
    report_extras = (
        "unk_rate",
        "ngram_perplexity",
        "ngram_replies_perplexity",
        "distinct_2",
        "distinct_2_greedy",
        "repeats_greedy",
        "copied",
    )

    def baseline(self, bundle: Bundle, directory: Path):
        # Like for like: the count models read every reply token the model learned from
        # (+ <eos> per row), and the decoder's pretraining lines too when it had them.
        vocab = T.text_vocab(bundle.spec, "target")
        replies = T.lm_stream(self.split(bundle, directory, "train")[0].sides["target"])
        train_stream = replies
        mono_path = Path(directory) / "monolingual.parquet"
        if bundle.cfg.pretrain is not None and mono_path.exists():
            assert bundle.codec is not None  # load_bundle gives a text task's bundle its codec
            col = bundle.spec["target"]
            mono = T.Ragged.from_arrow(read_table(mono_path, columns=[col]).column(col))
            lines = mono.map(bundle.codec.luts.get("target"))
            train_stream = np.concatenate([T.lm_stream(lines), replies[1:]])
        kn = ngram.KneserNey(vocab).fit(train_stream)
        # the replies alone can make the stronger count model (the pretraining lines are
        # another domain): reported too, so the model is held to both
        kn_replies = kn if train_stream is replies else ngram.KneserNey(vocab).fit(replies)

        def count_models(part: T.TextSplit, words: int | None) -> dict[str, Any]:
            stream = T.lm_stream(part.sides["target"])
            n = len(stream) - 1
            unigram = ngram.unigram_perplexity(train_stream[1:], stream[1:], vocab)
            return {  # per word, as the model's perplexity
                "unigram_perplexity": T.per_word(unigram, n, words),
                "ngram_perplexity": T.per_word(kn.perplexity(stream), n, words),
                "ngram_tokens": len(train_stream) - 1,
                "ngram_replies_perplexity": T.per_word(kn_replies.perplexity(stream), n, words),
            }

        return count_models

    def test_scores(self, bundle, test, table, src_col, tgt_col, device, batch, directory):
        cfg, codec = bundle.decode, bundle.codec
        train = self.split(bundle, directory, "train")[0].sides["target"]
        seen = {tuple(train.row(i).tolist()) for i in range(len(train))}
        gen = torch.Generator().manual_seed(bundle.cfg.seed)
        src = test.sides["source"]
        sampled = decode_rows(
            bundle.model, src, "sample", cfg, device, batch=batch, generator=gen, codec=codec
        )
        greedy = decode_rows(bundle.model, src, "greedy", cfg, device, batch=batch, codec=codec)

        def toks(rows: list[list[int]]) -> list[list[str]]:
            return codec.words(rows, "target")  # distinct-n and repeats count words

        refs = toks([test.sides["target"].row(i).tolist() for i in range(len(test))])
        out = {
            "distinct_1": scorers.distinct(toks(sampled), 1),
            "distinct_2": scorers.distinct(toks(sampled), 2),
            "distinct_1_greedy": scorers.distinct(toks(greedy), 1),
            "distinct_2_greedy": scorers.distinct(toks(greedy), 2),
            "distinct_2_reference": scorers.distinct(refs, 2),
            "repeats_greedy": scorers.repeats(toks(greedy), 3),
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
                "no_repeat_ngram": cfg.no_repeat_ngram,
            },
        }
        contexts, replies = table.column(src_col).to_pylist(), table.column(tgt_col).to_pylist()
        key = test.row_id if test.row_id is not None else np.arange(len(test))
        pick = np.argsort(key, kind="stable")[: cfg.samples]  # by hash, not by hand
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
