"""The data half of the DAG (every hop of every corpus) as ``dvc repro`` runs it, and the
pipeline's overhead: a ``dvc repro`` and a ``dvc status`` with nothing to do.

In an up-to-date ``--root`` (after ``make repro`` or ``dvc pull``): first ``dvc repro`` and
``dvc status`` of the whole DAG ``--noop-repeat`` times each (no stage may run), then
``dvc repro --force <targets>`` (``tokenize``: every fetch, clean, format, sample and tokenize
stage) ``--repeat`` times, the sources from the corpora mirror; dvc.lock must come out
byte-identical after every run (the hops wrote exactly the locked outputs). Records the
fastest forced run and the no-op medians.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import benchlib as B

#: The params.yaml sections the data half reads (a change to one calls for a rerun).
DATA_SECTIONS = ("fetch", "clean", "format", "sample", "tokenize", "data")


def dvc(root: Path, *args: str, work: bool = False) -> tuple[float, subprocess.CompletedProcess]:
    """Seconds of ``dvc ARGS`` in ``root`` (this interpreter's, its ``python`` first on PATH)
    and its outcome; exits when it fails or, unless it is to ``work``, runs a stage."""
    cmd, env = [str(Path(sys.executable).parent / "dvc"), *args], B.env_with_mirror()
    began = time.perf_counter()
    out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    secs = time.perf_counter() - began
    if out.returncode != 0 or (not work and "Running stage" in out.stdout + out.stderr):
        raise SystemExit(f"dvc {' '.join(args)} did work or failed:\n{out.stderr[-3000:]}")
    return secs, out


def main(argv: list[str] | None = None) -> int:
    parser = B.parser(__doc__, __file__, "--out")
    parser.add_argument("--root", type=Path, default=B.ROOT, help="an up-to-date checkout")
    parser.add_argument("--repeat", type=int, default=1, help="runs")
    parser.add_argument("--noop-repeat", type=int, default=5, help="no-op runs of each command")
    parser.add_argument("--targets", nargs="+", default=["tokenize"], help="dvc repro targets")
    args = parser.parse_args(argv)
    root = args.root.resolve()

    if json.loads(dvc(root, "status", "--json")[1].stdout or "{}"):
        raise SystemExit(f"{root}: not up to date; `dvc repro` first")
    lock = (root / "dvc.lock").read_bytes()
    machine = B.machine(platform=platform.platform())
    noop = {
        cmd: round(statistics.median(dvc(root, cmd)[0] for _ in range(args.noop_repeat)), 2)
        for cmd in ("repro", "status")
    }
    print(f"nothing to do, median seconds: {noop}", file=sys.stderr)
    runs = []
    for rep in range(args.repeat):
        wall, out = dvc(root, "repro", "--force", *args.targets, work=True)
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
        "noop_median_s": noop,
        "noop_repeat": args.noop_repeat,
        "machine": {**machine, "load_avg_at_end": B.load_avg()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **B.params_record(*DATA_SECTIONS, root=root),
    }
    print(f"{doc['stages']} stages: {doc['wall_s']:.1f} s; dvc.lock unchanged")
    B.write(args.out, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
