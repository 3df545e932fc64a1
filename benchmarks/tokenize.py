"""Word tokenization speed: rnnflow (Arrow compute) vs naive pandas vs datasets.map.

    python benchmarks/tokenize.py [--rows N] [--corpus PATH] [--repeats 3]

On the same sentences (default: the Tatoeba es–en pairs of the mirror,
``../shared/corpora/es-en/tatoeba/spa.txt``, read with ``pyarrow.csv`` as TSV; generated
sentences if the mirror is absent — the output says which), each path does the same work:
fit a word vocabulary (lowercase, punctuation split off, whitespace split; min_freq 2;
most frequent first, ties alphabetical; specials first) over both columns, then encode both
columns to ids (unknown → ``<unk>``):

- rnnflow: ``stages.corpora.texttok.fit`` + ``encode`` per 65,536-row record batch;
- naive pandas: ``Series.apply`` (``regex`` sub + ``str.split``) + a Python-dict vocabulary
  + per-row list-comprehension encode;
- datasets: ``Dataset.map(batched=True)`` for pre-tokenisation, counting and encoding.

The script asserts that all three give the same vocabulary and the same ids, so the
comparison is fair, then prints sentences/second (each text cell is one sentence: a pair is
two) for the best of ``--repeats`` runs, and the ratios.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the stdlib ``tokenize`` module, which ``linecache``/``inspect``
# import: take the script's own directory off the path before anything imports it.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import rnnflow  # noqa: E402,F401  offline/telemetry env defaults first
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from stages.corpora import texttok  # noqa: E402
from stages.corpora.texttok import PUNCT_RE, SPECIALS, UNK, TextTokenizeConfig  # noqa: E402

MIRROR = _HERE.parent.parent / "shared" / "corpora" / "es-en" / "tatoeba" / "spa.txt"
COLS = ("en", "es")
MIN_FREQ = 2


def read_pairs(path: Path) -> pa.Table:
    """A Tatoeba-style ``English<TAB>Spanish[<TAB>attribution]`` file as (en, es)."""
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(autogenerate_column_names=True, block_size=1 << 22),
        parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False,
                                         newlines_in_values=False),
        convert_options=pacsv.ConvertOptions(column_types={"f0": pa.string(),
                                                           "f1": pa.string()}))
    return pa.table({"en": table.column("f0"), "es": table.column("f1")})


def generated_pairs(rows: int, seed: int = 0) -> pa.Table:
    """Zipf-distributed made-up words with punctuation, when no mirror is present."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(20000)])
    out = {}
    for col in COLS:
        lengths = rng.integers(3, 16, rows)
        ranks = np.minimum(rng.zipf(1.2, int(lengths.sum())), len(words)) - 1
        toks = words[ranks]
        ends = np.cumsum(lengths)
        out[col] = [" ".join(toks[e - k:e]) + rng.choice([".", "?", "!"])
                    for e, k in zip(ends, lengths)]
    return pa.table(out)


