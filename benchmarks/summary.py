"""Quality and training wall time of every model, read from a finished DAG run.

    make repro PROFILE=offline && python benchmarks/summary.py [--root DIR]

Prints one Markdown row per model of ``params.yaml``: the headline test metric(s) from
``metrics/<model>.json``, the training wall time, device and data sizes from
``metrics/<model>_train.json``. This is how the tables in BENCHMARKS.md are made.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# benchmarks/tokenize.py shadows the stdlib ``tokenize`` (imported by ``inspect``): take
# this directory off the path before anything imports it.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
ROOT = _HERE.parent
sys.path.insert(0, str(ROOT))

from rnnflow.config import load_params  # noqa: E402

HEADLINES = ("accuracy", "parity_accuracy", "bit_accuracy", "sequence_accuracy", "rmse",
             "baseline_rmse", "perplexity", "baseline_perplexity", "bleu", "chrf",
             "distinct_2")


def rows(root: Path) -> list[str]:
    """Markdown table rows for every model with metrics under ``root``."""
    models = load_params(root / "params.yaml")["train"]["models"]
    out = ["| model | test metrics | train wall (s) | epochs | device | n_train |",
           "|---|---|---|---|---|---|"]
    for name in models:
        path = root / "metrics" / f"{name}.json"
        if not path.exists():
            out.append(f"| {name} | (no metrics: stage not run) | | | | |")
            continue
        test = json.loads(path.read_text()).get("test", {})
        shown = ", ".join(f"{k} {test[k]:.4g}" for k in HEADLINES
                          if isinstance(test.get(k), (int, float)))
        train = json.loads((root / "metrics" / f"{name}_train.json").read_text())
        out.append(f"| {name} | {shown} (n={test.get('n')}) | {train.get('wall_seconds')} | "
                   f"{train.get('epochs')} | {train.get('device')} | {train.get('n_train')} |")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="project root of the run")
    args = parser.parse_args(argv)
    print("\n".join(rows(args.root)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
