"""The text corpora (es_en, twitter, books) through the hops, on small format-exact files
(built by tests/data/text_mirror.py: a Moses zip, a Tatoeba TSV, a gzipped alternating-lines
file, Gutenberg-like books).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rnnflow.config import deep_merge
from stages.core.hop import data_dir
from stages.corpora.text import corpus as cleaning
from stages.corpora.text import gutenberg
from tests.conftest import REAL_MIRROR, run_hop, sha256, write_params
from tests.data.text_mirror import (
    BOOK_PARAGRAPHS,
    GUTENBERG_FOOTER,
    GUTENBERG_HEADER,
    book_files,
    book_lines,
    es_en_files,
    overlay,
    run_hops,
    source,
    tweet_files,
    write_lines,
)

SPLITS = ("train", "validation", "test")


def read(root: Path, hop: str, corpus: str, part: str) -> pa.Table:
    return pq.read_table(data_dir(hop, corpus, root) / f"{part}.parquet")


# --- pure functions -------------------------------------------------------------------------


def test_normalize_nfc_controls_whitespace() -> None:
    got = cleaning.normalize(
        pa.array(["  Cafe\u0301\x07 con\u00a0\tleche\u200b\ufeff ", "a\r\nb", "\x00\x1f"])
    ).to_pylist()
    assert got == ["Caf\u00e9 con leche", "a b", ""]


def test_urls_and_handles_become_placeholders() -> None:
    arr = pa.array(
        [
            "see https://t.co/x1 and www.a.org/p?q=1 @bob_1, mail a@b.com",
            "@x: pic.twitter.com/abc don't @ me",
        ]
    )
    got = cleaning.normalize(cleaning.mask_urls_and_handles(arr)).to_pylist()
    assert got == ["see <url> and <url> <user> , mail a@b.com", "<user> : <url> don't @ me"]


def test_length_ratio_and_words() -> None:
    a, b = pa.array(["Sí.", "Hola", "x" * 60]), pa.array(["Yes.", "Hello there", "y"])
    ratio = cleaning.length_ratio(a, b, smoothing=10)
    assert ratio[0] == pytest.approx(14 / 13) and ratio[2] == pytest.approx(70 / 11)
    assert cleaning.words(pa.array(["a b  c", "", " d "])).tolist() == [3, 0, 1]


def test_paragraphs_carry_the_open_one() -> None:
    done, rest = gutenberg.paragraphs(pa.array(["a", "b", "", "", "c", "", "d", "e"]))
    assert done.to_pylist() == ["a b", "c"] and rest.to_pylist() == ["d", "e"]


# --- es_en ----------------------------------------------------------------------------------


def test_es_en_sources_combine_clean_and_split(text_root: Path) -> None:
    write_params(text_root, es_en_files(text_root.parent / "mirror"))
    run_hops(text_root, "es_en", ("fetch", "clean", "format"))

    subs = read(text_root, "fetch", "es_en", "opensubtitles")
    assert subs.column_names == ["src", "tgt", "origin"]
    assert subs.slice(0, 1).to_pylist() == [
        {
            "src": "La frase número 0 es corta.",
            "tgt": "Sentence number 0 is short.",
            "origin": "opensubtitles",
        }
    ]
    tat = read(text_root, "fetch", "es_en", "tatoeba")
    assert tat.slice(0, 1).to_pylist() == [
        {"src": "Frase de Tatoeba 0.", "tgt": "Tatoeba sentence 0.", "origin": "tatoeba"}
    ]

    report = json.loads((text_root / "reports" / "clean" / "es_en.json").read_text())
    assert report["parts"]["opensubtitles"]["dropped"] == {
        "duplicate": 2,
        "empty": 1,
        "length_ratio": 1,
        "too_long": 1,
    }
    assert report["parts"]["tatoeba"]["dropped"] == {}
    clean = read(text_root, "clean", "es_en", "opensubtitles").to_pandas()
    assert "Café con leche" in set(clean["src"])

    formatted = {s: read(text_root, "format", "es_en", s).to_pandas() for s in SPLITS}
    both = pd_concat(formatted)
    # Identical Spanish sentences share a split and a row_id (two references).
    days = both[both["src"] == "Buenos días."]
    assert len(days) == 2 and days["split"].nunique() == 1 and days["row_id"].nunique() == 1
    # No English sentence of test is in train; the train rows that had one were dropped.
    fine = both[both["tgt"] == "I am fine."]
    assert (fine["split"] == "test").any()
    assert not (fine["split"] == "train").any()
    fmt = json.loads((text_root / "reports" / "format" / "es_en.json").read_text())
    dropped = fmt["dropped"]["train_shares_sentence_with_held_out"]
    assert dropped == 40 - len(fine) > 0
    assert sum(fmt["rows_out"].values()) + dropped == report["rows_out"]
    # ...and none of validation either: selection reads validation as unseen text.
    train_tgt = set(formatted["train"]["tgt"])
    assert not train_tgt & set(formatted["validation"]["tgt"])
    assert set(formatted["test"]["origin"]) == {"opensubtitles", "tatoeba"}


def pd_concat(frames: dict):
    import pandas as pd

    return pd.concat([f.assign(split=s) for s, f in frames.items()], ignore_index=True)


def test_shared_target_check_catches_a_leak(text_root: Path, monkeypatch, capsys) -> None:
    """If format stopped dropping them, the check on the written splits stops the hop."""
    import stages.format

    write_params(text_root, es_en_files(text_root.parent / "mirror"))
    run_hops(text_root, "es_en", ("fetch", "clean"))
    monkeypatch.setattr(  # no train sentence is found among the held-out ones
        stages.format, "in_sorted", lambda values, held: np.zeros(len(values), dtype=bool)
    )
    assert run_hop("format", "es_en", text_root) == 1
    err = capsys.readouterr().err
    assert "sentences_disjoint[tgt]" in err and "I am fine." in err
    assert not data_dir("format", "es_en", text_root).exists()


def test_es_en_tokens_keep_origin_and_task(text_root: Path) -> None:
    write_params(text_root, es_en_files(text_root.parent / "mirror"))
    run_hops(text_root, "es_en", ("fetch", "clean", "format", "sample", "tokenize"))
    out = data_dir("tokenize", "es_en", text_root)
    spec = json.loads((out / "spec.json").read_text())
    assert spec["task"] == "translate" and spec["source"] == "src_ids"
    test = pq.read_table(out / "test.parquet")
    assert test.column_names == ["row_id", "src", "tgt", "src_ids", "tgt_ids", "origin"]
    assert set(test["origin"].to_pylist()) <= {"opensubtitles", "tatoeba"}


# --- twitter --------------------------------------------------------------------------------


def test_twitter_threads_placeholders_and_splits(text_root: Path) -> None:
    write_params(text_root, tweet_files(text_root.parent / "mirror"))
    run_hops(text_root, "twitter", ("fetch", "clean", "format"))
    raw = read(text_root, "fetch", "twitter", "twitter").to_pandas()
    assert len(raw) == 80 * 3 + 2
    # Three chained pairs per conversation share one thread id, across 20-pair chunks.
    threads = raw["thread"].iloc[:240].to_numpy().reshape(80, 3)
    assert (threads == threads[:, :1]).all() and len(np.unique(threads[:, 0])) == 80

    clean = read(text_root, "clean", "twitter", "twitter").to_pandas()
    first = clean.iloc[0]
    assert first["context"] == "look at <url> and <url> <user>"
    assert first["response"] == "<user> thanks, mail me at a@b.com"
    report = json.loads((text_root / "reports" / "clean" / "twitter.json").read_text())
    assert report["parts"]["twitter"]["dropped"] == {"empty": 1}

    both = pd_concat({s: read(text_root, "format", "twitter", s).to_pandas() for s in SPLITS})
    assert both.columns.tolist()[:4] == ["row_id", "thread", "context", "response"]
    assert (both.groupby("thread")["split"].nunique() == 1).all()  # conversations stay whole
    test = set(both.loc[both.split == "test", ["context", "response"]].stack())
    train = set(both.loc[both.split == "train", ["context", "response"]].stack())
    assert test and not test & train


# --- books ----------------------------------------------------------------------------------


def test_books_paragraphs_without_gutenberg_boilerplate(text_root: Path) -> None:
    write_params(text_root, book_files(text_root.parent / "mirror"))
    run_hops(text_root, "books", ("fetch", "clean", "format"))
    raw = read(text_root, "fetch", "books", "gutenberg").to_pandas()
    assert raw["doc_id"].unique().tolist() == ["pg1"]
    assert raw["text"].tolist() == [" ".join(p) for p in BOOK_PARAGRAPHS]
    play = read(text_root, "fetch", "books", "tinyshakespeare").to_pandas()
    assert play["text"].tolist()[:2] == [
        "First Citizen: Before we proceed any further, hear me speak.",
        "All: Speak, speak.",
    ]
    assert play["text"].tolist()[-1] == "Citizen 59: Line 59 of the play, spoken aloud."
    report = json.loads((text_root / "reports" / "clean" / "books.json").read_text())
    assert report["parts"]["gutenberg"]["dropped"] == {"duplicate": 1}
    both = pd_concat({s: read(text_root, "format", "books", s).to_pandas() for s in SPLITS})
    assert not both["text"].str.contains("Gutenberg|LICENSE|Produced by").any()
    assert sorted(both["doc_id"].unique()) == ["pg1", "shakes"]


def _three_books(root: Path, split: dict) -> None:
    """The two test books plus a third (``pg2``), split by ``split``."""
    mirror = root.parent / "mirror"
    params = book_files(mirror)
    paragraphs = [
        [f"Paragraph {i} of the second book,", "which nobody trains on."] for i in range(30)
    ]
    pg2 = write_lines(
        mirror / "books" / "pg2.txt", GUTENBERG_HEADER + book_lines(paragraphs) + GUTENBERG_FOOTER
    )
    params["fetch"]["books"]["sources"]["gb"]["files"]["pg2"] = {
        "path": "pg2.txt",
        "checksum": sha256(pg2),
    }
    params["format"] = {"books": {"split": split}}
    write_params(root, params)


def test_books_split_by_document_holds_out_whole_books(text_root: Path) -> None:
    """method: document puts every paragraph of the listed books in validation/test."""
    _three_books(
        text_root, {"method": "document", "validation_docs": ["pg2"], "test_docs": ["shakes"]}
    )
    run_hops(text_root, "books", ("fetch", "clean", "format"))
    docs = {
        s: set(read(text_root, "format", "books", s).column("doc_id").to_pylist()) for s in SPLITS
    }
    assert docs == {"train": {"pg1"}, "validation": {"pg2"}, "test": {"shakes"}}
    assert read(text_root, "format", "books", "validation").num_rows == 30
    report = json.loads((text_root / "reports" / "format" / "books.json").read_text())
    assert report["documents"] == {"train": ["pg1"], "validation": ["pg2"], "test": ["shakes"]}


def test_books_split_by_document_names_a_missing_book(text_root: Path, capsys) -> None:
    _three_books(
        text_root, {"method": "document", "validation_docs": ["pg2"], "test_docs": ["pg9"]}
    )
    run_hops(text_root, "books", ("fetch", "clean"))
    assert run_hop("format", "books", text_root) != 0
    err = capsys.readouterr().err
    assert "format.books.split.test_docs" in err and "pg9" in err, err


def test_document_split_needs_both_lists() -> None:
    from stages.core.config import SplitConfig

    with pytest.raises(ValueError, match="needs validation_docs and test_docs"):
        SplitConfig(method="document", test_docs=["a"])
    with pytest.raises(ValueError, match="in both"):
        SplitConfig(method="document", validation_docs=["a"], test_docs=["a"])
    with pytest.raises(ValueError, match="need method: document"):
        SplitConfig(method="hash", test_docs=["a"])


@pytest.mark.parametrize("chunk_lines", [2, 3, 1000])
def test_books_same_paragraphs_whatever_the_chunk_size(text_root: Path, chunk_lines: int) -> None:
    write_params(text_root, book_files(text_root.parent / "mirror", chunk_lines=chunk_lines))
    assert run_hop("fetch", "books", text_root) == 0
    got = read(text_root, "fetch", "books", "gutenberg")["text"].to_pylist()
    assert got == [" ".join(p) for p in BOOK_PARAGRAPHS]


# --- sample ---------------------------------------------------------------------------------


def test_sample_max_length_keeps_the_length_distribution(text_root: Path) -> None:
    """Rows over max_length go; among the rest, the sample's lengths match the population."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 31, size=3000)
    es = [" ".join(f"p{i}x{k}" for k in range(n)) for i, n in enumerate(lengths)]
    en = [" ".join(f"w{i}y{k}" for k in range(max(1, n - 1))) for i, n in enumerate(lengths)]
    mirror = text_root.parent / "mirror"
    base = mirror / "es-en"
    sources = {
        "m": source(
            "moses",
            {"es": write_lines(base / "m.es", es), "en": write_lines(base / "m.en", en)},
            base,
            origin="opensubtitles",
        )
    }
    params = overlay("es_en", "es-en", sources, chunk_lines=1000, max_length=15, train=600)
    params["clean"] = {"es_en": {"max_length_ratio": None}}
    write_params(text_root, params)
    run_hops(text_root, "es_en")

    from stages.corpora.es_en import EsEn

    population = EsEn().lengths(read(text_root, "format", "es_en", "train"))
    eligible = np.sort(population[population <= 15])
    sample = np.sort(EsEn().lengths(read(text_root, "sample", "es_en", "train")))
    assert len(sample) == 600 and sample.max() <= 15 and population.max() > 15
    # Kolmogorov-Smirnov distance between the two length distributions.
    grid = np.arange(1, 16)
    cdf = lambda x: np.searchsorted(x, grid, side="right") / len(x)  # noqa: E731
    assert np.abs(cdf(sample) - cdf(eligible)).max() < 0.06
    assert abs(np.median(sample) - np.median(eligible)) <= 1


