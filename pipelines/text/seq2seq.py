"""The base of the sentence-pair tasks (:mod:`.translate`, :mod:`.dialogue`): length-bucketed
epochs with teacher forcing, teacher-forced perplexity on every split, then the task's own
test scores. Registers no task.

Training: length-bucketed batches, teacher forcing (ratio ``teacher_forcing``, decided per
batch from the epoch's generator), masked cross-entropy.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from pipelines.models import PAD
from pipelines.scoring import autocast
from pipelines.text import Bundle, Codec, TextJob, TextTask, perplexity
from pipelines.text import data as T

EVAL_BATCH = 256  # sentence pairs per batch when scoring seq2seq


class Seq2SeqJob(TextJob):
    """Epochs of length-bucketed, padded sentence pairs."""

    def __init__(
        self,
        cfg,
        corpus: T.TextCorpus,
        device: torch.device,
        amp_dtype: torch.dtype | None = None,
        rank: int = 0,
        world: int = 1,
        val_bleu_rows: int = 0,
    ) -> None:
        super().__init__(cfg, device, amp_dtype, rank, world)
        self.val_bleu_rows = val_bleu_rows
        self.train, self.val = corpus.train, corpus.validation
        self.lengths = np.maximum(
            self.train.sides["source"].lengths, self.train.sides["target"].lengths
        )
        self.n_train, self.n_validation = len(self.train), len(self.val)
        self.monolingual = corpus.monolingual
        neg = getattr(cfg, "negative", None)
        # the greedy replies of the negative epochs so far, newest last
        self.recent: deque[tuple[int, ...]] = deque(maxlen=neg.window if neg else 1)
        if val_bleu_rows:  # the first rows by row_id: a hash draw across origins
            assert self.val.row_id is not None and self.val.text is not None
            pick = np.sort(np.argsort(self.val.row_id, kind="stable")[:val_bleu_rows])
            self.bleu_rows = self.val.select(np.isin(np.arange(len(self.val)), pick))
            self.codec = Codec(corpus.spec, corpus.artifacts)

    def pretrain_losses(
        self, model: torch.nn.Module, gen: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """One epoch over the monolingual target lines (``cfg.pretrain``), each with an empty
        source (the encoder reads only ``<eos>``): length-bucketed, shuffled by ``gen``."""
        pre = self.cfg.pretrain
        if pre is None or self.monolingual is None:
            raise ValueError(
                "pretrain needs the corpus's monolingual.parquet "
                "(params: tokenize.<corpus>.monolingual)"
            )
        lines = T.TextSplit(
            {
                "source": T.Ragged(  # every row empty
                    np.zeros(0, np.int64), np.zeros(len(self.monolingual) + 1, np.int64)
                ),
                "target": self.monolingual,
            }
        )
        batches = T.bucket_batches(self.monolingual.lengths, pre.batch_size, gen)
        if pre.max_batches:
            batches = batches[: pre.max_batches]
        for idx in batches:
            if len(idx) < self.world:
                continue
            with autocast(self.device, self.amp_dtype):
                nll, n = model(*pair_batch(lines, idx[self.rank :: self.world], self.device))
            yield nll / max(n, 1), nll.detach(), n

    def pretrain_batches(self) -> int:
        pre = self.cfg.pretrain
        n = -(-len(self.monolingual) // pre.batch_size) if self.monolingual is not None else 0
        return min(n, pre.max_batches or n)

    def num_batches(self) -> int:
        n = -(-self.n_train // self.cfg.batch_size)
        return min(n, self.cfg.max_batches or n)

    def losses(
        self,
        model: torch.nn.Module,
        epoch: int,
        gen: torch.Generator,
        negative: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """One epoch's batch losses; with ``negative``, plus ``cfg.negative.weight`` × the
        unlikelihood of the replies the model repeats (:meth:`unlikelihood`)."""
        batches = T.bucket_batches(self.lengths, self.cfg.batch_size, gen)
        if self.cfg.max_batches:
            batches = batches[: self.cfg.max_batches]
        for idx in batches:
            forced = (
                self.cfg.teacher_forcing >= 1
                or float(torch.rand((), generator=gen)) < self.cfg.teacher_forcing
            )
            if len(idx) < self.world:  # every rank needs rows, or the step would hang
                continue
            mine = idx[self.rank :: self.world]
            batch = pair_batch(self.train, mine, self.device)
            with autocast(self.device, self.amp_dtype):
                nll, n = model(*batch, teacher_forcing=forced)
                loss = nll / max(n, 1)
                if negative:
                    loss = loss + self.cfg.negative.weight * self.unlikelihood(model, *batch[:2])
            yield loss, nll.detach(), n

    def unlikelihood(self, model: Any, src: torch.Tensor, src_len: torch.Tensor) -> torch.Tensor:
        """Negative training: greedy replies to ``src`` that the model gave too often lately
        (``cfg.negative``), each token's −log(1 − p) averaged; 0 when there are none."""
        neg = self.cfg.negative
        model.eval()
        replies = model.greedy(src, src_len, neg.max_len, block_unk=True, no_repeat_ngram=3)
        model.train()
        self.recent.extend(tuple(r) for r in replies)
        counts = Counter(self.recent)
        bad = [i for i, r in enumerate(replies) if counts[tuple(r)] > neg.max_repeats]
        if not bad:
            return src.new_zeros((), dtype=torch.float)
        rows = T.Ragged.from_lists([replies[i] for i in bad])
        every = np.arange(len(bad))
        tgt_in, _ = T.padded(rows, every, bos=True)
        tgt_out, _ = T.padded(rows, every, eos=True)
        to = lambda a: torch.from_numpy(a).to(self.device)  # noqa: E731
        return unlikelihood(model, src[bad], src_len[bad], to(tgt_in), to(tgt_out))

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        nll, n = pairs_nll(model, self.val, self.device, self.amp_dtype)
        out = {"loss": nll / n if n else float("nan"), "perplexity": perplexity(nll, n)}
        if self.val_bleu_rows:
            out["bleu"] = self.greedy_bleu(model)
        return out

    def greedy_bleu(self, model: torch.nn.Module) -> float:
        """sacreBLEU (13a, cased) of greedy decodes of the hash-drawn validation rows,
        detokenised, against their raw reference text: the test metric on validation, cheap
        enough to run every epoch; what picks the translator's epoch."""
        from pipelines.config import VALIDATION_DECODE
        from pipelines.text import decode_rows, scorers

        rows = self.bleu_rows
        was = model.training
        model.eval()
        hyps = decode_rows(model, rows.sides["source"], "greedy", VALIDATION_DECODE, self.device)
        model.train(was)
        texts = [self.codec.text(h, "target") for h in hyps]
        assert rows.text is not None  # load_corpus reads the validation references
        return float(scorers.bleu(texts, [rows.text.tolist()])["score"])


