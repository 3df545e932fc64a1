"""Model families, one file each, found through a registry (as OpenNMT-py registers its parts).

A family is a ``nn.Module`` subclass decorated with ``@register("name", tasks=...)`` and a
``from_config(cfg, spec)`` classmethod. Every module in this package is imported on first use,
so adding a family is adding one file. ``tasks`` names the corpus tasks (``pipelines/tasks/``)
a family can be built for.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from torch import nn

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


def _discover() -> None:
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


def families() -> dict[str, Family]:
    """Every registered family by name."""
    _discover()
    return dict(_FAMILIES)


def build_model(family: str, cfg: Any, spec: dict[str, Any]) -> nn.Module:
    """A fresh model of ``family`` for a corpus ``spec``, configured by ``cfg`` (ModelConfig)."""
    known = families()
    if family not in known:
        raise ValueError(f"unknown model family {family!r} (known: {sorted(known)})")
    fam = known[family]
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
