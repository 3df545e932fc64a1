"""Text metrics: BLEU and chrF as ``fn(hypotheses, references) -> {"score": float, ...}``, with
``references`` a list of reference *streams* (``refs[j][i]`` is the j-th reference of sentence
i; ``None`` where a sentence has fewer), and distinct-n. BLEU and chrF are thin wrappers on
sacrebleu and carry its signature string, so a number can be reproduced (``sacrebleu -m bleu``
with the same signature gives the same score).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast


def _streams(references: Sequence[Sequence[str | None]]) -> list[list[str]]:
    # sacrebleu skips a None reference (fewer for that sentence); its hints say str only
    return cast("list[list[str]]", [list(r) for r in references])


def bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str | None]]) -> dict[str, Any]:
    """Corpus BLEU (Papineni et al. 2002), sacrebleu defaults: 13a tokenization, cased."""
    from sacrebleu.metrics import BLEU

    metric = BLEU()
    res = metric.corpus_score(list(hypotheses), _streams(references))
    return {
        "score": float(res.score),
        "signature": str(metric.get_signature()),
        "brevity_penalty": float(res.bp),
        "precisions": [float(p) for p in res.precisions],
    }


def chrf(hypotheses: Sequence[str], references: Sequence[Sequence[str | None]]) -> dict[str, Any]:
    """chrF (Popović 2015), sacrebleu defaults (character 6-grams, β = 2)."""
    from sacrebleu.metrics import CHRF

    metric = CHRF()
    res = metric.corpus_score(list(hypotheses), _streams(references))
    return {"score": float(res.score), "signature": str(metric.get_signature())}


def _ngrams(toks: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]


def distinct(hypotheses: Sequence[Sequence[str]] | Sequence[str], n: int) -> float:
    """distinct-n (Li et al. 2016): distinct n-grams / all n-grams over all hypotheses
    (token lists, or strings split on whitespace)."""
    grams = [_ngrams(h.split() if isinstance(h, str) else h, n) for h in hypotheses]
    total = sum(map(len, grams))
    return len({g for hyp in grams for g in hyp}) / total if total else 0.0


def repeats(hypotheses: Sequence[Sequence[str]], n: int) -> float:
    """Share of hypotheses (token lists) that hold some n-gram twice: a looping output."""
    looping = sum(len(g) != len(set(g)) for g in (_ngrams(h, n) for h in hypotheses))
    return looping / len(hypotheses) if hypotheses else 0.0
