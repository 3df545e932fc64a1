"""The synthetic es-en corpus of ``scale_es_en.py``: made-up pairs in the OPUS OpenSubtitles
Moses zip layout, with the joint sentence lengths of the mirror's real pairs, Zipf-Mandelbrot
words and planted duplicates. The same seed and options give the same pairs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: The zip's two members, as the OPUS release names them.
MEMBERS = {"es": "OpenSubtitles.en-es.es", "en": "OpenSubtitles.en-es.en"}
#: Consonants and vowels each language's made-up syllables are drawn from.
LANGS = {"es": ("bcdfglmnprstvzjñ", "aeiouáé"), "en": ("bcdfghklmnprstvwy", "aeiouy")}


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


class Generator:
    """Chunks of synthetic (es, en) pairs; deterministic given ``--seed``. ``args`` gives
    ``--vocab``, ``--zipf-s``, ``--dup-fraction`` and ``--src-repeat-fraction``."""

    def __init__(self, lengths: np.ndarray, args: argparse.Namespace) -> None:
        self.lengths = lengths
        self.rng = np.random.default_rng(args.seed)
        ranks = np.arange(args.vocab, dtype=np.float64)
        p = 1.0 / (ranks + 2.7) ** args.zipf_s  # Zipf–Mandelbrot
        self.cdf = np.cumsum(p / p.sum())
        self.words = {lang: pa.array(word_types(args.vocab, *LANGS[lang])) for lang in LANGS}
        self.dup, self.src_repeat = args.dup_fraction, args.src_repeat_fraction
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
        """The next ``n`` pairs; planted duplicates and es repeats copy an earlier pair of the
        same chunk."""
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
    from stages.core.filecheck import file_digest
    from stages.core.hashing import row_hash

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
            for done in range(0, n, chunk):
                es, en = gen.chunk(min(chunk, n - done))
                pairs = pa.table({"src": es, "tgt": en})
                pair_hashes.append(row_hash(pairs, ("src", "tgt")).to_numpy())
                src_hashes.append(row_hash(pairs, ("src",)).to_numpy())
                f_es.write(_lines(es))
                f_en.write(_lines(en))
        with zf.open(MEMBERS["en"], "w", force_zip64=True) as dst, open(tmp_en, "rb") as src:
            shutil.copyfileobj(src, dst, 1 << 20)
        tmp_en.unlink()
    dup_pairs = n - len(np.unique(np.concatenate(pair_hashes)))
    rep_src = n - len(np.unique(np.concatenate(src_hashes)))
    return {
        "path": path.name,
        "data": "synthetic",
        "pairs": n,
        "bytes": path.stat().st_size,
        "sha256": file_digest(path, "sha256"),
        "seconds": round(time.perf_counter() - t0, 2),
        "duplicate_pairs": dup_pairs,
        "duplicate_pair_fraction": round(dup_pairs / n, 5),
        "planned_duplicate_pairs": gen.planned_dups,
        "repeated_es_sentences": rep_src,
        "repeated_es_fraction": round(rep_src / n, 5),
        "planned_es_repeats": gen.planned_src_repeats,
    }
