"""Training against real peers: rnnflow's models and loops vs the pytorch/examples programs
they follow, on the same data, side by side in one run.

``lm``: rnnflow's loop (``LMJob`` and ``fit``'s optimizer step, schedule and clipping) against
``word_language_model`` (``RNNModel``: ``nn.LSTM`` + full ``Linear`` softmax; ``main.py``'s
``batchify``/``get_batch``/``repackage_hidden`` loop; plain SGD lr 20 divided by 4 after an epoch
without improvement, and Adam at books_lm's lr) on the same token stream (``<tokens>/books``), at
books_lm's sizes: first the peer's network (full softmax) in rnnflow's loop, then books_lm as
params.yaml trains it (adaptive softmax). Each trains for at most ``--max-seconds`` of training
time; every ``--eval-every`` training seconds and at each epoch end all are validated by the same
evaluator (``pipelines.text.lm.stream_nll``). Reported: tokens/s and the training seconds to
first reach each perplexity of ``--targets``.

``translator``: es_en_translator as trained (adaptive softmax) on ``Seq2SeqJob``'s batches,
against the same network with the tutorials' full softmax: target tokens/s.

``mnist``: one epoch on the mirror's real MNIST (22,699 images; the 10k test set) at batch 128:
``mnist/main.py`` (its ``Net``, a ``DataLoader`` of per-item ToTensor+Normalize, Adadelta lr 1)
against rnnflow's loop (``TensorJob`` + ``fit``'s step) on the same ``Net``, initialisation and
optimizer, no augmentation; then ``mnist_cnn`` as params.yaml trains it.

Needs the tokenize hop's outputs (``--tokens``) and, for mnist, ``$RNNFLOW_MIRROR``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import benchlib as B  # first: rnnflow's environment defaults before torch loads
import numpy as np
import peers_mnist
import torch
import torch.nn.functional as F
from torch import nn

# --- the books LM vs word_language_model ----------------------------------------------------


class ExampleRNNModel(nn.Module):
    """pytorch/examples word_language_model/model.py ``RNNModel`` (LSTM, untied)."""

    def __init__(self, ntoken: int, ninp: int, nhid: int, nlayers: int, dropout: float) -> None:
        super().__init__()
        self.ntoken, self.nhid, self.nlayers = ntoken, nhid, nlayers
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout if nlayers > 1 else 0.0)
        self.decoder = nn.Linear(nhid, ntoken)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, input, hidden):
        output, hidden = self.rnn(self.drop(self.encoder(input)), hidden)
        decoded = self.decoder(self.drop(output)).view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        zeros = weight.new_zeros(self.nlayers, bsz, self.nhid)
        return zeros, zeros.clone()


class ExampleAsRnnflow(nn.Module):
    """The example model behind rnnflow's LM interface (batch-first ``(x, y, hidden) ->
    (nll_sum, n, hidden)``), so both are validated by the same ``stream_nll``."""

    def __init__(self, m: ExampleRNNModel) -> None:
        super().__init__()
        self.m = m

    def forward(self, x, y, hidden=None):
        logp, hidden = self.m(x.t().contiguous(), hidden)
        return F.nll_loss(logp, y.t().reshape(-1), reduction="sum"), y.numel(), hidden


def repackage_hidden(h):
    """word_language_model/main.py: wraps hidden states in new Tensors, detached."""
    return h.detach() if isinstance(h, torch.Tensor) else tuple(repackage_hidden(v) for v in h)


class Race:
    """Training-time bookkeeping: validation points, tokens, budget."""

    def __init__(self, name: str, model: nn.Module, val: np.ndarray, device, args) -> None:
        self.name, self.model, self.val, self.device = name, model, val, device
        self.budget, self.every, self.targets = args.max_seconds, args.eval_every, args.targets
        self.train_s, self.eval_s, self.tokens, self.steps = 0.0, 0.0, 0, 0
        self.curve: list[dict] = []
        self._next = self.every

    def evaluate(self, epoch_end: bool = False) -> float:
        from pipelines.text.lm import stream_nll

        t0 = time.perf_counter()
        nll, n = stream_nll(self.model, self.val, self.device)
        self.eval_s += time.perf_counter() - t0
        ppl = math.exp(nll / n)
        self.curve.append(
            {"train_s": round(self.train_s, 2), "tokens": self.tokens, "steps": self.steps,
             "val_ppl": round(ppl, 2), "epoch_end": epoch_end}
        )  # fmt: skip
        print(f"  {self.name}: {self.train_s:7.1f} s, {self.tokens:>10,} tokens, ppl {ppl:8.2f}")
        self._next = self.train_s + self.every
        return ppl

    def train_epoch(self, steps: Iterator[int]) -> bool:
        """Time each step of ``steps`` (a ``next``: one training step, its tokens) until the
        epoch ends, validating when due; True when the budget is spent."""
        while True:
            self.model.train()  # again after a validation
            B.sync(self.device)
            t0 = time.perf_counter()
            tokens = next(steps, None)
            if tokens is None:
                return False
            B.sync(self.device)
            self.train_s += time.perf_counter() - t0
            self.tokens += tokens
            self.steps += 1
            if self.train_s >= self._next or self.train_s >= self.budget:
                self.evaluate()
            if self.train_s >= self.budget:
                return True

    def result(self, **extra) -> dict:
        reached = {
            str(t): next((p["train_s"] for p in self.curve if p["val_ppl"] <= t), None)
            for t in self.targets
        }
        return {
            "train_s": round(self.train_s, 2),
            "tokens": self.tokens,
            "steps": self.steps,
            "tokens_per_s": round(self.tokens / self.train_s) if self.train_s else None,
            "eval_s": round(self.eval_s, 2),
            "best_val_ppl": min((p["val_ppl"] for p in self.curve), default=None),
            "seconds_to_ppl": reached,
            "curve": self.curve,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            **extra,
        }


def race_rnnflow(cfg, corpus, device, args, val, name: str) -> dict:
    """rnnflow's LMJob + fit's optimizer step, epoch after epoch, within the budget."""
    from pipelines import data as D
    from pipelines.models import build_model
    from pipelines.text.lm import LMJob
    from pipelines.training import scheduler

    job = LMJob(cfg, corpus, device)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.family, cfg, corpus.spec).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = scheduler(opt, cfg)
    race = Race(name, model, val, device, args)

    def steps(losses: Iterator) -> Iterator[int]:
        for loss, _, n in losses:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            yield n

    race.evaluate()
    for epoch in range(cfg.epochs):  # its trained configuration: cfg.epochs epochs at most
        losses = job.losses(model, epoch, D.epoch_generator(cfg.seed, epoch))
        if race.train_epoch(steps(losses)):
            break
        sched.step()
        race.evaluate(epoch_end=True)
    return race.result(
        optimizer=f"Adam lr {cfg.lr}, cosine over {cfg.epochs} epochs (per epoch), "
        f"clip {cfg.grad_clip}",
        softmax=f"adaptive {list(cfg.cutoffs)}" if cfg.softmax == "adaptive" else "full",
    )


def race_example(cfg, stream: np.ndarray, vocab: int, device, args, val, optimizer: str) -> dict:
    """word_language_model/main.py's train() loop (plus its per-epoch lr annealing for SGD)."""
    torch.manual_seed(cfg.seed)
    model = ExampleRNNModel(vocab, cfg.embedding, cfg.hidden, cfg.layers, cfg.dropout).to(device)
    criterion = nn.NLLLoss()
    ids = torch.from_numpy(np.asarray(stream, dtype=np.int64))
    bsz, bptt, clip = cfg.batch_size, cfg.bptt, cfg.grad_clip
    train_data = ids[: len(ids) // bsz * bsz].view(bsz, -1).t().contiguous().to(device)
    lr = 20.0 if optimizer == "sgd" else cfg.lr
    opt = torch.optim.Adam(model.parameters(), lr=lr) if optimizer == "adam" else None
    race = Race(f"word_language_model ({optimizer})", ExampleAsRnnflow(model), val, device, args)

    def steps(hidden) -> Iterator[int]:
        for i in range(0, train_data.size(0) - 1, bptt):
            seq_len = min(bptt, len(train_data) - 1 - i)  # main.py's get_batch
            data, targets = train_data[i : i + seq_len], train_data[i + 1 : i + 1 + seq_len]
            targets = targets.reshape(-1)
            model.zero_grad()
            hidden = repackage_hidden(hidden)
            output, hidden = model(data, hidden)
            criterion(output, targets).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            if opt is None:
                for p in model.parameters():
                    p.data.add_(p.grad, alpha=-lr)
            else:
                opt.step()
            yield targets.numel()

    best_val = race.evaluate()
    while not race.train_epoch(steps(model.init_hidden(bsz))):
        val_ppl = race.evaluate(epoch_end=True)
        if opt is None and val_ppl >= best_val:
            lr /= 4.0  # "Anneal the learning rate if no improvement has been seen"
        best_val = min(best_val, val_ppl)
    return race.result(
        optimizer=f"plain SGD lr 20, /4 after an epoch without improvement, clip {clip}"
        if opt is None
        else f"Adam lr {lr} (constant), clip {clip}",
        softmax="full",
    )


def run_lm(args: argparse.Namespace, device: torch.device) -> dict:
    """Both LM races on the books token stream, and how rnnflow compares with each peer."""
    from pipelines import tasks
    from pipelines.models import text_vocab_size
    from pipelines.text import data as T

    cfg = B.model_cfg("books_lm")
    corpus = T.prepare(cfg, tasks.load_corpus(args.tokens / cfg.corpus))
    vocab = text_vocab_size(corpus.spec, "ids")
    stream = T.lm_stream(corpus.train.sides["ids"])
    val = T.lm_stream(corpus.validation.sides["ids"])[: args.val_tokens or None]
    print(f"[lm] books: vocab {vocab:,}, {len(stream):,} train, {len(val):,} validation tokens")
    full = cfg.model_copy(update={"softmax": "full"})
    # the loop comparison: the peer's network (full softmax), same optimizer as its Adam row;
    # then rnnflow's own choices (adaptive softmax)
    runs = {
        name: race_rnnflow(c, corpus, device, args, val, name)
        for name, c in (("rnnflow_full_softmax", full), ("rnnflow", cfg))
    }
    for o in args.peer_optimizer:
        runs[f"word_language_model_{o}"] = race_example(cfg, stream, vocab, device, args, val, o)
    ours = {k: r for k, r in runs.items() if k.startswith("rnnflow")}
    for name, r in runs.items():
        if name not in ours:
            r["vs"] = {k: compare(o, r, args.targets) for k, o in ours.items()}
            print(f"[lm] rnnflow vs {name}: {r['vs']}")
    return {
        **B.model_record("books_lm"),
        "vocab": vocab,
        "train_tokens": len(stream),
        "val_tokens": len(val),
        "max_seconds": args.max_seconds,
        "eval_every": args.eval_every,
        "targets": args.targets,
        "runs": runs,
    }


def compare(ours: dict, theirs: dict, targets: list[float]) -> dict:
    """Tokens/s ratio, and training-time ratio at the lowest perplexity both reached."""
    a, b = ours["seconds_to_ppl"], theirs["seconds_to_ppl"]
    common = [t for t in targets if None not in (a[str(t)], b[str(t)])]
    best = min(common) if common else None
    return {
        "tokens_per_s_ratio": round(ours["tokens_per_s"] / theirs["tokens_per_s"], 2),
        "lowest_common_target": best,
        "time_ratio_at_target": None if best is None else round(b[str(best)] / a[str(best)], 2),
    }


# --- the translator ------------------------------------------------------------------------


def run_translator(args: argparse.Namespace, device: torch.device) -> dict:
    """Target tokens/s of the translator as trained and with a full softmax, ``--steps`` each."""
    from pipelines import data as D
    from pipelines import tasks
    from pipelines.models import build_model, text_vocab_size
    from pipelines.text import data as T
    from pipelines.text.seq2seq import Seq2SeqJob

    base = B.model_cfg("es_en_translator")
    corpus = T.prepare(base, tasks.load_corpus(args.tokens / base.corpus))
    job = Seq2SeqJob(base, corpus, device)
    src_v, tgt_v = (text_vocab_size(corpus.spec, s) for s in ("source", "target"))
    out = {**B.model_record("es_en_translator"), "src_vocab": src_v, "tgt_vocab": tgt_v, "runs": {}}
    full = base.model_copy(update={"softmax": "full"})
    for label, cfg in (
        ("rnnflow (adaptive softmax, as trained)", base),
        ("same network, full softmax (peer output layer)", full),
    ):
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.family, cfg, corpus.spec).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        it = job.losses(model, 0, D.epoch_generator(cfg.seed, 0))
        times, tokens = [], []
        model.train()
        for k in range(3 + args.steps):  # 3 warm-up steps
            B.sync(device)
            t0 = time.perf_counter()
            loss, _, n = next(it)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            B.sync(device)
            if k >= 3:
                times.append(time.perf_counter() - t0)
                tokens.append(n)
        out["runs"][label] = {
            "steps": len(times),
            "target_tokens": int(sum(tokens)),
            "seconds": round(sum(times), 3),
            "tokens_per_s": round(sum(tokens) / sum(times)),
        }
        print(f"[translator] {label}: {out['runs'][label]['tokens_per_s']:,} target tokens/s")
    a, b = (r["tokens_per_s"] for r in out["runs"].values())
    out["ratio_adaptive_over_full"] = round(a / b, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    p = B.parser(__doc__, __file__, "--out")
    parts = ["lm", "translator", "mnist"]
    p.add_argument("--parts", nargs="+", default=parts, choices=parts)
    p.add_argument("--tokens", type=Path, default=B.ROOT / "data" / "05_tokens")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's own)")
    p.add_argument("--max-seconds", type=float, default=240.0, help="lm: training s per model")
    p.add_argument("--eval-every", type=float, default=10.0, help="lm: validate every N train s")
    p.add_argument("--val-tokens", type=int, default=50_000, help="lm: first N val tokens (0: all)")
    targets = [1000.0, 500.0, 400.0, 300.0, 250.0, 200.0, 175.0, 150.0, 125.0, 100.0]
    p.add_argument("--targets", type=float, nargs="+", default=targets, help="lm: val ppl to time")
    p.add_argument("--peer-optimizer", nargs="+", choices=["sgd", "adam"], default=["sgd", "adam"])
    p.add_argument("--steps", type=int, default=30, help="translator: timed steps")
    p.add_argument("--mnist-batch", type=int, default=128)
    args = p.parse_args(argv)
    if {"lm", "translator"} & set(args.parts) and not args.tokens.is_dir():
        raise SystemExit(f"{args.tokens}: no tokenize-hop outputs (`make repro` first)")
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    name = f"CPU, {torch.get_num_threads()} threads"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(device)
    # parts not run this time keep their last results, each with the facts (the commit too) of
    # the run that measured it
    doc = json.loads(args.out.read_text()) if args.out.exists() else {"benchmark": "peers"}
    runners = {"lm": run_lm, "translator": run_translator, "mnist": peers_mnist.run_mnist}
    for part in args.parts:
        facts = {"device": name, "torch": str(torch.__version__), "when": B.now()}
        facts["commit"] = B.commit()
        machine = B.machine()
        doc[part] = runners[part](args, device)
        doc[part].update(facts, machine={**machine, "load_avg_at_end": B.load_avg()})
    B.write(args.out, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
