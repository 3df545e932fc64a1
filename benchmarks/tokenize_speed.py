r"""Word tokenization speed: rnnflow's tokenize hop vs its real peers (HF ``tokenizers``,
``datasets.Dataset.map``), with naive pandas as a secondary row.

    python benchmarks/tokenize_speed.py [--rows N] [--corpus PATH] [--repeats 3] [--quick]
        [--out benchmarks/results/tokenize_speed.json]

On the same sentences (default: the Tatoeba es–en pairs of the mirror,
``../shared/corpora/es-en/tatoeba/spa.txt``, English<TAB>Spanish, read with ``pyarrow.csv``;
generated sentences if the mirror is absent — the output says which), each path does the same
work: fit a word vocabulary (lowercase, every character that is not a letter, digit, mark or
space split off on its own, whitespace split; min_freq 2; most frequent first, ties
alphabetical; the four specials first) over both columns, then encode both columns to ids
(unknown → ``<unk>``):

- rnnflow: ``stages.corpora.texttok.fit`` + ``encode`` per 65,536-row record batch (what the
  tokenize hop runs, in one process);
- HF tokenizers: a ``WordLevel`` model, ``Lowercase`` normaliser, pre-tokenizer
  ``Split(r"[^\p{L}\p{N}\p{M}\s]", "isolated")`` + ``WhitespaceSplit`` (the stock ``Whitespace``
  pre-tokenizer, ``\w+|[^\w\s]+``, keeps runs of punctuation such as ``?!`` or ``...`` together
  and ``_`` inside words, so it is *not* equivalent: the script counts the sentences where it
  differs), fitted with ``WordLevelTrainer(min_frequency=2)`` from an iterator over the text,
  then ``encode_batch`` (ids as Python lists, as a user gets them);
- ``datasets.Dataset.map(batched=True, num_proc=2)`` (and ``num_proc=1``) for pre-tokenisation
  (``regex``), counting and encoding;
- naive pandas (secondary): ``Series.apply`` (``regex`` sub + ``str.split``) + a Python dict.

The script asserts that every path gives the same vocabulary and the same ids (for HF: if its
trainer orders the vocabulary differently, it says so, checks the same token *set*, and checks
ids of a ``WordLevel`` built from rnnflow's vocabulary), then prints sentences/second (each
text cell is one sentence: a pair is two) for the best of ``--repeats`` runs, and the ratios
rnnflow / peer. Results as JSON (``--out``).
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# the project root, for a checkout that is not pip-installed (e.g. the GPU machine)
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

import rnnflow  # noqa: E402,F401  offline/telemetry env defaults first
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
        parse_options=pacsv.ParseOptions(
            delimiter="\t", quote_char=False, newlines_in_values=False
        ),
        convert_options=pacsv.ConvertOptions(column_types={"f0": pa.string(), "f1": pa.string()}),
    )
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
        out[col] = [
            " ".join(toks[e - k : e]) + rng.choice([".", "?", "!"]) for e, k in zip(ends, lengths)
        ]
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


def run_datasets(ds, num_proc: int = 1) -> tuple[list[str], dict[str, object]]:
    from collections import Counter

    import regex

    punct = regex.compile(PUNCT_RE)
    procs = None if num_proc <= 1 else num_proc

    def pretok(batch):
        return {f"{c}_tok": [punct.sub(r" \1 ", s.lower()).split() for s in batch[c]] for c in COLS}

    toks = ds.map(
        pretok,
        batched=True,
        batch_size=1000,
        keep_in_memory=True,
        num_proc=procs,
        load_from_cache_file=False,
    )

    def count(batch):  # per-batch counts as rows (works across worker processes)
        seen: Counter = Counter()
        for c in COLS:
            for row in batch[f"{c}_tok"]:
                seen.update(row)
        return {"token": list(seen), "count": list(seen.values())}

    counted = toks.map(
        count,
        batched=True,
        batch_size=1000,
        keep_in_memory=True,
        num_proc=procs,
        remove_columns=toks.column_names,
        load_from_cache_file=False,
    )
    counts: Counter = Counter()
    for t, n in zip(
        counted.data.column("token").to_pylist(), counted.data.column("count").to_pylist()
    ):
        counts[t] += n
    vocab = sorted_vocab(counts)
    index = {t: i for i, t in enumerate(vocab)}

    def enc(batch):
        return {
            f"{c}_ids": [[index.get(t, UNK) for t in row] for row in batch[f"{c}_tok"]]
            for c in COLS
        }

    out = toks.map(
        enc,
        batched=True,
        batch_size=1000,
        keep_in_memory=True,
        num_proc=procs,
        remove_columns=[f"{c}_tok" for c in COLS],
        load_from_cache_file=False,
    )
    return vocab, {c: out.data.column(f"{c}_ids") for c in COLS}


def hf_tokenizer(vocab: list[str] | None = None, stock_whitespace: bool = False):
    """The HF ``WordLevel`` tokenizer equivalent to rnnflow's word pre-tokeniser (empty, to be
    trained; or over ``vocab``, ids = positions)."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    wl = (
        models.WordLevel(unk_token=SPECIALS[UNK])
        if vocab is None
        else models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token=SPECIALS[UNK])
    )
    tok = Tokenizer(wl)
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = (
        pre_tokenizers.Whitespace()
        if stock_whitespace
        else pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(PUNCT_RE.strip("()")), behavior="isolated"),
                pre_tokenizers.WhitespaceSplit(),
            ]
        )
    )
    return tok


