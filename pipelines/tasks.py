"""The corpus-task registry (like the model families in :mod:`pipelines.models`).

A task is what a corpus asks of a model — ``classify``, ``tag``, ``regress`` (fixed-shape
tensors), ``lm``, ``translate``, ``dialogue`` (text) — and everything that depends on it:
how its corpus is loaded and checked, how an epoch runs (its *job*), how a trained model is
evaluated (metrics and sample rows), its headline metric, the extra test metrics the report
shows, and what is saved beside the weights. ``spec.json``'s ``task`` names it.

    from pipelines import tasks
    t = tasks.get("translate")          # t.name, t.headline, t.higher_is_better, t.report_extras
    tasks.names()                       # every registered task, sorted

A task is a :class:`Task` subclass decorated with ``@register("name")`` in the module
``pipelines/<kind>/<name>.py`` of its kind (:mod:`pipelines.kinds`), imported when the task is
first asked for: adding a task is adding one file. The kind packages' ``__init__`` are the
shared bases: :mod:`pipelines.tensor` (fixed-shape corpora) and :mod:`pipelines.text` (text
corpora, trained-model bundles, decoding; :mod:`pipelines.text.seq2seq` for sentence pairs).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines import kinds

__all__ = [
    "COMMANDS",
    "Task",
    "Evaluation",
    "register",
    "get",
    "names",
    "tasks",
    "for_spec",
    "read_spec",
    "load_corpus",
]


#: The command that runs a model of each text task, and what such a model is called: plain
#: data beside the registry rather than on the Task classes, so that a command checks its
#: input before torch and the task modules load.
COMMANDS: dict[str, tuple[str, str]] = {
    "lm": ("a language model", "generate"),
    "translate": ("a translator", "translate"),
    "dialogue": ("a chatbot", "chat"),
}


class Task:
    """One corpus task. Subclasses set the class attributes and implement the hooks.

    ``headline``: the test metric the report leads with (``higher_is_better`` says which way
    is better); ``monitor``: the validation metric tracked every epoch (``val_<monitor>`` in the
    history; it picks the best epoch), by default the headline; ``report_extras``: test metrics
    shown beside the headline (dotted names: nested keys).
    """

    name: str = ""
    headline: str = "accuracy"
    higher_is_better: bool = True
    monitor: str = ""
    report_extras: tuple[str, ...] = ()
    text: bool = False  # a text task: tokenizer files travel with the model

    def __init__(self) -> None:
        if not self.monitor:
            self.monitor = self.headline

    def __repr__(self) -> str:
        return f"<task {self.name!r}>"

    # hooks (see pipelines.tensor / pipelines.text for the implementations)
    def check_spec(self, spec: dict[str, Any], path: Path) -> None:
        """Raise ``ValueError`` when ``spec`` lacks what this task needs."""

    def load_corpus(self, directory: Path) -> Any:
        """Train + validation splits of a corpus directory (what ``fit`` trains on)."""
        raise NotImplementedError

    def prepare(self, cfg: Any, corpus: Any) -> Any:
        """The corpus as model ``cfg`` sees it (text: own vocabulary, origins); default as is."""
        return corpus

    def make_job(
        self,
        cfg: Any,
        corpus: Any,
        device: Any,
        amp_dtype: Any = None,
        rank: int = 0,
        world: int = 1,
    ) -> Any:
        """The epoch runner: ``losses(model, epoch, gen)``, ``num_batches()``,
        ``validate(model)``, ``n_train``, ``n_validation``."""
        raise NotImplementedError

    def saved_extras(self, corpus: Any) -> dict[str, Any]:
        """Extra entries of ``model.pt`` beside weights, config and spec."""
        return {}

    def evaluate(
        self,
        path: Path,
        model: Any,
        spec: dict[str, Any],
        directory: Path,
        batch_size: int,
        device: Any,
        amp: bool,
        confusion_max_classes: int = 20,
        decode: Any = None,
    ) -> Evaluation:
        """Score a trained model (``model``, loaded from ``path``) on its corpus; ``decode``
        (a :class:`~pipelines.config.DecodeConfig`): how a text model decodes."""
        raise NotImplementedError


class Evaluation:
    """What evaluating a model writes: the metrics body (``metrics/<model>.json`` after
    ``"model"``), sample rows (``reports/samples/<model>.json``) and the confusion pairs."""

    def __init__(
        self,
        metrics: dict[str, Any],
        samples: list[dict[str, Any]],
        confusion: tuple[Any, Any] | None = None,
    ) -> None:
        self.metrics, self.samples, self.confusion = metrics, samples, confusion


_TASKS: dict[str, Task] = {}


def register(name: str) -> Callable[[Any], Any]:
    """Decorator: register a :class:`Task` subclass (or instance) as task ``name``."""

    def deco(obj: type[Task] | Task) -> type[Task] | Task:
        inst = obj() if isinstance(obj, type) else obj
        inst.name = name
        if isinstance(obj, type):
            obj.name = name
        old = _TASKS.get(name)
        if old is not None and type(old) is not type(inst):
            raise ValueError(f"task {name!r} registered twice")
        _TASKS[name] = inst
        return obj

    return deco


def tasks() -> dict[str, Task]:
    """Every registered task by name (both kinds' packages loaded)."""
    for kind in kinds.KINDS:
        kinds.load(kind)
    return dict(_TASKS)


def names() -> list[str]:
    """Names of every registered task, sorted."""
    return sorted(tasks())


def get(name: str) -> Task:
    """The task called ``name``, from the one kind package that holds it (``ValueError`` if
    none does)."""
    if name not in _TASKS:
        kind = kinds.of_task(name)
        importlib.import_module(f"pipelines.{kind}.{name}")
        if name not in _TASKS:
            raise ValueError(f"pipelines/{kind}/{name}.py registers no task {name!r}")
    return _TASKS[name]


def for_spec(spec: dict[str, Any]) -> Task:
    """The task of a corpus or model ``spec``."""
    return get(spec["task"])


def read_spec(directory: Path | str) -> dict[str, Any]:
    """A corpus ``spec.json``, checked by its task."""
    from pipelines.data import read_spec as read

    path = Path(directory) / "spec.json"
    spec = read(directory)
    try:
        task = for_spec(spec)
    except ValueError:
        raise ValueError(f"{path}: unknown task {spec['task']!r}") from None
    task.check_spec(spec, path)
    return spec


def load_corpus(directory: Path | str) -> Any:
    """Train and validation splits of a corpus, as its task loads them."""
    directory = Path(directory)
    return for_spec(read_spec(directory)).load_corpus(directory)
