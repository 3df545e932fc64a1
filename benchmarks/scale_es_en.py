"""Scale by simulation: the es_en hops on a SYNTHETIC OpenSubtitles-sized corpus.

Generates ``--pairs`` made-up pairs in the published ``en-es.txt.zip`` layout (its README says
it is synthetic): sentence lengths of the mirror's real pairs, Zipf–Mandelbrot words,
``--dup-fraction`` duplicate pairs (under clean's 1 % ``max_drop_fraction``) and
``--src-repeat-fraction`` repeated Spanish sentences. Then, in a throw-away copy of the project,
``python -m stages.<hop> es_en`` for the five hops, timed, with the peak RSS of the hop's largest
process (VmHWM) and peak temporary disk (both sampled every ``--poll`` s); ``--compare-pairs``
runs them again on fewer pairs to fit ``a + b·rows`` per hop up to ``--extrapolate-to``. Last,
clean, sample and tokenize on ``data.engine: dask`` (1 and ``--workers`` workers), compared byte
for byte with local's.

Its results make the ``scale``, ``memory`` and ``engine`` tables of BENCHMARKS.md (which says
more). Hours at 10M pairs: run it alone.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import benchlib as B
import numpy as np
from synth_es_en import Generator, generate_zip, length_pool

from rnnflow.config import load_params
from rnnflow.io import parquet_rows
from stages.core.filecheck import file_digest

HOPS = ("fetch", "clean", "format", "sample", "tokenize")
#: The hops, in order, and their output layers.
HOP_DIRS = dict(zip(HOPS, ("01_raw", "02_clean", "03_formatted", "04_sampled", "05_tokens")))
CORPUS = "es_en"
SOURCE = "synthetic_opensubtitles"
MIRROR_SUB = "synthetic-es-en"
ZIP_NAME = "en-es.txt.zip"
#: What the code says about each hop's memory (checked against the measured slope).
MEMORY_NOTES = {
    "fetch": "streams zip members line-aligned in chunk_lines chunks",
    "clean": "global dedupe: a sorted uint64 array of every distinct row's hash (8 B/row), "
    "new hashes merged in at their sorted positions (one linear copy a batch)",
    "format": "held-out check: the validation and test target sentences are kept to drop train "
    "rows that share one",
    "sample": "reads the whole row_id column (8 B/row) and ranks it (+ lengths for max_length)",
    "tokenize": "fit counts token types over train (grows with types, not rows), then encodes "
    "batch by batch",
}


# --- the throw-away project ------------------------------------------------------------------


def write_params(root: Path, zip_info: dict) -> Path:
    """The copy's params with es_en reading only the synthetic zip (as JSON, which is YAML),
    its catalogue in ``sources/es_en.yaml``."""
    params = load_params(root / "params.yaml")
    base = params["fetch"][CORPUS]
    archive = {"path": ZIP_NAME, "checksum": "sha256:" + zip_info["sha256"]}
    catalogue = {
        SOURCE: {
            "note": f"SYNTHETIC - {zip_info['pairs']:,} generated pairs in the OPUS Moses "
            "layout (benchmarks/scale_es_en.py); not the real OpenSubtitles corpus.",
            "format": "moses",
            "origin": "opensubtitles",
            "urls": [],
            "files": {"archive": {**archive, "size": zip_info["bytes"]}},
            "rows": {"opensubtitles": zip_info["pairs"]},
        }
    }
    section = {k: base[k] for k in ("src_lang", "tgt_lang", "chunk_lines") if k in base}
    params["fetch"][CORPUS] = {"source": [SOURCE], "mirror_dir": MIRROR_SUB, **section}
    (root / "sources" / f"{CORPUS}.yaml").write_text(json.dumps(catalogue, indent=1))
    path = root / "params.synthetic.json"
    path.write_text(json.dumps(params, indent=1))
    return path


def hop_env(root: Path, mirror: Path) -> dict[str, str]:
    """The hops' environment: the copy's code and Prefect home, the synthetic mirror."""
    env = B.env_with_mirror(mirror, PYTHONPATH=str(root), PREFECT_HOME=str(root / ".prefect"))
    return {k: v for k, v in env.items() if k != "PREFECT_API_URL"}


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(FileNotFoundError):  # a hop's temporary file, gone since
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def tree_hwm(pid: int) -> int:
    """The largest VmHWM (peak resident set since its exec) of ``pid`` and its descendants
    (Dask workers). Not ``wait4``'s ``ru_maxrss``: Linux starts a child's maxrss at its
    parent's RSS at fork, so every hop would read at least this process's own size."""
    import psutil

    try:
        top = psutil.Process(pid)
        pids = [pid, *(c.pid for c in top.children(recursive=True))]
    except psutil.NoSuchProcess:
        return 0
    best = 0
    for p in pids:
        with contextlib.suppress(OSError), open(f"/proc/{p}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    best = max(best, int(line.split()[1]) * 1024)
    return best


def run_hop(hop: str, params: Path, root: Path, env: dict[str, str], every: float, log: Path):
    """``python -m stages.<hop> es_en`` in ``root``: exit code, wall s, peak RSS of its largest
    process, peak temporary disk (both sampled every ``every`` s)."""
    cmd = [sys.executable, "-m", f"stages.{hop}", CORPUS, "--params", str(params)]
    peak = {"tmp": 0, "downloads": 0, "rss": 0}
    stop = threading.Event()
    parent = root / "data" / HOP_DIRS[hop]

    def poll() -> None:
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], tree_hwm(proc.pid))
            peak["tmp"] = max(peak["tmp"], sum(du(p) for p in parent.glob(f".{CORPUS}.tmp-*")))
            peak["downloads"] = max(peak["downloads"], du(root / "data" / "downloads"))
            stop.wait(every)

    poller = threading.Thread(target=poll, daemon=True)
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
        poller.start()
        _, status, _ = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    stop.set()
    poller.join()
    return {
        "rc": proc.returncode,
        "wall_s": round(wall, 2),
        "peak_rss_bytes": peak["rss"],
        "peak_rss_source": f"VmHWM of the hop and its child processes, every {every} s",
        "peak_tmp_bytes": peak["tmp"],
        "peak_downloads_bytes": peak["downloads"],
    }


def run_pipeline(sub: Path, n: int, args: argparse.Namespace, lengths: np.ndarray) -> dict:
    """Generate ``n`` pairs, copy the project, run the five hops; per-hop numbers."""
    root, mirror, logs = sub / "project", sub / "mirror", sub / "logs"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    logs.mkdir(exist_ok=True)
    # the copy: the checkout's tracked and untracked, not ignored, files
    ls = ["git", "ls-files", "-co", "--exclude-standard"]
    for rel in subprocess.check_output(ls, cwd=B.ROOT, text=True).splitlines():
        if (B.ROOT / rel).is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(B.ROOT / rel, root / rel)
    zip_path = mirror / MIRROR_SUB / ZIP_NAME
    zip_info = generate_zip(zip_path, n, Generator(lengths, args), args.chunk, args.compresslevel)
    zip_info["path"] = str(zip_path.relative_to(sub))
    print(f"[{n:,}] {zip_info}", flush=True)
    params = write_params(root, zip_info)
    env = hop_env(root, mirror)
    hops, rows_in = {}, n
    for hop in HOP_DIRS:
        res = run_hop(hop, params, root, env, args.poll, logs / f"{hop}.log")
        out_dir = root / "data" / HOP_DIRS[hop] / CORPUS
        files = sorted(out_dir.glob("*.parquet"))
        rows_out = sum(map(parquet_rows, files)) if files else None
        res.update(
            rows_in=rows_in,
            rows_out=rows_out,
            rows_per_s=round(rows_in / res["wall_s"], 1) if res["wall_s"] else None,
            output_bytes=du(out_dir),
            log=f"logs/{hop}.log",
        )
        hops[hop] = res
        print(f"[{n:,}] {hop}: {res}", flush=True)
        if res["rc"] != 0:
            print((logs / f"{hop}.log").read_text()[-4000:], file=sys.stderr)
            break
        rows_in = rows_out
    return {"pairs": n, "data": "synthetic", "zip": zip_info, "hops": hops}


# --- the Dask engine -------------------------------------------------------------------------

ENGINE_HOPS = ("clean", "sample", "tokenize")


def digests(root: Path) -> dict[str, str]:
    """sha256 of every file the heavy hops write (their data directories and reports)."""
    files = [
        p for h in ENGINE_HOPS for p in sorted((root / "data" / HOP_DIRS[h] / CORPUS).rglob("*"))
    ]
    files += [root / "reports" / h / f"{CORPUS}.json" for h in ("clean", "tokenize")]
    return {str(p.relative_to(root)): file_digest(p, "sha256") for p in files if p.is_file()}


def dask_check(sub: Path, serial: dict, args: argparse.Namespace) -> dict:
    """clean, sample and tokenize again with ``data.engine: dask`` on a LocalCluster of 1 and
    of ``--workers`` workers: wall, peak RSS (the largest process), bytes equal to local's."""
    root = sub / "project"
    env = hop_env(root, sub / "mirror")
    local = digests(root)
    out: dict = {"local": {h: serial["hops"][h] for h in ENGINE_HOPS}, "runs": {}}
    for workers in sorted({1, args.workers}):
        params = load_params(root / "params.synthetic.json")
        params["data"] = {"engine": "dask", "dask": {"address": None, "workers": workers}}
        pfile = root / f"params.dask{workers}.json"
        pfile.write_text(json.dumps(params))
        run = {}
        for hop in ENGINE_HOPS:
            log = sub / "logs" / f"{hop}.dask{workers}.log"
            run[hop] = run_hop(hop, pfile, root, env, args.poll, log)
            print(f"[dask {workers}] {hop}: {run[hop]}", flush=True)
            if run[hop]["rc"]:
                return {**out, "error": log.read_text()[-3000:]}
        run["bytes_identical"] = digests(root) == local
        run["files_compared"] = len(local)
        out["runs"][str(workers)] = run
    out["equal_to_serial"] = all(r["bytes_identical"] for r in out["runs"].values())
    return out


