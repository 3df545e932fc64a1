"""The trained text model a user command runs, checked for the command before it is used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.cli import fail, task_error

if TYPE_CHECKING:
    from pipelines.text import Bundle


def load_text_model(command: str, model: str, root: str | None) -> Bundle | int:
    """Model ``model`` (under ``root``'s ``models/``) for ``rnnflow command``, or the exit code
    after telling the user in one line why it cannot serve: missing, failing its integrity
    check, or trained for another task (read from the model itself, so a root without
    params.yaml is checked too)."""
    from pipelines import text

    bundle = text.load_for_cli(command, model, root)
    if bundle is None:
        return 2
    task = bundle.spec["task"]
    if error := task_error(command, model, task, f"task {task}"):
        return fail(command, error)
    if bundle.codec is None:  # a text task's bundle always has one
        return fail(command, f"{model} has no text codec")
    return bundle
