"""Scale, proved by simulation (issue #12): the es_en hops on a SYNTHETIC OpenSubtitles-sized
corpus.

    python benchmarks/scale_es_en.py [--pairs 10000000] [--compare-pairs 1000000] [--workdir DIR]

The published OpenSubtitles v2018 en-es release has ~61M pairs (a Moses zip of several GB);
the offline mirror holds 60,002 real pairs. This script does not pretend to have the real
corpus: it *generates* a synthetic one of ``--pairs`` pairs in the published layout
(``en-es.txt.zip`` with ``OpenSubtitles.en-es.en``, ``OpenSubtitles.en-es.es`` and a README
that says it is synthetic), streaming, chunk by chunk:

* sentence lengths: the joint (es words, en words) distribution of the mirror's real pairs
  (``--length-pool``, read once), sampled with replacement;
* words: ``--vocab`` synthetic word types per language (made-up syllable words, shorter for
  frequent ranks), drawn from a Zipf–Mandelbrot law (``--zipf-s``), a capitalised first
  word and a final punctuation mark;
* duplicates: ``--dup-fraction`` of the pairs are exact copies of an earlier pair, and
  ``--src-repeat-fraction`` repeat an earlier Spanish sentence with a new English one (the
  mirror's pairs: 0 % duplicate pairs, 3.2 % repeated Spanish sentences). Exact duplicates
  are kept under 1 % by default because ``clean.es_en.max_drop_fraction`` is 0.01: more
  would (correctly) stop clean. The generated fraction is measured (64-bit hashes of the
  raw pairs) and reported.

Then, in a throw-away copy of the project (``git ls-files``, like ``tests/test_dag.py``), it
runs ``python -m stages.{fetch,clean,format,sample,tokenize} es_en --params FILE`` one after
the other, es_en reading ONLY the synthetic zip as a pinned mirror source
(``synthetic_opensubtitles``, origin ``opensubtitles``; every other params section as in
params.yaml, so sample keeps ``max_length: 15``). Per hop: wall seconds, rows in/out (Parquet
metadata), rows/s, peak RSS (``/usr/bin/time -v``, else psutil polling), peak temporary disk
(``data/0N_*/.es_en.tmp-*`` and ``data/downloads``, polled every ``--poll`` s) and output size.

With ``--compare-pairs M`` the same is done on M pairs, so time and memory can be fitted as
``a + b·rows`` per hop: the slope ``b`` of peak RSS is the memory a hop needs per row (≈ 0 for
a hop that streams), and both are extrapolated to ``--extrapolate-to`` rows (61M).

Finally the Dask check: ``stages.shards`` runs sample and tokenize shard by shard on a
``distributed.LocalCluster(n_workers=2, threads_per_worker=1)`` (passed to
``stages.shards.run(..., address=cluster.scheduler_address)``) and its outputs are
compared with the serial hops' (``pyarrow.Table.equals`` per split, artifacts JSON equal,
and whether the files are byte-identical).

Results: a table on stdout and ``benchmarks/results/scale_es_en.json`` (``--out``). Every
output says ``synthetic``. Runs take long at 10M: run it alone on the machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
# the project root, for a checkout that is not pip-installed (e.g. the GPU machine)
sys.path.insert(0, str(_ROOT))

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import filecmp  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

HOPS = ("fetch", "clean", "format", "sample", "tokenize")
HOP_DIRS = {
    "fetch": "01_raw",
    "clean": "02_clean",
    "format": "03_formatted",
    "sample": "04_sampled",
    "tokenize": "05_tokens",
}
CORPUS = "es_en"
SOURCE = "synthetic_opensubtitles"
MIRROR_SUB = "synthetic-es-en"
ZIP_NAME = "en-es.txt.zip"
MEMBERS = {"es": "OpenSubtitles.en-es.es", "en": "OpenSubtitles.en-es.en"}
DEFAULT_POOL = _ROOT.parent / "shared" / "corpora" / "es-en" / "opensubtitles"
SPLITS = ("train", "validation", "test")
#: What the code says about each hop's memory (checked against the measured slope).
MEMORY_NOTES = {
    "fetch": "streams zip members line-aligned in chunk_lines chunks",
    "clean": "global dedupe: a sorted uint64 array of every distinct row's hash (8 B/row), "
    "new hashes merged in at their sorted positions (one linear copy a batch)",
    "format": "held-out check: the test split's target sentences are kept to drop train rows "
    "that share one",
    "sample": "reads the whole row_id column (8 B/row) and ranks it (+ lengths for max_length)",
    "tokenize": "fit counts token types over train (grows with types, not rows), then encodes "
    "batch by batch",
}


# --- the synthetic corpus ------------------------------------------------------------------


def length_pool(pool_dir: Path) -> np.ndarray:
    """(es_words, en_words) of every real pair of the mirror: the joint length distribution."""
    es = pool_dir / "OpenSubtitles2018-ctxpro.en-es.es"
    en = pool_dir / "OpenSubtitles2018-ctxpro.en-es.en"
    with open(es, encoding="utf-8") as fe, open(en, encoding="utf-8") as fn:
        pairs = [(len(a.split()), len(b.split())) for a, b in zip(fe, fn)]
    arr = np.array([p for p in pairs if p[0] and p[1]], dtype=np.int32)
    if not len(arr):
        raise SystemExit(f"no sentence pairs in {pool_dir}")
    return arr


def word_types(n: int, consonants: str, vowels: str) -> list[str]:
    """``n`` distinct made-up words by frequency rank: 1, 2, then 3+ syllables."""
    syl = [c + v for c in consonants for v in vowels]
    b = len(syl)
    words = []
    for r in range(n):
        k, base = 1, 0
        while r - base >= b**k:
            base += b**k
            k += 1
        x, parts = r - base, []
        for _ in range(k):
            x, d = divmod(x, b)
            parts.append(syl[d])
        words.append("".join(reversed(parts)))
    return words


LANGS = {"es": ("bcdfglmnprstvzjñ", "aeiouáé"), "en": ("bcdfghklmnprstvwy", "aeiouy")}


class Generator:
    """Chunks of synthetic (es, en) pairs; deterministic given the seed."""

    def __init__(
        self,
        lengths: np.ndarray,
        vocab: int,
        zipf_s: float,
        dup: float,
        src_repeat: float,
        seed: int,
    ) -> None:
        self.lengths = lengths
        self.rng = np.random.default_rng(seed)
        ranks = np.arange(vocab, dtype=np.float64)
        p = 1.0 / (ranks + 2.7) ** zipf_s  # Zipf–Mandelbrot
        self.cdf = np.cumsum(p / p.sum())
        self.words = {lang: pa.array(word_types(vocab, *LANGS[lang])) for lang in LANGS}
        self.dup, self.src_repeat = dup, src_repeat
        self.planned_dups = self.planned_src_repeats = 0

    def _side(self, lang: str, lens: np.ndarray) -> pa.Array:
        ids = np.searchsorted(self.cdf, self.rng.random(int(lens.sum())), side="right")
        ids = np.minimum(ids, len(self.cdf) - 1)
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
        lists = pa.ListArray.from_arrays(pa.array(offsets), self.words[lang].take(pa.array(ids)))
        text = pc.utf8_capitalize(pc.binary_join(lists, " "))
        punct = pa.array(
            np.array([".", ".", ".", "?", "!", "..."])[self.rng.integers(0, 6, len(lens))]
        )
        if lang == "es":  # ¿...? and ¡...!
            opener = pc.if_else(
                pc.equal(punct, "?"), "¿", pc.if_else(pc.equal(punct, "!"), "¡", "")
            )
            text = pc.binary_join_element_wise(opener, text, "")
        return pc.binary_join_element_wise(text, punct, "")

    def chunk(self, n: int) -> tuple[pa.Array, pa.Array]:
        lens = self.lengths[self.rng.integers(0, len(self.lengths), n)]
        es, en = self._side("es", lens[:, 0]), self._side("en", lens[:, 1])
        idx_es, idx_en = np.arange(n), np.arange(n)
        u = self.rng.random(n)
        earlier = (self.rng.random(n) * np.arange(n)).astype(np.int64)  # uniform in [0, i)
        dup = (u < self.dup) & (np.arange(n) > 0)
        rep = (u >= self.dup) & (u < self.dup + self.src_repeat) & (np.arange(n) > 0)
        idx_es[dup] = idx_en[dup] = earlier[dup]
        idx_es[rep] = earlier[rep]
        self.planned_dups += int(dup.sum())
        self.planned_src_repeats += int(rep.sum())
        return es.take(pa.array(idx_es)), en.take(pa.array(idx_en))


def _lines(arr: pa.Array) -> bytes:
    return ("\n".join(arr.to_pylist()) + "\n").encode("utf-8")


def generate_zip(path: Path, n: int, gen: Generator, chunk: int, compresslevel: int) -> dict:
    """Write the synthetic Moses zip, streaming: es straight into its member, en through a
    temporary file on disk (one member is written at a time)."""
    from rnnflow.hashing import row_hash

    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pair_hashes, src_hashes = [], []
    tmp_en = path.parent / ".synthetic-en.tmp"
    readme = (
        f"SYNTHETIC data generated by rnnflow benchmarks/scale_es_en.py on "
        f"{dt.date.today().isoformat()}: {n:,} made-up es-en pairs in the layout of the OPUS "
        f"OpenSubtitles v2018 Moses release. NOT the real corpus and not a translation.\n"
    )
    with zipfile.ZipFile(
        path, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel, allowZip64=True
    ) as zf:
        zf.writestr("README", readme)
        with zf.open(MEMBERS["es"], "w", force_zip64=True) as f_es, open(tmp_en, "wb") as f_en:
            done = 0
            while done < n:
                k = min(chunk, n - done)
                es, en = gen.chunk(k)
                pairs = pa.table({"src": es, "tgt": en})
                pair_hashes.append(row_hash(pairs, ("src", "tgt")).to_numpy())
                src_hashes.append(row_hash(pairs, ("src",)).to_numpy())
                f_es.write(_lines(es))
                f_en.write(_lines(en))
                done += k
        with zf.open(MEMBERS["en"], "w", force_zip64=True) as dst, open(tmp_en, "rb") as src:
            shutil.copyfileobj(src, dst, 1 << 20)
        tmp_en.unlink()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    pair_h, src_h = np.concatenate(pair_hashes), np.concatenate(src_hashes)
    dup_pairs = n - len(np.unique(pair_h))
    rep_src = n - len(np.unique(src_h))
    return {
        "path": str(path),
        "data": "synthetic",
        "pairs": n,
        "bytes": path.stat().st_size,
        "sha256": h.hexdigest(),
        "seconds": round(time.perf_counter() - t0, 2),
        "duplicate_pairs": dup_pairs,
        "duplicate_pair_fraction": round(dup_pairs / n, 5),
        "planned_duplicate_pairs": gen.planned_dups,
        "repeated_es_sentences": rep_src,
        "repeated_es_fraction": round(rep_src / n, 5),
        "planned_es_repeats": gen.planned_src_repeats,
    }


# --- the throw-away project ------------------------------------------------------------------


def copy_project(dst: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for rel in files:
        src = _ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


def write_params(root: Path, zip_info: dict) -> Path:
    from rnnflow.config import load_params

    params = load_params(root / "params.yaml")
    base = params["fetch"][CORPUS]
    params["fetch"][CORPUS] = {
        "source": [SOURCE],
        "mirror_dir": MIRROR_SUB,
        "src_lang": base.get("src_lang", "es"),
        "tgt_lang": base.get("tgt_lang", "en"),
        "chunk_lines": base.get("chunk_lines", 50000),
        "sources": {
            SOURCE: {
                "note": f"SYNTHETIC - {zip_info['pairs']:,} generated pairs in the OPUS Moses "
                f"layout (benchmarks/scale_es_en.py); not the real OpenSubtitles corpus.",
                "format": "moses",
                "origin": "opensubtitles",
                "urls": [],
                "files": {
                    "archive": {
                        "path": ZIP_NAME,
                        "checksum": "sha256:" + zip_info["sha256"],
                        "size": zip_info["bytes"],
                    }
                },
                "rows": {"opensubtitles": zip_info["pairs"]},
            }
        },
    }
    path = root / "params.synthetic.json"
    path.write_text(json.dumps(params, indent=1))  # JSON is YAML
    return path


def hop_env(root: Path, mirror: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": str(root),
            "RNNFLOW_MIRROR": str(mirror),
            "PREFECT_HOME": str(root / ".prefect"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    env.pop("PREFECT_API_URL", None)
    return env


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except FileNotFoundError:
                pass
    return total


def parquet_rows(d: Path) -> int | None:
    files = sorted(d.glob("*.parquet"))
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files) if files else None


class Poller(threading.Thread):
    """Peak sizes of the hop's temp output dirs and data/downloads (+ RSS by psutil)."""

    def __init__(self, root: Path, hop: str, pid: int | None, every: float) -> None:
        super().__init__(daemon=True)
        self.root, self.hop, self.pid, self.every = root, hop, pid, every
        self.peak_tmp = self.peak_downloads = self.peak_rss = 0
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            import psutil

            proc = psutil.Process(self.pid) if self.pid else None
        except Exception:  # noqa: BLE001  psutil missing or process gone
            proc = None
        hop_parent = self.root / "data" / HOP_DIRS[self.hop]
        while not self.stop.is_set():
            tmp = (
                sum(du(p) for p in hop_parent.glob(f".{CORPUS}.tmp-*"))
                if hop_parent.is_dir()
                else 0
            )
            self.peak_tmp = max(self.peak_tmp, tmp)
            self.peak_downloads = max(self.peak_downloads, du(self.root / "data" / "downloads"))
            if proc is not None:
                try:
                    rss = sum(p.memory_info().rss for p in [proc] + proc.children(recursive=True))
                    self.peak_rss = max(self.peak_rss, rss)
                except Exception:  # noqa: BLE001
                    pass
            self.stop.wait(self.every)