# --- extrapolation and output -------------------------------------------------------------------


def extrapolate(big: dict, small: dict | None, target: int) -> dict:
    """Per hop: wall and peak RSS at ``target`` pairs, fitted as ``a + b·rows`` on two runs."""
    out = {}
    for hop, h in big["hops"].items():
        if h["rc"] != 0 or not h["rows_in"]:
            continue
        rows_t = h["rows_in"] * target / big["pairs"]
        e = {
            "rows_in": int(rows_t),
            "wall_s_linear": round(h["wall_s"] * target / big["pairs"], 1),
            "peak_rss_bytes_measured": h["peak_rss_bytes"],
        }
        s = (small or {}).get("hops", {}).get(hop)
        if s and s["rc"] == 0 and s["rows_in"] and h["rows_in"] != s["rows_in"]:
            d_rows = h["rows_in"] - s["rows_in"]
            b_t = (h["wall_s"] - s["wall_s"]) / d_rows
            a_t = h["wall_s"] - b_t * h["rows_in"]
            b_m = (h["peak_rss_bytes"] - s["peak_rss_bytes"]) / d_rows
            e.update(
                seconds_per_row=b_t,
                fixed_s=round(a_t, 2),
                wall_s_fit=round(a_t + b_t * rows_t, 1),
                rss_bytes_per_row=round(b_m, 2),
                peak_rss_bytes_fit=int(h["peak_rss_bytes"] + b_m * (rows_t - h["rows_in"])),
                memory_grows_with_rows=bool(
                    b_m > 2.0 and h["peak_rss_bytes"] > 1.15 * s["peak_rss_bytes"]
                ),
            )
        out[hop] = {**e, "note": MEMORY_NOTES[hop]}
    return out