def pair_batch(
    split: T.TextSplit,
    idx: np.ndarray,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``src`` (+``<eos>``), its lengths, ``<bos>``+target, target+``<eos>``."""
    src, src_len = T.padded(split.sides["source"], idx, eos=True)
    tgt_in, _ = T.padded(split.sides["target"], idx, bos=True)
    tgt_out, _ = T.padded(split.sides["target"], idx, eos=True)
    to = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    return to(src), torch.from_numpy(src_len), to(tgt_in), to(tgt_out)


def unlikelihood(
    model: Any,
    src: torch.Tensor,
    src_len: torch.Tensor,
    tgt_in: torch.Tensor,
    tgt_out: torch.Tensor,
) -> torch.Tensor:
    """Mean over ``tgt_out``'s tokens of −log(1 − p(token)): pushes a whole reply down and,
    unlike a negated NLL, is bounded as p → 0 (Welleck et al. 2020)."""
    enc, ids, state = model.encode(src, src_len)
    feats, _, copy = model.decode(tgt_in, state, enc, ids)
    p = model.log_probs(feats, copy).gather(-1, tgt_out[..., None])[..., 0].exp()
    keep = tgt_out != PAD
    return -(torch.log1p(-p.clamp(max=1 - 1e-5)) * keep).sum() / keep.sum()


@torch.no_grad()
def pairs_nll(
    model: torch.nn.Module,
    split: T.TextSplit,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    batch: int = EVAL_BATCH,
) -> tuple[float, int]:
    """Teacher-forced summed NLL over every target token (``<eos>`` included) of ``split``."""
    was = model.training
    model.eval()
    lengths = np.maximum(split.sides["source"].lengths, split.sides["target"].lengths)
    total, count = 0.0, 0
    for idx in T.sorted_batches(lengths, batch):
        with autocast(device, amp_dtype):
            nll, n = model(*pair_batch(split, idx, device))
        total, count = total + float(nll), count + n
    model.train(was)
    return total, count


class Seq2SeqTask(TextTask):
    """Source → target sentence pairs. Subclasses add :meth:`baseline` (extra metrics of
    every split) and :meth:`test_scores` (decoding-based scores and sample rows)."""

    sides = ("source", "target")

    def make_job(self, cfg, corpus, device, amp_dtype=None, rank=0, world=1) -> Seq2SeqJob:
        return Seq2SeqJob(cfg, corpus, device, amp_dtype, rank, world)

    def baseline(
        self,
        bundle: Bundle,
        directory: Path,
    ) -> Callable[[T.TextSplit, int | None], dict[str, Any]] | None:
        """Extra metrics of one split (a baseline fitted on train), or None; called with the
        split and its word count (:func:`~pipelines.text.data.word_count`)."""
        return None

    def test_scores(
        self,
        bundle: Bundle,
        test: T.TextSplit,
        table: pa.Table,
        src_col: str,
        tgt_col: str,
        device: torch.device,
        batch: int,
        directory: Path,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Scores added to the test metrics, and the sample rows (``directory``: the corpus)."""
        raise NotImplementedError

    def evaluate_bundle(
        self,
        bundle: Bundle,
        directory: Path,
        device: torch.device,
        amp_dtype: torch.dtype | None = None,
        batch: int = 1024,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        model, spec = bundle.model, bundle.spec
        src_col, tgt_col = spec["source"].removesuffix("_ids"), spec["target"].removesuffix("_ids")
        extra = self.baseline(bundle, directory)
        metrics: dict[str, Any] = {}
        for split in ("validation", "test"):
            part, refs = self.split(bundle, directory, split, text=[tgt_col])
            assert refs is not None
            nll, n = pairs_nll(model, part, device, amp_dtype)
            # per word: a subword model's perplexity on the scale of a word model's
            words = T.word_count(spec, refs.column(tgt_col))
            metrics[split] = {
                "n": len(part),
                "tokens": n,
                "loss": nll / n,
                "perplexity": perplexity(nll, words or n),
                "unk_rate": T.unk_rate(part.sides["target"], n),
            }
            if words:
                metrics[split].update(words=words, token_perplexity=perplexity(nll, n))
            if extra is not None:
                metrics[split].update(extra(part, words))
        test, table = self.split(bundle, directory, "test", text=[src_col, tgt_col])
        scores, samples = self.test_scores(
            bundle, test, table, src_col, tgt_col, device, batch, directory
        )
        metrics["test"].update(scores)
        return metrics, samples