def run_hf(texts: dict[str, list[str]]) -> tuple[list[str], dict[str, object]]:
    """Fit a WordLevel vocabulary with the library's trainer, then ``encode_batch`` both
    columns."""
    from tokenizers import trainers

    tok = hf_tokenizer()
    trainer = trainers.WordLevelTrainer(
        min_frequency=MIN_FREQ, special_tokens=list(SPECIALS), show_progress=False
    )

    def chunks():
        for c in COLS:
            col = texts[c]
            for i in range(0, len(col), 10_000):
                yield col[i : i + 10_000]

    tok.train_from_iterator(chunks(), trainer=trainer, length=sum(map(len, texts.values())))
    v = tok.get_vocab()
    vocab = [t for t, _ in sorted(v.items(), key=lambda kv: kv[1])]
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    return vocab, {c: [e.ids for e in encode(texts[c], add_special_tokens=False)] for c in COLS}


def run_hf_fixed_vocab(texts: dict[str, list[str]], vocab: list[str]):
    """Encode only, with a ``WordLevel`` built from ``vocab`` (rnnflow's)."""
    tok = hf_tokenizer(vocab)
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    return vocab, {c: [e.ids for e in encode(texts[c], add_special_tokens=False)] for c in COLS}


def stock_whitespace_differences(texts: dict[str, list[str]], limit: int = 5):
    """Sentences where HF's stock ``Whitespace`` pre-tokenizer splits differently from
    rnnflow's (lowercased): count and the first ``limit`` examples."""
    ours, stock = hf_tokenizer().pre_tokenizer, hf_tokenizer(stock_whitespace=True).pre_tokenizer
    n, examples = 0, []
    for c in COLS:
        for s in texts[c]:
            low = s.lower()
            a = [t for t, _ in ours.pre_tokenize_str(low)]
            b = [t for t, _ in stock.pre_tokenize_str(low)]
            if a != b:
                n += 1
                if len(examples) < limit:
                    examples.append({"text": s, "rnnflow": a, "Whitespace": b})
    return n, examples


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


