"""Text token splits → arrays the text models train on, with no Python loop per example.

Reads the ``tokenize`` hop's text contract (``rnnflow/codec.py``):
``data/05_tokens/<corpus>/{train,validation,test}.parquet`` with ``<col>_ids`` ``list<int32>``
columns (no ``<bos>``/``<eos>``), ``spec.json`` (``task`` and which columns it uses) and
``vocab.json`` or ``tokenizer.json``. A list column is kept as its flat values plus offsets
(:class:`Ragged`), as nanoGPT keeps one flat token file:

- language model: every document of a split in one stream, ``<eos>`` after each
  (:func:`lm_stream`), cut into ``batch`` parallel rows (:func:`batchify`) and read in
  ``bptt`` windows;
- seq2seq: rows bucketed by length (:func:`bucket_batches`: sorted inside large random
  chunks), padded per batch with ``<bos>``/``<eos>`` added here (:func:`padded`).

The text tasks (:mod:`pipelines.text` and the task modules) load corpora with these
pieces; this module knows no task names: a spec's side keys (``ids``, or ``source`` and
``target``) name its id columns.

A text model trains on its own vocabulary (``min_freq``/``max_vocab`` over what it trains
on): :func:`prepare` maps corpus ids to model ids and records the kept ids in
``spec["model_vocab"]``, saved with the model, so the CLIs map text the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from pipelines.models import BOS, EOS, PAD, UNK
from pipelines.models import text_vocab_size as text_vocab  # noqa: F401  (T.text_vocab)
from rnnflow.io import read_table

SPECIAL_COUNT = 4  # <pad> <bos> <eos> <unk>: ids 0-3 in every vocabulary


# --- ragged id columns -------------------------------------------------------------------


@dataclass(frozen=True)
class Ragged:
    """A ``list<int>`` column as flat ``values`` and ``offsets`` (``len(self) + 1``)."""

    values: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_arrow(cls, col: pa.ChunkedArray | pa.Array) -> Ragged:
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        offsets = np.asarray(arr.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        offsets = offsets - offsets[0]
        values = pc.list_flatten(arr).to_numpy(zero_copy_only=False).astype(np.int64)
        return cls(values, offsets)

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]]) -> Ragged:
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        values = (
            np.concatenate([np.asarray(r, dtype=np.int64) for r in rows])
            if len(rows)
            else np.zeros(0, np.int64)
        )
        return cls(values, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def take(self, idx: np.ndarray) -> Ragged:
        """Rows ``idx`` (any order), gathered in one vectorised step."""
        idx = np.asarray(idx, dtype=np.int64)
        lengths = self.lengths[idx]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        gather = np.repeat(self.offsets[idx] - offsets[:-1], lengths) + np.arange(offsets[-1])
        return Ragged(self.values[gather], offsets)

    def map(self, lut: np.ndarray | None) -> Ragged:
        """Ids through a lookup table (corpus id → model id); None: unchanged."""
        return self if lut is None else Ragged(lut[self.values], self.offsets)


def padded(
    r: Ragged,
    idx: np.ndarray,
    bos: bool = False,
    eos: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``idx`` as a ``<pad>``-filled ``(B, T)`` int64 array (optionally ``<bos>`` first and
    ``<eos>`` after the tokens) and their lengths with the added tokens — vectorised."""
    idx = np.asarray(idx, dtype=np.int64)
    lengths = r.lengths[idx]
    width = int(lengths.max(initial=0)) + bos + eos
    out = np.full((len(idx), max(width, 1)), PAD, dtype=np.int64)
    cols = np.arange(out.shape[1])[None, :] - bos
    inside = (cols >= 0) & (cols < lengths[:, None])
    pos = r.offsets[idx][:, None] + cols
    out[inside] = r.values[pos[inside]]
    if bos:
        out[:, 0] = BOS
    if eos:
        out[np.arange(len(idx)), lengths + bos] = EOS
    return out, lengths + bos + eos


