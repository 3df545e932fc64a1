"""Training against real peers: rnnflow's models and loops vs the pytorch/examples programs
they are modelled on, on the same data, side by side in one run (issue #10).

    python benchmarks/peers.py [--parts lm translator mnist] [--tokens DIR] [--quick]
        [--max-seconds 600] [--peer-optimizer sgd|adam ...] [--out benchmarks/results/peers.json]

``lm`` — the books LM at its trained configuration (params.yaml ``train.models.books_lm``:
1×256 LSTM, embedding 256, dropout 0.1, adaptive softmax cutoffs [2000, 6000], bptt 35,
batch 64, Adam lr 0.003 with the per-epoch cosine schedule over its 3 epochs, clip 0.25),
trained by rnnflow's own job (``pipelines.tasks.lm.LMJob.losses`` + the optimizer step of
``pipelines.flows.train.fit``), against pytorch/examples ``word_language_model`` (``model.py``'s
``RNNModel``: ``nn.LSTM`` in time-major layout, full ``nn.Linear`` softmax decoder +
``log_softmax`` + ``NLLLoss``; ``main.py``'s ``batchify``/``get_batch``/``repackage_hidden``
loop with ``clip_grad_norm_``) at the same sizes on the same token stream (the books corpus as
the tokenize hop wrote it, ``<tokens>/books``, mapped to the model's vocabulary as training
does). The peer's optimizer: ``sgd`` = the example's plain SGD, lr 20, divided by 4 after an
epoch whose validation loss did not improve; ``adam`` = rnnflow's Adam 0.003 (constant). Each
model trains for at most ``--max-seconds`` of training time (validation time excluded); every
``--eval-every`` training seconds and at each epoch end the validation perplexity is measured
with rnnflow's evaluator (``pipelines.tasks.lm.stream_nll``, the same for both models) on the
first ``--val-tokens`` of the validation stream. Reported: training tokens/s and the training
seconds each model needed to first reach each perplexity of ``--targets``.

``translator`` — es_en_translator at its configuration (biLSTM 256 + general attention,
adaptive softmax [1000, 3000], Tatoeba rows, its own min_freq-3 vocabularies, batch 64):
target tokens/s of training steps on real length-bucketed batches from
``pipelines.tasks.seq2seq.Seq2SeqJob``, vs the same network with a full softmax (the output layer of
the PyTorch seq2seq tutorials and of most peers).

``mnist`` — one epoch on the mirror's real MNIST (``partial-train``: the first 22,699 training
images; accuracy on the real 10k test set): rnnflow's ``cnn`` family with its training job
(``pipelines.tasks.tensor.TensorJob``: whole-tensor batches, random-shift augmentation,
Adam lr 0.001, as ``mnist_cnn`` trains) vs pytorch/examples ``mnist/main.py`` (its ``Net``
with ``log_softmax`` + ``nll_loss``, a ``DataLoader`` over a per-item ToTensor+Normalize
dataset, shuffled, ``Adadelta(lr=1.0)``, ``StepLR(gamma=0.7)``), both at rnnflow's batch size
128 (``--mnist-batch`` changes both). The network is the same (rnnflow's ``ConvNet`` *is* the
example's ``Net``): the comparison is of the loops.

Threads: torch's default (``--threads`` to set). Prints ratios rnnflow / peer and writes JSON.
``--quick`` is a smoke run of seconds (tiny budgets; its numbers mean nothing).
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
# the project root, for a checkout that is not pip-installed (e.g. the GPU machine)
sys.path.insert(0, str(ROOT))

import os  # noqa: E402

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as rnnflow/env.py and train_throughput.py

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

MNIST_DIR = ROOT.parent / "shared" / "corpora" / "mnist"


def model_cfg(name: str, **update):
    """``train.models.<name>`` of params.yaml as rnnflow parses it."""
    from pipelines.config import TrainConfig
    from rnnflow.config import load_params, parse

    cfg = parse(TrainConfig, load_params(ROOT / "params.yaml"), "train").model(name)
    return cfg.model_copy(update=update) if update else cfg


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- (a) the books LM vs word_language_model ------------------------------------------------


class ExampleRNNModel(nn.Module):
    """pytorch/examples word_language_model/model.py ``RNNModel`` (LSTM, untied)."""

    def __init__(self, ntoken: int, ninp: int, nhid: int, nlayers: int, dropout: float) -> None:
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout if nlayers > 1 else 0.0)
        self.decoder = nn.Linear(nhid, ntoken)
        self.nhid, self.nlayers = nhid, nlayers
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output).view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (
            weight.new_zeros(self.nlayers, bsz, self.nhid),
            weight.new_zeros(self.nlayers, bsz, self.nhid),
        )


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
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def example_batchify(data: torch.Tensor, bsz: int, device) -> torch.Tensor:
    nbatch = data.size(0) // bsz
    data = data.narrow(0, 0, nbatch * bsz)
    return data.view(bsz, -1).t().contiguous().to(device)


def example_get_batch(source: torch.Tensor, i: int, bptt: int):
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i : i + seq_len], source[i + 1 : i + 1 + seq_len].reshape(-1)


class Race:
    """Training-time bookkeeping: validation points, tokens, budget."""

    def __init__(
        self,
        name: str,
        model: nn.Module,
        val_stream: np.ndarray,
        device,
        budget: float,
        eval_every: float,
        targets: list[float],
        log,
    ) -> None:
        self.name, self.model, self.val, self.device = name, model, val_stream, device
        self.budget, self.eval_every, self.targets, self.log = budget, eval_every, targets, log
        self.train_s = 0.0
        self.tokens = 0
        self.steps = 0
        self.curve: list[dict] = []
        self.eval_s = 0.0
        self._next = eval_every

    def evaluate(self, epoch_end: bool = False) -> float:
        from pipelines.tasks.lm import stream_nll

        t0 = time.perf_counter()
        nll, n = stream_nll(self.model, self.val, self.device)
        self.eval_s += time.perf_counter() - t0
        ppl = math.exp(nll / n)
        self.curve.append(
            {
                "train_s": round(self.train_s, 2),
                "tokens": self.tokens,
                "steps": self.steps,
                "val_ppl": round(ppl, 2),
                "epoch_end": epoch_end,
            }
        )
        self.log(
            f"  {self.name}: {self.train_s:7.1f} s, {self.tokens:>10,} tokens, "
            f"val ppl {ppl:8.2f}{' (epoch end)' if epoch_end else ''}"
        )
        self._next = self.train_s + self.eval_every
        return ppl

    def step_done(self, seconds: float, tokens: int) -> bool:
        """Count one step; validate when due. True when the budget is spent."""
        self.train_s += seconds
        self.tokens += tokens
        self.steps += 1
        if self.train_s >= self._next or self.train_s >= self.budget:
            self.evaluate()
        return self.train_s >= self.budget

    def result(self) -> dict:
        reached = {}
        for t in self.targets:
            hit = next((p for p in self.curve if p["val_ppl"] <= t), None)
            reached[str(t)] = None if hit is None else hit["train_s"]
        return {
            "train_s": round(self.train_s, 2),
            "tokens": self.tokens,
            "steps": self.steps,
            "tokens_per_s": round(self.tokens / self.train_s) if self.train_s else None,
            "eval_s": round(self.eval_s, 2),
            "best_val_ppl": min((p["val_ppl"] for p in self.curve), default=None),
            "seconds_to_ppl": reached,
            "curve": self.curve,
        }


def race_rnnflow(cfg, corpus, device, args, val, log) -> dict:
    """rnnflow's LMJob + fit's optimizer step, epoch after epoch, within the budget."""
    from pipelines import data as D
    from pipelines.flows.train import _scheduler
    from pipelines.models import build_model
    from pipelines.tasks.lm import LMJob

    job = LMJob(cfg, corpus, device)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.family, cfg, corpus.spec).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = _scheduler(opt, cfg)
    race = Race(
        "rnnflow books_lm", model, val, device, args.max_seconds, args.eval_every, args.targets, log
    )
    race.evaluate()
    done = False
    for epoch in range(cfg.epochs):  # its trained configuration: cfg.epochs epochs at most
        gen = D.epoch_generator(cfg.seed, epoch)
        model.train()
        it = job.losses(model, epoch, gen)
        while True:
            sync(device)
            t0 = time.perf_counter()
            got = next(it, None)
            if got is None:
                break
            loss, _, n = got
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sync(device)
            if race.step_done(time.perf_counter() - t0, n):
                done = True
                break
            model.train()
        if done:
            break
        sched.step()
        race.evaluate(epoch_end=True)
    out = race.result()
    out.update(
        {
            "optimizer": f"Adam lr {cfg.lr}, cosine over {cfg.epochs} epochs (per epoch), "
            f"clip {cfg.grad_clip}",
            "parameters": sum(p.numel() for p in model.parameters()),
            "softmax": f"adaptive {list(cfg.cutoffs)}",
        }
    )
    return out


def race_example(
    cfg, stream: np.ndarray, vocab: int, device, args, val, optimizer: str, log
) -> dict:
    """word_language_model/main.py's train() loop (plus its per-epoch lr annealing for SGD)."""
    torch.manual_seed(cfg.seed)
    model = ExampleRNNModel(vocab, cfg.embedding, cfg.hidden, cfg.layers, cfg.dropout).to(device)
    wrapped = ExampleAsRnnflow(model)
    criterion = nn.NLLLoss()
    train_data = example_batchify(
        torch.from_numpy(np.asarray(stream, dtype=np.int64)), cfg.batch_size, device
    )
    lr = 20.0 if optimizer == "sgd" else cfg.lr
    opt = torch.optim.Adam(model.parameters(), lr=lr) if optimizer == "adam" else None
    bptt, clip = cfg.bptt, cfg.grad_clip
    race = Race(
        f"word_language_model ({optimizer})",
        wrapped,
        val,
        device,
        args.max_seconds,
        args.eval_every,
        args.targets,
        log,
    )
    best_val = race.evaluate()
    epoch, done = 0, False
    while not done:
        epoch += 1
        model.train()
        hidden = model.init_hidden(cfg.batch_size)
        for i in range(0, train_data.size(0) - 1, bptt):
            sync(device)
            t0 = time.perf_counter()
            data, targets = example_get_batch(train_data, i, bptt)
            model.zero_grad()
            hidden = repackage_hidden(hidden)
            output, hidden = model(data, hidden)
            loss = criterion(output, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            if opt is None:
                for p in model.parameters():
                    p.data.add_(p.grad, alpha=-lr)
            else:
                opt.step()
            sync(device)
            if race.step_done(time.perf_counter() - t0, targets.numel()):
                done = True
                break
            model.train()
        if done:
            break
        val_ppl = race.evaluate(epoch_end=True)
        if opt is None and val_ppl >= best_val:
            lr /= 4.0  # "Anneal the learning rate if no improvement has been seen"
        best_val = min(best_val, val_ppl)
    out = race.result()
    out.update(
        {
            "optimizer": (
                f"plain SGD lr 20, /4 after an epoch without improvement, clip {clip}"
                if opt is None
                else f"Adam lr {lr} (constant), clip {clip}"
            ),
            "parameters": sum(p.numel() for p in model.parameters()),
            "softmax": "full",
        }
    )
    return out


def run_lm(args, device, log) -> dict:
    from pipelines import tasks
    from pipelines import text_data as T
    from pipelines.models import text_vocab_size

    cfg = model_cfg("books_lm")
    corpus = T.prepare(cfg, tasks.load_corpus(args.tokens / cfg.corpus))
    vocab = text_vocab_size(corpus.spec, "ids")
    stream = T.lm_stream(corpus.train.sides["ids"])
    val = T.lm_stream(corpus.validation.sides["ids"])
    if args.val_tokens and len(val) > args.val_tokens:
        val = val[: args.val_tokens]
    log(
        f"[lm] books: vocab {vocab:,}, train stream {len(stream):,} tokens, validation "
        f"{len(val):,} tokens; budget {args.max_seconds:g} training s per model"
    )
    out = {
        "config": {
            k: getattr(cfg, k)
            for k in (
                "embedding",
                "hidden",
                "layers",
                "dropout",
                "softmax",
                "cutoffs",
                "bptt",
                "batch_size",
                "lr",
                "grad_clip",
                "epochs",
            )
        },
        "vocab": vocab,
        "train_tokens": len(stream),
        "val_tokens": len(val),
        "max_seconds": args.max_seconds,
        "targets": args.targets,
        "runs": {},
    }
    out["runs"]["rnnflow"] = race_rnnflow(cfg, corpus, device, args, val, log)
    for o in args.peer_optimizer:
        out["runs"][f"word_language_model_{o}"] = race_example(
            cfg, stream, vocab, device, args, val, o, log
        )
    ours = out["runs"]["rnnflow"]
    for name, r in out["runs"].items():
        if name == "rnnflow":
            continue
        common = [
            t
            for t in args.targets
            if ours["seconds_to_ppl"][str(t)] is not None
            and r["seconds_to_ppl"][str(t)] is not None
        ]
        best = min(common) if common else None
        r["vs_rnnflow"] = {
            "tokens_per_s_ratio": round(ours["tokens_per_s"] / r["tokens_per_s"], 2),
            "lowest_common_target": best,
            "time_ratio_at_target": (
                round(r["seconds_to_ppl"][str(best)] / ours["seconds_to_ppl"][str(best)], 2)
                if best is not None
                else None
            ),
        }
        log(
            f"[lm] rnnflow / {name}: tokens/s {r['vs_rnnflow']['tokens_per_s_ratio']}×; "
            + (
                f"to val ppl {best:g}: {ours['seconds_to_ppl'][str(best)]} s vs "
                f"{r['seconds_to_ppl'][str(best)]} s "
                f"({r['vs_rnnflow']['time_ratio_at_target']}× faster)"
                if best is not None
                else "no target perplexity reached by both within the budget"
            )
        )
    return out


# --- (b) the translator --------------------------------------------------------------------


def run_translator(args, device, log) -> dict:
    from pipelines import data as D
    from pipelines import tasks
    from pipelines import text_data as T
    from pipelines.models import build_model, text_vocab_size
    from pipelines.tasks.seq2seq import Seq2SeqJob

    base = model_cfg("es_en_translator")
    corpus = T.prepare(base, tasks.load_corpus(args.tokens / base.corpus))
    job = Seq2SeqJob(base, corpus, device)
    src_v, tgt_v = (text_vocab_size(corpus.spec, s) for s in ("source", "target"))
    log(
        f"[translator] es_en (origins {base.origins}): {job.n_train:,} train pairs, "
        f"vocab {src_v:,} → {tgt_v:,}; {args.steps} timed steps after 3 warm-up"
    )
    out = {
        "config": {
            k: getattr(base, k)
            for k in (
                "embedding",
                "hidden",
                "layers",
                "cell",
                "attention",
                "bidirectional",
                "softmax",
                "cutoffs",
                "batch_size",
                "lr",
                "grad_clip",
                "dropout",
            )
        },
        "src_vocab": src_v,
        "tgt_vocab": tgt_v,
        "runs": {},
    }
    for label, cfg in (
        ("rnnflow (adaptive softmax, as trained)", base),
        (
            "same network, full softmax (peer output layer)",
            base.model_copy(update={"softmax": "full"}),
        ),
    ):
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.family, cfg, corpus.spec).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        it = job.losses(model, 0, D.epoch_generator(cfg.seed, 0))
        times, tokens = [], []
        model.train()
        for k in range(3 + args.steps):
            sync(device)
            t0 = time.perf_counter()
            loss, _, n = next(it)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sync(device)
            if k >= 3:
                times.append(time.perf_counter() - t0)
                tokens.append(n)
        tps = sum(tokens) / sum(times)
        out["runs"][label] = {
            "steps": len(times),
            "target_tokens": int(sum(tokens)),
            "seconds": round(sum(times), 3),
            "tokens_per_s": round(tps),
        }
        log(f"[translator] {label}: {tps:,.0f} target tokens/s")
    a, b = (r["tokens_per_s"] for r in out["runs"].values())
    out["ratio_adaptive_over_full"] = round(a / b, 2)
    log(f"[translator] adaptive / full softmax: {a / b:.2f}×")
    return out


