"""Tiny text corpora in the tokenize hop's exact contract (texttok's own fit/encode), for the
text model tests: a grammar for the language model, a word-for-word es→en toy translation,
and templated dialogue. Each is learnable in a few dozen steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rnnflow.io import write_json
from stages.corpora import texttok

ES_EN = {
    "el": "the",
    "gato": "cat",
    "perro": "dog",
    "come": "eats",
    "bebe": "drinks",
    "agua": "water",
    "pan": "bread",
    "niño": "boy",
    "ve": "sees",
    "grande": "big",
    "pequeño": "small",
    "rojo": "red",
    "casa": "house",
    "y": "and",
    "tom": "Tom",
}
NOUNS, VERBS, ADJS = (
    ["gato", "perro", "niño", "tom"],
    ["come", "bebe", "ve"],
    ["grande", "pequeño", "rojo"],
)
OBJS = ["agua", "pan", "casa"]


def _lm_rows(rng, n):
    subj = ["the cat", "the dog", "a boy", "alice", "the queen"]
    verb = ["sat on", "looked at", "ran to", "spoke to"]
    obj = ["the mat", "the door", "the king", "a tree"]
    return [
        {
            "text": " ".join(
                f"{rng.choice(subj)} {rng.choice(verb)} {rng.choice(obj)} ."
                for _ in range(rng.integers(1, 4))
            )
        }
        for _ in range(n)
    ]


def _translate_rows(rng, n):
    rows = []
    for i in range(n):
        words = ["el", str(rng.choice(NOUNS))]
        if rng.random() < 0.5:
            words.append(str(rng.choice(ADJS)))
        words += [str(rng.choice(VERBS)), str(rng.choice(OBJS))]
        src = " ".join(words) + "."
        tgt = " ".join(ES_EN[w] for w in words if not (w == "el" and words[1] == "tom")) + "."
        rows.append(
            {
                "src": src,
                "tgt": tgt[0].upper() + tgt[1:],
                "origin": "tatoeba" if i % 3 else "opensubtitles",
            }
        )
    return rows


def _dialogue_rows(rng, n):
    pairs = [
        ("hi how are you ?", "i am fine thanks"),
        ("what is your name ?", "my name is bot"),
        ("do you like tea ?", "yes i like tea"),
        ("good night", "good night to you"),
        ("where are you ?", "i am at home"),
    ]
    out = []
    for _ in range(n):
        c, r = pairs[rng.integers(len(pairs))]
        out.append({"context": c, "response": r})
    return out


# 60 made-up names, the same in every split
NAMES = ["".join(w) for w in np.random.default_rng(7).choice(list("bcdfgklmnprstvz"), (60, 5))]


def _echo_rows(rng, n):
    # each name in few rows: a reply names the context's name, which a decoder can take from
    # its context far sooner than it can learn each name as an output word
    names = NAMES
    return [
        {"context": f"my name is {name}", "response": f"hello {name}"}
        for name in (names[i] for i in rng.integers(len(names), size=n))
    ]


def _generic_rows(rng, n):
    # the echo, but most rows answer every name with one generic reply: the most likely
    # reply to any context is then the generic one
    return [
        {
            "context": r["context"],
            "response": "i do not know" if rng.random() < 0.6 else r["response"],
        }
        for r in _echo_rows(rng, n)
    ]


TASKS = {
    "lm": (_lm_rows, ("text",), {"task": "lm", "ids": "text_ids"}),
    "translate": (
        _translate_rows,
        ("src", "tgt"),
        {"task": "translate", "source": "src_ids", "target": "tgt_ids"},
    ),
    "echo": (
        _echo_rows,
        ("context", "response"),
        {"task": "dialogue", "source": "context_ids", "target": "response_ids"},
    ),
    "generic": (
        _generic_rows,
        ("context", "response"),
        {"task": "dialogue", "source": "context_ids", "target": "response_ids"},
    ),
    "dialogue": (
        _dialogue_rows,
        ("context", "response"),
        {"task": "dialogue", "source": "context_ids", "target": "response_ids"},
    ),
}


def write_text_corpus(
    directory: Path | str,
    task: str,
    n: int = 300,
    n_val: int = 40,
    n_test: int = 40,
    seed: int = 0,
    kind: str = "word",
    vocab_size: int = 120,
) -> Path:
    """``spec.json``, ``vocab.json`` (``kind="bpe"``: a cased ``tokenizer.json`` of
    ``vocab_size`` pieces) and the three Parquet splits of a toy corpus."""
    make, columns, task_spec = TASKS[task]
    rng = np.random.default_rng(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    splits = {"train": make(rng, n), "validation": make(rng, n_val), "test": make(rng, n_test)}
    tables = {}
    for split, rows in splits.items():
        data = {"row_id": pa.array(rng.integers(0, 2**63, len(rows), dtype=np.uint64))}
        for key in rows[0]:
            data[key] = pa.array([r[key] for r in rows], pa.string())
        tables[split] = pa.table(data)
    cfg = texttok.TextTokenizeConfig(
        kind=kind, min_freq=1, lowercase=kind == "word", vocab_size=vocab_size
    )
    artifacts = texttok.fit([tables["train"]], columns, cfg)
    for split, table in tables.items():
        out = texttok.encode(table, columns, artifacts)
        if "origin" in table.column_names:
            out = out.append_column("origin", table.column("origin"))
        pq.write_table(out, directory / f"{split}.parquet")
    write_json(directory / "spec.json", {**artifacts["spec.json"], **task_spec})
    if kind == "bpe":
        (directory / "tokenizer.json").write_text(artifacts["tokenizer.json"])
    else:
        write_json(directory / "vocab.json", artifacts["vocab.json"])
    return directory