def load(rows: int | None, corpus: Path | None) -> tuple[pa.Table, str]:
    path = corpus or MIRROR
    if path.exists():
        table, what = read_pairs(path), f"{path} (real Tatoeba es–en pairs)"
    elif corpus is not None:
        raise SystemExit(f"{corpus}: no such file")
    else:
        table, what = generated_pairs(rows or 100_000), "generated sentences (mirror absent)"
    if rows is not None:
        if rows > table.num_rows:
            reps = -(-rows // table.num_rows)
            table = pa.concat_tables([table] * reps)
            what += f", repeated ×{reps}"
        table = table.slice(0, rows)
    table = table.combine_chunks()
    return table.add_column(0, "row_id", pa.array(np.arange(table.num_rows, dtype=np.uint64))), what


def sorted_vocab(counts: dict[str, int]) -> list[str]:
    """Specials + tokens seen ≥ MIN_FREQ, most frequent first, ties alphabetical."""
    kept = [(-c, t) for t, c in counts.items() if c >= MIN_FREQ and t not in SPECIALS]
    return list(SPECIALS) + [t for _, t in sorted(kept)]


# --- the three paths: each returns (vocab, {column: list of id lists}) -----------------

def run_rnnflow(table: pa.Table) -> tuple[list[str], dict[str, object]]:
    cfg = TextTokenizeConfig(kind="word", lowercase=True, min_freq=MIN_FREQ)
    batches = table.to_batches(max_chunksize=65_536)
    art = texttok.fit(batches, COLS, cfg)
    parts = [texttok.encode(pa.Table.from_batches([b]), COLS, art, cfg) for b in batches]
    out = pa.concat_tables(parts)
    return art["vocab.json"], {c: out.column(f"{c}_ids") for c in COLS}


def run_pandas(frame) -> tuple[list[str], dict[str, object]]:
    import regex

    punct = regex.compile(PUNCT_RE)

    def split(s: str) -> list[str]:
        return punct.sub(r" \1 ", s.lower()).split()

    tokens = {c: frame[c].apply(split) for c in COLS}
    counts: dict[str, int] = {}
    for c in COLS:
        for row in tokens[c]:
            for t in row:
                counts[t] = counts.get(t, 0) + 1
    vocab = sorted_vocab(counts)
    index = {t: i for i, t in enumerate(vocab)}
    ids = {c: tokens[c].apply(lambda row: [index.get(t, UNK) for t in row]) for c in COLS}
    return vocab, ids


def run_datasets(ds) -> tuple[list[str], dict[str, object]]:
    import regex

    punct = regex.compile(PUNCT_RE)

    def pretok(batch):
        return {f"{c}_tok": [punct.sub(r" \1 ", s.lower()).split() for s in batch[c]]
                for c in COLS}

    toks = ds.map(pretok, batched=True, batch_size=1000, keep_in_memory=True)
    counts: dict[str, int] = {}

    def count(batch):
        for c in COLS:
            for row in batch[f"{c}_tok"]:
                for t in row:
                    counts[t] = counts.get(t, 0) + 1

    toks.map(count, batched=True, batch_size=1000, keep_in_memory=True,
             load_from_cache_file=False)
    vocab = sorted_vocab(counts)
    index = {t: i for i, t in enumerate(vocab)}

    def enc(batch):
        return {f"{c}_ids": [[index.get(t, UNK) for t in row] for row in batch[f"{c}_tok"]]
                for c in COLS}

    out = toks.map(enc, batched=True, batch_size=1000, keep_in_memory=True,
                   remove_columns=[f"{c}_tok" for c in COLS])
    return vocab, {c: out.data.column(f"{c}_ids") for c in COLS}


def best_of(repeats: int, fn: Callable[[], tuple]) -> tuple[float, tuple]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def as_lists(col) -> list:
    if isinstance(col, (pa.Array, pa.ChunkedArray)):
        return col.to_pylist()
    return list(col)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=None,
                        help="sentence pairs to use (default: the whole file; more repeats it)")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="a TSV of English<TAB>Spanish pairs (default: the mirror's Tatoeba)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per path; the best counts")
    args = parser.parse_args(argv)

    import datasets
    import pandas as pd

    datasets.disable_progress_bars()
    table, what = load(args.rows, args.corpus)
    sentences = table.num_rows * len(COLS)
    frame = pd.DataFrame({c: table.column(c).to_pylist() for c in COLS})
    ds = datasets.Dataset(table.select(list(COLS)))
    print(f"data: {what}\n      {table.num_rows:,} pairs = {sentences:,} sentences; "
          f"best of {args.repeats} runs each (fit + encode)")

    results = {}
    for name, fn in (("rnnflow (Arrow compute)", lambda: run_rnnflow(table)),
                     ("naive pandas .apply", lambda: run_pandas(frame)),
                     ("datasets.map(batched)", lambda: run_datasets(ds))):
        results[name] = best_of(args.repeats, fn)

    # Fairness: the same vocabulary and the same ids from every path.
    (ref_vocab, ref_ids) = results["rnnflow (Arrow compute)"][1]
    for name, (_, (vocab, ids)) in results.items():
        assert vocab == ref_vocab, f"{name}: vocabulary differs from rnnflow's"
        for c in COLS:
            assert as_lists(ids[c]) == as_lists(ref_ids[c]), f"{name}: {c} ids differ"
    print(f"check: all three give the same {len(ref_vocab):,}-token vocabulary and the same ids")

    base = results["naive pandas .apply"][0]
    print(f"\n{'path':<26}{'seconds':>9}{'sentences/s':>14}{'vs pandas':>11}")
    for name, (secs, _) in results.items():
        print(f"{name:<26}{secs:>9.3f}{sentences / secs:>14,.0f}{base / secs:>10.1f}×")
    ours = results["rnnflow (Arrow compute)"][0]
    print(f"\nrnnflow vs naive pandas: {base / ours:.1f}× (target ≥ 5×); "
          f"vs datasets.map: {results['datasets.map(batched)'][0] / ours:.1f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
