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
_TOOLS = {"translate": "translate Spanish to English with the trained translator",
          "chat": "chat with the trained chatbot (stdin)",
          "generate": "generate text with the trained language model"}
# Operations (pipelines/<name>.py): runs from the Prefect UI, retraining, comparisons, search.
_OPS = {
    "repro": "dvc repro of chosen stages with params overrides, as a Prefect flow",
    "serve": "serve the flows as Prefect deployments (UI runs, scheduled retraining)",
    "retrain": "retrain a model and promote it only if it beats the champion",
    "compare": "one HTML page comparing metrics, params and curves of two commits",
    "search": "hyperparameter search (grid, random, TPE), each trial a DVC experiment",
}


def _profile(args: argparse.Namespace) -> int:
    if args.list or not args.name:
        for path in sorted(PROFILES_DIR.glob("*.yaml")):
            first = next((ln[2:].strip() for ln in path.read_text().splitlines()
                          if ln.startswith("# ")), "")
            print(f"{path.stem:10s} {first}")
        return 0
    try:
        if args.dry_run:
            for key, value in flatten(profile_overlay(args.name)).items():
                print(f"-S {key}={value}")
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
                    "is one DVC stage.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for hop in _HOPS:
        sub.add_parser(hop, help=f"run the {hop} hop for one corpus (see `rnnflow {hop} --help`)",
                       add_help=False)
    for flow in _FLOWS:
        sub.add_parser(flow, help=f"run the {flow} flow (see `rnnflow {flow} --help`)",
                       add_help=False)
    for op, text in _OPS.items():
        sub.add_parser(op, help=f"{text} (see `rnnflow {op} --help`)", add_help=False)
    for tool, what in _TOOLS.items():
        sub.add_parser(tool, help=f"{what} (see `rnnflow {tool} --help`)", add_help=False)
    prof = sub.add_parser("profile", help="overlay profiles/NAME.yaml onto params.yaml")
    prof.add_argument("name", nargs="?", help="profile name (offline, ci, ...)")
    prof.add_argument("--list", action="store_true", help="list the profiles")
    prof.add_argument("--dry-run", action="store_true",
                      help="print the overrides as `dvc exp run -S` arguments instead")

    if argv and argv[0] in (*_HOPS, *_FLOWS, *_OPS, *_TOOLS):
        package = "stages" if argv[0] in _HOPS else "pipelines"
        module = importlib.import_module(f"{package}.{argv[0]}")
        return int(module.main(argv[1:]) or 0)
    args = parser.parse_args(argv)
    if args.command == "profile":
        return _profile(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
