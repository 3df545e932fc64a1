"""The two kinds of corpus, each a package of its model families and corpus tasks:
:mod:`pipelines.tensor` (fixed-shape tensors: MNIST and the synthetic corpora) and
:mod:`pipelines.text` (token streams and sentence pairs).

A stage loads the package of its model's kind and nothing of the other, so dvc.yaml makes
each train and evaluate stage depend on that one package (``vars.models.<model>.code``):
editing the translator leaves every MNIST model up to date.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

KINDS = ("tensor", "text")
_HERE = Path(__file__).parent


def load(kind: str) -> None:
    """Import every module of ``pipelines.<kind>``: its families and tasks register."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (known: {list(KINDS)})")
    package = importlib.import_module(f"pipelines.{kind}")
    for mod in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"pipelines.{kind}.{mod.name}")


def _folders(kind: str) -> list[Path]:
    # the package's own path once it is imported (a test may add a folder), its folder before:
    # finding a task's kind imports no package
    package = sys.modules.get(f"pipelines.{kind}")
    return [Path(p) for p in package.__path__] if package else [_HERE / kind]


def of_task(name: str) -> str:
    """The kind whose package holds task ``name`` (its module is ``pipelines/<kind>/<name>.py``)."""
    for kind in KINDS:
        if any((folder / f"{name}.py").is_file() for folder in _folders(kind)):
            return kind
    raise ValueError(f"unknown task {name!r}: no pipelines/<kind>/{name}.py for kind in {KINDS}")
