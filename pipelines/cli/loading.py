"""What the text model commands (chat, generate, translate) share: their options, and the
trained model each runs, checked for the command before it is used."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pipelines.cli import fail, model_error, non_negative_int, task_error, temperature

if TYPE_CHECKING:
    import torch

    from pipelines.config import DecodeConfig
    from pipelines.text import Bundle, Codec


def text_parser(command: str, doc: str, model: str) -> argparse.ArgumentParser:
    """``rnnflow command``'s parser: ``doc``'s first paragraph as description, the rest as
    epilog, ``--model`` (default ``model``) and ``--root``."""
    parser = argparse.ArgumentParser(
        prog=f"rnnflow {command}",
        description=doc.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=doc.split("\n\n", 1)[1],
    )
    parser.add_argument(
        "--model", default=model, help="model name under models/ (default: %(default)s)"
    )
    parser.add_argument("--root", default=None, help="project root (default: this checkout)")
    return parser


def sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """``--top-k``, ``--temperature`` (both default to the model's params) and ``--seed``."""
    parser.add_argument(
        "--top-k",
        type=non_negative_int,
        default=None,
        help="sampling: the k most likely words, 0 = all (default: params)",
    )
    parser.add_argument(
        "--temperature",
        type=temperature,
        default=None,
        help="sampling temperature, above 0 (default: params); 0 is refused: use --greedy",
    )
    parser.add_argument("--seed", type=int, default=None, help="sampling seed (default: random)")


def sampling(bundle: Bundle, args: argparse.Namespace) -> tuple[DecodeConfig, torch.Generator]:
    """The model's decoding with the ``--top-k``/``--temperature`` given, and a generator
    seeded by ``--seed`` (else at random)."""
    import torch

    given = {k: v for k in ("top_k", "temperature") if (v := getattr(args, k)) is not None}
    gen = torch.Generator()
    gen.manual_seed(args.seed) if args.seed is not None else gen.seed()
    return bundle.decode.model_copy(update=given), gen


def load_text_model(command: str, model: str, root: str | None) -> tuple[Bundle, Codec] | int:
    """Model ``model`` (under ``root``'s ``models/``) for ``rnnflow command`` and its text codec,
    or the exit code after telling the user in one line why it cannot serve: not a model of the
    project, missing, failing its integrity check, or trained for another task (read from the
    model itself, so a root without params.yaml is checked too)."""
    # Before torch and the model load: a wrong model is told at once, in one line.
    if error := model_error(command, model, root):
        return fail(command, error)
    from pipelines import text

    bundle = text.load_for_cli(command, model, root)
    if bundle is None:
        return 2
    task = bundle.spec["task"]
    if error := task_error(command, model, task, f"task {task}"):
        return fail(command, error)
    if bundle.codec is None:  # a text task's bundle always has one
        return fail(command, f"{model} has no text codec")
    return bundle, bundle.codec
