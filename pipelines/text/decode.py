"""Decoding for the encoder–decoder (:class:`~pipelines.text.seq2seq_model.Seq2Seq`):
``greedy``, ``sample`` (temperature, top-k, top-p, a repetition penalty, no repeated n-gram) and
a batched ``beam_search`` (all sentences × beams in one tensor; final scores normalised by
``length ** length_penalty``). The model provides ``encode`` and ``step``.

Imports only torch (the throughput benchmark runs it where Prefect is not installed).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch

from pipelines.models import BOS, EOS, PAD
from pipelines.text.lm_model import Hidden, map_hidden, no_unk, pick


def trim(rows: torch.Tensor) -> list[list[int]]:
    """Token rows ``(B, L)`` → lists cut before the first ``<eos>`` (or padding)."""
    out = []
    for row in rows.tolist():
        cut = len(row)
        for stop in (EOS, PAD):
            if stop in row:
                cut = min(cut, row.index(stop))
        out.append(row[:cut])
    return out


def ban_repeats(logp: torch.Tensor, prefix: torch.Tensor, n: int) -> torch.Tensor:
    """``logp`` ``(B, V)`` with -inf at every token that would end an n-gram already in its
    row's ``prefix`` ``(B, T)`` (HF generate's ``no_repeat_ngram_size``)."""
    if prefix.size(1) < n - 1:
        return logp
    rows, toks = [], []
    for b, seq in enumerate(prefix.tolist()):
        tail = tuple(seq[len(seq) - n + 1 :]) if n > 1 else ()
        for i in range(len(seq) - n + 1):
            if tuple(seq[i : i + n - 1]) == tail:
                rows.append(b)
                toks.append(seq[i + n - 1])
    if rows:
        at = (torch.tensor(rows, device=logp.device), torch.tensor(toks, device=logp.device))
        logp = logp.index_put(at, torch.tensor(float("-inf"), device=logp.device))
    return logp


def avoid(
    logp: torch.Tensor,
    tok: torch.Tensor,
    rows: list[list[int]],
    done: list[bool],
    reject: Callable[[list[int]], bool],
    repick: Callable[[torch.Tensor], torch.Tensor],
    tries: int = 8,
) -> torch.Tensor:
    """``tok`` ``(B,)`` with each token that ``reject(row + [token])`` refuses picked again
    (``repick``) from its row of ``logp`` without it, up to ``tries`` times; then kept."""
    for _ in range(tries):
        bad = [
            b
            for b, t in enumerate(tok.tolist())
            if not done[b] and t not in (EOS, PAD) and reject(rows[b] + [t])
        ]
        if not bad:
            break
        at = torch.tensor(bad, device=logp.device)
        logp = logp.index_put((at, tok[at]), torch.tensor(float("-inf"), device=logp.device))
        tok = tok.index_copy(0, at, repick(logp[at]))
    return tok


class Decoding:
    """The decoders of a model with ``encode(src, src_len) -> (enc, ids, state)`` and
    ``step(tok, state, enc, ids) -> (logp, state)``."""

    encode: Callable[..., tuple[torch.Tensor, torch.Tensor, Hidden]]
    step: Callable[..., tuple[torch.Tensor, Hidden]]

    # Every decoder takes ``block_unk``: never emit ``<unk>`` (a reply must name a word).

    @torch.no_grad()
    def greedy(
        self,
        src: torch.Tensor,
        src_len: torch.Tensor,
        max_len: int,
        block_unk: bool = False,
        no_repeat_ngram: int = 0,
        reject: Callable[[list[int]], bool] | None = None,
    ) -> list[list[int]]:
        """Most likely token at each step, until ``<eos>`` or ``max_len`` tokens; with
        ``no_repeat_ngram`` n, never a token that would repeat an n-gram of the reply, nor one
        that ``reject`` refuses (it sees the reply so far, that token last)."""
        return self._run(
            src,
            src_len,
            max_len,
            greedy=True,
            block_unk=block_unk,
            no_repeat_ngram=no_repeat_ngram,
            reject=reject,
        )

    @torch.no_grad()
    def sample(
        self,
        src: torch.Tensor,
        src_len: torch.Tensor,
        max_len: int,
        temperature: float = 1.0,
        top_k: int = 0,
        generator: torch.Generator | None = None,
        block_unk: bool = False,
        top_p: float = 0.0,
        repetition_penalty: float = 1.0,
        min_len: int = 0,
        no_repeat_ngram: int = 0,
        reject: Callable[[list[int]], bool] | None = None,
    ) -> list[list[int]]:
        """Ancestral sampling from the ``top_k`` most likely tokens at ``temperature``, within
        the ``top_p`` nucleus; a token already in the reply has its probability divided by
        ``repetition_penalty``, ``<eos>`` is barred for the first ``min_len`` tokens, and
        with ``no_repeat_ngram`` n no n-gram of the reply repeats (``reject``: as in
        :meth:`greedy`)."""
        return self._run(
            src,
            src_len,
            max_len,
            False,
            temperature,
            top_k,
            generator,
            block_unk,
            top_p,
            repetition_penalty,
            min_len,
            no_repeat_ngram,
            reject,
        )

    def _run(
        self,
        src,
        src_len,
        max_len,
        greedy,
        temperature=1.0,
        top_k=0,
        generator=None,
        block_unk=False,
        top_p=0.0,
        repetition_penalty=1.0,
        min_len=0,
        no_repeat_ngram=0,
        reject=None,
    ):
        enc, ids, state = self.encode(src, src_len)
        tok = torch.full((src.size(0),), BOS, dtype=torch.long, device=src.device)
        done = torch.zeros_like(tok, dtype=torch.bool)
        used = None  # (B, V): tokens already emitted, for the repetition penalty
        out = []
        for t in range(max_len):
            logp, state = self.step(tok, state, enc, ids)
            logp = no_unk(logp) if block_unk else logp
            if not greedy:  # a sampled reply never holds <pad>/<bos>; <eos> waits for min_len
                barred = [PAD, BOS, EOS] if t < min_len else [PAD, BOS]
                logp = logp.index_fill(-1, torch.tensor(barred, device=logp.device), float("-inf"))
            if repetition_penalty != 1.0:
                used = torch.zeros_like(logp, dtype=torch.bool) if used is None else used
                logp = logp - used * math.log(repetition_penalty)
            if no_repeat_ngram and out:
                logp = ban_repeats(logp, torch.stack(out, 1), no_repeat_ngram)
            tok = pick(logp, greedy, temperature, top_k, generator, top_p).masked_fill(done, PAD)
            if reject is not None:
                rows = torch.stack(out, 1).tolist() if out else [[] for _ in range(len(tok))]
                tok = avoid(
                    logp,
                    tok,
                    rows,
                    done.tolist(),
                    reject,
                    lambda lp: pick(lp, greedy, temperature, top_k, generator, top_p),
                )
            if used is not None:
                used[torch.arange(tok.size(0), device=tok.device), tok] = True
            out.append(tok)
            done |= tok == EOS
            if bool(done.all()):
                break
        return trim(torch.stack(out, 1)) if out else [[] for _ in range(src.size(0))]

    @torch.no_grad()
    def beam_search(
        self,
        src: torch.Tensor,
        src_len: torch.Tensor,
        beam: int,
        max_len: int,
        length_penalty: float = 1.0,
        block_unk: bool = False,
    ) -> list[list[int]]:
        """Best of ``beam`` hypotheses per sentence, all sentences in one batch. A finished
        hypothesis keeps its score (it continues with ``<pad>`` at no cost); the winner is the
        highest ``score / length ** length_penalty``. ``beam=1`` is greedy decoding."""
        b, k = src.size(0), beam
        enc, ids, state = self.encode(src, src_len)
        enc, ids = enc.repeat_interleave(k, 0), ids.repeat_interleave(k, 0)
        state = map_hidden(lambda h: h.repeat_interleave(k, 1), state)
        dev = src.device
        scores = torch.full((b, k), float("-inf"), device=dev)
        scores[:, 0] = 0.0  # all beams start identical: expand only the first
        tokens = torch.full((b * k, 1), BOS, dtype=torch.long, device=dev)
        done = torch.zeros(b * k, dtype=torch.bool, device=dev)
        lengths = torch.zeros(b * k, dtype=torch.long, device=dev)
        base = (torch.arange(b, device=dev) * k)[:, None]
        for _ in range(max_len):
            logp, state = self.step(tokens[:, -1], state, enc, ids)
            logp = no_unk(logp) if block_unk else logp
            vocab = logp.size(-1)
            finished = torch.full_like(logp[:1], float("-inf"))
            finished[0, PAD] = 0.0
            logp = torch.where(done[:, None], finished, logp)
            top, idx = (scores.reshape(-1, 1) + logp).view(b, k * vocab).topk(k, -1)
            rows = (base + torch.div(idx, vocab, rounding_mode="floor")).view(-1)
            tok = (idx % vocab).view(-1)
            tokens = torch.cat([tokens[rows], tok[:, None]], 1)
            state = map_hidden(partial(torch.index_select, dim=1, index=rows), state)
            lengths = lengths[rows] + (~done[rows]).long()
            done = done[rows] | (tok == EOS)
            scores = top
            if bool(done.all()):
                break
        norm = scores.view(-1) / lengths.clamp(min=1).float() ** length_penalty
        best = norm.view(b, k).argmax(-1) + base[:, 0]
        return trim(tokens[best, 1:])
