"""The data half of the DAG (every hop of every corpus), each hop in a fresh process vs served.

    python benchmarks/data_half.py [--root CHECKOUT] [--repeat 1] [--targets tokenize]

Runs ``dvc repro --force <targets>`` (default ``tokenize``: its upstream is every fetch, clean,
format, sample and tokenize stage, 40 here) in ``--root`` twice per repeat, alternating: once
with each hop a fresh ``python -m stages.<hop>`` process (what plain ``dvc repro`` does), once
with the hops forked from one hop server (``rnnflow.hopserver``, what ``make repro`` starts; its
log must show every stage served). Wall time includes DVC's own work per stage (hashing,
caching outputs, rewriting dvc.lock), so it is what a user waits for. ``$RNNFLOW_MIRROR``
(default ``../shared/corpora``) serves the sources.

The checkout must be up to date first (``dvc status`` clean for the targets): a forced run
then must leave dvc.lock byte-identical, which the script checks after every run — the served
hops wrote exactly what fresh processes write. Prints both times and the ratio; writes
``benchmarks/results/data_half.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # a checkout that is not pip-installed

from rnnflow.hopserver import ENV, hop_server  # noqa: E402


def dvc_env(mirror: str) -> dict[str, str]:
    """This environment, with this interpreter's ``python``/``dvc`` first on PATH."""
    env = {k: v for k, v in os.environ.items() if k != ENV}
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


def timed_run(root: Path, env: dict[str, str], targets: list[str], served: bool) -> dict:
    """One forced run of ``targets``; its wall seconds and stage count (and hops served)."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        log = Path(tmp) / "hopserver.log"
        run_env = dict(env)
        if served:
            address = stack.enter_context(hop_server(log, quiet=True, cwd=root, env=env))
            run_env[ENV] = str(address)
        began = time.perf_counter()
        out = dvc(root, run_env, "repro", "--force", *targets)
        wall = time.perf_counter() - began
        if out.returncode != 0:
            raise SystemExit(
                f"dvc repro failed ({'served' if served else 'fresh'}):\n{out.stderr[-3000:]}"
            )
        stages = (out.stdout + out.stderr).count("Running stage")
        hops = (
            sum(line.startswith("pid ") for line in log.read_text().splitlines()) if served else 0
        )
    return {
        "mode": "served" if served else "fresh",
        "wall_s": round(wall, 2),
        "stages": stages,
        "served_hops": hops,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="an up-to-date checkout")
    parser.add_argument("--repeat", type=int, default=1, help="runs per mode (default 1)")
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
        for served in (False, True):
            run = timed_run(root, env, args.targets, served)
            run["lock_unchanged"] = (root / "dvc.lock").read_bytes() == lock
            runs.append(run)
            print(f"[{rep + 1}/{args.repeat}] {run}", file=sys.stderr)
            if not run["lock_unchanged"]:
                raise SystemExit("dvc.lock changed: the outputs differ from the locked ones")
            if served and run["served_hops"] != run["stages"]:
                raise SystemExit(f"only {run['served_hops']} of {run['stages']} hops served")

    best = {m: min(r["wall_s"] for r in runs if r["mode"] == m) for m in ("fresh", "served")}
    doc = {
        "what": f"wall seconds of `dvc repro --force {' '.join(args.targets)}`",
        "stages": runs[0]["stages"],
        "repeat": args.repeat,
        "fresh_s": best["fresh"],
        "served_s": best["served"],
        "ratio": round(best["served"] / best["fresh"], 3),
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
    print(
        f"{doc['stages']} stages: fresh processes {best['fresh']:.1f} s, hop server "
        f"{best['served']:.1f} s (served / fresh {doc['ratio']:.2f}); dvc.lock unchanged"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