# --- the real mirror ------------------------------------------------------------------------


def test_real_mirror_twitter_and_books_fetch(tmp_path: Path, monkeypatch) -> None:
    if not (REAL_MIRROR / "twitter").is_dir():
        pytest.skip("the real corpora mirror ../shared/corpora is not present")
    monkeypatch.setenv("RNNFLOW_MIRROR", str(REAL_MIRROR))
    root = tmp_path / "project"
    root.mkdir()
    write_params(root, {})  # params.yaml + the CI profile: the mirror sources
    for corpus in ("twitter", "books"):
        assert run_hop("fetch", corpus, root) == 0  # exact row counts are checked there
    raw = read(root, "fetch", "books", "gutenberg").to_pandas()
    assert raw.groupby("doc_id").size().to_dict()["pg11"] > 500
    assert not raw["text"].str.contains("Project Gutenberg").any()


# --- monolingual lines for a decoder --------------------------------------------------------


def test_twitter_tokenize_writes_es_en_english_lines_in_its_vocabulary(text_root: Path) -> None:
    mirror = text_root.parent / "mirror"
    params = deep_merge(es_en_files(mirror), tweet_files(mirror))
    params["tokenize"] = {
        "twitter": {
            "kind": "word",  # its <unk> shows the lines are in the tweets' vocabulary
            "lowercase": True,
            "monolingual": {
                "corpus": "es_en",
                "column": "tgt",
                "into": "response",
                "max_length": 5,
            },
        }
    }
    write_params(text_root, params)
    run_hops(text_root, "es_en")
    run_hops(text_root, "twitter", ("fetch", "clean", "format", "sample", "tokenize"))
    out = data_dir("tokenize", "twitter", text_root)
    mono = pq.read_table(out / "monolingual.parquet")
    assert mono.column_names == ["row_id", "response", "response_ids"]
    # lines of es_en's train split (never its validation or test) up to 5 tokens
    src = read(text_root, "sample", "es_en", "train")
    lengths = [len(r) for r in mono["response_ids"].to_pylist()]
    assert 0 < len(mono) < len(src) and max(lengths) <= 5 and min(lengths) >= 1
    assert set(mono["row_id"].to_pylist()) <= set(src["row_id"].to_pylist())
    spec = json.loads((out / "spec.json").read_text())
    vocab = json.loads((out / "vocab.json").read_text())
    assert max(max(r) for r in mono["response_ids"].to_pylist()) < spec["vocab_size"]
    # encoded with the tweets' vocabulary: "tatoeba" is no tweet word, the turn numbers are
    texts = mono["response"].to_pylist()
    rows = [i for i, t in enumerate(texts) if t in {f"Tatoeba sentence {d}." for d in range(4)}]
    assert rows
    for i in rows:
        ids = mono["response_ids"][i].as_py()
        assert ids[0] == vocab.index("<unk>") and vocab[ids[2]] == texts[i].split()[-1][0]
    report = json.loads((text_root / "reports" / "tokenize" / "twitter.json").read_text())
    assert report["splits"]["monolingual"]["rows"] == len(mono)
    assert report["splits"]["monolingual"]["from"] == "es_en/train.tgt"
    # the pairs themselves are what they are without the lines
    assert pq.read_table(out / "train.parquet").column_names[-2:] == [
        "context_ids",
        "response_ids",
    ]


