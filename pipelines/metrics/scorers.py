"""Text metrics by name, through a registry (OpenNMT-py's ``@register_scorer``): a scorer is
``fn(hypotheses, references) -> {"score": float, ...}``, ``references`` a list of reference
*streams* (``refs[j][i]`` is the j-th reference of sentence i; ``None`` where a sentence has
fewer). BLEU and chrF are thin wrappers on sacrebleu and carry its signature string, so a
number can be reproduced (``sacrebleu -m bleu`` with the same signature gives the same score).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

Scorer = Callable[[Sequence[str], Sequence[Sequence[str | None]]], dict[str, Any]]
_SCORERS: dict[str, Scorer] = {}


def register_scorer(name: str) -> Callable[[Scorer], Scorer]:
    def deco(fn: Scorer) -> Scorer:
        if name in _SCORERS and _SCORERS[name] is not fn:
            raise ValueError(f"scorer {name!r} registered twice")
        _SCORERS[name] = fn
        return fn

    return deco


def scorers() -> list[str]:
    return sorted(_SCORERS)


def score(
    name: str, hypotheses: Sequence[str], references: Sequence[Sequence[str | None]] = ()
) -> dict[str, Any]:
    if name not in _SCORERS:
        raise ValueError(f"unknown scorer {name!r} (known: {scorers()})")
    return _SCORERS[name](hypotheses, references)


def _streams(references: Sequence[Sequence[str | None]]) -> list[list[str]]:
    # sacrebleu skips a None reference (fewer for that sentence); its hints say str only
    return cast("list[list[str]]", [list(r) for r in references])


@register_scorer("bleu")
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


@register_scorer("chrf")
def chrf(hypotheses: Sequence[str], references: Sequence[Sequence[str | None]]) -> dict[str, Any]:
    """chrF (Popović 2015), sacrebleu defaults (character 6-grams, β = 2)."""
    from sacrebleu.metrics import CHRF

    metric = CHRF()
    res = metric.corpus_score(list(hypotheses), _streams(references))
    return {"score": float(res.score), "signature": str(metric.get_signature())}


def distinct(hypotheses: Sequence[Sequence[str]] | Sequence[str], n: int) -> float:
    """distinct-n (Li et al. 2016): distinct n-grams / all n-grams over all hypotheses
    (token lists, or strings split on whitespace)."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for hyp in hypotheses:
        toks = hyp.split() if isinstance(hyp, str) else list(hyp)
        grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


@register_scorer("distinct_1")
def distinct_1(hypotheses, references=()) -> dict[str, Any]:
    return {"score": distinct(hypotheses, 1)}


@register_scorer("distinct_2")
def distinct_2(hypotheses, references=()) -> dict[str, Any]:
    return {"score": distinct(hypotheses, 2)}
