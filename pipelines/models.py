"""The model-family registry (as OpenNMT-py registers its parts).

A family is a ``nn.Module`` subclass decorated with ``@register("name", tasks=...)`` and a
``from_config(cfg, spec)`` classmethod, in a module of its kind's package (``pipelines/tensor/``
or ``pipelines/text/``, :mod:`pipelines.kinds`); its config class in :mod:`pipelines.config`
names the kind. ``tasks`` names the corpus tasks a family can be built for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from torch import nn

from pipelines import kinds
from rnnflow.codec import BOS, EOS, PAD, UNK  # noqa: F401  one definition, in the core


class Buildable(Protocol):
    """What ``register`` checks a family class for."""

    @classmethod
    def from_config(cls, cfg: Any, spec: dict[str, Any]) -> nn.Module: ...


@dataclass(frozen=True)
class Family:
    name: str
    cls: type[Buildable]
    tasks: tuple[str, ...]


_FAMILIES: dict[str, Family] = {}


def register(name: str, tasks: tuple[str, ...] = ("classify",)) -> Callable[[type], type]:
    """Class decorator: make ``cls`` buildable as family ``name`` for the given spec tasks."""

    def deco(cls: type) -> type:
        if name in _FAMILIES and _FAMILIES[name].cls is not cls:
            raise ValueError(f"model family {name!r} registered twice")
        if not hasattr(cls, "from_config"):
            raise TypeError(f"{cls.__name__} needs a from_config(cfg, spec) classmethod")
        _FAMILIES[name] = Family(name, cls, tuple(tasks))
        return cls

    return deco


def families() -> dict[str, Family]:
    """Every registered family by name (both kinds' packages loaded)."""
    for kind in kinds.KINDS:
        kinds.load(kind)
    return dict(_FAMILIES)


def build_model(family: str, cfg: Any, spec: dict[str, Any]) -> nn.Module:
    """A fresh model of ``family`` for a corpus ``spec``, configured by ``cfg`` (ModelConfig).
    Only the family's kind is loaded."""
    from pipelines.config import FAMILIES

    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r} (known: {sorted(FAMILIES)})")
    kinds.load(FAMILIES[family].kind)
    if family not in _FAMILIES:
        raise ValueError(f"model family {family!r}: no module of pipelines/ registers it")
    fam = _FAMILIES[family]
    if spec["task"] not in fam.tasks:
        raise ValueError(
            f"family {family!r} handles tasks {list(fam.tasks)}, corpus task is {spec['task']!r}"
        )
    return fam.cls.from_config(cfg, spec)


def text_vocab_size(spec: dict[str, Any], side: str) -> int:
    """Vocabulary size of one side (``ids``, ``source``, ``target``) of a text model: its own
    vocabulary (``spec["model_vocab"][side]``, set by training) or the corpus's."""
    own = (spec.get("model_vocab") or {}).get(side)
    return len(own) if own is not None else int(spec["vocab_size"])
