"""The data half of the DAG (every hop of every corpus), as ``dvc repro`` runs it.

    python benchmarks/data_half.py [--root CHECKOUT] [--repeat 1] [--targets tokenize]

Runs ``dvc repro --force <targets>`` (default ``tokenize``: its upstream is every fetch, clean,
format, sample and tokenize stage, 40 here) in ``--root`` ``--repeat`` times, each hop a
``python -m stages.<hop>`` process as DVC starts it. Wall time includes DVC's own work per stage
(hashing, caching outputs, rewriting dvc.lock), so it is what a user waits for.
``$RNNFLOW_MIRROR`` (default ``../shared/corpora``) serves the sources.

The checkout must be up to date first (``dvc status`` clean for the targets): a forced run
then must leave dvc.lock byte-identical, which the script checks after every run — the hops
wrote exactly the locked outputs. Prints the fastest time; writes
``benchmarks/results/data_half.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def dvc_env(mirror: str) -> dict[str, str]:
    """This environment, with this interpreter's ``python``/``dvc`` first on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(RNNFLOW_MIRROR=mirror, DVC_NO_ANALYTICS="1")
    return env


def dvc(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )


def timed_run(root: Path, env: dict[str, str], targets: list[str]) -> dict:
    """One forced run of ``targets``; its wall seconds and stage count."""
    began = time.perf_counter()
    out = dvc(root, env, "repro", "--force", *targets)
    wall = time.perf_counter() - began
    if out.returncode != 0:
        raise SystemExit(f"dvc repro failed:\n{out.stderr[-3000:]}")
    return {"wall_s": round(wall, 2), "stages": (out.stdout + out.stderr).count("Running stage")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="an up-to-date checkout")
    parser.add_argument("--repeat", type=int, default=1, help="runs (default 1)")
    parser.add_argument(
        "--targets", nargs="+", default=["tokenize"], help="dvc repro targets (default: tokenize)"
    )
    parser.add_argument(
        "--mirror",
        default=os.environ.get("RNNFLOW_MIRROR", str(ROOT.parent / "shared" / "corpora")),
        help="RNNFLOW_MIRROR (default: $RNNFLOW_MIRROR or ../shared/corpora)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/data_half.json")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    env = dvc_env(args.mirror)

    status = dvc(root, env, "status", "--json", *args.targets)
    if status.returncode != 0 or json.loads(status.stdout or "{}"):
        raise SystemExit(f"{root}: {' '.join(args.targets)} not up to date; `dvc repro` first")
    lock = (root / "dvc.lock").read_bytes()
    load_start = os.getloadavg()
    runs = []
    for rep in range(args.repeat):
        run = timed_run(root, env, args.targets)
        run["lock_unchanged"] = (root / "dvc.lock").read_bytes() == lock
        runs.append(run)
        print(f"[{rep + 1}/{args.repeat}] {run}", file=sys.stderr)
        if not run["lock_unchanged"]:
            raise SystemExit("dvc.lock changed: the outputs differ from the locked ones")

    doc = {
        "what": f"wall seconds of `dvc repro --force {' '.join(args.targets)}`",
        "stages": runs[0]["stages"],
        "repeat": args.repeat,
        "wall_s": min(r["wall_s"] for r in runs),
        "runs": runs,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg_at_start": list(load_start),
            "load_avg_at_end": list(os.getloadavg()),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(f"{doc['stages']} stages: {doc['wall_s']:.1f} s; dvc.lock unchanged")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
