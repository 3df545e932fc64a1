"""Recurrent encoder–decoder with global attention (Luong, Pham & Manning 2015), the model of
the PyTorch seq2seq translation and chatbot tutorials.

- Encoder: embedding → (bi)LSTM/GRU over packed sequences (padding never enters the state);
  a bidirectional encoder's two final states are concatenated per layer to start the decoder
  (as OpenNMT's ``brnn``).
- Decoder: embedding → LSTM/GRU over the whole teacher-forced target at once (one cuDNN call),
  then attention over the encoder outputs: ``score = h_t·W_a·h_s`` (``general``) or
  ``h_t·h_s`` (``dot``), masked at padding; ``h~_t = tanh(W_c[c_t; h_t])``; softmax over the
  target vocabulary. No input feeding, so training needs no Python loop over time steps.
- ``forward`` returns the summed masked cross-entropy and the token count (padding excluded);
  ``teacher_forcing=False`` feeds the model's own greedy predictions instead (the tutorials'
  teacher-forcing ratio, decided per batch by the trainer).
- Decoding: ``greedy``, ``sample`` and ``beam_search`` (:mod:`pipelines.text.decode`).
- ``copy`` (pointer-generator, See, Liu & Manning 2017): each step's distribution mixes the
  softmax with the attention weights put on the source's tokens, by a learned gate
  ``p_gen = σ(w·[c_t; h_t; x_t])``, so a reply can take a word from its context.

Imports only torch (the throughput benchmark runs it where Prefect is not installed).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pipelines.models import PAD, UNK, register, text_vocab_size
from pipelines.text.decode import Decoding
from pipelines.text.lm_model import CELLS, Hidden, Softmax, map_hidden


class Copy(NamedTuple):
    """A copying decoder's attention ``weights`` ``(B, T, S)``, its gate ``p_gen``
    ``(B, T, 1)`` and the source ``src`` ``(B, S)`` in target ids."""

    weights: torch.Tensor
    p_gen: torch.Tensor
    src: torch.Tensor


def copy_ids(spec: dict[str, Any]) -> torch.Tensor:
    """Model source id → model target id of the same corpus token (``<unk>`` where the target
    vocabulary lacks it): what a copying model writes for each source token."""
    own = spec.get("model_vocab") or {}
    corpus = list(range(int(spec["vocab_size"])))
    target = {tok: i for i, tok in enumerate(own.get("target", corpus))}
    return torch.tensor([target.get(tok, UNK) for tok in own.get("source", corpus)])


@register("seq2seq", tasks=("translate", "dialogue"))
class Seq2Seq(Decoding, nn.Module):
    """``forward(src, src_len, tgt_in, tgt_out) -> (nll_sum, n_tokens)``; ``(B, T)`` batches
    padded with ``<pad>``; ``tgt_in`` starts with ``<bos>``, ``tgt_out`` ends with ``<eos>``."""

    copy_ids: torch.Tensor  # a buffer, when the model copies

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        embedding: int = 256,
        hidden: int = 256,
        layers: int = 2,
        cell: str = "lstm",
        dropout: float = 0.2,
        attention: str = "general",
        bidirectional: bool = True,
        softmax: str = "full",
        cutoffs: list[int] | None = None,
        copy_ids: torch.Tensor | None = None,
    ) -> None:
        """``copy_ids``: with it the model copies (pointer-generator); ``copy_ids[i]`` is the
        target id of source token ``i`` (:func:`copy_ids`)."""
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r} (known: {sorted(CELLS)})")
        if attention not in ("general", "dot", "none"):
            raise ValueError(f"unknown attention {attention!r}")
        if copy_ids is not None and attention == "none":
            raise ValueError("copy needs attention: it copies where the decoder attends")
        if bidirectional and hidden % 2:
            raise ValueError(f"a bidirectional encoder needs an even hidden size, got {hidden}")
        rnn = CELLS[cell]
        inner = dropout if layers > 1 else 0.0
        self.bidirectional, self.attention = bidirectional, attention
        self.drop = nn.Dropout(dropout)
        self.src_embed = nn.Embedding(src_vocab, embedding, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(tgt_vocab, embedding, padding_idx=PAD)
        self.encoder = rnn(
            embedding,
            hidden // 2 if bidirectional else hidden,
            num_layers=layers,
            batch_first=True,
            dropout=inner,
            bidirectional=bidirectional,
        )
        self.decoder = rnn(embedding, hidden, num_layers=layers, batch_first=True, dropout=inner)
        if attention == "general":
            self.w_a = nn.Linear(hidden, hidden, bias=False)
        if attention != "none":
            self.w_c = nn.Linear(2 * hidden, hidden, bias=False)
        self.out = Softmax(hidden, tgt_vocab, softmax, cutoffs)
        self.gate: nn.Linear | None = None
        if copy_ids is not None:
            self.gate = nn.Linear(2 * hidden + embedding, 1)
            # derived from the spec at every build: not part of the weights
            self.register_buffer("copy_ids", copy_ids.long(), persistent=False)

    @classmethod
    def from_config(cls, cfg, spec) -> Seq2Seq:
        return cls(
            src_vocab=text_vocab_size(spec, "source"),
            tgt_vocab=text_vocab_size(spec, "target"),
            embedding=cfg.embedding,
            hidden=cfg.hidden,
            layers=cfg.layers,
            cell=cfg.cell,
            dropout=cfg.dropout,
            attention=cfg.attention,
            bidirectional=cfg.bidirectional,
            softmax=cfg.softmax,
            cutoffs=cfg.cutoffs,
            copy_ids=copy_ids(spec) if cfg.copy_source else None,
        )

    # --- pieces --------------------------------------------------------------------------

    def encode(
        self,
        src: torch.Tensor,
        src_len: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, Hidden]:
        """Encoder outputs ``(B, S, H)``, the source ``(B, S)`` as the decoder sees it (its
        ids in the target vocabulary when the model copies; ``<pad>`` marks padding) and the
        decoder's start."""
        packed = pack_padded_sequence(
            self.drop(self.src_embed(src)), src_len.cpu(), batch_first=True, enforce_sorted=False
        )
        out, state = self.encoder(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        if self.bidirectional:  # (layers*2, B, H/2) → (layers, B, H): [forward; backward]

            def merge(h: torch.Tensor) -> torch.Tensor:
                n2, b, h2 = h.shape
                return h.view(n2 // 2, 2, b, h2).transpose(1, 2).reshape(n2 // 2, b, 2 * h2)

            state = map_hidden(merge, state)
        if self.gate is None:
            return out, src, state
        return out, self.copy_ids[src], state

    def _scores(self, dec: torch.Tensor, enc: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        """Attention logits ``(B, T, S)``, ``-inf`` at source padding."""
        query = self.w_a(dec) if self.attention == "general" else dec
        scores = torch.bmm(query, enc.transpose(1, 2))
        return scores.masked_fill((src == PAD)[:, None, :], float("-inf"))

    def decode(
        self, tokens: torch.Tensor, state: Hidden, enc: torch.Tensor, src: torch.Tensor
    ) -> tuple[torch.Tensor, Hidden, Copy | None]:
        """Attentional hidden states ``(B, T, H)`` for decoder inputs ``tokens`` ``(B, T)``,
        and what the copy needs (when the model copies)."""
        emb = self.drop(self.tgt_embed(tokens))
        out, state = self.decoder(emb, state)
        if self.attention == "none":
            return self.drop(out), state, None
        weights = self._scores(out, enc, src).softmax(-1)
        context = torch.bmm(weights, enc)
        feats = self.drop(torch.tanh(self.w_c(torch.cat([context, out], -1))))
        if self.gate is None:
            return feats, state, None
        p_gen = torch.sigmoid(self.gate(torch.cat([context, out, emb], -1)))
        return feats, state, Copy(weights, p_gen, src)

    def log_probs(self, feats: torch.Tensor, copy: Copy | None) -> torch.Tensor:
        """``(B, T, V)`` log-probabilities: the softmax's, mixed with the copy distribution
        (``p_gen · softmax + (1 − p_gen) · attention on each source token``) when copying."""
        logp = self.out.log_probs(feats)
        if copy is None:
            return logp
        index = copy.src[:, None, :].expand(-1, feats.size(1), -1)
        mixed = (copy.p_gen * logp.exp()).scatter_add(-1, index, (1 - copy.p_gen) * copy.weights)
        return mixed.clamp_min(1e-30).log()

    def step(
        self,
        tokens: torch.Tensor,
        state: Hidden,
        enc: torch.Tensor,
        src: torch.Tensor,
    ) -> tuple[torch.Tensor, Hidden]:
        """One decoding step: log-probabilities ``(B, V)`` of the token after ``tokens``."""
        feats, state, copy = self.decode(tokens[:, None], state, enc, src)
        if copy is None:
            return self.out.log_probs(feats[:, 0]), state
        return self.log_probs(feats, copy)[:, 0], state

    # --- training --------------------------------------------------------------------------

    def forward(
        self,
        src: torch.Tensor,
        src_len: torch.Tensor,
        tgt_in: torch.Tensor,
        tgt_out: torch.Tensor,
        teacher_forcing: bool = True,
    ) -> tuple[torch.Tensor, int]:
        enc, ids, state = self.encode(src, src_len)
        keep = tgt_out != PAD
        if teacher_forcing:
            feats, _, copy = self.decode(tgt_in, state, enc, ids)
            if copy is not None:
                logp = self.log_probs(feats, copy).gather(-1, tgt_out[..., None])[..., 0]
                return -(logp * keep).sum(), int(keep.sum())
        else:  # free running: the model's own greedy choice is the next input
            if self.gate is not None:
                raise NotImplementedError("copy trains teacher-forced only (teacher_forcing 1)")
            tok, steps = tgt_in[:, 0], []
            for _ in range(tgt_in.size(1)):
                f, state, _ = self.decode(tok[:, None], state, enc, ids)
                steps.append(f)
                tok = self.out.log_probs(f[:, 0].detach()).argmax(-1)
            feats = torch.cat(steps, 1)
        return self.out.nll(feats, tgt_out, keep), int(keep.sum())