def test_monolingual_source_not_sampled_names_the_params_key(text_root: Path, capsys) -> None:
    params = tweet_files(text_root.parent / "mirror")
    params["tokenize"] = {
        "twitter": {"monolingual": {"corpus": "es_en", "column": "tgt", "into": "response"}}
    }
    write_params(text_root, params)
    run_hops(text_root, "twitter")
    assert run_hop("tokenize", "twitter", text_root) == 1
    err = capsys.readouterr().err
    assert "tokenize.twitter.monolingual.corpus" in err and "sample@es_en" in err
    assert not data_dir("tokenize", "twitter", text_root).exists()  # nothing half-written


def test_monolingual_column_missing_names_file_and_params_key(text_root: Path, capsys) -> None:
    mirror = text_root.parent / "mirror"
    params = deep_merge(es_en_files(mirror), tweet_files(mirror))
    params["tokenize"] = {
        "twitter": {"monolingual": {"corpus": "es_en", "column": "english", "into": "response"}}
    }
    write_params(text_root, params)
    run_hops(text_root, "es_en")
    run_hops(text_root, "twitter")
    assert run_hop("tokenize", "twitter", text_root) == 1
    err = capsys.readouterr().err
    assert "tokenize.twitter.monolingual.column" in err and "'english'" in err
    assert "data/04_sampled/es_en/train.parquet" in err
    assert not data_dir("tokenize", "twitter", text_root).exists()  # nothing half-written
