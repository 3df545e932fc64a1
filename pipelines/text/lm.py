"""``lm``: a word-level language model over books (``family: lm``).

Training: truncated BPTT over the train stream (``text_data.lm_stream``: every document, each
followed by ``<eos>``), hidden state carried across windows, a random start offset per epoch.
Evaluation: perplexity = exp(mean NLL over every target token, ``<eos>`` included), beside an
interpolated Kneser–Ney trigram fitted on the same train stream and vocabulary
(``pipelines.text.ngram``); greedy and sampled generations from the configured prompts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.scoring import autocast
from pipelines.tasks import register
from pipelines.text import Bundle, TextJob, TextTask, cache, ngram, perplexity
from pipelines.text import data as T
from pipelines.text.lm_model import RNNLanguageModel, detach

EVAL_ROWS = 16  # parallel rows when scoring a stream (each starts from a zero state)
EVAL_WINDOW = 256  # tokens per forward when scoring a stream (state carried: exact)
DEFAULT_PROMPTS = ("It was", "The", "She said", "I")


class LMJob(TextJob):
    """Truncated-BPTT epochs over one token stream."""

    def __init__(
        self,
        cfg,
        corpus: T.TextCorpus,
        device: torch.device,
        amp_dtype: torch.dtype | None = None,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        super().__init__(cfg, device, amp_dtype, rank, world)
        self.stream = T.lm_stream(corpus.train.sides["ids"])
        self.val_stream = T.lm_stream(corpus.validation.sides["ids"])
        if cfg.batch_size < world:
            raise ValueError(f"batch_size {cfg.batch_size} < {world} processes")
        self.n_train, self.n_validation = len(self.stream) - 1, len(self.val_stream) - 1

    def _windows(self) -> int:
        cols = (len(self.stream) - 1 - self.cfg.bptt) // self.cfg.batch_size
        return max(1, -(-cols // self.cfg.bptt))

    def num_batches(self) -> int:
        return min(self._windows(), self.cfg.max_batches or self._windows())

    def losses(
        self,
        model: torch.nn.Module,
        epoch: int,
        gen: torch.Generator,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        bptt = self.cfg.bptt
        offset = int(torch.randint(0, bptt, (1,), generator=gen))
        x, y, _, _ = T.batchify(self.stream, self.cfg.batch_size, offset)
        x, y = (
            x[self.rank :: self.world].to(self.device),
            y[self.rank :: self.world].to(self.device),
        )
        starts = list(range(0, x.size(1), bptt))
        if self.cfg.max_batches and len(starts) > self.cfg.max_batches:
            first = int(
                torch.randint(0, len(starts) - self.cfg.max_batches + 1, (1,), generator=gen)
            )
            starts = starts[first : first + self.cfg.max_batches]
        hidden = None
        for i in starts:
            with autocast(self.device, self.amp_dtype):
                nll, n, hidden = model(x[:, i : i + bptt], y[:, i : i + bptt], hidden)
            hidden = detach(hidden)
            yield nll / n, nll.detach(), n

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        nll, n = stream_nll(model, self.val_stream, self.device, self.amp_dtype)
        return {"loss": nll / n, "perplexity": perplexity(nll, n)}


@torch.no_grad()
def stream_nll(
    model: torch.nn.Module,
    stream: np.ndarray,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    rows: int = EVAL_ROWS,
    window: int = EVAL_WINDOW,
) -> tuple[float, int]:
    """Summed NLL of ``stream[1:]`` (every target once) and the number of targets."""
    was = model.training
    model.eval()
    rows = max(1, min(rows, (len(stream) - 1) // max(window, 1) or 1))
    x, y, tx, ty = T.batchify(stream, rows)
    total, count = 0.0, 0
    for xs, ys in ((x, y), (tx, ty)):
        hidden = None
        for i in range(0, xs.size(1), window):
            xb, yb = xs[:, i : i + window].to(device), ys[:, i : i + window].to(device)
            with autocast(device, amp_dtype):
                nll, n, hidden = model(xb, yb, hidden)
            total, count = total + float(nll), count + n
    model.train(was)
    return total, count


@torch.no_grad()
def neural_cache_probs(
    model: RNNLanguageModel,
    stream: np.ndarray,
    device: torch.device,
    size: int,
    thetas: tuple[float, ...] = cache.THETAS,
    amp_dtype: torch.dtype | None = None,
    rows: int = EVAL_ROWS,
    window: int = EVAL_WINDOW,
) -> tuple[np.ndarray, np.ndarray]:
    """Per target of ``stream[1:]``, in stream order: the model's probability ``(n,)`` and the
    continuous cache's ``(len(thetas), n)`` (Grave et al. 2017): attention with flatness theta
    from the current hidden state over the last ``size`` hidden states of the same row, summed
    over the positions whose next token is the target. NaN where the cache is empty (the first
    token of a row)."""
    was = model.training
    model.eval()
    rows = max(1, min(rows, (len(stream) - 1) // max(window, 1) or 1))
    x, y, tx, ty = T.batchify(stream, rows)
    th = torch.tensor(thetas, dtype=torch.float32, device=device).view(-1, 1, 1, 1)
    p_model: list[np.ndarray] = []
    p_cache: list[np.ndarray] = []
    for xs, ys in ((x, y), (tx, ty)):
        if xs.numel() == 0:
            continue
        hidden, keys, vals = None, None, None
        pm, pc = [], []
        for i in range(0, xs.size(1), window):
            xb, yb = xs[:, i : i + window].to(device), ys[:, i : i + window].to(device)
            with autocast(device, amp_dtype):
                feats, hidden = model.features(xb, hidden)
            feats = feats.float()
            pm.append(model.out.target_log_probs(feats, yb).exp())
            k = feats if keys is None else torch.cat([keys, feats], 1)
            v = yb if vals is None else torch.cat([vals, yb], 1)
            past, w = k.size(1) - feats.size(1), feats.size(1)
            # query t (absolute past + t) may see keys j with past + t - size <= j < past + t
            j = torch.arange(k.size(1), device=device)
            q = past + torch.arange(w, device=device)[:, None]
            visible = (j < q) & (j >= q - size)  # (W, K)
            scores = torch.einsum("bwh,bkh->bwk", feats, k)[None] * th  # (Θ, B, W, K)
            attn = scores.masked_fill(~visible, float("-inf")).softmax(-1).nan_to_num(0.0)
            hit = (v[:, None, :] == yb[:, :, None]).float()  # (B, W, K)
            p = (attn * hit).sum(-1)
            empty = ~visible.any(-1)  # (W,)
            pc.append(p.masked_fill(empty.view(1, 1, -1), float("nan")))
            keys, vals = k[:, -size:], v[:, -size:]
        p_model.append(torch.cat(pm, 1).reshape(-1).cpu().numpy())
        p_cache.append(torch.cat(pc, 2).reshape(len(thetas), -1).cpu().numpy())
    model.train(was)
    return np.concatenate(p_model), np.concatenate(p_cache, 1)


@register("lm")
class LanguageModel(TextTask):
    headline = "perplexity"
    higher_is_better = False
    report_extras = ("unk_rate", "ngram_perplexity", "cache_perplexity", "ngram_cache_perplexity")
    sides = ("ids",)

    def make_job(self, cfg, corpus, device, amp_dtype=None, rank=0, world=1) -> LMJob:
        return LMJob(cfg, corpus, device, amp_dtype, rank, world)

    def evaluate_bundle(
        self,
        bundle: Bundle,
        directory: Path,
        device: torch.device,
        amp_dtype: torch.dtype | None = None,
        batch: int = 1024,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        cfg, model, codec = bundle.decode, bundle.model, bundle.codec
        # the lm family is the only one registered for this task; load_bundle leaves it bare
        assert isinstance(model, RNNLanguageModel) and codec is not None
        train, _ = self.split(bundle, directory, "train")
        kn = ngram.KneserNey(T.text_vocab(bundle.spec, "ids")).fit(T.lm_stream(train.sides["ids"]))
        metrics: dict[str, Any] = {}
        streams = {}
        for split in ("validation", "test"):
            part, _ = self.split(bundle, directory, split)
            stream = streams[split] = T.lm_stream(part.sides["ids"])
            nll, n = stream_nll(model, stream, device, amp_dtype)
            kn_nll, kn_n = kn.nll(stream)
            assert kn_n == n, (kn_n, n)
            metrics[split] = {
                "n": n,
                "documents": len(part),
                "loss": nll / n,
                "perplexity": perplexity(nll, n),
                "unk_rate": T.unk_rate(part.sides["ids"], n),
                "ngram_perplexity": perplexity(kn_nll, kn_n),
                "ngram": "interpolated Kneser-Ney trigram, same train split and vocabulary",
            }
        if cfg.cache_size:
            self._cache_metrics(metrics, streams, model, kn, cfg.cache_size, device, amp_dtype)
        gen = torch.Generator().manual_seed(bundle.cfg.seed)
        samples: list[dict[str, Any]] = []
        for prompt in (cfg.prompts or list(DEFAULT_PROMPTS))[: max(cfg.samples, 1)]:
            ids = torch.from_numpy(codec.encode([prompt], "ids").values)
            for mode in ("greedy", "sample"):
                out = model.generate(
                    ids,
                    cfg.max_decode_len,
                    greedy=mode == "greedy",
                    temperature=cfg.temperature,
                    top_k=cfg.top_k,
                    generator=gen,
                    block_unk=cfg.block_unk,
                )
                label = (
                    "greedy"
                    if mode == "greedy"
                    else f"sampled (temperature {cfg.temperature:g}, top-k {cfg.top_k or 'all'})"
                )
                samples.append(
                    {
                        "prompt": prompt,
                        "decoding": label,
                        "text": codec.text(out, "ids", prompt=prompt),
                    }
                )
        return metrics, samples

    @staticmethod
    def _cache_metrics(
        metrics: dict[str, Any],
        streams: dict[str, np.ndarray],
        model: RNNLanguageModel,
        kn: ngram.KneserNey,
        size: int,
        device: torch.device,
        amp_dtype: torch.dtype | None,
    ) -> None:
        """``cache_perplexity`` (the LM with a continuous cache) and ``ngram_cache_perplexity``
        (the KN trigram with a count cache) on every split, each at the flatness/weight that
        minimise validation NLL: selection reads validation only."""
        scored = {}
        for split, stream in streams.items():
            p_lm, p_neural = neural_cache_probs(model, stream, device, size, amp_dtype=amp_dtype)
            s = np.r_[stream[:1], stream]
            p_kn = kn.probs(s[:-2], s[1:-1], s[2:])
            scored[split] = (p_lm, p_neural, p_kn, cache.unigram_cache_probs(stream[1:], size))
        p_lm, p_neural, p_kn, p_count = scored["validation"]
        i, lam, _ = cache.choose_mix(p_lm, list(p_neural))
        _, lam_kn, _ = cache.choose_mix(p_kn, [p_count])
        for split, (p_lm, p_neural, p_kn, p_count) in scored.items():
            n = len(p_lm)
            metrics[split].update(
                {
                    "cache_perplexity": perplexity(cache.mixed_nll(p_lm, p_neural[i], lam), n),
                    "ngram_cache_perplexity": perplexity(cache.mixed_nll(p_kn, p_count, lam_kn), n),
                    "cache": {
                        "size": size,
                        "theta": cache.THETAS[i],
                        "lambda": lam,
                        "ngram_lambda": lam_kn,
                        "chosen_on": "validation",
                        "model": "continuous cache (Grave et al. 2017), LM hidden states",
                        "ngram_model": "KN trigram with a count cache of the last `size` tokens",
                    },
                }
            )
