"""A no-op ``dvc repro`` of the whole DAG: libyaml against pure-Python YAML, side by side.

    python benchmarks/noop_repro.py [--root CHECKOUT] [--repeat 5]

Run it in an up-to-date checkout (after ``make repro`` or ``dvc pull``), so every stage is
skipped. The "pure" runs hide ``ruamel.yaml.clib`` from the same interpreter, so ruamel parses
YAML in Python; the runs alternate, so noise hits both alike; ``dvc status`` is timed too.
rnnflow does not install ``ruamel.yaml.clib``: here, ``pip install --target DIR
ruamel.yaml.clib`` and ``PYTHONPATH=DIR``. Writes median/min seconds and the ratio to
``benchmarks/results/noop_repro.json``.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import benchlib as B

# Same interpreter, same DVC; only the YAML parser differs.
_RUN = (
    "import sys\n"
    "if {pure}:\n"
    "    sys.modules['_ruamel_yaml'] = None\n"
    "from dvc.cli import main\n"
    "sys.exit(main({argv!r}))\n"
)


def timed(root: Path, argv: list[str], pure: bool) -> float:
    """Seconds of one ``dvc ARGV`` in ``root``, with libyaml or (``pure``) without it."""
    cmd = [sys.executable, "-c", _RUN.format(pure=pure, argv=argv)]
    env = B.env_with_mirror()
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"dvc {' '.join(argv)} failed in {root}:\n{out.stderr[-2000:]}")
    if argv[0] == "repro" and "Running stage" in out.stdout + out.stderr:
        raise SystemExit(f"{root}: a stage ran: `make repro` or `dvc pull` first")
    return secs


def main(argv: list[str] | None = None) -> int:
    parser = B.parser(__doc__, __file__)
    parser.add_argument("--root", type=Path, default=B.ROOT, help="an up-to-date checkout")
    parser.add_argument("--repeat", type=int, default=5, help="runs per variant")
    parser.add_argument("--out", type=Path, default=B.RESULTS / "noop_repro.json", help="results")
    args = parser.parse_args(argv)
    try:
        from _ruamel_yaml import CParser  # noqa: F401  (ruamel.yaml.clib's module)
    except ImportError:
        raise SystemExit("ruamel.yaml.clib is not installed: nothing to compare") from None

    load = os.getloadavg()[0]
    runs: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for cmd in ("repro", "status"):
            for pure in (False, True):
                key = f"{cmd}_{'pure' if pure else 'libyaml'}"
                runs.setdefault(key, []).append(timed(args.root, [cmd], pure))
    ls = [sys.executable, "-m", "dvc", "stage", "list", "--all"]
    stages = subprocess.run(ls, cwd=args.root, capture_output=True, text=True).stdout.count("\n")
    med = {k: round(statistics.median(v), 3) for k, v in runs.items()}
    result = {
        "what": "no-op `dvc repro` / `dvc status` of the whole DAG, seconds",
        "stages": stages,
        "repeat": args.repeat,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f} at "
        "the start",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "median": med,
        "min": {k: round(min(v), 3) for k, v in runs.items()},
        "ratio_repro": round(med["repro_pure"] / med["repro_libyaml"], 2),
        "ratio_status": round(med["status_pure"] / med["status_libyaml"], 2),
    }
    print(f"{stages} stages, median seconds: {med}")
    B.write(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
