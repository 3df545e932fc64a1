"""Peak memory of the clean → format → sample → tokenize hops on 1× and N× a corpus.

    python benchmarks/memory.py [--corpus es_en] [--scale 10] [--keep DIR]

Every hop streams Arrow record batches, so its peak RSS should stay roughly flat as the
input grows. This script shows it: in two throw-away project roots it fetches the corpus
from the mirror (``$RNNFLOW_MIRROR``, default ``../shared/corpora``; sources as in
``profiles/ci.yaml``, no sampling), builds the N× raw input by repeating every raw row N
times with a distinguishing word appended to each text column (so deduplication keeps
them), then runs each hop in its own child process through ``rnnflow.hop.execute(root=…)``
— the real hop, validation included — and reads that child's peak RSS from
``os.wait4``. With ``--texttok-only``, or if the corpus has no adapter (not in
``stages.corpora.REGISTRY``, said so), it measures a streaming texttok fit + encode (no
validation) over generated text instead.
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
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

HOPS = ("clean", "format", "sample", "tokenize")


# --- child side ---------------------------------------------------------------------------


def child(what: str, corpus: str, root: str) -> int:
    """Run in the measured child process: one hop, or the import floor, or texttok only."""
    import rnnflow  # noqa: F401  offline env

    if what == "baseline":
        import great_expectations  # noqa: F401  what every hop imports to validate
        import pyarrow  # noqa: F401

        from stages import clean, format, sample, tokenize  # noqa: F401

        return 0
    if what == "texttok":
        return _texttok_only(Path(root))
    import importlib

    from rnnflow.hop import execute

    module = importlib.import_module(f"stages.{what}")
    return execute(
        what,
        corpus,
        module.body_for(corpus, None),
        params_path=Path(root) / "params.yaml",
        root=Path(root),
    )


def _texttok_only(root: Path) -> int:
    from rnnflow import io
    from stages.corpora import texttok

    src = root / "text.parquet"
    cfg = texttok.TextTokenizeConfig(min_freq=2)
    art = texttok.fit(io.iter_batches(src), ("src", "tgt"), cfg)
    with io.BatchWriter(root / "tokens.parquet") as writer:
        import pyarrow as pa

        for batch in io.iter_batches(src):
            writer.write(texttok.encode(pa.Table.from_batches([batch]), ("src", "tgt"), art, cfg))
    return 0


# --- parent side --------------------------------------------------------------------------


def measure(args: list[str], env: dict[str, str]) -> tuple[int, float, float, str]:
    """Run ``memory.py --child ARGS`` and return (exit code, peak RSS MiB, seconds, stderr)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", *args],
            cwd=_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace")
    return proc.returncode, usage.ru_maxrss / 1024, time.perf_counter() - started, text


def write_params(root: Path, corpus: str) -> None:
    from rnnflow.config import deep_merge, load_params

    params = deep_merge(
        load_params(_ROOT / "params.yaml"), load_params(_ROOT / "profiles" / "ci.yaml")
    )
    params = deep_merge(
        params, {"sample": {corpus: {"train": None, "validation": None, "test": None}}}
    )
    (root / "params.yaml").write_text(json.dumps(params, indent=1))


