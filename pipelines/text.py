"""The text tasks — ``lm`` (books), ``translate`` (es→en) and ``dialogue`` (Twitter): how
``pipelines.flows.train.fit`` runs an epoch of each (a *job*), how it validates, and what
``pipelines.flows.evaluate`` measures and shows.

- Language model: truncated BPTT over the train stream (``text_data.lm_stream``), hidden
  state carried across windows, a random start offset per epoch; perplexity = exp(mean NLL
  over every target token, ``<eos>`` included), beside an interpolated Kneser–Ney trigram
  fitted on the same train stream and vocabulary (``pipelines.metrics.ngram``); generations.
- Seq2seq: length-bucketed batches, teacher forcing (ratio ``teacher_forcing``, decided per
  batch from the epoch's generator), masked cross-entropy. Translator: sacrebleu BLEU/chrF
  on the test split (all rows and the Tatoeba rows), greedy and beam, detokenised and
  truecased hypotheses against the raw reference text. Chatbot: perplexity beside an add-one
  unigram model of the train replies, distinct-1/2 of top-k sampled replies.

Every job yields ``(loss, nll_sum, n_tokens)`` per batch; ``fit`` does the optimizer step.
Under ``torchrun`` each rank takes its share of every batch (rows ``rank::world``), so all
ranks take the same number of steps.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.metrics import ngram
from pipelines.metrics import scorers
from pipelines import text_data as T
from pipelines.models import TEXT_TASKS, build_model
from pipelines.models.lm import detach
from pipelines.metrics.scoring import autocast

EVAL_ROWS = 16  # parallel rows when scoring a stream (each starts from a zero state)
EVAL_WINDOW = 256  # tokens per forward when scoring a stream (state carried: exact)
EVAL_BATCH = 256  # sentence pairs per batch when scoring seq2seq
DEFAULT_PROMPTS = ("It was", "The", "She said", "I")

__all__ = ["TEXT_TASKS", "make_job", "evaluate", "load_bundle", "Bundle"]


def perplexity(nll: float, n: int) -> float:
    return math.exp(nll / n) if n else float("nan")


# --- training jobs -----------------------------------------------------------------------

class LMJob:
    """Truncated-BPTT epochs over one token stream."""

    headline = "perplexity"

    def __init__(self, cfg, corpus: T.TextCorpus, device: torch.device,
                 amp_dtype: torch.dtype | None = None, rank: int = 0, world: int = 1) -> None:
        self.cfg, self.device, self.amp_dtype = cfg, device, amp_dtype
        self.rank, self.world = rank, world
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

    def losses(self, model: torch.nn.Module, epoch: int, gen: torch.Generator,
               ) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        bptt = self.cfg.bptt
        offset = int(torch.randint(0, bptt, (1,), generator=gen))
        x, y, _, _ = T.batchify(self.stream, self.cfg.batch_size, offset)
        x, y = x[self.rank::self.world].to(self.device), y[self.rank::self.world].to(self.device)
        starts = list(range(0, x.size(1), bptt))
        if self.cfg.max_batches and len(starts) > self.cfg.max_batches:
            first = int(torch.randint(0, len(starts) - self.cfg.max_batches + 1, (1,),
                                      generator=gen))
            starts = starts[first:first + self.cfg.max_batches]
        hidden = None
        for i in starts:
            with autocast(self.device, self.amp_dtype):
                nll, n, hidden = model(x[:, i:i + bptt], y[:, i:i + bptt], hidden)
            hidden = detach(hidden)
            yield nll / n, nll.detach(), n

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        nll, n = stream_nll(model, self.val_stream, self.device, self.amp_dtype)
        return {"loss": nll / n, "perplexity": perplexity(nll, n)}


@torch.no_grad()
def stream_nll(model: torch.nn.Module, stream: np.ndarray, device: torch.device,
               amp_dtype: torch.dtype | None = None, rows: int = EVAL_ROWS,
               window: int = EVAL_WINDOW) -> tuple[float, int]:
    """Summed NLL of ``stream[1:]`` (every target once) and the number of targets."""
    was = model.training
    model.eval()
    rows = max(1, min(rows, (len(stream) - 1) // max(window, 1) or 1))
    x, y, tx, ty = T.batchify(stream, rows)
    total, count = 0.0, 0
    for xs, ys in ((x, y), (tx, ty)):
        hidden = None
        for i in range(0, xs.size(1), window):
            xb, yb = xs[:, i:i + window].to(device), ys[:, i:i + window].to(device)
            with autocast(device, amp_dtype):
                nll, n, hidden = model(xb, yb, hidden)
            total, count = total + float(nll), count + n
    model.train(was)
    return total, count


class Seq2SeqJob:
    """Epochs of length-bucketed, padded sentence pairs."""

    headline = "perplexity"

    def __init__(self, cfg, corpus: T.TextCorpus, device: torch.device,
                 amp_dtype: torch.dtype | None = None, rank: int = 0, world: int = 1) -> None:
        self.cfg, self.device, self.amp_dtype = cfg, device, amp_dtype
        self.rank, self.world = rank, world
        self.train, self.val = corpus.train, corpus.validation
        self.lengths = np.maximum(self.train.sides["source"].lengths,
                                  self.train.sides["target"].lengths)
        self.n_train, self.n_validation = len(self.train), len(self.val)

    def num_batches(self) -> int:
        n = -(-self.n_train // self.cfg.batch_size)
        return min(n, self.cfg.max_batches or n)

    def losses(self, model: torch.nn.Module, epoch: int, gen: torch.Generator,
               ) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        batches = T.bucket_batches(self.lengths, self.cfg.batch_size, gen)
        if self.cfg.max_batches:
            batches = batches[:self.cfg.max_batches]
        for idx in batches:
            forced = (self.cfg.teacher_forcing >= 1
                      or float(torch.rand((), generator=gen)) < self.cfg.teacher_forcing)
            if len(idx) < self.world:  # every rank needs rows, or the step would hang
                continue
            mine = idx[self.rank::self.world]
            with autocast(self.device, self.amp_dtype):
                nll, n = model(*pair_batch(self.train, mine, self.device), teacher_forcing=forced)
            yield nll / max(n, 1), nll.detach(), n

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        nll, n = pairs_nll(model, self.val, self.device, self.amp_dtype)
        return {"loss": nll / n if n else float("nan"), "perplexity": perplexity(nll, n)}


def pair_batch(split: T.TextSplit, idx: np.ndarray, device: torch.device,
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``src`` (+``<eos>``), its lengths, ``<bos>``+target, target+``<eos>``."""
    src, src_len = T.padded(split.sides["source"], idx, eos=True)
    tgt_in, _ = T.padded(split.sides["target"], idx, bos=True)
    tgt_out, _ = T.padded(split.sides["target"], idx, eos=True)
    to = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    return to(src), torch.from_numpy(src_len), to(tgt_in), to(tgt_out)


