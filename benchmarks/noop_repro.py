"""A no-op ``dvc repro`` of the whole DAG: libyaml against pure-Python YAML, side by side.

    python benchmarks/noop_repro.py [--root CHECKOUT] [--repeat 5]

Run it in a checkout whose pipeline is up to date (after ``make repro``, or a clone after
``dvc pull``): every stage is skipped, so the time is DVC's own — loading dvc.yaml and
dvc.lock, hashing each stage's deps, and reading params.yaml once **per stage** (63 here) to
compare params. DVC reads YAML with ruamel's ``safe`` loader, which uses libyaml when
``ruamel.yaml.clib`` is installed (the extra ``fastyaml``); the "pure" runs hide the C
extension from the same interpreter (``sys.modules[...] = None``), so ruamel falls back to its
Python parser. The runs alternate, so machine noise hits both alike. ``dvc status`` is timed
too (the same checks without the repro machinery).

rnnflow does not depend on ``ruamel.yaml.clib`` by default (it is the opt-in extra
``fastyaml``): libyaml refuses this repository's params.yaml as committed before a5c7ca1
(``urls: [https://…]``, a colon in a flow sequence), so with it installed ``dvc metrics
diff``/``dvc params diff`` against those commits fail ("failed to load metrics ... YAML file
structure is corrupted"). Run this benchmark where it is importable: a venv with the extra,
or ``pip install --target DIR ruamel.yaml.clib`` and ``PYTHONPATH=DIR``.

Prints median/min seconds and the ratio, and writes ``benchmarks/results/noop_repro.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Same interpreter, same DVC; only the YAML parser differs.
_RUN = (
    "import sys\n"
    "if {pure}:\n"
    "    sys.modules['_ruamel_yaml'] = None\n"
    "from dvc.cli import main\n"
    "sys.exit(main({argv!r}))\n"
)


def timed(root: Path, argv: list[str], pure: bool) -> float:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _RUN.format(pure=pure, argv=argv)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    secs = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"dvc {' '.join(argv)} failed in {root}:\n{out.stderr[-2000:]}")
    if argv[0] == "repro" and "Running stage" in out.stdout + out.stderr:
        raise SystemExit(
            f"{root}: the pipeline is not up to date (a stage ran); run "
            "`make repro` or `dvc pull` first, then time the no-op"
        )
    return secs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="an up-to-date checkout")
    parser.add_argument("--repeat", type=int, default=5, help="runs per variant (default 5)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/noop_repro.json")
    args = parser.parse_args(argv)

    try:
        from _ruamel_yaml import CParser  # noqa: F401  (ruamel.yaml.clib's module)
    except ImportError:
        raise SystemExit(
            "ruamel.yaml.clib is not installed: nothing to compare (pip install ruamel.yaml.clib)"
        ) from None
    runs: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for cmd in ("repro", "status"):
            for pure in (False, True):
                key = f"{cmd}_{'pure' if pure else 'libyaml'}"
                runs.setdefault(key, []).append(timed(args.root, [cmd], pure))
    stages = subprocess.run(
        [sys.executable, "-m", "dvc", "stage", "list", "--all"],
        cwd=args.root,
        capture_output=True,
        text=True,
    ).stdout.count("\n")
    result = {
        "what": "no-op `dvc repro` / `dvc status` of the whole DAG, seconds",
        "stages": stages,
        "repeat": args.repeat,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the start",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "median": {k: round(statistics.median(v), 3) for k, v in runs.items()},
        "min": {k: round(min(v), 3) for k, v in runs.items()},
    }
    med = result["median"]
    result["ratio_repro"] = round(med["repro_pure"] / med["repro_libyaml"], 2)
    result["ratio_status"] = round(med["status_pure"] / med["status_libyaml"], 2)
    print(f"{stages} stages, {args.repeat} runs each (median / min seconds)")
    for cmd in ("repro", "status"):
        print(
            f"  dvc {cmd:<7} libyaml {med[f'{cmd}_libyaml']:5.2f} / "
            f"{result['min'][f'{cmd}_libyaml']:5.2f}   pure {med[f'{cmd}_pure']:5.2f} / "
            f"{result['min'][f'{cmd}_pure']:5.2f}   {result[f'ratio_{cmd}']:.2f}x"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