def multiply_raw(src_dir: Path, dst_dir: Path, scale: int) -> int:
    """Each raw file N times, copy k with `` r<k>`` appended to its string columns (streamed)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from rnnflow import io

    dst_dir.mkdir(parents=True, exist_ok=True)
    rows = 0
    for path in sorted(src_dir.glob("*.parquet")):
        schema = io.read_table(path).schema
        text = [f.name for f in schema if pa.types.is_string(f.type) and f.name != "origin"]
        with io.BatchWriter(dst_dir / path.name, schema) as writer:
            for k in range(scale):
                for batch in io.iter_batches(path):
                    table = pa.Table.from_batches([batch])
                    if k:
                        for name in text:
                            col = pc.binary_join_element_wise(table.column(name), f"r{k}", " ")
                            table = table.set_column(table.schema.get_field_index(name), name, col)
                    writer.write(table)
                    rows += table.num_rows
    return rows


def rows_of(root: Path, hop: str, corpus: str) -> int:
    import pyarrow.parquet as pq

    from rnnflow.hop import data_dir

    return sum(
        pq.ParquetFile(p).metadata.num_rows for p in data_dir(hop, corpus, root).glob("*.parquet")
    )


def run_hops(corpus: str, scale: int, work: Path, env: dict[str, str]) -> int:
    from rnnflow.hop import data_dir

    roots = {1: work / "x1", scale: work / f"x{scale}"}
    for root in roots.values():
        root.mkdir(parents=True)
        write_params(root, corpus)
    rc, rss, secs, err = measure(["fetch", corpus, str(roots[1])], env)
    if rc:
        print(f"fetch {corpus} failed:\n{err}", file=sys.stderr)
        return 1
    raw_rows = rows_of(roots[1], "fetch", corpus)
    multiply_raw(
        data_dir("fetch", corpus, roots[1]), data_dir("fetch", corpus, roots[scale]), scale
    )
    print(
        f"corpus: {corpus} from the mirror, {raw_rows:,} raw rows (1×) and "
        f"{rows_of(roots[scale], 'fetch', corpus):,} ({scale}×, each copy with its own suffix)"
    )
    _, floor, _, _ = measure(["baseline", corpus, str(roots[1])], env)
    print(f"import floor (python + pyarrow + GX + stages): {floor:,.0f} MiB\n")
    print(
        f"{'hop':<10}{'rows out 1×':>13}{'peak 1×':>10}{'s':>7}"
        f"{f'rows out {scale}×':>15}{f'peak {scale}×':>11}{'s':>7}{'ratio':>8}"
    )
    for hop in HOPS:
        got = {}
        for n, root in roots.items():
            rc, rss, secs, err = measure([hop, corpus, str(root)], env)
            if rc:
                print(f"{hop} {corpus} ({n}×) failed:\n{err}", file=sys.stderr)
                return 1
            got[n] = (rows_of(root, hop, corpus), rss, secs)
        (r1, m1, s1), (rn, mn, sn) = got[1], got[scale]
        print(
            f"{hop:<10}{r1:>13,}{m1:>8,.0f}Mi{s1:>7.1f}{rn:>15,}{mn:>9,.0f}Mi{sn:>7.1f}"
            f"{mn / m1:>7.2f}×"
        )
    return 0


def run_texttok_only(scale: int, work: Path, env: dict[str, str]) -> int:
    import numpy as np
    import pyarrow as pa

    from rnnflow import io

    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(30000)])
    print("corpus: generated sentence pairs, streamed through texttok fit + encode only")
    print(f"{'scale':<8}{'rows':>12}{'peak RSS':>12}{'s':>7}")
    for n in (1, scale):
        root = work / f"x{n}"
        root.mkdir(parents=True)
        with io.BatchWriter(root / "text.parquet") as writer:
            for _ in range(4 * n):
                cols = {}
                for c in ("src", "tgt"):
                    toks = words[np.minimum(rng.zipf(1.2, (50_000, 12)), len(words)) - 1]
                    cols[c] = [" ".join(r) for r in toks]
                writer.write(
                    pa.table(
                        {"row_id": pa.array(rng.integers(0, 2**63, 50_000), pa.uint64()), **cols}
                    )
                )
        rc, rss, secs, err = measure(["texttok", "-", str(root)], env)
        if rc:
            print(err, file=sys.stderr)
            return 1
        print(f"{n}×{'':<6}{200_000 * n:>12,}{rss:>10,.0f}Mi{secs:>7.1f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(*argv[1:4])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="es_en", help="registered corpus (default es_en)")
    parser.add_argument("--scale", type=int, default=10, help="the bigger input, ×N (default 10)")
    parser.add_argument(
        "--texttok-only",
        action="store_true",
        help="measure texttok fit + encode alone, on generated text",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="work here and keep the outputs (default: a temp dir, removed)",
    )
    args = parser.parse_args(argv)

    from stages import corpora

    env = dict(os.environ)
    env.setdefault("RNNFLOW_MIRROR", str(_ROOT.parent / "shared" / "corpora"))
    work = args.keep or Path(tempfile.mkdtemp(prefix="rnnflow-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.corpus in corpora.REGISTRY and not args.texttok_only:
            return run_hops(args.corpus, args.scale, work, env)
        if not args.texttok_only:
            print(
                f"{args.corpus!r} has no adapter in stages.corpora.REGISTRY: "
                f"measuring texttok alone on generated text"
            )
        return run_texttok_only(args.scale, work, env)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
