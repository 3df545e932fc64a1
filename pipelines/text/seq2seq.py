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
        """One epoch's batch losses (with ``negative``, :meth:`negative_loss`'s)."""
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
                if negative:
                    loss, nll, n = self.negative_loss(model, *batch)
                else:
                    nll, n = model(*batch, teacher_forcing=forced)
                    loss = nll / max(n, 1)
            yield loss, nll.detach(), n

    def negative_loss(
        self,
        model: Any,
        src: torch.Tensor,
        src_len: torch.Tensor,
        tgt_in: torch.Tensor,
        tgt_out: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Negative training's batch loss, its plain summed NLL and token count. ``src`` is
        also answered greedily; the likelihood weighs each target token against how often the
        last ``cfg.negative.window`` greedy replies use it (:func:`face_weights`), and the
        replies given more than ``max_repeats`` times among them add ``weight`` × their
        tokens' mean −log(1 − p) (:func:`unlikelihood`); with ``contrast``, each reply's
        log-likelihood gap over the previous row's context below ``margin`` adds its softplus."""
        neg = self.cfg.negative
        model.eval()
        replies = model.greedy(src, src_len, neg.max_len, block_unk=True, no_repeat_ngram=3)
        model.train()
        self.recent.extend(tuple(r) for r in replies)
        logp = target_log_probs(model, src, src_len, tgt_in, tgt_out)
        keep = tgt_out != PAD
        used = np.fromiter((t for r in self.recent for t in r), np.int64)
        weights = face_weights(used, model.tgt_embed.num_embeddings).to(logp.device)[tgt_out]
        n = int(keep.sum())
        loss = -(logp * weights * keep).sum() / max(n, 1)
        if neg.contrast:
            other = torch.roll(torch.arange(len(src)), 1)  # row i's reply after row i-1's context
            elsewhere = target_log_probs(model, src[other], src_len[other], tgt_in, tgt_out)
            gap = ((logp - elsewhere) * keep).sum(1) / keep.sum(1).clamp(min=1)
            loss = loss + neg.contrast * torch.nn.functional.softplus(neg.margin - gap).mean()
        counts = Counter(self.recent)
        bad = [i for i, r in enumerate(replies) if counts[tuple(r)] > neg.max_repeats]
        if bad:
            rows = T.Ragged.from_lists([replies[i] for i in bad])
            every = np.arange(len(bad))
            bad_in = torch.from_numpy(T.padded(rows, every, bos=True)[0]).to(self.device)
            bad_out = torch.from_numpy(T.padded(rows, every, eos=True)[0]).to(self.device)
            pushed = target_log_probs(model, src[bad], src_len[bad], bad_in, bad_out)
            loss = loss + neg.weight * unlikelihood(pushed, bad_out != PAD)
        return loss, -(logp * keep).sum(), n

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
        hyps = decode_rows(model, rows.sides["source"], "greedy", VALIDATION_DECODE, self.device)
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


def target_log_probs(
    model: Any,
    src: torch.Tensor,
    src_len: torch.Tensor,
    tgt_in: torch.Tensor,
    tgt_out: torch.Tensor,
) -> torch.Tensor:
    """Teacher-forced log-probability ``(B, T)`` of each token of ``tgt_out``."""
    enc, ids, state = model.encode(src, src_len)
    feats, _, copy = model.decode(tgt_in, state, enc, ids)
    return model.log_probs(feats, copy).gather(-1, tgt_out[..., None])[..., 0]


def face_weights(tokens: np.ndarray, vocab: int) -> torch.Tensor:
    """Output-frequency token weights (FACE, Jiang et al. 2019): ``1 − c / max c`` for each
    token's count ``c`` in ``tokens`` (the model's own recent replies), scaled to mean 1 over
    the ``vocab``: the token it overuses most weighs 0, those it never says the most."""
    counts = np.bincount(tokens, minlength=vocab).astype(np.float64)[:vocab]
    w = 1 - counts / counts.max() if counts.any() else np.ones(vocab)
    return torch.from_numpy(w / w.sum() * vocab if w.sum() else np.ones(vocab)).float()


def unlikelihood(logp: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean over the tokens ``keep`` marks of −log(1 − p), their log-probabilities ``logp``:
    pushes a whole reply down and, unlike a negated NLL, is bounded as p → 0 (Welleck et al.
    2020)."""
    p = logp.exp().clamp(max=1 - 1e-5)
    return -(torch.log1p(-p) * keep).sum() / keep.sum()


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