def unk_rate(r: Ragged, n: int) -> float:
    """Share of the ``n`` scored tokens of ``r`` that are ``<unk>``: printed beside every
    perplexity, since a model scores ``<unk>`` as one ordinary (and frequent) word."""
    return float(np.count_nonzero(r.values == UNK)) / n if n else float("nan")


def word_count(spec: dict[str, Any], texts: pa.Array | pa.ChunkedArray) -> int | None:
    """The words of ``texts`` plus one ``<eos>`` per row, for a subword vocabulary: the unit
    its perplexities are divided by, so they compare with a word vocabulary's (whose tokens
    are the same words, as the word tokenizer splits them). None for a word vocabulary."""
    if spec.get("kind") != "bpe":
        return None
    from rnnflow.codec import pretokenize

    return int(pc.sum(pc.list_value_length(pretokenize(texts))).as_py() or 0) + len(texts)


def per_word(perplexity: float, tokens: int, words: int | None) -> float:
    """A perplexity over ``tokens`` scored tokens as one over ``words`` words (the same total
    log-likelihood); unchanged when ``words`` is None."""
    return float(np.exp(np.log(perplexity) * tokens / words)) if words else perplexity


def lm_stream(r: Ragged) -> np.ndarray:
    """All documents in one stream: ``<eos> doc1 <eos> doc2 <eos> ...`` (int64).

    The leading ``<eos>`` is the context of the first token, so the targets ``stream[1:]``
    are exactly every token and every document's ``<eos>``.
    """
    n, nv = len(r), len(r.values)
    out = np.full(1 + nv + n, EOS, dtype=np.int64)
    doc = np.repeat(np.arange(n, dtype=np.int64), r.lengths)
    out[1 + np.arange(nv) + doc] = r.values
    return out


def batchify(
    stream: np.ndarray,
    rows: int,
    offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs/targets ``(rows, n)`` of ``stream[offset:]`` (pytorch/examples ``batchify``, batch
    first), plus the leftover tail as one ``(1, m)`` row so evaluation scores every token."""
    x, y = stream[offset:-1], stream[offset + 1 :]
    n = len(x) // rows
    main = n * rows
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return (
        to(x[:main].reshape(rows, n)),
        to(y[:main].reshape(rows, n)),
        to(x[main:][None]),
        to(y[main:][None]),
    )


def bucket_batches(
    lengths: np.ndarray, batch_size: int, generator: torch.Generator, chunk_batches: int = 64
) -> list[np.ndarray]:
    """Index batches of similar length: shuffle, sort inside chunks of ``chunk_batches``
    batches, cut, then shuffle the batch order (all draws from ``generator``)."""
    n = len(lengths)
    order = torch.randperm(n, generator=generator).numpy()
    chunk = batch_size * chunk_batches
    out: list[np.ndarray] = []
    for start in range(0, n, chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        out += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    perm = torch.randperm(len(out), generator=generator).tolist()
    return [out[i] for i in perm]


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Evaluation batches: all rows, sorted by length (least padding), no randomness."""
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


# --- model vocabulary --------------------------------------------------------------------


def keep_ids(
    values: np.ndarray, corpus_vocab: int, min_freq: int = 1, max_vocab: int | None = None
) -> np.ndarray | None:
    """Corpus ids a model keeps: the 4 specials, then tokens seen ≥ ``min_freq`` times in
    ``values``, most frequent first (ties by id), at most ``max_vocab`` in all. None when that
    is the whole corpus vocabulary (no mapping needed)."""
    if min_freq <= 1 and max_vocab is None:
        return None
    counts = np.bincount(values, minlength=corpus_vocab)
    cand = np.nonzero(counts >= max(min_freq, 1))[0]
    cand = cand[cand >= SPECIAL_COUNT]
    cand = cand[np.lexsort((cand, -counts[cand]))]
    if max_vocab is not None:
        cand = cand[: max_vocab - SPECIAL_COUNT]
    return np.concatenate([np.arange(SPECIAL_COUNT), cand]).astype(np.int64)


def lookup(keep: Sequence[int] | np.ndarray | None, corpus_vocab: int) -> np.ndarray | None:
    """corpus id → model id table (``<unk>`` for ids not kept); None for the identity."""
    if keep is None:
        return None
    lut = np.full(corpus_vocab, UNK, dtype=np.int64)
    lut[np.asarray(keep, dtype=np.int64)] = np.arange(len(keep))
    return lut


# --- corpus ------------------------------------------------------------------------------

#: The spec keys that can name a text corpus's id columns (its *sides*), in model order:
#: ``ids`` (one stream: a language model) or ``source`` and ``target`` (pairs).
SIDE_KEYS = ("ids", "source", "target")


@dataclass
class TextSplit:
    """One split: an id column per side, ``origin`` where the corpus has one, and the output
    side's raw text where it was asked for (what decoded output is scored against)."""

    sides: dict[str, Ragged]
    origin: np.ndarray | None = None
    row_id: np.ndarray | None = None
    text: np.ndarray | None = None

    def __len__(self) -> int:
        return len(next(iter(self.sides.values())))

    def select(self, mask: np.ndarray) -> TextSplit:
        idx = np.nonzero(mask)[0]
        return TextSplit(
            {k: v.take(idx) for k, v in self.sides.items()},
            None if self.origin is None else self.origin[idx],
            None if self.row_id is None else self.row_id[idx],
            None if self.text is None else self.text[idx],
        )

    def mapped(self, luts: dict[str, np.ndarray | None]) -> TextSplit:
        return replace(self, sides={k: v.map(luts.get(k)) for k, v in self.sides.items()})


@dataclass
class TextCorpus:
    """What a text model trains on: splits as ragged ids, the spec, the tokenizer files."""

    name: str
    spec: dict[str, Any]
    train: TextSplit
    validation: TextSplit
    files: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, Any] = field(default_factory=dict)  # vocab.json / tokenizer.json
    # output-side lines from another corpus in this vocabulary (``monolingual.parquet``)
    monolingual: Ragged | None = None

    @property
    def task(self) -> str:
        return self.spec["task"]


