"""Small, format-exact text corpus files in a test mirror, and the params that fetch them.

Builders for the text corpora (a Moses zip, a Tatoeba TSV, a gzipped alternating-lines file,
Gutenberg-like books), the params overlay naming them, and the hop runners the data tests
share. The ``text_root`` fixture (tests/data/conftest.py) makes the project root they go in.
"""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

from stages.core.hop import data_dir
from tests.conftest import run_hop, sha256, write_params


def write_lines(path: Path, lines: list[str], newline: str = "\n", bom: bool = False) -> Path:
    """Write text lines (gzip if the name ends in .gz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ("\ufeff" if bom else "") + "".join(line + newline for line in lines)
    raw = data.encode("utf-8")
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def write_moses_zip(path: Path, es: list[str], en: list[str]) -> Path:
    """An OPUS-style Moses zip: aligned .es/.en members plus a README."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("README", "OPUS test fixture\n")
        zf.writestr("Fixture.en-es.es", "".join(s + "\n" for s in es))
        zf.writestr("Fixture.en-es.en", "".join(s + "\n" for s in en))
    return path


def source(fmt: str, files: dict[str, Path], base: Path, **extra) -> dict:
    """A params source naming ``files`` (relative to the corpus's mirror dir ``base``)."""
    return {
        "format": fmt,
        "urls": [],
        **extra,
        "files": {
            k: {"path": p.relative_to(base).as_posix(), "checksum": sha256(p)}
            for k, p in files.items()
        },
    }


def overlay(
    corpus: str, mirror_dir: str, sources: dict[str, dict], chunk_lines: int = 50, **sample
) -> dict:
    """Params overlay: fetch ``corpus`` from ``sources`` (all chosen), keep every row."""
    return {
        "fetch": {
            corpus: {
                "source": list(sources),
                "sources": sources,
                "mirror_dir": mirror_dir,
                "chunk_lines": chunk_lines,
            }
        },
        "sample": {
            corpus: {
                "seed": 0,
                "max_length": None,
                "train": None,
                "validation": None,
                "test": None,
                **sample,
            }
        },
    }


def es_en_files(mirror: Path) -> dict[str, dict]:
    """Moses zip + Tatoeba TSV (with attribution column) holding one case per clean rule."""
    base = mirror / "es-en"
    es = [f"La frase número {i} es corta." for i in range(300)]
    en = [f"Sentence number {i} is short." for i in range(300)]
    # Forty Spanish sentences with one English translation: some land in test, some in train.
    es += [f"Estoy bien, gracias {i}." for i in range(40)]
    en += ["I am fine."] * 40
    es += ["", "Hola " * 100, "Sí.", "Cafe\u0301\x07  con\u00a0leche"]  # empty, long, ratio, mess
    en += [
        "Empty source.",
        "Hello " * 100,
        "Yes, and this English side is much, much longer than its source sentence.",
        "Coffee with milk",
    ]
    es += ["La frase número 1 es corta."] * 2  # exact duplicates of pair 1
    en += ["Sentence number 1 is short."] * 2
    tsv = [
        f"Tatoeba sentence {i}.\tFrase de Tatoeba {i}.\tCC-BY 2.0 (France) #{i}" for i in range(200)
    ]
    tsv += ["Good morning.\tBuenos días.\tx", "Good day.\tBuenos días.\ty"]  # two references
    sources = {
        "subs": source(
            "moses",
            {"archive": write_moses_zip(base / "subs.zip", es, en)},
            base,
            origin="opensubtitles",
            rows={"opensubtitles": len(es)},
        ),
        "tatoeba": source(
            "tsv",
            {"pairs": write_lines(base / "tatoeba" / "spa.txt", tsv)},
            base,
            columns=["en", "es", "attribution"],
            rows={"tatoeba": len(tsv)},
        ),
    }
    params = overlay("es_en", "es-en", sources)
    params["clean"] = {"es_en": {"max_drop_fraction": 0.05}}  # 5 of 346 rows go, on purpose
    return params


