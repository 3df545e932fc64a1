"""Wall time of each data hop, as a user runs it, in two project copies side by side.

    python benchmarks/hop_overhead.py --before /tmp/before --after . [--repeat 2]

Each hop runs as its own subprocess (``python -m stages.<hop> <corpus>``, with
``PYTHONPATH`` and the working directory set to that copy, so each copy writes its own
``data/``), exactly as DVC runs it: interpreter start-up, imports, Great Expectations
context, the hop's work and its validation all count. Per corpus the hops run in order
(fetch → clean → format → sample → tokenize), each copy's chain interleaved with the
other's so machine noise hits both alike; ``--repeat`` reruns the chains and the table shows
the fastest and the median run. Afterwards, with ``--compare`` (the default), every output
file of every timed hop is compared between the copies: Parquet files as Arrow tables
(``pyarrow.Table.equals``: same schema, rows, values and order), other files byte for byte.

MNIST needs ``$RNNFLOW_MIRROR`` (default ``../shared/corpora``); the offline mirror holds only
the ``mirror_partial`` source, so by default each copy runs with a temporary params file
(its own ``params.yaml`` with ``fetch.mnist.source`` set by ``--mnist-source``).

Prints a table (before s / after s / ratio) and writes JSON (default
``benchmarks/results/hop_overhead.json``).
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
# the project root, for a checkout that is not pip-installed (e.g. the GPU machine)
sys.path.insert(0, str(_ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

HOPS = ("fetch", "clean", "format", "sample", "tokenize")
LAYERS = {
    "fetch": "01_raw",
    "clean": "02_clean",
    "format": "03_formatted",
    "sample": "04_sampled",
    "tokenize": "05_tokens",
}
DEFAULT_CORPORA = ("parity", "timeseries", "mnist")


def params_file(copy: Path, mnist_source: str | None, tmp: Path) -> Path | None:
    """The copy's params.yaml with ``fetch.mnist.source`` overridden (JSON is valid YAML)."""
    if not mnist_source:
        return None
    from ruamel.yaml import YAML

    with (copy / "params.yaml").open() as fh:
        params = YAML(typ="safe", pure=True).load(fh)
    params["fetch"]["mnist"]["source"] = mnist_source
    path = tmp / f"params-{abs(hash(str(copy)))}.yaml"
    path.write_text(json.dumps(params))
    return path


def hop_env(copy: Path, mirror: str) -> dict[str, str]:
    """The environment a hop of ``copy`` runs with."""
    return {**os.environ, "PYTHONPATH": str(copy), "RNNFLOW_MIRROR": mirror}