def sides_of(spec: dict[str, Any]) -> tuple[str, ...]:
    """The sides a spec names (its keys among :data:`SIDE_KEYS`, in that order)."""
    return tuple(k for k in SIDE_KEYS if k in spec)


def id_columns(spec: dict[str, Any], sides: Sequence[str] | None = None) -> dict[str, str]:
    """side → ``<col>_ids`` column, from the spec's side keys."""
    return {side: spec[side] for side in (sides if sides is not None else sides_of(spec))}


def load_split(
    directory: Path | str,
    split: str,
    spec: dict[str, Any],
    text: Sequence[str] = (),
    sides: Sequence[str] | None = None,
) -> tuple[TextSplit, pa.Table | None]:
    """One split's id columns (+ origin), and the requested raw text columns as a table."""
    path = Path(directory) / f"{split}.parquet"
    cols = id_columns(spec, sides)
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    extra = [c for c in ("origin", "row_id") if c in names]
    table = read_table(path, columns=list(dict.fromkeys([*cols.values(), *extra, *text])))
    split_ = TextSplit(
        {side: Ragged.from_arrow(table.column(c)) for side, c in cols.items()},
        (
            table.column("origin").to_numpy(zero_copy_only=False).astype(str)
            if "origin" in names
            else None
        ),
        (table.column("row_id").to_numpy() if "row_id" in names else None),
    )
    return split_, (table.select(list(text)) if text else None)


