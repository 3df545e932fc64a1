"""The data half of the DAG (every hop of every corpus), as ``dvc repro`` runs it.

    python benchmarks/data_half.py [--root CHECKOUT] [--repeat 1] [--targets tokenize]

Runs ``dvc repro --force <targets>`` (``tokenize``: every fetch, clean, format, sample and
tokenize stage) ``--repeat`` times in an up-to-date ``--root``, the sources from the corpora
mirror; dvc.lock must come out byte-identical after every run (the hops wrote exactly the
locked outputs). Writes the fastest time to ``benchmarks/results/data_half.json``.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import benchlib as B

#: The params.yaml sections the data half reads (a change to one calls for a rerun).
DATA_SECTIONS = ("fetch", "clean", "format", "sample", "tokenize", "data")


def dvc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``dvc ARGS`` of this interpreter's environment, its ``python`` first on PATH."""
    cmd = [str(Path(sys.executable).parent / "dvc"), *args]
    return subprocess.run(cmd, cwd=root, env=B.env_with_mirror(), capture_output=True, text=True)


def main(argv: list[str] | None = None) -> int:
    parser = B.parser(__doc__, __file__)
    parser.add_argument("--root", type=Path, default=B.ROOT, help="an up-to-date checkout")
    parser.add_argument("--repeat", type=int, default=1, help="runs")
    parser.add_argument("--targets", nargs="+", default=["tokenize"], help="dvc repro targets")
    parser.add_argument("--out", type=Path, default=B.RESULTS / "data_half.json", help="results")
    args = parser.parse_args(argv)
    root = args.root.resolve()

    status = dvc(root, "status", "--json", *args.targets)
    if status.returncode != 0 or json.loads(status.stdout or "{}"):
        raise SystemExit(f"{root}: {' '.join(args.targets)} not up to date; `dvc repro` first")
    lock = (root / "dvc.lock").read_bytes()
    machine = B.machine(platform=platform.platform())
    runs = []
    for rep in range(args.repeat):
        began = time.perf_counter()
        out = dvc(root, "repro", "--force", *args.targets)
        wall = time.perf_counter() - began
        if out.returncode != 0:
            raise SystemExit(f"dvc repro failed:\n{out.stderr[-3000:]}")
        stages = (out.stdout + out.stderr).count("Running stage")
        unchanged = (root / "dvc.lock").read_bytes() == lock
        runs.append({"wall_s": round(wall, 2), "stages": stages, "lock_unchanged": unchanged})
        print(f"[{rep + 1}/{args.repeat}] {runs[-1]}", file=sys.stderr)
        if not unchanged:
            raise SystemExit("dvc.lock changed: the outputs differ from the locked ones")
    doc = {
        "what": f"wall seconds of `dvc repro --force {' '.join(args.targets)}`",
        "stages": runs[0]["stages"],
        "repeat": args.repeat,
        "wall_s": min(r["wall_s"] for r in runs),
        "runs": runs,
        "machine": {**machine, "load_avg_at_end": B.load_avg()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **B.params_record(*DATA_SECTIONS, root=root),
    }
    print(f"{doc['stages']} stages: {doc['wall_s']:.1f} s; dvc.lock unchanged")
    B.write(args.out, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
