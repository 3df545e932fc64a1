"""``rnnflow``: one command line over the hops, the flows and the params profiles.

Each hop and flow is also runnable on its own (``python -m stages.fetch mnist``); this
entry point only dispatches, so DVC, a user and Prefect all run the same code.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

from rnnflow.config import ConfigError, flatten, load_params, section
from rnnflow.env import PROJECT_ROOT

_HOPS = ("fetch", "clean", "format", "sample", "tokenize")
_FLOWS = ("train", "evaluate", "report")
_TOOLS = {
    "translate": "translate Spanish to English with the trained translator",
    "chat": "chat with the trained chatbot (stdin)",
    "generate": "generate text with the trained language model",
}
# Operations (pipelines/ops/<name>.py): runs from the Prefect UI, retraining, search.
_OPS = {
    "repro": "dvc repro of chosen stages with params overrides, as a Prefect flow",
    "serve": "serve the flows as Prefect deployments (UI runs, scheduled retraining)",
    "retrain": "retrain a model and promote it only if it beats the champion",
    "search": "hyperparameter search (grid, random, TPE), each trial a DVC experiment",
}


def override_value(value: object) -> str:
    """A params value as ``dvc exp run -S`` (Hydra's override grammar) reads it."""
    import json

    if isinstance(value, str):
        return (
            value
            if value.replace("_", "").replace("-", "").replace(".", "").isalnum()
            else json.dumps(value)
        )
    return json.dumps(value, separators=(",", ":"))


def _ops(module: str):
    """``pipelines.ops.<module>`` (``params``: the params rule; ``workspace``: the lock),
    imported by name: the core stays below both sides it starts, as the dispatch below does."""
    return importlib.import_module(f"pipelines.ops.{module}")


def set_params_args(name: str, root: Path = PROJECT_ROOT) -> list[str]:
    """``-S key=value`` arguments of ``dvc exp run`` for ``profiles/<name>.yaml``, after the
    profile passed the params rule; fields that params.yaml leaves at their defaults are
    added (Hydra's ``+key=value``)."""
    P = _ops("params")
    overlay = P.load_profile(root, name)
    P.plan_params(root / "params.yaml", overlay)  # refuses what `rnnflow profile` would
    params = load_params(root / "params.yaml")
    args = []
    for key, value in flatten(overlay).items():
        plus = "" if _has(params, key) else "+"
        args += ["-S", f"{plus}{key}={override_value(value)}"]
    return args


def _has(params: dict, dotted: str) -> bool:
    try:
        section(params, dotted)
        return True
    except ConfigError:
        return False


@contextlib.contextmanager
def _locked(root: Path, what: str, wait: bool) -> Iterator[None]:
    """Hold the workspace lock; without ``wait`` refuse at once when another process has it."""
    W = _ops("workspace")
    try:
        with W.workspace_lock(root, what, timeout=None if wait else 0):
            yield
    except W.WorkspaceBusy as exc:
        raise ConfigError(f"the workspace is busy: {exc} (pass --wait to wait for it)") from None


def _profile(args: argparse.Namespace) -> int:
    root = Path(args.root).resolve()
    if args.list or not args.name:
        for path in sorted((root / "profiles").glob("*.yaml")):
            first = next(
                (ln[2:].strip() for ln in path.read_text().splitlines() if ln.startswith("# ")), ""
            )
            print(f"{path.stem:10s} {first}")
        return 0
    try:
        if args.dry_run:
            import shlex

            print(" ".join(shlex.quote(a) for a in set_params_args(args.name, root)))
            return 0
        with _locked(root, f"rnnflow profile {args.name}", args.wait):
            changed = _ops("params").apply_profile(root, args.name)
            if args.exp_run:
                return _exp_run(root, args.name)
    except ConfigError as exc:
        print(f"rnnflow profile: error: {exc}", file=sys.stderr)
        return 2
    if changed:
        print(f"profile {args.name}: params.yaml changed at {', '.join(changed)}")
    else:
        print(f"profile {args.name}: params.yaml already matches")
    return 0


def _exp_run(root: Path, profile: str) -> int:
    """``dvc exp run`` of the workspace the profile was just applied to (the lock is held;
    the command is waited for, signals passed on, as under ``rnnflow locked``)."""
    import os
    import time

    name = f"{profile}-{time.strftime('%Y%m%d-%H%M%S')}"
    cmd = ["dvc", "exp", "run", "--name", name]
    print("+ " + " ".join(cmd), file=sys.stderr)
    os.chdir(root)
    code = importlib.import_module("pipelines.ops.prefect_session").run_command(cmd)
    if code == 0:
        print(
            f"profile {profile}: ran as DVC experiment {name!r}. params.yaml holds "
            f"its values until you `git checkout params.yaml dvc.lock` (or `dvc exp "
            f"apply` another); `dvc exp show` compares it with the main job.",
            file=sys.stderr,
        )
    return code


def _deps(args: argparse.Namespace) -> int:
    """``rnnflow deps``: every dvc.yaml stage's deps cover its command's import closure (exit
    1 and one line per file missing); ``--write`` rewrites them, holding the workspace lock."""
    from dvc.exceptions import DvcException  # type: ignore[import-untyped]

    from rnnflow import deps

    root = Path(args.root).resolve()
    try:
        if not (root / "dvc.yaml").is_file():
            raise ConfigError(f"no dvc.yaml in {root}")
        if args.write:
            with _locked(root, "rnnflow deps --write", args.wait):
                changed = deps.write(root)
            print("dvc.yaml: deps " + ("rewritten" if changed else "already match"))
            return 0
        missing = deps.check(root)
    except (ConfigError, ValueError, OSError, DvcException) as exc:
        print(f"rnnflow deps: error: {exc}", file=sys.stderr)
        return 2
    for line in missing:
        print(line)
    if missing:
        print(
            f"{len(missing)} imported file(s) not among their stage's deps: "
            "`rnnflow deps --write` adds them",
            file=sys.stderr,
        )
        return 1
    print("every stage's deps cover its imports")
    return 0


def _run_locked(argv: list[str]) -> int:
    """``rnnflow locked [--wait] [--root DIR] -- CMD ...``: run CMD in the project holding the
    workspace lock; its exit code. Signals are passed on and the command is waited for, so
    the lock is never let go while the command still runs."""
    import os

    parser = argparse.ArgumentParser(
        prog="rnnflow locked",
        description="run a command (e.g. `dvc repro`) holding the workspace lock, so no "
        "profile, flow or second run changes params.yaml or runs DVC meanwhile",
    )
    parser.add_argument("--root", default=str(PROJECT_ROOT), help="project root")
    parser.add_argument("--wait", action="store_true", help="wait for the lock, do not refuse")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("no command given (rnnflow locked -- dvc repro)")
    root = Path(args.root).resolve()
    session = importlib.import_module("pipelines.ops.prefect_session")
    try:
        with _locked(root, " ".join(cmd), args.wait):
            os.chdir(root)
            return session.run_command(cmd)
    except ConfigError as exc:
        print(f"rnnflow locked: error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``rnnflow <command> ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="rnnflow",
        description="Real corpora → validated Parquet (DVC hops) → trained sequence models "
        "(Prefect flows). Usually run through `dvc repro`; each command below "
        "is one DVC stage.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for hop in _HOPS:
        sub.add_parser(
            hop,
            help=f"run the {hop} hop for one corpus (see `rnnflow {hop} --help`)",
            add_help=False,
        )
    for flow in _FLOWS:
        sub.add_parser(
            flow, help=f"run the {flow} flow (see `rnnflow {flow} --help`)", add_help=False
        )
    for op, text in _OPS.items():
        sub.add_parser(op, help=f"{text} (see `rnnflow {op} --help`)", add_help=False)
    for tool, what in _TOOLS.items():
        sub.add_parser(tool, help=f"{what} (see `rnnflow {tool} --help`)", add_help=False)
    prof = sub.add_parser("profile", help="run or apply profiles/NAME.yaml (sizes: ci, gpu)")
    prof.add_argument("name", nargs="?", help="profile name (ci, gpu, ...)")
    prof.add_argument("--list", action="store_true", help="list the profiles")
    prof.add_argument(
        "--exp-run",
        action="store_true",
        help="run the DAG with the profile as a DVC experiment (`dvc exp run -S "
        "...`); what `make repro PROFILE=NAME` does",
    )
    prof.add_argument(
        "--dry-run", action="store_true", help="print the overrides as `dvc exp run -S` arguments"
    )
    prof.add_argument("--root", default=str(PROJECT_ROOT), help="project root")
    prof.add_argument(
        "--wait",
        action="store_true",
        help="wait while another run holds the workspace (default: refuse at once)",
    )
    deps = sub.add_parser(
        "deps",
        help="check that every dvc.yaml stage lists the files its command imports as deps",
        description="Check that every dvc.yaml stage's deps cover its command's import closure "
        "(function-local imports and modules loaded by name included); with --write, "
        "rewrite each stage's code deps to exactly that closure.",
    )
    deps.add_argument(
        "--write",
        action="store_true",
        help="rewrite dvc.yaml's code deps (data deps, ${item.*} entries and package folders stay)",
    )
    deps.add_argument("--root", default=str(PROJECT_ROOT), help="project root")
    deps.add_argument(
        "--wait",
        action="store_true",
        help="with --write: wait while another run holds the workspace (default: refuse)",
    )
    sub.add_parser("locked", help="run a command holding the workspace lock (make repro's dvc)")
    sub.add_parser(
        "verify",
        help="check every output in dvc.lock (and with --cache the DVC cache) against its bytes",
        add_help=False,
    )

    sub.add_parser(
        "plots-template",
        help="write the `dvc plots show` template with Vega inline (renders offline)",
        add_help=False,
    )

    if argv and argv[0] == "locked":
        return _run_locked(argv[1:])
    if argv and argv[0] == "verify":
        return int(importlib.import_module("pipelines.integrity").main(argv[1:]))
    if argv and argv[0] == "plots-template":
        return int(importlib.import_module("pipelines.ops.plots").main(argv[1:]))
    if argv and argv[0] in (*_HOPS, *_FLOWS, *_OPS, *_TOOLS):
        # Dispatch by module name, not import: the core stays below both sides it starts.
        package = (
            "stages"
            if argv[0] in _HOPS
            else "pipelines.flows"
            if argv[0] in _FLOWS
            else "pipelines.cli"
            if argv[0] in _TOOLS
            else "pipelines.ops"
        )
        module = importlib.import_module(f"{package}.{argv[0]}")
        return int(module.main(argv[1:]) or 0)
    args = parser.parse_args(argv)
    if args.command == "profile":
        return _profile(args)
    if args.command == "deps":
        return _deps(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