def first_difference(ids, ref) -> str | None:
    a, b = as_lists(ids), as_lists(ref)
    if len(a) != len(b):
        return f"{len(a)} rows vs {len(b)}"
    for i, (x, y) in enumerate(zip(a, b)):
        if list(x) != list(y):
            return f"row {i}: {list(x)} vs {list(y)}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/tokenize_speed.py",
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=None,
        help="sentence pairs to use (default: the whole file; more repeats it)",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help="a TSV of English<TAB>Spanish pairs (default: the mirror's Tatoeba)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per path; the best counts")
    parser.add_argument(
        "--num-proc",
        type=int,
        default=2,
        help="datasets.map worker processes for the peer row (default: 2)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 pairs, 1 repeat")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON output (default: benchmarks/results/tokenize_speed.json; "
        "--quick: tokenize_speed_quick.json)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeats = args.rows or 5000, 1
    out_path = args.out or _HERE / "results" / (
        "tokenize_speed_quick.json" if args.quick else "tokenize_speed.json"
    )

    import datasets
    import pandas as pd
    import tokenizers

    datasets.disable_progress_bars()
    table, what = load(args.rows, args.corpus)
    sentences = table.num_rows * len(COLS)
    texts = {c: table.column(c).to_pylist() for c in COLS}
    frame = pd.DataFrame(texts)
    ds = datasets.Dataset(table.select(list(COLS)))
    print(
        f"data: {what}\n      {table.num_rows:,} pairs = {sentences:,} sentences; "
        f"best of {args.repeats} runs each (fit + encode)"
    )

    RN, HF, HFV = "rnnflow (Arrow compute)", "HF tokenizers WordLevel", "HF WordLevel, encode only"
    DS1, DSN, PD = (
        "datasets.map(batched)",
        f"datasets.map(batched, num_proc={args.num_proc})",
        "naive pandas .apply",
    )
    results = {
        RN: best_of(args.repeats, lambda: run_rnnflow(table)),
        HF: best_of(args.repeats, lambda: run_hf(texts)),
    }
    ref_vocab, ref_ids = results[RN][1]
    results[HFV] = best_of(args.repeats, lambda: run_hf_fixed_vocab(texts, ref_vocab))
    results[DSN] = best_of(args.repeats, lambda: run_datasets(ds, args.num_proc))
    results[DS1] = best_of(args.repeats, lambda: run_datasets(ds, 1))
    results[PD] = best_of(args.repeats, lambda: run_pandas(frame))

    # Fairness: the same vocabulary and the same ids from every path.
    checks: dict[str, str] = {}
    for name, (_, (vocab, ids)) in results.items():
        if name == HF and vocab != ref_vocab:
            same_set = set(vocab) == set(ref_vocab)
            pos = next((i for i, (a, b) in enumerate(zip(vocab, ref_vocab)) if a != b), None)
            checks[name] = (
                f"trainer's vocabulary order differs from rnnflow's (first at id "
                f"{pos}: {vocab[pos]!r} vs {ref_vocab[pos]!r}); same token set: "
                f"{same_set}; ids compared through tokens"
            )
            assert same_set, f"{name}: vocabulary set differs from rnnflow's"
            where = {t: j for j, t in enumerate(ref_vocab)}
            lookup = [where[t] for t in vocab]
            ids = {c: [[lookup[i] for i in row] for row in ids[c]] for c in COLS}
        else:
            assert vocab == ref_vocab, f"{name}: vocabulary differs from rnnflow's"
            checks.setdefault(name, "same vocabulary (same order) and ids")
        for c in COLS:
            diff = first_difference(ids[c], ref_ids[c])
            assert diff is None, f"{name}: {c} ids differ from rnnflow's at {diff}"
    print(f"check: every path gives the same {len(ref_vocab):,}-token vocabulary and the same ids")
    for name, note in checks.items():
        if name == HF:
            print(f"       {name}: {note}")
    n_diff, examples = stock_whitespace_differences(texts)
    print(
        f"note: HF's stock Whitespace pre-tokenizer would split {n_diff:,} of {sentences:,} "
        f"sentences differently (runs of punctuation, '_'), e.g. "
        f"{examples[0]['text']!r}: {examples[0]['Whitespace']}"
        if examples
        else "note: HF's stock Whitespace pre-tokenizer agrees on every sentence"
    )

    ours = results[RN][0]
    rows = []
    print(f"\n{'path':<36}{'seconds':>9}{'sentences/s':>14}{'rnnflow/peer':>14}")
    for name, (secs, _) in results.items():
        rows.append(
            {
                "path": name,
                "seconds": round(secs, 4),
                "sentences_per_s": round(sentences / secs),
                "rnnflow_speedup": round(secs / ours, 2),
                "check": checks.get(name),
            }
        )
        print(f"{name:<36}{secs:>9.3f}{sentences / secs:>14,.0f}{secs / ours:>13.2f}×")
    print(
        f"\nrnnflow / HF tokenizers (fit+encode): {results[HF][0] / ours:.2f}×; "
        f"/ datasets.map num_proc={args.num_proc}: {results[DSN][0] / ours:.2f}×; "
        f"/ naive pandas: {results[PD][0] / ours:.2f}×"
    )
    doc = {
        "benchmark": "tokenize_speed",
        "quick": args.quick,
        "data": what,
        "pairs": table.num_rows,
        "sentences": sentences,
        "vocab_size": len(ref_vocab),
        "repeats": args.repeats,
        "num_proc": args.num_proc,
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "tokenizers": tokenizers.__version__,
            "datasets": datasets.__version__,
            "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "stock_whitespace_differs": {"sentences": n_diff, "examples": examples},
        "rows": rows,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
