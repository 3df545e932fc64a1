"""Hugging Face datasets as sources (format ``hf``), offline, through ``python -m stages.fetch``.

Each test builds a small dataset the way a user would have one here: in a fake Hugging Face
cache (``$HF_HOME/datasets/<namespace>___<name>/<config>/0.0.0/<commit>/``, what
``load_dataset(name, config)`` finds offline), as local Parquet files, or written by
``Dataset.save_to_disk``. The hops run in a copy of the checkout, in a subprocess, as DVC
runs them. Checked: the raw rows and schema per text corpus kind (translation pairs with a
nested ``translation`` feature, dialogues, books), the lock's revision and digest, a changed
dataset stopping the next run (the params key named, ``--update`` accepting it), and a
dataset that is not in the cache passed over to the next source with a reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rnnflow.io import read_json
from tests.conftest import copy_checkout, write_params
from tests.data.text_mirror import (
    BOOK_PARAGRAPHS,
    GUTENBERG_FOOTER,
    GUTENBERG_HEADER,
    book_lines,
    overlay,
)

datasets = pytest.importorskip("datasets")

REV_A, REV_B = "a" * 40, "b" * 40


# --- builders -------------------------------------------------------------------------------


def hf_cache_dataset(
    hf_home: Path, repo_id: str, config: str, revision: str, table: pa.Table, work: Path
) -> Path:
    """Put ``table`` (split train) where offline ``load_dataset(repo_id, config)`` finds it:
    a packaged Parquet builder prepares it, then it moves to the Hub-cache layout."""
    from datasets.packaged_modules.parquet.parquet import Parquet

    namespace, name = repo_id.split("/")
    work.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, work / "train.parquet")
    builder = Parquet(
        cache_dir=str(work / "build"),
        dataset_name=name,
        config_name=config,
        data_files={"train": str(work / "train.parquet")},
    )
    builder.download_and_prepare()
    dst = hf_home / "datasets" / f"{namespace}___{name}" / config / "0.0.0" / revision
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(builder.cache_dir, dst)
    shutil.rmtree(work / "build")
    return dst


def pairs_table(n: int, suffix: str = "") -> pa.Table:
    """An opus-style table: ``translation: {en, es}`` structs plus an id."""
    return pa.table(
        {
            "id": [str(i) for i in range(n)],
            "translation": [
                {"en": f"Sentence number {i} is short{suffix}.", "es": f"La frase {i} es corta."}
                for i in range(n)
            ],
        }
    )


def dialogue_dict(root: Path) -> list[list[str]]:
    """A DatasetDict (train, validation, test) of chat dialogues (``messages``: a list of
    ``{content, role}``, as in ultrachat), written with ``save_to_disk``."""
    dialogs = [
        [f"dialogue {d} turn {t} says something" for t in range(2 + d % 3)] for d in range(90)
    ]

    def split(rows: list[list[str]]) -> datasets.Dataset:
        messages = [
            [{"content": c, "role": "user" if i % 2 == 0 else "assistant"} for i, c in enumerate(d)]
            for d in rows
        ]
        return datasets.Dataset.from_dict({"prompt": [d[0] for d in rows], "messages": messages})

    dd = datasets.DatasetDict(
        {
            "train": split(dialogs[:60]),
            "validation": split(dialogs[60:]),
            "test": split([["not", "read"]]),
        }
    )
    dd.save_to_disk(str(root / "hf" / "dialogues"))
    pq.write_table(
        pa.table(
            {
                "question": [f"question {i}?" for i in range(30)],
                "answer": [f"answer {i}." for i in range(30)],
            }
        ),
        root / "hf" / "qa.parquet",
    )
    return dialogs


def book_dir(root: Path) -> None:
    """Local Parquet: one Gutenberg book a row (``id``, ``text``)."""
    text = "\n".join(GUTENBERG_HEADER + book_lines(BOOK_PARAGRAPHS) + GUTENBERG_FOOTER) + "\n"
    plain = "\n".join(book_lines([["Only one paragraph,", "of two lines."], ["And a second."]]))
    (root / "hf" / "books").mkdir(parents=True)
    pq.write_table(
        pa.table({"id": ["pg1", "pg2"], "text": [text, text.replace("stormy", "calm")]}),
        root / "hf" / "books" / "part-0.parquet",
    )
    pq.write_table(pa.table({"id": ["plain"], "text": [plain]}), root / "hf" / "plain.parquet")


# --- running the hops as DVC does -----------------------------------------------------------


@pytest.fixture
def hf_root(tmp_path: Path) -> Path:
    """A copy of the checkout with an empty mirror and an empty Hugging Face home beside it."""
    root = copy_checkout(tmp_path / "rnnflow")
    # These tests write each corpus's sources inline in params (write_params), which a
    # catalogue file beside it would refuse: this project keeps none.
    for catalogue in (root / "sources").glob("*.yaml"):
        catalogue.unlink()
    (tmp_path / "mirror").mkdir()
    (tmp_path / "hf_home").mkdir()
    return root


def hf_home(root: Path) -> Path:
    return root.parent / "hf_home"


def hop(root: Path, hop_name: str, corpus: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "RNNFLOW_", "PYTHONPATH", "VIRTUAL_ENV"))
    }
    env.update(
        HF_HOME=str(hf_home(root)),
        HF_DATASETS_OFFLINE="1",
        HF_HUB_OFFLINE="1",
        RNNFLOW_MIRROR=str(root.parent / "mirror"),
        PYTHONPATH=str(root),
    )
    return subprocess.run(
        [sys.executable, "-m", f"stages.{hop_name}", corpus, *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]


def raw(root: Path, corpus: str, part: str) -> pa.Table:
    return pq.read_table(root / "data" / "01_raw" / corpus / f"{part}.parquet")


def opus_source(**extra: object) -> dict:
    return {
        "format": "hf",
        "origin": "opus",
        "dataset": "fixture/tiny_opus",
        "config": "en-es",
        "columns": {"src": "translation.es", "tgt": "translation.en"},
        **extra,
    }


# --- translation pairs ----------------------------------------------------------------------


def test_translation_pairs_from_the_hf_cache_through_every_hop(hf_root: Path) -> None:
    hf_cache_dataset(
        hf_home(hf_root),
        "fixture/tiny_opus",
        "en-es",
        REV_A,
        pairs_table(400),
        hf_root.parent / "w",
    )
    params = overlay("es_en", "es-en", {"opus_hf": opus_source(rows={"opus": 400})})
    write_params(hf_root, params)
    for hop_name in ("fetch", "clean", "format", "sample", "tokenize"):
        ok(hop(hf_root, hop_name, "es_en"))

    table = raw(hf_root, "es_en", "opus")
    assert table.schema.names == ["src", "tgt", "origin"]
    assert table.num_rows == 400
    assert table.slice(3, 1).to_pylist() == [
        {"src": "La frase 3 es corta.", "tgt": "Sentence number 3 is short.", "origin": "opus"}
    ]
    entry = read_json(hf_root / "sources" / "es_en.lock")["sources"]["opus_hf"]["dataset"]
    assert (entry["dataset"], entry["config"], entry["split"]) == (
        "fixture/tiny_opus",
        "en-es",
        "train",
    )
    assert entry["revision"] == REV_A and entry["rows"] == 400 and len(entry["sha256"]) == 64
    assert entry["columns"] == {"src": "translation.es", "tgt": "translation.en"}
    report = read_json(hf_root / "reports" / "fetch" / "es_en.json")
    assert report["sources"] == {"opus": "opus_hf"}
    file = report["files"]["dataset"]
    assert file["served_by"] == "hf" and file["revision"] == REV_A
    assert (file["dataset"], file["config"], file["rows"], file["dataset_rows"]) == (
        "fixture/tiny_opus",
        "en-es",
        400,
        400,
    )
    assert file["sha256"] == entry["sha256"]
    assert file["url"] == f"hf://datasets/fixture/tiny_opus@{REV_A}"
    tokens = pq.read_table(hf_root / "data" / "05_tokens" / "es_en" / "train.parquet")
    assert {"src_ids", "tgt_ids", "origin"} <= set(tokens.column_names)


def test_changed_dataset_stops_then_update_accepts(hf_root: Path) -> None:
    home, work = hf_home(hf_root), hf_root.parent / "w"
    hf_cache_dataset(home, "fixture/tiny_opus", "en-es", REV_A, pairs_table(50), work)
    write_params(hf_root, overlay("es_en", "es-en", {"opus_hf": opus_source()}))
    ok(hop(hf_root, "fetch", "es_en"))
    lock_file = hf_root / "sources" / "es_en.lock"
    recorded = read_json(lock_file)
    ok(hop(hf_root, "fetch", "es_en"))  # the same content verifies
    assert read_json(lock_file) == recorded

    # A new revision in the cache (what a later online load would bring) with other rows.
    shutil.rmtree(home / "datasets" / "fixture___tiny_opus")
    hf_cache_dataset(home, "fixture/tiny_opus", "en-es", REV_B, pairs_table(50, " again"), work)
    proc = hop(hf_root, "fetch", "es_en")
    assert proc.returncode == 1
    assert "fetch.es_en.sources.opus_hf" in proc.stderr
    assert "changed upstream" in proc.stderr and "rnnflow fetch es_en --update" in proc.stderr
    assert recorded["sources"]["opus_hf"]["dataset"]["sha256"] in proc.stderr
    assert read_json(lock_file) == recorded  # nothing accepted behind the user's back

    ok(hop(hf_root, "fetch", "es_en", "--update"))
    entry = read_json(lock_file)["sources"]["opus_hf"]["dataset"]
    assert entry["revision"] == REV_B
    assert entry["sha256"] != recorded["sources"]["opus_hf"]["dataset"]["sha256"]
    assert raw(hf_root, "es_en", "opus").column("tgt")[0].as_py().endswith("short again.")
    ok(hop(hf_root, "fetch", "es_en"))  # and the new version verifies from now on


def test_pinned_revision_needs_no_lock_entry(hf_root: Path) -> None:
    hf_cache_dataset(
        hf_home(hf_root), "fixture/tiny_opus", "en-es", REV_A, pairs_table(30), hf_root.parent / "w"
    )
    params = overlay("es_en", "es-en", {"opus_hf": opus_source(revision=REV_A)})
    params["fetch"]["require_pinned"] = True  # strict mode: a pinned revision is enough
    write_params(hf_root, params)
    ok(hop(hf_root, "fetch", "es_en"))
    assert read_json(hf_root / "sources" / "es_en.lock")["sources"] == {}
    file = read_json(hf_root / "reports" / "fetch" / "es_en.json")["files"]["dataset"]
    assert file["revision"] == REV_A and len(file["sha256"]) == 64


def test_missing_dataset_is_passed_over_to_local_parquet(hf_root: Path) -> None:
    (hf_root / "hf").mkdir()
    pq.write_table(pairs_table(25), hf_root / "hf" / "pairs.parquet")
    sources = {
        "opus_hub": opus_source(dataset="fixture/not_cached"),
        "opus_local": opus_source(
            dataset="parquet", config=None, data_files={"train": "hf/pairs.parquet"}
        ),
    }
    write_params(hf_root, overlay("es_en", "es-en", sources))
    ok(hop(hf_root, "fetch", "es_en"))
    report = read_json(hf_root / "reports" / "fetch" / "es_en.json")
    assert report["sources"] == {"opus": "opus_local"}
    why = report["passed_over"]["opus_hub"]
    assert "fixture/not_cached" in why and "could not be loaded" in why and "offline" in why
    assert raw(hf_root, "es_en", "opus").num_rows == 25
    entry = read_json(hf_root / "sources" / "es_en.lock")["sources"]["opus_local"]["dataset"]
    assert entry["revision"] is None and entry["rows"] == 25  # local files: the digest is the pin
    assert list(read_json(hf_root / "sources" / "es_en.lock")["sources"]) == ["opus_local"]


def test_a_wrong_column_mapping_names_the_params_key(hf_root: Path) -> None:
    (hf_root / "hf").mkdir()
    pq.write_table(pairs_table(5), hf_root / "hf" / "pairs.parquet")
    source = opus_source(
        dataset="parquet",
        config=None,
        data_files="hf/pairs.parquet",
        columns={"src": "translation.fr", "tgt": "translation.en"},
    )
    write_params(hf_root, overlay("es_en", "es-en", {"opus_local": source}))
    proc = hop(hf_root, "fetch", "es_en")
    assert proc.returncode == 1
    assert "fetch.es_en.sources.opus_local.columns" in proc.stderr
    assert "no field 'fr'" in proc.stderr
    assert not (hf_root / "data" / "01_raw" / "es_en").exists()


# --- dialogues and books --------------------------------------------------------------------


def test_dialogue_datasets_as_twitter_pairs(hf_root: Path) -> None:
    """Chat dialogues (a list of turns a row, saved with save_to_disk) and question/answer
    pairs (local Parquet), each an origin of the twitter corpus."""
    dialogs = dialogue_dict(hf_root)
    sources = {
        "chats": {
            "format": "hf",
            "origin": "twitter",
            "dataset": "hf/dialogues",
            "split": "train+validation",
            "columns": {"turns": "messages.content"},
        },
        "qa": {
            "format": "hf",
            "origin": "qa",
            "dataset": "parquet",
            "data_files": "hf/qa.parquet",
            "columns": {"context": "question", "response": "answer"},
        },
    }
    write_params(hf_root, overlay("twitter", "twitter", sources, chunk_lines=40))
    ok(hop(hf_root, "fetch", "twitter"))
    table = raw(hf_root, "twitter", "twitter")
    assert table.schema.names == ["thread", "context", "response"]
    assert table.num_rows == sum(len(d) - 1 for d in dialogs)
    assert table.slice(0, 2).select(["context", "response"]).to_pylist() == [
        {"context": dialogs[0][0], "response": dialogs[0][1]},
        {"context": dialogs[1][0], "response": dialogs[1][1]},
    ]
    assert len(set(table.column("thread").to_pylist())) == len(dialogs)  # a thread a dialogue
    qa = raw(hf_root, "twitter", "qa")
    assert qa.num_rows == 30 and qa.slice(0, 1).select(["context", "response"]).to_pylist() == [
        {"context": "question 0?", "response": "answer 0."}
    ]
    entry = read_json(hf_root / "sources" / "twitter.lock")["sources"]["chats"]["dataset"]
    assert entry["rows"] == 90 and entry["split"] == "train+validation"
    for hop_name in ("clean", "format"):
        ok(hop(hf_root, hop_name, "twitter"))


def test_book_dataset_from_a_parquet_directory(hf_root: Path) -> None:
    book_dir(hf_root)
    sources = {
        "pg": {
            "format": "hf",
            "origin": "gutenberg",
            "dataset": "hf/books",
            "columns": {"doc_id": "id", "text": "text"},
        },
        "plain": {
            "format": "hf",
            "origin": "plain",
            "dataset": "parquet",
            "data_files": ["hf/plain.parquet"],
            "gutenberg_header": False,
            "columns": {"text": "text"},
        },
    }
    write_params(hf_root, overlay("books", "books", sources, chunk_lines=5))
    ok(hop(hf_root, "fetch", "books"))
    table = raw(hf_root, "books", "gutenberg")
    assert table.schema.names == ["doc_id", "text"]
    expected = [" ".join(p) for p in BOOK_PARAGRAPHS]
    pg1 = [r["text"] for r in table.to_pylist() if r["doc_id"] == "pg1"]
    assert pg1 == expected  # header, credits, trailer and licence stripped
    assert set(table.column("doc_id").to_pylist()) == {"pg1", "pg2"}
    assert raw(hf_root, "books", "plain").to_pylist() == [
        {"doc_id": "plain/0", "text": "Only one paragraph, of two lines."},
        {"doc_id": "plain/0", "text": "And a second."},
    ]
