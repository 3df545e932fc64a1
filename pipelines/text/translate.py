"""``translate``: a seq2seq translator (Spanish → English).

sacrebleu BLEU/chrF on the test split (all rows, and per ``origin`` — the Tatoeba rows),
greedy and beam, detokenised hypotheses against the raw reference text, plus BLEU against
every reference of a source sentence at once (``bleu_multiref``), and the Spanish words pasted
into the output (``copied_source_words``); sample rows: source, reference, greedy and beam
translations per origin, the first rows by ``row_id`` (a hash). The report leads with BLEU,
and the epoch kept is the one with the best validation BLEU, the same sacreBLEU on greedy
decodes of ``VAL_BLEU_ROWS`` validation pairs drawn by hash across origins.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.tasks import register
from pipelines.text import data as T
from pipelines.text import output_texts, scorers
from pipelines.text.seq2seq import Seq2SeqJob, Seq2SeqTask
from rnnflow.codec import pretokenize

#: validation pairs decoded every epoch for the BLEU that picks the epoch (~10 s on 2 cores)
VAL_BLEU_ROWS = 1000


@register("translate")
class Translate(Seq2SeqTask):
    headline = "bleu"
    higher_is_better = True
    monitor = "bleu"
    report_extras = (
        "chrf",
        "bleu_greedy",
        "tatoeba.bleu",
        "opensubtitles.bleu",
        "outputs_with_copied_source_words",
    )

    def make_job(self, cfg, corpus, device, amp_dtype=None, rank=0, world=1) -> Seq2SeqJob:
        return Seq2SeqJob(cfg, corpus, device, amp_dtype, rank, world, VAL_BLEU_ROWS)

    def test_scores(self, bundle, test, table, src_col, tgt_col, device, batch, directory):
        cfg = bundle.decode
        sources = table.column(src_col).to_pylist()
        refs = table.column(tgt_col).to_pylist()
        # rows sharing a row_id share the Spanish sentence: decode each source once
        key = test.row_id if test.row_id is not None else np.arange(len(test))
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        unique_src = test.sides["source"].take(first)
        hyps = {}
        for mode in ("greedy", "beam"):
            texts = output_texts(bundle, unique_src, mode, device, batch=batch)
            hyps[mode] = [texts[i] for i in inverse]
        subsets = {"all": np.ones(len(test), dtype=bool)}
        if test.origin is not None:
            for origin in sorted(set(test.origin.tolist())):
                subsets[origin] = test.origin == origin
        out: dict[str, Any] = {
            "decoding": {
                "beam": cfg.beam,
                "length_penalty": cfg.length_penalty,
                "max_decode_len": cfg.max_decode_len,
            },
            "hypotheses": "detokenised model output; references: raw text",
        }
        english = _words(
            T.load_split(directory, "train", bundle.spec, [tgt_col], sides=self.sides)[1]
            .column(tgt_col)
            .to_pylist()
        )
        out.update(copied_source_words(hyps["beam"], sources, refs, set().union(*english)))
        for name, mask in subsets.items():
            idx = np.nonzero(mask)[0]
            res = {"n": len(idx)}
            for mode, suffix in (("beam", ""), ("greedy", "_greedy")):
                h = [hyps[mode][i] for i in idx]
                r = [[refs[i] for i in idx]]
                b, c = scorers.bleu(h, r), scorers.chrf(h, r)
                res[f"bleu{suffix}"], res[f"chrf{suffix}"] = b["score"], c["score"]
                out["signature"] = {"bleu": b["signature"], "chrf": c["signature"]}
            # every reference of a source sentence at once (Tatoeba has several translations)
            groups: dict[int, list[int]] = {}
            for i in idx:
                groups.setdefault(int(inverse[i]), []).append(int(i))
            lists = list(groups.values())
            width = max(len(g) for g in lists)
            multi = [[refs[g[j]] if j < len(g) else None for g in lists] for j in range(width)]
            res["bleu_multiref"] = scorers.bleu([hyps["beam"][g[0]] for g in lists], multi)["score"]
            res["sources"] = len(lists)
            if name == "all":
                out.update({k: v for k, v in res.items() if k != "n"})
            else:
                out[name] = res
        samples = []
        for name, mask in subsets.items():
            if name == "all" and len(subsets) > 1:
                continue
            idx = np.nonzero(mask)[0]
            per = max(cfg.samples // max(len(subsets) - 1, 1), 1)
            pick = idx[np.argsort(key[idx], kind="stable")[:per]]  # by hash, not by hand
            for i in sorted(pick.tolist()):
                samples.append(
                    {
                        "origin": name,
                        "source": sources[i],
                        "reference": refs[i],
                        "greedy": hyps["greedy"][i],
                        "beam": hyps["beam"][i],
                    }
                )
        return out, samples


def _words(texts: list[str]) -> list[set[str]]:
    """Each text's lowercased words (letters only: numbers and punctuation are not words)."""
    lists = pretokenize(pa.array(texts, pa.string()), lowercase=True).to_pylist()
    return [{w for w in ws if w.isalpha()} for ws in lists]


def copied_source_words(
    hyps: list[str], sources: list[str], refs: list[str], english: set[str]
) -> dict[str, Any]:
    """Source words pasted into the output: a word of the hypothesis that is in its source
    sentence, not in its reference and in no English training sentence (so names and numbers
    the reference shares are not counted). How many, and the share of outputs with one."""
    pasted = [(h & s) - r - english for h, s, r in zip(_words(hyps), _words(sources), _words(refs))]
    return {
        "copied_source_words": sum(len(p) for p in pasted),
        "outputs_with_copied_source_words": sum(bool(p) for p in pasted) / max(len(hyps), 1),
    }