def _complete(run: dict) -> bool:
    return len(run["hops"]) == len(HOP_DIRS) and all(h["rc"] == 0 for h in run["hops"].values())


def main(argv: list[str] | None = None) -> int:
    p = B.parser(__doc__, __file__, "--out")
    p.add_argument("--pairs", type=int, default=10_000_000, help="synthetic pairs, main run")
    p.add_argument("--compare-pairs", type=int, default=1_000_000, help="second run (0: none)")
    p.add_argument("--extrapolate-to", type=int, default=61_000_000, help="published: ~61M")
    p.add_argument("--workdir", type=Path, help="for the zips and project copies (none: tmp)")
    p.add_argument("--keep", action="store_true", help="keep the workdir afterwards")
    p.add_argument("--length-pool", type=Path, help="OpenSubtitles2018-ctxpro dir (none: mirror's)")
    p.add_argument("--vocab", type=int, default=50_000, help="word types per language")
    p.add_argument("--zipf-s", type=float, default=1.0, help="Zipf-Mandelbrot exponent")
    p.add_argument("--dup-fraction", type=float, default=0.005, help="exact duplicate pairs")
    p.add_argument("--src-repeat-fraction", type=float, default=0.03, help="repeated es lines")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=200_000, help="pairs generated per chunk")
    p.add_argument("--compresslevel", type=int, default=1, help="deflate level of the zip")
    p.add_argument("--poll", type=float, default=0.5, help="seconds between disk polls")
    p.add_argument("--workers", type=int, default=2, help="Dask LocalCluster workers")
    p.add_argument("--no-dask", action="store_true", help="skip the data.engine: dask runs")
    args = p.parse_args(argv)

    mirror = B.mirror()
    pool = args.length_pool or mirror / "es-en" / "opensubtitles"
    work = args.workdir or Path(tempfile.mkdtemp(prefix="rnnflow-scale-synthetic-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"workdir {work} (SYNTHETIC data only)", flush=True)
    lengths = length_pool(pool)
    machine = B.machine(platform=platform.platform())
    t0 = time.perf_counter()
    small, dask = None, {}
    if args.compare_pairs:
        sub = work / f"synthetic-{args.compare_pairs}"
        small = run_pipeline(sub, args.compare_pairs, args, lengths)
        if not args.no_dask and _complete(small):
            dask["compare"] = dask_check(sub, small, args)
    sub = work / f"synthetic-{args.pairs}"
    big = run_pipeline(sub, args.pairs, args, lengths)
    ok = _complete(big)
    if ok and not args.no_dask:
        dask["main"] = dask_check(sub, big, args)
    # the options as given, with no path of this machine (a result reads the same anywhere)
    options = {k: v for k, v in vars(args).items() if k not in ("workdir", "out", "length_pool")}
    options["length_pool"] = (
        f"$RNNFLOW_MIRROR/{pool.relative_to(mirror)}" if pool.is_relative_to(mirror) else pool.name
    )
    result = {
        "benchmark": "scale_es_en",
        "data": "synthetic",
        "what": "es_en hops on a SYNTHETIC corpus in the OPUS OpenSubtitles Moses layout "
        "(generated; not the real corpus)",
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine,
        # a path of this machine (--workdir, --length-pool) would mean nothing elsewhere
        "command": " ".join(
            [Path(sys.argv[0]).name] + ["DIR" if os.path.isabs(a) else a for a in sys.argv[1:]]
        ),
        "options": options,
        # the project's es_en settings the hops ran with (fetch reads the synthetic zip instead)
        **B.params_record(*(f"{hop}.{CORPUS}" for hop in HOPS[1:])),
        "length_pool": {
            "pairs": int(len(lengths)),
            "mean_words": [round(float(x), 2) for x in lengths.mean(axis=0)],
        },
        "runs": {"main": big, "compare": small},
        "dask": dask or None,
        "extrapolation": {
            "rows": args.extrapolate_to,
            "basis": "time: a + b*rows per hop fitted on the two runs (else linear "
            "in rows); memory: peak RSS + (RSS slope per row) * extra rows",
            "hops": extrapolate(big, small, args.extrapolate_to),
        },
        "total_s": round(time.perf_counter() - t0, 1),
    }
    B.write(args.out, result)
    good = ok and all(d.get("equal_to_serial", False) for d in dask.values())
    if good and not args.keep and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"workdir kept: {work}")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
