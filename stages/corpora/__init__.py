"""Corpus adapters: one small module per corpus, registered by name.

A hop module (``stages/clean.py`` …) knows *how* a hop runs — streaming, validation,
atomic output; an adapter knows *what* its corpus needs at that hop. Adding a corpus is
one module plus one line in :data:`REGISTRY`. Adapters are imported lazily so a stage
pays only for the corpus it runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stages.corpora.base import Corpus

# name → "module:Class"
REGISTRY: dict[str, str] = {
    "mnist": "stages.corpora.mnist:Mnist",
    "parity": "stages.corpora.bitstrings:Parity",
    "counting": "stages.corpora.bitstrings:Counting",
    "addition": "stages.corpora.addition:Addition",
    "timeseries": "stages.corpora.timeseries:TimeSeries",
    "es_en": "stages.corpora.es_en:EsEn",
    "twitter": "stages.corpora.twitter:Twitter",
    "books": "stages.corpora.books:Books",
}


def names() -> list[str]:
    """Every registered corpus name."""
    return sorted(REGISTRY)


def get(name: str) -> Corpus:
    """Instantiate the adapter registered under ``name``."""
    try:
        target = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown corpus {name!r} (known: {names()})") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)()