def load_corpus(
    directory: Path | str, spec: dict[str, Any], sides: Sequence[str], files: list[dict[str, Any]]
) -> TextCorpus:
    """Train and validation splits of a text corpus (``spec`` already read and checked), its
    tokenizer files, and a truecaser fitted on the train text of the last (output) side."""
    from rnnflow.codec import load_artifacts

    directory = Path(directory)
    artifacts = {k: v for k, v in load_artifacts(directory).items() if k != "spec.json"}
    out_col = id_columns(spec, sides)[sides[-1]].removesuffix("_ids")
    train, text = load_split(directory, "train", spec, text=[out_col], sides=sides)
    validation, val_text = load_split(directory, "validation", spec, text=[out_col], sides=sides)
    assert val_text is not None  # asked for [out_col]
    validation.text = np.asarray(val_text.column(out_col).to_pylist(), dtype=object)
    if spec.get("kind", "word") == "word" and spec.get("lowercase", True):
        assert text is not None  # asked for [out_col]
        artifacts["truecase"] = fit_truecaser(text.column(out_col))
    mono_path = directory / "monolingual.parquet"
    mono = None
    if mono_path.exists():
        col = f"{out_col}_ids"
        mono = Ragged.from_arrow(read_table(mono_path, columns=[col]).column(col))
    return TextCorpus(directory.name, spec, train, validation, files, artifacts, mono)


def prepare(cfg: Any, corpus: TextCorpus) -> TextCorpus:
    """The corpus as model ``cfg`` sees it: rows of ``cfg.origins`` only, ids mapped to the
    model's vocabulary (recorded in ``spec["model_vocab"]``)."""
    train, validation = corpus.train, corpus.validation
    spec = dict(corpus.spec)
    if getattr(cfg, "origins", None):
        if train.origin is None:
            raise ValueError(f"origins {cfg.origins} set but corpus {corpus.name} has no origin")
        # every split of a corpus has the same columns
        assert validation.origin is not None
        want = np.asarray(list(cfg.origins))
        train = train.select(np.isin(train.origin, want))
        validation = validation.select(np.isin(validation.origin, want))
        spec["trained_on_origins"] = list(cfg.origins)
        if not len(train):
            raise ValueError(f"no train rows of origins {cfg.origins} in {corpus.name}")
    vocab = int(spec["vocab_size"])
    own: dict[str, list[int]] = {}
    luts: dict[str, np.ndarray | None] = {}
    for side, r in train.sides.items():
        keep = keep_ids(r.values, vocab, cfg.min_freq, cfg.max_vocab)
        luts[side] = lookup(keep, vocab)
        if keep is not None:
            own[side] = keep.tolist()
    if own:
        spec["model_vocab"] = own
    mono = corpus.monolingual
    if mono is not None:
        mono = mono.map(luts.get(list(train.sides)[-1]))  # the output side's vocabulary
    return replace(
        corpus,
        spec=spec,
        train=train.mapped(luts),
        validation=validation.mapped(luts),
        monolingual=mono,
    )


def fit_truecaser(
    texts: pa.Array | pa.ChunkedArray,
    keep: set[str] | None = None,
) -> dict[str, str]:
    """lowercase word → its most frequent written form in ``texts`` (sentence-initial words
    left out), for words whose usual form is not lowercase; Arrow group-by, no Python loop."""
    from rnnflow.codec import pretokenize

    lists = pretokenize(texts, lowercase=False)
    flat = pc.list_flatten(lists)
    first = np.zeros(len(flat), dtype=bool)
    offs = np.asarray(lists.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
    offs = offs - offs[0]
    first[offs[:-1][np.diff(offs) > 0]] = True
    table = pa.table({"cased": flat, "lower": pc.utf8_lower(flat)}).filter(pa.array(~first))
    counts = table.group_by(["lower", "cased"]).aggregate([("cased", "count")])
    counts = counts.sort_by(
        [("lower", "ascending"), ("cased_count", "descending"), ("cased", "ascending")]
    )
    lower = counts["lower"].to_numpy(zero_copy_only=False)
    cased = counts["cased"].to_numpy(zero_copy_only=False)
    top = np.ones(len(lower), dtype=bool)
    top[1:] = lower[1:] != lower[:-1]
    out = {lo: ca for lo, ca in zip(lower[top], cased[top]) if lo != ca}
    return {k: v for k, v in out.items() if keep is None or k in keep}