@torch.no_grad()
def pairs_nll(model: torch.nn.Module, split: T.TextSplit, device: torch.device,
              amp_dtype: torch.dtype | None = None, batch: int = EVAL_BATCH,
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


def make_job(cfg, corpus: T.TextCorpus, device: torch.device,
             amp_dtype: torch.dtype | None = None, rank: int = 0, world: int = 1):
    """The job of ``corpus``'s task (the corpus already ``text_data.prepare``-d)."""
    cls = LMJob if corpus.task == "lm" else Seq2SeqJob
    return cls(cfg, corpus, device, amp_dtype, rank, world)


# --- trained models ----------------------------------------------------------------------

@dataclass
class Bundle:
    """A saved model with everything needed to use it on text."""

    model: torch.nn.Module
    cfg: Any
    spec: dict[str, Any]
    codec: T.Codec | None
    name: str = ""


def load_bundle(path: Path | str, device: torch.device | str = "cpu") -> Bundle:
    """``models/<name>/model.pt`` → model (eval mode), config, spec and text codec."""
    from pipelines.config import ModelConfig

    saved = torch.load(path, map_location="cpu", weights_only=True)
    cfg = ModelConfig.model_validate(saved["config"])
    model = build_model(cfg.family, cfg, saved["spec"])
    model.load_state_dict(saved["state_dict"])
    codec = (T.Codec(saved["spec"], saved.get("tokenizer") or {})
             if saved["spec"]["task"] in TEXT_TASKS else None)
    return Bundle(model.to(device).eval(), cfg, saved["spec"], codec, saved.get("name", ""))


def translate(bundle: Bundle, texts: list[str], beam: int | None = None,
              device: torch.device | str = "cpu") -> list[str]:
    """Raw source sentences → detokenised translations (or replies), beam or greedy."""
    ids = bundle.codec.encode(texts, "source")
    beam = bundle.cfg.beam if beam is None else beam
    out = decode_rows(bundle.model, ids, "beam" if beam > 1 else "greedy", bundle.cfg,
                      torch.device(device), beam=beam)
    return [bundle.codec.text(o, "target") for o in out]


def decode_rows(model, src: T.Ragged, mode: str, cfg, device: torch.device,
                beam: int | None = None, batch: int = 512,
                generator: torch.Generator | None = None) -> list[list[int]]:
    """Decode every row of ``src`` (``greedy``, ``beam`` or ``sample``), in the input order."""
    beam = beam or cfg.beam
    per = max(1, batch // beam) if mode == "beam" else batch
    out: list[list[int] | None] = [None] * len(src)
    for idx in T.sorted_batches(src.lengths, per):
        s, s_len = T.padded(src, idx, eos=True)
        s, s_len = torch.from_numpy(s).to(device), torch.from_numpy(s_len)
        limit = min(cfg.max_decode_len, 2 * int(s_len.max()) + 10)
        if mode == "beam":
            rows = model.beam_search(s, s_len, beam, limit, cfg.length_penalty, cfg.block_unk)
        elif mode == "greedy":
            rows = model.greedy(s, s_len, limit, cfg.block_unk)
        else:
            rows = model.sample(s, s_len, limit, cfg.temperature, cfg.top_k, generator,
                                cfg.block_unk)
        for i, r in zip(idx, rows):
            out[i] = r
    return out  # type: ignore[return-value]


# --- evaluation --------------------------------------------------------------------------

def evaluate(bundle: Bundle, directory: Path | str, device: torch.device,
             amp_dtype: torch.dtype | None = None, batch: int = 1024,
             ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics ``{"test": ..., "validation": ...}`` and sample rows for the report."""
    task = bundle.spec["task"]
    if task == "lm":
        return evaluate_lm(bundle, Path(directory), device, amp_dtype)
    return evaluate_seq2seq(bundle, Path(directory), device, amp_dtype, batch)


def _split(bundle: Bundle, directory: Path, split: str, text=()):
    part, table = T.load_split(directory, split, bundle.spec, text)
    return part.mapped(bundle.codec.luts), table


def evaluate_lm(bundle: Bundle, directory: Path, device: torch.device,
                amp_dtype: torch.dtype | None = None):
    cfg, model, codec = bundle.cfg, bundle.model, bundle.codec
    train, _ = _split(bundle, directory, "train")
    kn = ngram.KneserNey(T.text_vocab(bundle.spec, "ids")).fit(T.lm_stream(train.sides["ids"]))
    metrics: dict[str, Any] = {}
    for split in ("test", "validation"):
        part, _ = _split(bundle, directory, split)
        stream = T.lm_stream(part.sides["ids"])
        nll, n = stream_nll(model, stream, device, amp_dtype)
        kn_nll, kn_n = kn.nll(stream)
        assert kn_n == n, (kn_n, n)
        metrics[split] = {"n": n, "documents": len(part), "loss": nll / n,
                          "perplexity": perplexity(nll, n),
                          "ngram_perplexity": perplexity(kn_nll, kn_n),
                          "ngram": "interpolated Kneser-Ney trigram, same train split and vocabulary"}
    gen = torch.Generator().manual_seed(cfg.seed)
    samples = []
    for prompt in (cfg.prompts or list(DEFAULT_PROMPTS))[:max(cfg.samples, 1)]:
        ids = torch.from_numpy(codec.encode([prompt], "ids").values)
        for mode in ("greedy", "sample"):
            out = model.generate(ids, cfg.max_decode_len, greedy=mode == "greedy",
                                 temperature=cfg.temperature, top_k=cfg.top_k, generator=gen,
                                 block_unk=cfg.block_unk)
            label = ("greedy" if mode == "greedy"
                     else f"sampled (temperature {cfg.temperature:g}, top-k {cfg.top_k or 'all'})")
            samples.append({"prompt": prompt, "decoding": label,
                            "text": codec.text(out, "ids", prompt=prompt)})
    return metrics, samples


def evaluate_seq2seq(bundle: Bundle, directory: Path, device: torch.device,
                     amp_dtype: torch.dtype | None = None, batch: int = 1024):
    cfg, model, codec, spec = bundle.cfg, bundle.model, bundle.codec, bundle.spec
    src_col, tgt_col = spec["source"].removesuffix("_ids"), spec["target"].removesuffix("_ids")
    vocab = T.text_vocab(spec, "target")
    if spec["task"] == "dialogue":  # the unigram baseline's counts: every token + <eos> per row
        train_targets = T.lm_stream(_split(bundle, directory, "train")[0].sides["target"])[1:]
    metrics: dict[str, Any] = {}
    for split in ("validation", "test"):
        part, _ = _split(bundle, directory, split)
        nll, n = pairs_nll(model, part, device, amp_dtype)
        metrics[split] = {"n": len(part), "tokens": n, "loss": nll / n,
                          "perplexity": perplexity(nll, n)}
        if spec["task"] == "dialogue":
            metrics[split]["unigram_perplexity"] = ngram.unigram_perplexity(
                train_targets, T.lm_stream(part.sides["target"])[1:], vocab)
    test, table = _split(bundle, directory, "test", text=[src_col, tgt_col])
    if spec["task"] == "translate":
        extra, samples = _translation_scores(bundle, test, table, src_col, tgt_col, device,
                                             batch)
    else:
        extra, samples = _dialogue_scores(bundle, test, table, src_col, tgt_col, device, batch)
    metrics["test"].update(extra)
    return metrics, samples


def _translation_scores(bundle, test: T.TextSplit, table, src_col, tgt_col, device, batch):
    cfg, codec = bundle.cfg, bundle.codec
    sources = table.column(src_col).to_pylist()
    refs = table.column(tgt_col).to_pylist()
    # rows sharing a row_id share the Spanish sentence: decode each source once
    key = test.row_id if test.row_id is not None else np.arange(len(test))
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    unique_src = test.sides["source"].take(first)
    hyps = {}
    for mode in ("greedy", "beam"):
        rows = decode_rows(bundle.model, unique_src, mode, cfg, device, batch=batch)
        texts = [codec.text(r, "target") for r in rows]
        hyps[mode] = [texts[i] for i in inverse]
    subsets = {"all": np.ones(len(test), dtype=bool)}
    if test.origin is not None:
        for origin in sorted(set(test.origin.tolist())):
            subsets[origin] = test.origin == origin
    out: dict[str, Any] = {"decoding": {"beam": cfg.beam, "length_penalty": cfg.length_penalty,
                                        "max_decode_len": cfg.max_decode_len},
                           "hypotheses": "detokenised, truecased; references: raw text"}
    for name, mask in subsets.items():
        idx = np.nonzero(mask)[0]
        res = {"n": len(idx)}
        for mode, suffix in (("beam", ""), ("greedy", "_greedy")):
            h = [hyps[mode][i] for i in idx]
            r = [[refs[i] for i in idx]]
            b, c = scorers.score("bleu", h, r), scorers.score("chrf", h, r)
            res[f"bleu{suffix}"], res[f"chrf{suffix}"] = b["score"], c["score"]
            out["signature"] = {"bleu": b["signature"], "chrf": c["signature"]}
        # every reference of a source sentence at once (Tatoeba has several translations)
        groups: dict[int, list[int]] = {}
        for i in idx:
            groups.setdefault(int(inverse[i]), []).append(int(i))
        lists = list(groups.values())
        width = max(len(g) for g in lists)
        multi = [[refs[g[j]] if j < len(g) else None for g in lists] for j in range(width)]
        res["bleu_multiref"] = scorers.score("bleu", [hyps["beam"][g[0]] for g in lists],
                                             multi)["score"]
        res["sources"] = len(lists)
        if name == "all":
            out.update({k: v for k, v in res.items() if k != "n"})
        else:
            out[name] = res
    samples = []
    rng = np.random.default_rng(cfg.seed)
    for name, mask in subsets.items():
        if name == "all" and len(subsets) > 1:
            continue
        idx = np.nonzero(mask)[0]
        pick = rng.choice(idx, size=min(len(idx), max(cfg.samples // max(len(subsets) - 1, 1), 1)),
                          replace=False)
        for i in sorted(pick.tolist()):
            samples.append({"origin": name, "source": sources[i], "reference": refs[i],
                            "greedy": hyps["greedy"][i], "beam": hyps["beam"][i]})
    return out, samples


def _dialogue_scores(bundle, test: T.TextSplit, table, src_col, tgt_col, device, batch):
    cfg, codec = bundle.cfg, bundle.codec
    gen = torch.Generator().manual_seed(cfg.seed)
    sampled = decode_rows(bundle.model, test.sides["source"], "sample", cfg, device,
                          batch=batch, generator=gen)
    greedy = decode_rows(bundle.model, test.sides["source"], "greedy", cfg, device, batch=batch)
    toks = lambda rows: [codec.tokens(r, "target") for r in rows]  # noqa: E731
    refs = [codec.tokens(test.sides["target"].row(i), "target") for i in range(len(test))]
    out = {"distinct_1": scorers.distinct(toks(sampled), 1),
           "distinct_2": scorers.distinct(toks(sampled), 2),
           "distinct_1_greedy": scorers.distinct(toks(greedy), 1),
           "distinct_2_greedy": scorers.distinct(toks(greedy), 2),
           "distinct_2_reference": scorers.distinct(refs, 2),
           "unique_replies_sampled": len({tuple(r) for r in sampled}) / max(len(sampled), 1),
           "sampling": {"top_k": cfg.top_k, "temperature": cfg.temperature,
                        "max_decode_len": cfg.max_decode_len}}
    contexts, replies = table.column(src_col).to_pylist(), table.column(tgt_col).to_pylist()
    rng = np.random.default_rng(cfg.seed)
    pick = rng.choice(len(test), size=min(len(test), cfg.samples), replace=False)
    samples = [{"context": contexts[i], "reply (human)": replies[i],
                "greedy": codec.text(greedy[i], "target"),
                "sampled": codec.text(sampled[i], "target")} for i in sorted(pick.tolist())]
    return out, samples


def load_for_cli(prog: str, model: str, root: str | None = None):
    """A trained text model for a CLI, or ``None`` after telling the user why not on stderr."""
    from pipelines.config import Layout

    path = (Layout(Path(root)) if root else Layout()).model(model)
    if not path.exists():
        print(f"rnnflow {prog}: no trained model at {path} (run `dvc repro` or "
              f"`python -m pipelines.flows.train {model}`)", file=sys.stderr)
        return None
    return load_bundle(path)
