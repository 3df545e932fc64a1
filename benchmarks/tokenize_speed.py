"""Word tokenization speed: rnnflow's tokenize hop vs HF ``tokenizers`` and
``datasets.Dataset.map``.

On the same sentences (default: the mirror's Tatoeba es–en pairs,
``$RNNFLOW_MIRROR/es-en/tatoeba/spa.txt``; ``--corpus``: any English<TAB>Spanish file) every
path fits the hop's word vocabulary over both columns (lowercase, punctuation split off,
min_freq 2, most frequent first, ties alphabetical), then encodes both columns to ids:

- rnnflow: ``stages.corpora.texttok.fit`` + ``encode``, as the hop runs;
- HF tokenizers: ``WordLevel`` with a pre-tokenizer that splits as rnnflow's does (the stock
  ``Whitespace`` splits differently), fitted by ``WordLevelTrainer``, then ``encode_batch``;
  and encode only, with rnnflow's vocabulary;
- ``datasets.Dataset.map(batched=True)``, with ``num_proc=2`` and 1: pre-tokenise, count, encode.

Every path is checked to give the same vocabulary and ids (or, where HF's trainer orders the
vocabulary otherwise, the same token set and the same tokens); sentences/s of the best of
``--repeats`` runs.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

# HF tokenizers at its own default threading: rnnflow's processes turn it off (they fork
# Dask/datasets workers), which would run the HF rows on one thread.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
import benchlib as B  # noqa: E402  first of the project: rnnflow's environment defaults
import numpy as np
import pyarrow as pa

from stages.corpora import texttok
from stages.corpora.texttok import PUNCT_RE, SPECIALS, UNK, TextTokenizeConfig

TATOEBA = "es-en/tatoeba/spa.txt"  # in the mirror
COLS = ("en", "es")
MIN_FREQ = 2


def load(corpus: Path | None) -> tuple[pa.Table, str]:
    """(row_id, en, es) of a Tatoeba-style ``English<TAB>Spanish[<TAB>attribution]`` file, and
    what they are."""
    import pyarrow.csv as pacsv

    if corpus is None:
        corpus = B.mirror() / TATOEBA
        what = f"$RNNFLOW_MIRROR/{TATOEBA} (real Tatoeba es–en pairs)"
    else:
        what = corpus.name
    if not corpus.exists():
        raise SystemExit(f"{corpus}: no such file (set RNNFLOW_MIRROR or pass --corpus)")
    read = pacsv.ReadOptions(autogenerate_column_names=True, block_size=1 << 22)
    parse = pacsv.ParseOptions(delimiter="\t", quote_char=False, newlines_in_values=False)
    types = pacsv.ConvertOptions(column_types={"f0": pa.string(), "f1": pa.string()})
    raw = pacsv.read_csv(corpus, read_options=read, parse_options=parse, convert_options=types)
    table = pa.table({"en": raw.column("f0"), "es": raw.column("f1")}).combine_chunks()
    return table.add_column(0, "row_id", pa.array(np.arange(table.num_rows, dtype=np.uint64))), what


# --- the paths: each returns (vocab, {column: list of id lists}) -----------------


def run_rnnflow(table: pa.Table) -> tuple[list[str], dict[str, object]]:
    cfg = TextTokenizeConfig(kind="word", lowercase=True, min_freq=MIN_FREQ)
    batches = table.to_batches(max_chunksize=65_536)
    art = texttok.fit(batches, COLS, cfg)
    parts = [texttok.encode(pa.Table.from_batches([b]), COLS, art, cfg) for b in batches]
    out = pa.concat_tables(parts)
    return art["vocab.json"], {c: out.column(f"{c}_ids") for c in COLS}


def run_datasets(ds, num_proc: int = 1) -> tuple[list[str], dict[str, object]]:
    """Pre-tokenise, count per batch, encode: three ``Dataset.map(batched=True)`` passes."""
    from collections import Counter

    import regex

    punct = regex.compile(PUNCT_RE)

    def map_(data, fn, **kw):
        return data.map(
            fn, batched=True, batch_size=1000, keep_in_memory=True, load_from_cache_file=False,
            num_proc=None if num_proc <= 1 else num_proc, **kw,
        )  # fmt: skip

    def pretok(batch):
        return {f"{c}_tok": [punct.sub(r" \1 ", s.lower()).split() for s in batch[c]] for c in COLS}

    def count(batch):  # per-batch counts as rows (works across worker processes)
        seen: Counter = Counter()
        for c in COLS:
            for row in batch[f"{c}_tok"]:
                seen.update(row)
        return {"token": list(seen), "count": list(seen.values())}

    toks = map_(ds, pretok)
    counted = map_(toks, count, remove_columns=toks.column_names).data
    counts: Counter = Counter()
    for t, n in zip(counted.column("token").to_pylist(), counted.column("count").to_pylist()):
        counts[t] += n
    # specials + tokens seen ≥ MIN_FREQ, most frequent first, ties alphabetical: the hop's order
    kept = sorted((-c, t) for t, c in counts.items() if c >= MIN_FREQ and t not in SPECIALS)
    vocab = list(SPECIALS) + [t for _, t in kept]
    index = {t: i for i, t in enumerate(vocab)}

    def enc(batch):
        return {
            f"{c}_ids": [[index.get(t, UNK) for t in row] for row in batch[f"{c}_tok"]]
            for c in COLS
        }

    out = map_(toks, enc, remove_columns=[f"{c}_tok" for c in COLS])
    return vocab, {c: out.data.column(f"{c}_ids") for c in COLS}


def run_hf(texts: dict[str, list[str]], vocab: list[str] | None = None):
    """HF's ``WordLevel`` tokenizer, splitting as rnnflow's word pre-tokeniser does, fitted by the
    library's trainer (given ``vocab``: over it, ids = positions), then ``encode_batch`` on both
    columns."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    ids = None if vocab is None else {t: i for i, t in enumerate(vocab)}
    tok = Tokenizer(models.WordLevel(ids, unk_token=SPECIALS[UNK]))
    tok.normalizer = normalizers.Lowercase()
    split = pre_tokenizers.Split(Regex(PUNCT_RE.strip("()")), behavior="isolated")
    tok.pre_tokenizer = pre_tokenizers.Sequence([split, pre_tokenizers.WhitespaceSplit()])
    if vocab is None:
        trainer = trainers.WordLevelTrainer(
            min_frequency=MIN_FREQ, special_tokens=list(SPECIALS), show_progress=False
        )
        chunks = (texts[c][i : i + 10_000] for c in COLS for i in range(0, len(texts[c]), 10_000))
        tok.train_from_iterator(chunks, trainer=trainer, length=sum(map(len, texts.values())))
        vocab = [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])]
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    return vocab, {c: [e.ids for e in encode(texts[c], add_special_tokens=False)] for c in COLS}


