"""File what ``benchmarks/gpu_device/run.sh`` left in its output folder under
``benchmarks/results/`` (where ``summary.py`` reads it), and unpack its logs beside them.

    python benchmarks/gpu_device/collect.py /work/.device/<call>/   # the run's $OUT, fetched
    python benchmarks/summary.py --write
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
KEEP = ("gpu_lm_*.json", "gpu_stages_*.json", "train_throughput_cuda_gpu.json")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="the folder run.sh wrote ($OUT)")
    a = p.parse_args(argv)
    got = [
        f
        for pattern in KEEP
        for f in sorted(a.out.glob(pattern))
        if not f.stem.endswith("_cpu")  # a CPU smoke run of gpu_lm.py is no GPU result
    ]
    if not got:
        print(f"collect: nothing of {KEEP} in {a.out}", file=sys.stderr)
        return 1
    for f in got:
        shutil.copyfile(f, RESULTS / f.name)
        print(f"collect: {f.name} -> {RESULTS / f.name}")
    logs = a.out / "results.tgz"
    if logs.exists():
        dest = RESULTS / "gpu_run"
        with tarfile.open(logs) as tar:
            tar.extractall(dest, filter="data")
        print(f"collect: logs, metrics, dvclive of the run -> {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
