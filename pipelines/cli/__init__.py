"""User commands over trained models: ``translate``, ``chat``, ``generate``, and ``ddp_train``
(data-parallel training under ``torchrun``).

The helpers below check a command's input before anything is loaded: a wrong value or a
model of the wrong kind is a mistake of the user's, told in one line with exit code 2 (as
argparse does), never a traceback after seconds of loading torch and a model. They import
nothing heavy (params.yaml and the typed config only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.config import ModelConfig

#: The task of each text corpus, as its data side writes it into ``spec.json``: named here
#: because the training side neither imports the data side nor can read a corpus's spec
#: before the data exists, and a command checks its input before anything is loaded.
CORPUS_TASKS: dict[str, str] = {"books": "lm", "es_en": "translate", "twitter": "dialogue"}


# --- argparse ``type=`` functions: argparse turns their message into `error: argument ...` ---


def _int_from(low: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < low:
        wanted = "a positive integer" if low == 1 else f"{low} or more"
        raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
    return value


def positive_int(text: str) -> int:
    """An int ≥ 1 (a beam, a length, a count: 0 would silently mean "the default" or nothing)."""
    return _int_from(1, text)


def non_negative_int(text: str) -> int:
    """An int ≥ 0 (``--top-k``, where 0 means "all tokens")."""
    return _int_from(0, text)


def temperature(text: str) -> float:
    """A sampling temperature: a finite float above 0. Zero is refused rather than read as
    greedy: ``--greedy`` says that, and the models' params refuse 0 too."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"must be above 0, got {text} (for the most likely word each step, use --greedy)"
        )
    return value


# --- which model fits which command --------------------------------------------------------


def task_of(cfg: ModelConfig) -> str | None:
    """The text task of a ``train.models`` entry, None for a model no text command runs."""
    return CORPUS_TASKS.get(cfg.corpus)


def command_for(task: str | None) -> str | None:
    """The command that runs a model of text task ``task``; None for any other model."""
    from pipelines.tasks import COMMANDS

    return None if task is None or task not in COMMANDS else COMMANDS[task][1]


def task_error(command: str, name: str, task: str | None, detail: str) -> str | None:
    """Why model ``name`` of text task ``task`` (None: none) does not fit ``rnnflow command``,
    with ``detail`` saying where the kind comes from; None if it fits."""
    from pipelines.tasks import COMMANDS

    if task is None or task not in COMMANDS:
        return (
            f"{name} is not a text model that rnnflow translate, chat or generate runs "
            f"({detail}): its scores come from `dvc repro evaluate@{name}` (metrics/{name}.json)"
        )
    what, fits = COMMANDS[task]
    if fits == command:
        return None
    return f"{name} is {what} ({detail}): use `rnnflow {fits} --model {name}`"


def model_error(command: str, name: str, root: str | None) -> str | None:
    """Why model ``name`` cannot serve ``rnnflow command``, from the root's params.yaml
    (``train.models``), before any weights are read; None if it can.

    A root without params.yaml (a bare folder of models) is not checked here: the loaded
    model's own task is, with :func:`task_error`.
    """
    from pipelines.config import TrainConfig
    from rnnflow.config import PARAMS_FILE, ConfigError, load_params, parse

    params = Path(root) / "params.yaml" if root else PARAMS_FILE
    if not params.exists():
        return None
    try:
        models = parse(TrainConfig, load_params(params), "train").models
    except ConfigError as exc:
        return str(exc)
    if name not in models:
        fitting = sorted(m for m, cfg in models.items() if command_for(task_of(cfg)) == command)
        return (
            f"unknown model {name!r}; for `rnnflow {command}`: {', '.join(fitting) or 'none'} "
            f"(train.models in {params}: {', '.join(sorted(models))})"
        )
    cfg = models[name]
    return task_error(command, name, task_of(cfg), f"{cfg.family} on {cfg.corpus}")


def fail(command: str, message: str) -> int:
    """Tell the user ``message`` as argparse tells an error (one line on stderr); exit code 2."""
    print(f"rnnflow {command}: error: {message}", file=sys.stderr)
    return 2
