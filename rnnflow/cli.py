"""``rnnflow``: one command line over the hops, the flows and the params profiles.

Each hop and flow is also runnable on its own (``python -m stages.fetch mnist``); this
entry point only dispatches, so DVC, a user and Prefect all run the same code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rnnflow.config import PROFILES_DIR, ConfigError, apply_profile, flatten, profile_overlay

_HOPS = ("fetch", "clean", "format", "sample", "tokenize")
_FLOWS = ("train", "evaluate", "report")
_TOOLS = {
    "translate": "translate Spanish to English with the trained translator",
    "chat": "chat with the trained chatbot (stdin)",
    "generate": "generate text with the trained language model",
}
# Operations (pipelines/ops/<name>.py): runs from the Prefect UI, retraining, comparisons, search.
_OPS = {
    "repro": "dvc repro of chosen stages with params overrides, as a Prefect flow",
    "serve": "serve the flows as Prefect deployments (UI runs, scheduled retraining)",
    "retrain": "retrain a model and promote it only if it beats the champion",
    "compare": "one HTML page comparing metrics, params and curves of two commits",
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


def set_params_args(name: str) -> list[str]:
    """``-S key=value`` arguments of ``dvc exp run`` for ``profiles/<name>.yaml``; keys that
    params.yaml does not have yet are added (Hydra's ``+key=value``)."""
    from rnnflow.config import PARAMS_FILE, load_params, section

    params = load_params(PARAMS_FILE)
    args = []
    for key, value in flatten(profile_overlay(name)).items():
        try:
            section(params, key)
            plus = ""
        except ConfigError:
            plus = "+"
        args += ["-S", f"{plus}{key}={override_value(value)}"]
    return args


def _profile(args: argparse.Namespace) -> int:
    if args.exp_run:
        import subprocess
        import time

        try:
            overrides = set_params_args(args.name)
        except ConfigError as exc:
            print(f"rnnflow profile: error: {exc}", file=sys.stderr)
            return 2
        name = f"{args.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        cmd = ["dvc", "exp", "run", "--name", name, *overrides]
        print("+ " + " ".join(cmd), file=sys.stderr)
        code = subprocess.call(cmd)
        if code == 0:
            print(
                f"profile {args.name}: ran as DVC experiment {name!r}. params.yaml holds "
                f"its values until you `git checkout params.yaml dvc.lock` (or `dvc exp "
                f"apply` another); `dvc exp show` compares it with the main job.",
                file=sys.stderr,
            )
        return code
    if args.list or not args.name:
        for path in sorted(PROFILES_DIR.glob("*.yaml")):
            first = next(
                (ln[2:].strip() for ln in path.read_text().splitlines() if ln.startswith("# ")), ""
            )
            print(f"{path.stem:10s} {first}")
        return 0
    try:
        if args.dry_run:
            import shlex

            print(" ".join(shlex.quote(a) for a in set_params_args(args.name)))
            return 0
        changed = apply_profile(args.name)
    except ConfigError as exc:
        print(f"rnnflow profile: error: {exc}", file=sys.stderr)
        return 2
    if changed:
        print(f"profile {args.name}: params.yaml changed at {', '.join(changed)}")
    else:
        print(f"profile {args.name}: params.yaml already matches")
    return 0


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
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