def best_of(repeats: int, fn: Callable[[], tuple]) -> tuple[float, tuple]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def first_difference(ids, ref) -> str | None:
    """Where two columns of id lists (Arrow or Python) first differ; None where they do not."""
    a, b = (c.to_pylist() if isinstance(c, pa.Array | pa.ChunkedArray) else c for c in (ids, ref))
    a, b = [list(x) for x in a], [list(x) for x in b]
    if len(a) != len(b):
        return f"{len(a)} rows vs {len(b)}"
    return next((f"row {i}: {x} vs {y}" for i, (x, y) in enumerate(zip(a, b)) if x != y), None)


def main(argv: list[str] | None = None) -> int:
    parser = B.parser(__doc__, __file__, "--out")
    parser.add_argument("--corpus", type=Path, help="English<TAB>Spanish pairs (none: Tatoeba)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per path; the best counts")
    parser.add_argument("--num-proc", type=int, default=2, help="datasets.map worker processes")
    args = parser.parse_args(argv)

    import datasets
    import tokenizers

    datasets.disable_progress_bars()
    machine = B.machine(tokenizers=tokenizers.__version__, datasets=datasets.__version__)
    table, what = load(args.corpus)
    sentences = table.num_rows * len(COLS)
    texts = {c: table.column(c).to_pylist() for c in COLS}
    ds = datasets.Dataset(table.select(list(COLS)))
    print(f"data: {what}: {table.num_rows:,} pairs = {sentences:,} sentences")

    RN, HF, HFV = "rnnflow (Arrow compute)", "HF tokenizers WordLevel", "HF WordLevel, encode only"
    DSN, DS1 = f"datasets.map(batched, num_proc={args.num_proc})", "datasets.map(batched)"
    results = {
        RN: best_of(args.repeats, lambda: run_rnnflow(table)),
        HF: best_of(args.repeats, lambda: run_hf(texts)),
    }
    ref_vocab, ref_ids = results[RN][1]
    results[HFV] = best_of(args.repeats, lambda: run_hf(texts, ref_vocab))
    results[DSN] = best_of(args.repeats, lambda: run_datasets(ds, args.num_proc))
    results[DS1] = best_of(args.repeats, lambda: run_datasets(ds, 1))

    # Fairness: the same vocabulary and the same ids from every path.
    checks: dict[str, str] = {}
    for name, (_, (vocab, ids)) in results.items():
        if name == HF and vocab != ref_vocab:
            assert set(vocab) == set(ref_vocab), f"{name}: vocabulary set differs from rnnflow's"
            pos = next(i for i, (a, b) in enumerate(zip(vocab, ref_vocab)) if a != b)
            checks[name] = (
                f"trainer's vocabulary order differs from rnnflow's (first at id {pos}: "
                f"{vocab[pos]!r} vs {ref_vocab[pos]!r}); same token set; ids compared as tokens"
            )
            where = {t: j for j, t in enumerate(ref_vocab)}
            lookup = [where[t] for t in vocab]
            ids = {c: [[lookup[i] for i in row] for row in ids[c]] for c in COLS}
        else:
            assert vocab == ref_vocab, f"{name}: vocabulary differs from rnnflow's"
            checks[name] = "same vocabulary (same order) and ids"
        for c in COLS:
            diff = first_difference(ids[c], ref_ids[c])
            assert diff is None, f"{name}: {c} ids differ from rnnflow's at {diff}"
    print(f"check: every path gives the same {len(ref_vocab):,}-token vocabulary and the same ids")

    ours = results[RN][0]
    rows = []
    for name, (secs, _) in results.items():
        row = {"path": name, "seconds": round(secs, 4), "sentences_per_s": round(sentences / secs)}
        rows.append({**row, "rnnflow_speedup": round(secs / ours, 2), "check": checks[name]})
        print(f"{name:<36}{secs:>9.3f} s {sentences / secs:>12,.0f}/s {secs / ours:>7.2f}×")
    doc = {
        "benchmark": "tokenize_speed",
        "data": what,
        "pairs": table.num_rows,
        "sentences": sentences,
        "vocab_size": len(ref_vocab),
        "repeats": args.repeats,
        "num_proc": args.num_proc,
        "when": B.now(),
        "machine": {
            **machine,
            "tokenizers_parallelism": os.environ["TOKENIZERS_PARALLELISM"],
            "load_avg_at_end": B.load_avg(),
        },
        "rows": rows,
    }
    B.write(args.out, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
