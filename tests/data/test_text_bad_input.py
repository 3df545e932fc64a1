"""Bad text input: every case names the file and the problem, exits 1, writes nothing.

Also the published-download path of a text source against a loopback HTTP server.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from tests.conftest import run_hop, sha256, write_params
from tests.data.loopback import Server
from tests.data.text_mirror import (
    GUTENBERG_FOOTER,
    GUTENBERG_HEADER,
    book_lines,
    es_en_params,
    fails,
    mirror,
    overlay,
    source,
    write_lines,
    write_moses_zip,
)

pytestmark = pytest.mark.usefixtures("no_proxy")

PAIRS_ES = [f"Frase {i}." for i in range(30)]
PAIRS_EN = [f"Sentence {i}." for i in range(30)]


def twitter_params(root: Path, path: Path) -> None:
    base = root.parent / "mirror" / "twitter"
    sources = {"x": source("alternating", {"p": path}, base)}
    write_params(root, overlay("twitter", "twitter", sources))


def books_params(root: Path, path: Path, **extra) -> None:
    base = root.parent / "mirror" / "books"
    write_params(
        root, overlay("books", "books", {"x": source("gutenberg", {"b1": path}, base, **extra)})
    )


def test_truncated_zip(text_root: Path, capsys) -> None:
    path = write_moses_zip(mirror(text_root) / "es-en" / "os.zip", PAIRS_ES, PAIRS_EN)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    es_en_params(text_root, {"archive": path})  # pinned to the damaged bytes on purpose
    fails(text_root, "es_en", capsys, path.name, "not a readable zip archive")


def test_truncated_gzip(text_root: Path, capsys) -> None:
    lines = [f"tweet number {i} with some words" for i in range(400)]
    path = write_lines(mirror(text_root) / "twitter" / "tw.txt.gz", lines)
    path.write_bytes(path.read_bytes()[:-40])
    twitter_params(text_root, path)
    fails(text_root, "twitter", capsys, path.name, "truncated or corrupt gzip")


def test_bytes_that_are_not_utf8_name_the_line(text_root: Path, capsys) -> None:
    path = mirror(text_root) / "es-en" / "spa.txt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"Hello.\tHola.\nThanks.\tGracias.\nCaf\xe9.\tCaf\xe9.\nBye.\tAdi\xc3\xb3s.\n")
    es_en_params(text_root, {"pairs": path}, fmt="tsv", columns=["en", "es"])
    fails(text_root, "es_en", capsys, path.name, "line 3", "not valid UTF-8")


def test_parallel_files_of_different_lengths(text_root: Path, capsys) -> None:
    base = mirror(text_root) / "es-en"
    es = write_lines(base / "c.es", PAIRS_ES)
    en = write_lines(base / "c.en", PAIRS_EN[:-1])
    es_en_params(text_root, {"es": es, "en": en})
    fails(
        text_root,
        "es_en",
        capsys,
        "differ in length",
        "c.es has 30 lines",
        "c.en has 29 lines",
        "fetch.es_en.sources.x",
    )


def test_parallel_zip_members_of_different_lengths(text_root: Path, capsys) -> None:
    path = write_moses_zip(mirror(text_root) / "es-en" / "os.zip", PAIRS_ES, PAIRS_EN + ["x"])
    es_en_params(text_root, {"archive": path})
    fails(text_root, "es_en", capsys, "differ in length", "zip member Fixture.en-es.en", "31 lines")


@pytest.mark.parametrize("name", ["tw.txt", "tw.txt.gz"])
def test_empty_file(text_root: Path, capsys, name: str) -> None:
    path = write_lines(mirror(text_root) / "twitter" / name, [])
    twitter_params(text_root, path)
    fails(text_root, "twitter", capsys, path.name, "empty file")


def test_tsv_line_without_enough_fields(text_root: Path, capsys) -> None:
    path = write_lines(
        mirror(text_root) / "es-en" / "spa.txt",
        ["Hi.\tHola.", "Bye.\tAdiós.", "no tab here", "Yes.\tSí."],
    )
    es_en_params(text_root, {"pairs": path}, fmt="tsv", columns=["en", "es"])
    fails(text_root, "es_en", capsys, path.name, "line 3", "expected 2 tab-separated fields")


def test_alternating_file_with_a_tweet_and_no_reply(text_root: Path, capsys) -> None:
    path = write_lines(mirror(text_root) / "twitter" / "tw.txt.gz", ["a", "b", "c"])
    twitter_params(text_root, path)
    fails(text_root, "twitter", capsys, path.name, "line 3 has no reply")


def test_gutenberg_without_header(text_root: Path, capsys) -> None:
    path = write_lines(mirror(text_root) / "books" / "b.txt", book_lines([["Just text."]] * 3))
    books_params(text_root, path)
    fails(
        text_root,
        "books",
        capsys,
        path.name,
        "no Project Gutenberg header",
        "gutenberg_header: false",
    )


def test_gutenberg_header_false_reads_plain_text(text_root: Path) -> None:
    path = write_lines(
        mirror(text_root) / "books" / "b.txt", book_lines([[f"Paragraph {i}."] for i in range(3)])
    )
    books_params(text_root, path, gutenberg_header=False)
    assert run_hop("fetch", "books", text_root) == 0


def test_gutenberg_without_footer(text_root: Path, capsys) -> None:
    path = write_lines(
        mirror(text_root) / "books" / "b.txt",
        GUTENBERG_HEADER + book_lines([["Text."]]) + GUTENBERG_FOOTER[:2],
    )
    books_params(text_root, path)
    fails(text_root, "books", capsys, path.name, "no Project Gutenberg footer")


# --- the published download path ------------------------------------------------------------

TWEETS = [f"tweet {i} about things" for i in range(40)]


def published(base_url: str, checksum: str) -> dict:
    return overlay(
        "twitter",
        "twitter",
        {
            "published": {
                "format": "alternating",
                "origin": "twitter",
                "urls": [base_url],
                "files": {"pairs": {"path": "twitter_en.txt.gz", "checksum": checksum}},
                "rows": {"twitter": 20},
            }
        },
    )


def test_text_source_downloads_from_loopback(
    text_root: Path,
    server: Server,
    monkeypatch,
) -> None:
    monkeypatch.delenv("RNNFLOW_MIRROR")
    body = gzip.compress("".join(t + "\n" for t in TWEETS).encode())
    server.files["twitter_en.txt.gz"] = body
    write_params(text_root, published(server.base, "sha256:" + hashlib.sha256(body).hexdigest()))
    assert run_hop("fetch", "twitter", text_root) == 0  # 20 rows, checked in the hop
    assert [p for p, _ in server.requests] == ["/twitter_en.txt.gz"]
    downloaded = text_root / "data" / "downloads" / "twitter" / "twitter_en.txt.gz"
    assert sha256(downloaded) == "sha256:" + hashlib.sha256(body).hexdigest()


# Unpinned files (trust on first use), strict mode and the default source lists:
# tests/data/test_sources.py.
