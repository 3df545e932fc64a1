"""Word-level recurrent language model, as pytorch/examples ``word_language_model/model.py``:
embedding → dropout → ``nn.LSTM``/``nn.GRU`` (inter-layer dropout) → dropout → softmax.

- Weight tying (Press & Wolf 2017; Inan et al. 2017): the output layer reuses the embedding.
- ``softmax: adaptive``: ``nn.AdaptiveLogSoftmaxWithLoss`` (Grave et al. 2017), exact
  normalised probabilities at a fraction of a full softmax's cost for a large vocabulary.
- Trained with truncated BPTT over one token stream (``pipelines/text/lm.py``): ``forward``
  takes the previous window's hidden state and returns the summed NLL, so a
  ``DistributedDataParallel`` wrapper sees the loss in its forward.
- ``generate``: greedy, or sampling with a temperature and top-k.

Imports only torch (the throughput benchmark runs it where Prefect is not installed).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pipelines.models import EOS, UNK, register, text_vocab_size

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def detach(hidden: Hidden | None) -> Hidden | None:
    """Cut the graph at a BPTT window boundary, keep the values."""
    if hidden is None:
        return None
    if isinstance(hidden, tuple):
        return hidden[0].detach(), hidden[1].detach()
    return hidden.detach()


def map_hidden(fn: Callable[[torch.Tensor], torch.Tensor], state: Hidden) -> Hidden:
    """``fn`` applied to each tensor of a recurrent state (an LSTM's ``(h, c)`` or a GRU's h)."""
    if isinstance(state, tuple):
        return fn(state[0]), fn(state[1])
    return fn(state)


class Softmax(nn.Module):
    """Output layer: full linear softmax (optionally tied) or adaptive softmax."""

    def __init__(
        self,
        hidden: int,
        vocab: int,
        kind: str = "full",
        cutoffs: list[int] | None = None,
        tied: nn.Embedding | None = None,
    ) -> None:
        super().__init__()
        cuts = [c for c in (cutoffs or []) if 0 < c < vocab - 1]
        self.adaptive = kind == "adaptive" and bool(cuts)
        if self.adaptive:
            self.asm = nn.AdaptiveLogSoftmaxWithLoss(hidden, vocab, cuts, div_value=4.0)
        else:
            self.linear = nn.Linear(hidden, vocab)
            if tied is not None:
                self.linear.weight = tied.weight

    def nll(
        self, feats: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Summed negative log-likelihood of ``target`` (positions where ``mask`` holds)."""
        feats, target = feats.reshape(-1, feats.size(-1)), target.reshape(-1)
        if mask is not None:
            keep = mask.reshape(-1)
            feats, target = feats[keep], target[keep]
        if self.adaptive:
            return -self.asm(feats.float(), target).output.sum()
        return F.cross_entropy(self.linear(feats).float(), target, reduction="sum")

    def target_log_probs(self, feats: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Log-probability of each ``target`` token, shaped like ``target``."""
        flat, tgt = feats.reshape(-1, feats.size(-1)).float(), target.reshape(-1)
        if self.adaptive:
            out = self.asm(flat, tgt).output
        else:
            out = -F.cross_entropy(self.linear(flat).float(), tgt, reduction="none")
        return out.reshape(target.shape)

    def log_probs(self, feats: torch.Tensor) -> torch.Tensor:
        """``(..., V)`` log-probabilities."""
        shape = feats.shape[:-1]
        flat = feats.reshape(-1, feats.size(-1))
        out = (
            self.asm.log_prob(flat.float())
            if self.adaptive
            else F.log_softmax(self.linear(flat).float(), -1)
        )
        return out.reshape(*shape, -1)


def no_unk(logp: torch.Tensor) -> torch.Tensor:
    """Log-probabilities with ``<unk>`` made impossible (decoding that must name a word)."""
    return logp.index_fill(-1, torch.tensor([UNK], device=logp.device), float("-inf"))


def pick(
    logp: torch.Tensor,
    greedy: bool,
    temperature: float = 1.0,
    top_k: int = 0,
    generator: torch.Generator | None = None,
    top_p: float = 0.0,
) -> torch.Tensor:
    """Next token ids ``(B,)`` from log-probabilities ``(B, V)``: argmax, or a sample from the
    ``top_k`` most likely (0: all) at ``temperature``, then from the smallest set whose
    probability reaches ``top_p`` (nucleus sampling, Holtzman et al. 2020; 0 or 1: off)."""
    if greedy:
        return logp.argmax(-1)
    logits = logp / temperature
    if 0 < top_k < logits.size(-1):
        kth = logits.topk(top_k, -1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0 < top_p < 1:
        ordered, order = logits.sort(-1, descending=True)
        mass = ordered.softmax(-1).cumsum(-1)
        # drop a token when the tokens before it already reach top_p (the first always stays)
        drop = (mass - ordered.softmax(-1)) >= top_p
        logits = logits.scatter(-1, order, ordered.masked_fill(drop, float("-inf")))
    probs = logits.softmax(-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(logp.device)


@register("lm", tasks=("lm",))
class RNNLanguageModel(nn.Module):
    """``forward(x, y, hidden) -> (nll_sum, n_tokens, hidden)`` over ``(B, T)`` windows."""

    def __init__(
        self,
        vocab: int,
        embedding: int = 256,
        hidden: int = 256,
        layers: int = 2,
        cell: str = "lstm",
        dropout: float = 0.2,
        tie_weights: bool = False,
        softmax: str = "full",
        cutoffs: list[int] | None = None,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r} (known: {sorted(CELLS)})")
        if tie_weights and (embedding != hidden or softmax != "full"):
            raise ValueError("tie_weights needs embedding == hidden and a full softmax")
        self.drop = nn.Dropout(dropout)
        self.embed = nn.Embedding(vocab, embedding)
        self.rnn = CELLS[cell](
            embedding,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.out = Softmax(hidden, vocab, softmax, cutoffs, self.embed if tie_weights else None)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)  # as word_language_model
        if not self.out.adaptive:
            nn.init.zeros_(self.out.linear.bias)
            if not tie_weights:
                nn.init.uniform_(self.out.linear.weight, -0.1, 0.1)

    @classmethod
    def from_config(cls, cfg, spec) -> RNNLanguageModel:
        return cls(
            vocab=text_vocab_size(spec, "ids"),
            embedding=cfg.embedding,
            hidden=cfg.hidden,
            layers=cfg.layers,
            cell=cfg.cell,
            dropout=cfg.dropout,
            tie_weights=cfg.tie_weights,
            softmax=cfg.softmax,
            cutoffs=cfg.cutoffs,
        )

    def features(
        self,
        x: torch.Tensor,
        hidden: Hidden | None = None,
    ) -> tuple[torch.Tensor, Hidden]:
        """Top-layer outputs ``(B, T, H)`` (after dropout) and the new hidden state."""
        out, hidden = self.rnn(self.drop(self.embed(x)), hidden)
        return self.drop(out), hidden

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        hidden: Hidden | None = None,
    ) -> tuple[torch.Tensor, int, Hidden]:
        feats, hidden = self.features(x, hidden)
        return self.out.nll(feats, y), y.numel(), hidden

    @torch.no_grad()
    def generate(
        self,
        prompt: torch.Tensor,
        steps: int,
        greedy: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        generator: torch.Generator | None = None,
        stop_at_eos: bool = True,
        block_unk: bool = False,
    ) -> list[int]:
        """Continue ``prompt`` (1-D ids; an ``<eos>`` document boundary is put in front) by up
        to ``steps`` tokens; stops after ``<eos>`` when ``stop_at_eos``; never ``<unk>`` when
        ``block_unk``."""
        was = self.training
        self.eval()
        device = next(self.parameters()).device
        ids = torch.cat([torch.tensor([EOS]), prompt.cpu().long()]).to(device)
        feats, hidden = self.features(ids[None], None)
        out: list[int] = []
        for _ in range(steps):
            logp = self.out.log_probs(feats[:, -1])
            tok = pick(no_unk(logp) if block_unk else logp, greedy, temperature, top_k, generator)
            out.append(int(tok))
            if stop_at_eos and out[-1] == EOS:
                break
            feats, hidden = self.features(tok.view(1, 1), hidden)
        self.train(was)
        return out