def timed(
    cmd: list[str], root: Path, env: dict[str, str], hop: str, every: float, log: Path
) -> dict:
    """Run ``cmd`` (cwd ``root``) under /usr/bin/time -v; wall s, peak RSS, peak temp disk."""
    time_bin = shutil.which("time") if not Path("/usr/bin/time").exists() else "/usr/bin/time"
    tfile = log.with_suffix(".time")
    full = ([time_bin, "-v", "-o", str(tfile)] if time_bin else []) + cmd
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(full, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
        poll = Poller(root, hop, proc.pid, every)
        poll.start()
        rc = proc.wait()
    wall = time.perf_counter() - t0
    poll.stop.set()
    poll.join()
    rss = None
    if time_bin and tfile.exists():
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", tfile.read_text())
        rss = int(m.group(1)) * 1024 if m else None
    return {
        "rc": rc,
        "wall_s": round(wall, 2),
        "peak_rss_bytes": rss if rss is not None else poll.peak_rss,
        "peak_rss_source": "/usr/bin/time -v" if rss is not None else "psutil poll",
        "peak_tmp_bytes": poll.peak_tmp,
        "peak_downloads_bytes": poll.peak_downloads,
    }


def run_pipeline(sub: Path, n: int, args: argparse.Namespace, lengths: np.ndarray) -> dict:
    """Generate ``n`` pairs, copy the project, run the five hops; per-hop numbers."""
    root, mirror = sub / "project", sub / "mirror"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    copy_project(root)
    print(f"[synthetic {n:,}] generating {mirror / MIRROR_SUB / ZIP_NAME} ...", flush=True)
    gen = Generator(
        lengths, args.vocab, args.zipf_s, args.dup_fraction, args.src_repeat_fraction, args.seed
    )
    zip_info = generate_zip(mirror / MIRROR_SUB / ZIP_NAME, n, gen, args.chunk, args.compresslevel)
    print(
        f"[synthetic {n:,}] zip {zip_info['bytes'] / 2**20:,.1f} MiB in {zip_info['seconds']} s; "
        f"duplicate pairs {zip_info['duplicate_pair_fraction']:.3%}, repeated es "
        f"{zip_info['repeated_es_fraction']:.3%}",
        flush=True,
    )
    params = write_params(root, zip_info)
    env = hop_env(root, mirror)
    logs = sub / "logs"
    logs.mkdir(exist_ok=True)
    hops, rows_in = {}, n
    for hop in HOPS:
        print(f"[synthetic {n:,}] {hop} ...", flush=True)
        cmd = [sys.executable, "-m", f"stages.{hop}", CORPUS, "--params", str(params)]
        res = timed(cmd, root, env, hop, args.poll, logs / f"{hop}.log")
        out_dir = root / "data" / HOP_DIRS[hop] / CORPUS
        rows_out = parquet_rows(out_dir) if out_dir.is_dir() else None
        res.update(
            {
                "rows_in": rows_in,
                "rows_out": rows_out,
                "rows_per_s": round(rows_in / res["wall_s"], 1) if res["wall_s"] else None,
                "output_bytes": du(out_dir) if out_dir.is_dir() else 0,
                "log": str(logs / f"{hop}.log"),
            }
        )
        if hop == "fetch":
            res["downloads_bytes"] = du(root / "data" / "downloads")
        hops[hop] = res
        print(
            f"[synthetic {n:,}] {hop}: rc {res['rc']}, {res['wall_s']} s, rows {rows_in:,} → "
            f"{rows_out}, peak RSS {res['peak_rss_bytes'] / 2**20:,.0f} MiB",
            flush=True,
        )
        if res["rc"] != 0:
            print((logs / f"{hop}.log").read_text()[-4000:], file=sys.stderr)
            break
        rows_in = rows_out
    return {
        "pairs": n,
        "data": "synthetic",
        "workdir": str(sub),
        "project": str(root),
        "params": str(params),
        "zip": zip_info,
        "hops": hops,
    }


# --- the Dask check ----------------------------------------------------------------------------

DASK_DRIVER = """
import json, sys, time
from distributed import LocalCluster
from stages import shards

if __name__ == "__main__":
    root, params, outbase, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    res = {}
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        res["address"] = cluster.scheduler_address
        for hop in ("sample", "tokenize"):
            t = time.perf_counter()
            rows = shards.run(hop, "es_en", address=cluster.scheduler_address, root=root,
                              params=params, out=f"{outbase}/{hop}")
            res[hop] = {"rows": rows, "wall_s": round(time.perf_counter() - t, 2)}
    print("DASK-RESULT " + json.dumps(res))
"""


def dask_check(run: dict, args: argparse.Namespace) -> dict:
    root, sub = Path(run["project"]), Path(run["workdir"])
    outbase = sub / "sharded"
    if outbase.exists():
        shutil.rmtree(outbase)
    outbase.mkdir()
    driver = sub / "dask_driver.py"
    driver.write_text(DASK_DRIVER)
    env = hop_env(root, sub / "mirror")
    log = sub / "logs" / "dask.log"
    print(
        f"[synthetic {run['pairs']:,}] Dask: sharded sample + tokenize on LocalCluster"
        f"(n_workers={args.workers}, threads_per_worker=1) ...",
        flush=True,
    )
    res = timed(
        [sys.executable, str(driver), str(root), run["params"], str(outbase), str(args.workers)],
        root,
        env,
        "sample",
        args.poll,
        log,
    )
    text = log.read_text()
    m = re.search(r"^DASK-RESULT (.*)$", text, re.M)
    out = {
        "how": "stages.shards.run(hop, 'es_en', address=LocalCluster(n_workers="
        f"{args.workers}, threads_per_worker=1).scheduler_address, out=...)",
        "rc": res["rc"],
        "wall_s_total": res["wall_s"],
        "peak_rss_bytes_driver": res["peak_rss_bytes"],
        "log": str(log),
    }
    if res["rc"] != 0 or not m:
        out["error"] = text[-3000:]
        return out
    out.update(json.loads(m.group(1)))
    equal = True
    for hop in ("sample", "tokenize"):
        serial, sharded = root / "data" / HOP_DIRS[hop] / CORPUS, outbase / hop
        cmp = {}
        for split in SPLITS:
            a, b = serial / f"{split}.parquet", sharded / f"{split}.parquet"
            same = pq.read_table(a).equals(pq.read_table(b))
            cmp[split] = {
                "table_equal": same,
                "bytes_identical": filecmp.cmp(a, b, shallow=False),
                "rows": pq.ParquetFile(b).metadata.num_rows,
            }
            equal &= same
        for j in sorted(serial.glob("*.json")):
            same = (sharded / j.name).exists() and json.loads(j.read_text()) == json.loads(
                (sharded / j.name).read_text()
            )
            cmp[j.name] = {"json_equal": same}
            equal &= same
        out[hop]["compare"] = cmp
    out["equal_to_serial"] = equal
    return out


# --- extrapolation and output -------------------------------------------------------------------


def extrapolate(big: dict, small: dict | None, target: int) -> dict:
    out = {}
    for hop, h in big["hops"].items():
        if h["rc"] != 0 or not h["rows_in"]:
            continue
        scale = target / big["pairs"]
        rows_t = h["rows_in"] * scale
        e = {
            "rows_in": int(rows_t),
            "wall_s_linear": round(h["wall_s"] * scale, 1),
            "peak_rss_bytes_measured": h["peak_rss_bytes"],
        }
        s = (small or {}).get("hops", {}).get(hop)
        if s and s["rc"] == 0 and s["rows_in"] and h["rows_in"] != s["rows_in"]:
            d_rows = h["rows_in"] - s["rows_in"]
            b_t = (h["wall_s"] - s["wall_s"]) / d_rows
            a_t = h["wall_s"] - b_t * h["rows_in"]
            b_m = (h["peak_rss_bytes"] - s["peak_rss_bytes"]) / d_rows
            e.update(
                {
                    "seconds_per_row": b_t,
                    "fixed_s": round(a_t, 2),
                    "wall_s_fit": round(a_t + b_t * rows_t, 1),
                    "rss_bytes_per_row": round(b_m, 2),
                    "peak_rss_bytes_fit": int(h["peak_rss_bytes"] + b_m * (rows_t - h["rows_in"])),
                    "memory_grows_with_rows": bool(
                        b_m > 2.0 and h["peak_rss_bytes"] > 1.15 * s["peak_rss_bytes"]
                    ),
                }
            )
        e["note"] = MEMORY_NOTES[hop]
        out[hop] = e
    return out


def mib(x: float | int | None) -> str:
    return "-" if x is None else f"{x / 2**20:,.0f}"


def table(run: dict, ext: dict) -> str:
    head = (
        f"{'hop':9} {'wall s':>8} {'rows in':>12} {'rows out':>12} {'rows/s':>10} "
        f"{'RSS MiB':>8} {'tmp MiB':>8} {'out MiB':>8} {'B/row':>7} {'61M s':>8} {'61M RSS':>8}"
    )
    lines = [
        f"SYNTHETIC es-en corpus, {run['pairs']:,} pairs (not the real OpenSubtitles)",
        head,
        "-" * len(head),
    ]
    for hop, h in run["hops"].items():
        e = ext.get(hop, {})
        tmp = max(h["peak_tmp_bytes"], h.get("peak_downloads_bytes", 0) if hop == "fetch" else 0)
        lines.append(
            f"{hop:9} {h['wall_s']:8.1f} {h['rows_in'] or 0:12,} {h['rows_out'] or 0:12,} "
            f"{h['rows_per_s'] or 0:10,.0f} {mib(h['peak_rss_bytes']):>8} {mib(tmp):>8} "
            f"{mib(h['output_bytes']):>8} {e.get('rss_bytes_per_row', '-')!s:>7} "
            f"{e.get('wall_s_fit', e.get('wall_s_linear', '-'))!s:>8} "
            f"{mib(e.get('peak_rss_bytes_fit', e.get('peak_rss_bytes_measured'))):>8}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--pairs", type=int, default=10_000_000, help="synthetic pairs of the main run")
    p.add_argument(
        "--compare-pairs",
        type=int,
        default=1_000_000,
        help="synthetic pairs of a second, smaller run, to fit time and memory per "
        "row (0: skip; extrapolation is then linear in rows, memory not fitted)",
    )
    p.add_argument(
        "--extrapolate-to",
        type=int,
        default=61_000_000,
        help="rows to extrapolate to (the published OpenSubtitles en-es: ~61M pairs)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="throw-away dir for the zips and project copies (default: a new "
        "/tmp/rnnflow-scale-synthetic-* dir)",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the workdir afterwards (default: removed when all went well)",
    )
    p.add_argument(
        "--out", type=Path, default=_HERE / "results" / "scale_es_en.json", help="JSON results file"
    )
    p.add_argument(
        "--length-pool",
        type=Path,
        default=DEFAULT_POOL,
        help="dir with OpenSubtitles2018-ctxpro.en-es.{es,en}: the real pairs whose "
        "joint word-count distribution the synthetic sentences follow",
    )
    p.add_argument("--vocab", type=int, default=50_000, help="synthetic word types per language")
    p.add_argument(
        "--zipf-s", type=float, default=1.0, help="Zipf-Mandelbrot exponent of the word frequencies"
    )
    p.add_argument(
        "--dup-fraction",
        type=float,
        default=0.005,
        help="fraction of pairs that copy an earlier pair exactly (clean dedupes them; "
        "clean.es_en.max_drop_fraction is 0.01)",
    )
    p.add_argument(
        "--src-repeat-fraction",
        type=float,
        default=0.03,
        help="fraction of pairs that repeat an earlier Spanish sentence with a new "
        "English one (mirror: 3.2%%)",
    )
    p.add_argument("--seed", type=int, default=0, help="generator seed")
    p.add_argument("--chunk", type=int, default=200_000, help="pairs generated per chunk")
    p.add_argument(
        "--compresslevel",
        type=int,
        default=1,
        help="deflate level of the zip members (1 fast .. 9 small)",
    )
    p.add_argument("--poll", type=float, default=0.5, help="seconds between temp-disk / RSS polls")
    p.add_argument(
        "--workers", type=int, default=2, help="Dask LocalCluster workers (1 thread each)"
    )
    p.add_argument("--no-dask", action="store_true", help="skip the Dask sharded check")
    args = p.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="rnnflow-scale-synthetic-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"workdir {work} (SYNTHETIC data only)", flush=True)
    lengths = length_pool(args.length_pool)
    t0 = time.perf_counter()
    small = None
    if args.compare_pairs:
        small = run_pipeline(
            work / f"synthetic-{args.compare_pairs}", args.compare_pairs, args, lengths
        )
    big = run_pipeline(work / f"synthetic-{args.pairs}", args.pairs, args, lengths)
    ok = all(h["rc"] == 0 for h in big["hops"].values()) and len(big["hops"]) == len(HOPS)
    dask = None
    if ok and not args.no_dask:
        dask = dask_check(big, args)
    ext = extrapolate(big, small, args.extrapolate_to)
    result = {
        "benchmark": "scale_es_en",
        "data": "synthetic",
        "what": "es_en hops on a SYNTHETIC corpus in the OPUS OpenSubtitles Moses layout "
        "(generated; not the real corpus)",
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "length_pool": {
            "pairs": int(len(lengths)),
            "mean_words": [round(float(x), 2) for x in lengths.mean(axis=0)],
        },
        "runs": {"main": big, "compare": small},
        "dask": dask,
        "extrapolation": {
            "rows": args.extrapolate_to,
            "basis": "time: a + b*rows per hop fitted on the two runs (else linear "
            "in rows); memory: peak RSS + (RSS slope per row) * extra rows",
            "hops": ext,
        },
        "total_s": round(time.perf_counter() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    if small:
        print(table(small, {}))
        print()
    print(table(big, ext))
    if dask:
        if "error" in dask:
            print(f"Dask check FAILED (rc {dask['rc']}): see {dask['log']}")
        else:
            print(
                f"Dask check (LocalCluster {args.workers}x1): sample {dask['sample']['wall_s']} s, "
                f"tokenize {dask['tokenize']['wall_s']} s; equal to serial hops: "
                f"{dask['equal_to_serial']}"
            )
    grows = [h for h, e in ext.items() if e.get("memory_grows_with_rows")]
    if small and small["pairs"] < 500_000:
        print(
            "note: --compare-pairs under 500,000 is within a few 50k-row batches: the RSS "
            "slope (B/row) then measures batch size, not growth; use >= 1,000,000"
        )
    if small:
        print(
            f"memory grows with rows in: {', '.join(grows) or 'none'} "
            f"(B/row = peak-RSS slope between {small['pairs']:,} and {big['pairs']:,} pairs)"
        )
    print(f"results → {args.out}")
    good = ok and (dask is None or dask.get("equal_to_serial", False))
    if good and not args.keep and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    elif not good or args.keep:
        print(f"workdir kept: {work}")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