def tweet_files(mirror: Path, conversations: int = 80) -> dict[str, dict]:
    """Alternating tweet/reply lines: conversations of three chained pairs, URLs, handles."""
    lines: list[str] = []
    for c in range(conversations):
        turns = [f"conversation {c} turn {t} says something" for t in range(4)]
        if c == 0:
            turns[0] = "look at https://t.co/AbC123 and www.example.org @alice_1"
            turns[1] = "@bob thanks, mail me at a@b.com"
        for a, b in zip(turns, turns[1:]):
            lines += [a, b]
    lines += ["@carol", "ok"]  # a tweet that is only a handle is kept as "<user>"
    lines += ["", "a reply to nothing"]  # empty tweet
    path = write_lines(mirror / "twitter" / "tw.txt.gz", lines)
    sources = {
        "tw": source(
            "alternating",
            {"pairs": path},
            mirror / "twitter",
            origin="twitter",
            rows={"twitter": len(lines) // 2},
        )
    }
    params = overlay("twitter", "twitter", sources, chunk_lines=40)  # threads straddle chunks
    # tweets alone: the main job's tokenize also encodes es_en's English lines (own test)
    params["tokenize"] = {"twitter": {"monolingual": None}}
    return params


GUTENBERG_HEADER = [
    "The Project Gutenberg EBook of A Test Book, by Nobody",
    "",
    "This eBook is for the use of anyone anywhere at no cost.",
    "",
    "*** START OF THIS PROJECT GUTENBERG EBOOK A TEST BOOK ***",
    "",
    "",
    "Produced by A. Volunteer",
    "",
    "",
]
GUTENBERG_FOOTER = [
    "",
    "End of the Project Gutenberg EBook of A Test Book, by Nobody",
    "",
    "*** END OF THIS PROJECT GUTENBERG EBOOK A TEST BOOK ***",
    "",
    "Updated editions will replace the previous one--the old editions",
    "will be renamed.",
    "",
    "START: FULL LICENSE",
    "",
]
BOOK_PARAGRAPHS = [
    ["A TEST BOOK"],
    ["CHAPTER I"],
    [
        "It was a dark and stormy night; the rain fell",
        "in torrents, except at occasional",
        "intervals.",
    ],
    ["\u201cWho is there?\u201d said the", "voice."],
    ["CHAPTER I"],  # a repeated heading: an exact duplicate
    ["The end of the story", "came soon."],
]


def book_lines(paragraphs: list[list[str]]) -> list[str]:
    out: list[str] = []
    for p in paragraphs:
        out += p + ["", ""]
    return out


def book_files(mirror: Path, chunk_lines: int = 5) -> dict[str, dict]:
    base = mirror / "books"
    body = book_lines(BOOK_PARAGRAPHS)
    book = write_lines(
        base / "pg1.txt", GUTENBERG_HEADER + body + GUTENBERG_FOOTER, newline="\r\n", bom=True
    )
    speeches = [
        ["First Citizen:", "Before we proceed any further,", "hear me speak."],
        ["All:", "Speak, speak."],
    ]
    speeches += [[f"Citizen {i}:", f"Line {i} of the play,", "spoken aloud."] for i in range(60)]
    play = write_lines(base / "play.txt", book_lines(speeches)[:-2])  # no blank line at the end
    sources = {
        "gb": source("gutenberg", {"pg1": book}, base, origin="gutenberg"),
        "play": source(
            "gutenberg", {"shakes": play}, base, gutenberg_header=False, origin="tinyshakespeare"
        ),
    }
    params = overlay("books", "books", sources, chunk_lines=chunk_lines)
    params["clean"] = {"books": {"max_drop_fraction": 0.2}}  # the repeated heading: 1 of 6
    # two books: split their paragraphs (the main job holds out whole books)
    params["format"] = {
        "books": {"split": {"method": "hash", "validation_docs": [], "test_docs": []}}
    }
    return params


def run_hops(root: Path, corpus: str, hops=("fetch", "clean", "format", "sample")) -> None:
    for hop in hops:
        assert run_hop(hop, corpus, root) == 0, f"{hop} {corpus} failed"


def fails(root: Path, corpus: str, capsys, *needles: str) -> str:
    """Run fetch, expect exit 1 with every needle in stderr and no output left behind.

    Errors name the file read (the verified copy under data/downloads) and the source.
    """
    assert run_hop("fetch", corpus, root) == 1
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    out = data_dir("fetch", corpus, root)
    assert not out.exists(), "half-written output left behind"
    assert not list(out.parent.glob(f".{corpus}.tmp-*")), "temp output left behind"
    return err


def es_en_params(root: Path, files: dict[str, Path], fmt: str = "moses", **extra) -> None:
    base = root.parent / "mirror" / "es-en"
    write_params(root, overlay("es_en", "es-en", {"x": source(fmt, files, base, **extra)}))


def mirror(root: Path) -> Path:
    """The mirror beside a ``text_root`` project."""
    return root.parent / "mirror"