def run_hop(
    python: str,
    copy: Path,
    hop: str,
    corpus: str,
    params: Path | None,
    mirror: str,
) -> tuple[float, int, str]:
    """Run one hop in ``copy``; return (wall seconds, exit code, last stderr line)."""
    env = hop_env(copy, mirror)
    cmd = [python, "-m", f"stages.{hop}", corpus]
    if params is not None:
        cmd += ["--params", str(params)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    tail = (proc.stderr.strip().splitlines() or [""])[-1]
    return took, proc.returncode, tail


def compare_outputs(before: Path, after: Path, hop: str, corpus: str) -> tuple[bool, str]:
    """Are the outputs of ``hop`` for ``corpus`` identical in both copies?"""
    import pyarrow.parquet as pq

    a_dir = before / "data" / LAYERS[hop] / corpus
    b_dir = after / "data" / LAYERS[hop] / corpus
    if not a_dir.is_dir() or not b_dir.is_dir():
        return False, "output missing"
    a_files = sorted(p.relative_to(a_dir) for p in a_dir.rglob("*") if p.is_file())
    b_files = sorted(p.relative_to(b_dir) for p in b_dir.rglob("*") if p.is_file())
    if a_files != b_files:
        return False, f"different files: {a_files} vs {b_files}"
    for rel in a_files:
        if rel.suffix == ".parquet":
            ta, tb = pq.read_table(a_dir / rel), pq.read_table(b_dir / rel)
            if not ta.equals(tb, check_metadata=True):
                return False, f"{rel}: tables differ"
        elif (a_dir / rel).read_bytes() != (b_dir / rel).read_bytes():
            return False, f"{rel}: bytes differ"
    return True, f"{len(a_files)} files identical"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument(
        "--before",
        type=Path,
        required=True,
        help="project copy with the old code (e.g. a git clone of HEAD)",
    )
    parser.add_argument(
        "--after",
        type=Path,
        default=_ROOT,
        help="project copy with the new code (default: this project)",
    )
    parser.add_argument(
        "--corpora",
        nargs="+",
        default=list(DEFAULT_CORPORA),
        help=f"corpora whose hop chains to time (default: {DEFAULT_CORPORA})",
    )
    parser.add_argument(
        "--hops",
        nargs="+",
        default=list(HOPS),
        choices=HOPS,
        help="hops to time, run in chain order (default: all five)",
    )
    parser.add_argument(
        "--repeat", type=int, default=2, help="times each chain is run per copy (default: 2)"
    )
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter for the hops (default: this one)"
    )
    parser.add_argument(
        "--mirror",
        default=os.environ.get("RNNFLOW_MIRROR", str(_ROOT.parent / "shared" / "corpora")),
        help="RNNFLOW_MIRROR for the hops (default: $RNNFLOW_MIRROR or ../shared/corpora)",
    )
    parser.add_argument(
        "--mnist-source",
        default="mirror_partial",
        help="fetch.mnist.source for both copies ('' keeps params.yaml's)",
    )
    parser.add_argument(
        "--no-compare",
        dest="compare",
        action="store_false",
        help="skip comparing the outputs of the two copies",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=_HERE / "results" / "hop_overhead.json",
        help="where to write the results (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    copies = {"before": args.before.resolve(), "after": args.after.resolve()}
    for name, copy in copies.items():
        if not (copy / "stages").is_dir():
            parser.error(f"--{name} {copy}: not a project copy (no stages/)")
    hops = [h for h in HOPS if h in args.hops]
    times: dict[tuple[str, str, str], list[float]] = {}
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        params = {
            name: params_file(copy, args.mnist_source, Path(tmp))
            if "mnist" in args.corpora
            else None
            for name, copy in copies.items()
        }
        for rep in range(args.repeat):
            for corpus in args.corpora:
                for hop in hops:
                    for name, copy in copies.items():
                        p = params[name] if corpus == "mnist" else None
                        took, rc, tail = run_hop(args.python, copy, hop, corpus, p, args.mirror)
                        times.setdefault((corpus, hop, name), []).append(took)
                        status = "ok" if rc == 0 else f"FAILED (exit {rc}): {tail}"
                        print(
                            f"[{rep + 1}/{args.repeat}] {name:6s} {hop:8s} {corpus:10s} "
                            f"{took:6.2f}s {status}",
                            file=sys.stderr,
                        )
                        if rc != 0:
                            failures.append(f"{name} {hop} {corpus}: {tail}")

    rows = []
    for corpus in args.corpora:
        for hop in hops:
            b, a = times[(corpus, hop, "before")], times[(corpus, hop, "after")]
            row = {
                "corpus": corpus,
                "hop": hop,
                "before_s": round(min(b), 3),
                "after_s": round(min(a), 3),
                "before_median_s": round(statistics.median(b), 3),
                "after_median_s": round(statistics.median(a), 3),
                "ratio": round(min(a) / min(b), 3),
                "runs": len(b),
            }
            if args.compare:
                same, detail = compare_outputs(copies["before"], copies["after"], hop, corpus)
                row.update(identical=same, compare=detail)
            rows.append(row)

    header = f"{'corpus':11s} {'hop':9s} {'before s':>9s} {'after s':>8s} {'ratio':>6s}"
    header += "  outputs" if args.compare else ""
    print(header)
    print("-" * len(header))
    for r in rows:
        line = (
            f"{r['corpus']:11s} {r['hop']:9s} {r['before_s']:9.2f} {r['after_s']:8.2f} "
            f"{r['ratio']:6.2f}"
        )
        if args.compare:
            line += "  " + ("identical" if r["identical"] else f"DIFFER: {r['compare']}")
        print(line)
    print(f"(fastest of {args.repeat} run(s) per hop; medians in the JSON)")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "what": "wall seconds of `python -m stages.<hop> <corpus>` as a subprocess",
                "before": str(copies["before"]),
                "after": str(copies["after"]),
                "repeat": args.repeat,
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                },
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "loadavg_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                "rows": rows,
                "failures": failures,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.json}", file=sys.stderr)
    ok = not failures and all(r.get("identical", True) for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