# --- (c) MNIST -----------------------------------------------------------------------------


class ExampleNet(nn.Module):
    """pytorch/examples mnist/main.py ``Net``."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


class ExampleMNIST(torch.utils.data.Dataset):
    """``datasets.MNIST(transform=Compose([ToTensor(), Normalize((0.1307,), (0.3081,))]))``
    per item, from the uint8 arrays (no PIL round trip)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = (
            torch.from_numpy(images),
            torch.from_numpy(labels.astype(np.int64)),
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        x = self.images[i].float().div(255).unsqueeze(0)
        return (x - 0.1307) / 0.3081, int(self.labels[i])


def load_mnist(limit_train: int | None, limit_test: int | None):
    from stages.corpora.idx import read_idx

    d = MNIST_DIR
    x = read_idx(d / "partial-train" / "train-images-idx3-ubyte.gz", dims=3)
    y = read_idx(d / "partial-train" / "train-labels-idx1-ubyte.gz", dims=1)
    xt = read_idx(d / "t10k-images-idx3-ubyte.gz", dims=3)
    yt = read_idx(d / "t10k-labels-idx1-ubyte.gz", dims=1)
    return x[:limit_train], y[:limit_train], xt[:limit_test], yt[:limit_test]


def run_mnist(args, device, log) -> dict:
    from pipelines import data as D
    from pipelines.models import build_model
    from pipelines.tasks import tensor
    from pipelines.tasks.tensor import TensorJob

    x, y, xt, yt = load_mnist(args.mnist_train, args.mnist_test)
    batch = args.mnist_batch
    log(
        f"[mnist] {len(y):,} real training images (mirror partial-train), {len(yt):,} test; "
        f"batch {batch} for both; one epoch each"
    )
    out = {"train_images": len(y), "test_images": len(yt), "batch_size": batch, "runs": {}}

    # rnnflow: the spec the format hop writes (x_scale, train mean/std), TensorJob, fit's step
    cfg = model_cfg("mnist_cnn", batch_size=batch)
    scaled = x.astype(np.float32) / 255.0
    spec = {
        "task": "classify",
        "x_shape": [28, 28],
        "x_scale": 255.0,
        "x_mean": float(scaled.mean()),
        "x_std": float(scaled.std()),
        "num_classes": 10,
        "y_shape": [],
    }
    feats = lambda a: torch.from_numpy(tensor.features(a, spec))  # noqa: E731
    corpus = tensor.Corpus(
        "mnist",
        spec,
        (feats(x), torch.from_numpy(y.astype(np.int64))),
        (feats(xt), torch.from_numpy(yt.astype(np.int64))),
    )
    job = TensorJob(cfg, corpus, device)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.family, cfg, spec).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    sync(device)
    t0 = time.perf_counter()
    for loss, _, _ in job.losses(model, 0, D.epoch_generator(cfg.seed, 0)):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    secs = time.perf_counter() - t0
    acc = job.validate(model)["accuracy"]
    out["runs"]["rnnflow"] = {
        "loop": f"TensorJob (augment {cfg.augment}, max_shift {cfg.max_shift}) + Adam lr {cfg.lr}",
        "seconds": round(secs, 2),
        "images_per_s": round(len(y) / secs),
        "test_accuracy": round(acc, 4),
    }
    log(
        f"[mnist] rnnflow cnn: {secs:.1f} s ({len(y) / secs:,.0f} images/s), "
        f"test accuracy {acc:.4f}"
    )

    # pytorch/examples mnist/main.py
    torch.manual_seed(1)  # the example's --seed default
    loader = torch.utils.data.DataLoader(ExampleMNIST(x, y), batch_size=batch, shuffle=True)
    net = ExampleNet().to(device)
    optimizer = torch.optim.Adadelta(net.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    net.train()
    sync(device)
    t0 = time.perf_counter()
    for data, target in loader:
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = net(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
    scheduler.step()
    sync(device)
    secs2 = time.perf_counter() - t0
    test = ExampleMNIST(xt, yt)
    with torch.no_grad():
        net.eval()
        xs = torch.stack([test[i][0] for i in range(len(test))]).to(device)
        pred = torch.cat([net(xs[i : i + 1000]).argmax(1) for i in range(0, len(xs), 1000)])
        acc2 = float((pred.cpu() == test.labels).float().mean())
    out["runs"]["pytorch_examples_mnist"] = {
        "loop": "DataLoader(shuffle) + per-item ToTensor/Normalize + Adadelta lr 1.0",
        "seconds": round(secs2, 2),
        "images_per_s": round(len(y) / secs2),
        "test_accuracy": round(acc2, 4),
    }
    out["ratio_rnnflow_over_example_speed"] = round(secs2 / secs, 2)
    log(
        f"[mnist] pytorch/examples mnist: {secs2:.1f} s ({len(y) / secs2:,.0f} images/s), "
        f"test accuracy {acc2:.4f}; rnnflow / example speed: {secs2 / secs:.2f}×"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/peers.py",
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["lm", "translator", "mnist"],
        choices=["lm", "translator", "mnist"],
    )
    parser.add_argument(
        "--tokens",
        type=Path,
        default=ROOT / "data" / "05_tokens",
        help="the tokenize hop's outputs (default: data/05_tokens of this "
        "checkout; a finished run elsewhere works too)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=600.0,
        help="lm: training seconds per model (default: %(default)s)",
    )
    parser.add_argument(
        "--eval-every",
        type=float,
        default=60.0,
        help="lm: validate every this many training seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--val-tokens",
        type=int,
        default=0,
        help="lm: validate on the first N validation tokens (0: all)",
    )
    parser.add_argument(
        "--targets",
        type=float,
        nargs="+",
        default=[1000.0, 500.0, 400.0, 300.0, 250.0, 200.0, 175.0, 150.0, 125.0, 100.0],
        help="lm: validation perplexities to time",
    )
    parser.add_argument(
        "--peer-optimizer",
        nargs="+",
        choices=["sgd", "adam"],
        default=["sgd"],
        help="lm: the example's optimizer: its SGD lr 20, and/or rnnflow's Adam",
    )
    parser.add_argument("--steps", type=int, default=30, help="translator: timed steps")
    parser.add_argument("--mnist-batch", type=int, default=128)
    parser.add_argument("--mnist-train", type=int, default=None, help="limit training images")
    parser.add_argument("--mnist-test", type=int, default=None, help="limit test images")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: lm 6 s per model on 3,000 validation tokens, 3 "
        "translator steps, MNIST 1,280 / 1,000 images",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON output (default: benchmarks/results/peers.json; --quick: peers_quick.json)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.max_seconds, args.eval_every = min(args.max_seconds, 6.0), 3.0
        args.val_tokens = args.val_tokens or 3000
        args.steps = min(args.steps, 3)
        args.mnist_train, args.mnist_test = args.mnist_train or 1280, args.mnist_test or 1000
    out_path = args.out or _HERE / "results" / ("peers_quick.json" if args.quick else "peers.json")
    if ("lm" in args.parts or "translator" in args.parts) and not args.tokens.is_dir():
        raise SystemExit(
            f"{args.tokens}: no tokenize-hop outputs (run `make repro` or pass "
            f"--tokens DIR of a finished run)"
        )
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        dev_name = torch.cuda.get_device_name(device)
    else:
        dev_name = f"CPU, {torch.get_num_threads()} threads"
    log = lambda m: print(m, flush=True)  # noqa: E731
    log(f"device: {dev_name}; torch {torch.__version__}")
    doc = {
        "benchmark": "peers",
        "quick": args.quick,
        "device": dev_name,
        "torch": str(torch.__version__),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_at_start": [round(v, 2) for v in os.getloadavg()],
        },
    }
    runners = {"lm": run_lm, "translator": run_translator, "mnist": run_mnist}
    for part in args.parts:
        doc[part] = runners[part](args, device, log)
    doc["machine"]["load_avg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(doc, indent=2) + "\n")
    log(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
