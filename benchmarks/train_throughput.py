"""Training throughput of the text models: cuDNN/ATen recurrent layers vs a Python loop over
``nn.LSTMCell`` (the naive reference), side by side.

    python benchmarks/train_throughput.py [--device cpu|cuda] [--sizes default|gpu] [--steps 10]
        [--quick] [--out benchmarks/results/train_throughput_<cpu|cuda>_<sizes>.json]

For each text model (``books_lm``, ``es_en_translator``, ``twitter_chatbot``), at the sizes of
params.yaml (``--sizes gpu``: profiles/gpu.yaml), one training step = forward + backward +
Adam step on one batch of Zipf-distributed token ids (real-looking frequencies, so adaptive
softmax clusters are hit as on text; lengths as in the corpora). The naive model has the
*same weights* (copied into the cells) and the script checks that both give the same loss
before timing, so the comparison is fair. Prints target tokens/second (seq2seq: target
tokens incl. ``<eos>``; lm: every position) and the ratio.

Imports only torch and ``pipelines.models`` (runs where Prefect and pydantic are not installed).
This is the *secondary* comparison (a naive loop, not a peer); ``benchmarks/peers.py`` has the
pytorch/examples peers. Writes JSON (``--out``) for ``benchmarks/summary.py``; ``--quick``: 2
steps per model, a smoke run whose numbers mean nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# the project root, for a checkout that is not pip-installed (e.g. the GPU machine)
sys.path.insert(0, str(_HERE.parent))

import os  # noqa: E402

# Before torch loads OpenMP: sleeping, not spinning, threads (rnnflow/env.py sets the same for
# the flows); spinning threads on a busy shared CPU made training steps up to 25x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

from pipelines.models import PAD  # noqa: E402
from pipelines.models.lm import RNNLanguageModel  # noqa: E402
from pipelines.models.seq2seq import Seq2Seq  # noqa: E402

# Mirrors train.models.* in params.yaml (default) and profiles/gpu.yaml (gpu); vocabularies as
# measured on the offline mirror's tokens (model vocabularies after min_freq).
SIZES = {
    "default": {
        "books_lm": dict(
            kind="lm",
            vocab=16597,
            embedding=256,
            hidden=256,
            layers=1,
            cell="lstm",
            softmax="adaptive",
            cutoffs=[2000, 6000],
            batch=64,
            bptt=35,
        ),
        "es_en_translator": dict(
            kind="seq2seq",
            src_vocab=12987,
            tgt_vocab=6152,
            embedding=256,
            hidden=256,
            layers=1,
            cell="lstm",
            softmax="full",
            cutoffs=[],
            batch=64,
            src_len=9,
            tgt_len=9,
        ),
        "twitter_chatbot": dict(
            kind="seq2seq",
            src_vocab=5035,
            tgt_vocab=5035,
            embedding=256,
            hidden=256,
            layers=3,
            cell="lstm",
            softmax="full",
            cutoffs=[],
            batch=64,
            src_len=12,
            tgt_len=12,
        ),
    },
    "gpu": {
        "books_lm": dict(
            kind="lm",
            vocab=16597,
            embedding=650,
            hidden=650,
            layers=2,
            cell="lstm",
            softmax="full",
            cutoffs=[],
            batch=64,
            bptt=70,
            tie=True,
        ),
        "es_en_translator": dict(
            kind="seq2seq",
            src_vocab=17795,
            tgt_vocab=10973,
            embedding=512,
            hidden=1024,
            layers=2,
            cell="lstm",
            softmax="full",
            cutoffs=[],
            batch=256,
            src_len=9,
            tgt_len=9,
        ),
        "twitter_chatbot": dict(
            kind="seq2seq",
            src_vocab=5035,
            tgt_vocab=5035,
            embedding=512,
            hidden=512,
            layers=3,
            cell="lstm",
            softmax="full",
            cutoffs=[],
            batch=256,
            src_len=12,
            tgt_len=12,
        ),
    },
}


class LoopRNN(nn.Module):
    """``nn.LSTM``/``nn.GRU`` (batch first) as a Python loop over ``nn.LSTMCell``/``GRUCell``,
    layer by layer and direction by direction; ``mask`` ``(B, T)`` freezes the state at padding
    (what packing does in the real encoder). Built from a trained ``rnn``'s weights."""

    def __init__(self, rnn: nn.LSTM | nn.GRU) -> None:
        super().__init__()
        self.lstm = isinstance(rnn, nn.LSTM)
        self.layers, self.dirs = rnn.num_layers, 2 if rnn.bidirectional else 1
        self.hidden, self.dropout = rnn.hidden_size, rnn.dropout
        cell = nn.LSTMCell if self.lstm else nn.GRUCell
        self.cells = nn.ModuleList()
        for layer in range(self.layers):
            for d in range(self.dirs):
                c = cell(
                    rnn.input_size if layer == 0 else rnn.hidden_size * self.dirs, rnn.hidden_size
                )
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(c, name).data.copy_(getattr(rnn, name + sfx).data)
                self.cells.append(c)

    def forward(self, x: torch.Tensor, state=None, mask: torch.Tensor | None = None):
        b, t, _ = x.shape
        hs, cs = [], []
        for layer in range(self.layers):
            outs = []
            for d in range(self.dirs):
                i = layer * self.dirs + d
                cell = self.cells[i]
                if state is None:
                    h = x.new_zeros(b, self.hidden)
                    c = x.new_zeros(b, self.hidden)
                else:
                    h = (state[0] if self.lstm else state)[i]
                    c = state[1][i] if self.lstm else None
                steps = range(t - 1, -1, -1) if d else range(t)
                seq = [None] * t
                for s in steps:
                    if self.lstm:
                        h2, c2 = cell(x[:, s], (h, c))
                    else:
                        h2, c2 = cell(x[:, s], h), None
                    if mask is not None:
                        keep = mask[:, s, None]
                        h2 = torch.where(keep, h2, h)
                        c2 = torch.where(keep, c2, c) if self.lstm else None
                    h, c = h2, c2
                    seq[s] = h
                outs.append(torch.stack(seq, 1))
                hs.append(h)
                cs.append(c)
            x = torch.cat(outs, -1) if self.dirs == 2 else outs[0]
            if self.training and self.dropout and layer < self.layers - 1:
                x = nn.functional.dropout(x, self.dropout)
        h = torch.stack(hs)
        return x, ((h, torch.stack(cs)) if self.lstm else h)


class LoopLM(nn.Module):
    """The language model with its recurrence as a Python loop over cells."""

    def __init__(self, lm: RNNLanguageModel) -> None:
        super().__init__()
        self.lm = copy.deepcopy(lm)
        self.loop = LoopRNN(self.lm.rnn)
        del self.lm.rnn

    def forward(self, x, y, hidden=None):
        out, hidden = self.loop(self.lm.drop(self.lm.embed(x)), hidden)
        return self.lm.out.nll(self.lm.drop(out), y), y.numel(), hidden


class LoopSeq2Seq(nn.Module):
    """The encoder–decoder with both recurrences as Python loops over cells (masking instead
    of packing); same attention and softmax."""

    def __init__(self, model: Seq2Seq) -> None:
        super().__init__()
        self.m = copy.deepcopy(model)
        self.enc, self.dec = LoopRNN(self.m.encoder), LoopRNN(self.m.decoder)
        del self.m.encoder, self.m.decoder

    def forward(self, src, src_len, tgt_in, tgt_out):
        m = self.m
        mask = src != PAD
        enc, state = self.enc(m.drop(m.src_embed(src)), None, mask)
        enc = enc * mask[..., None]
        if m.bidirectional:

            def merge(h):
                n2, b, h2 = h.shape
                return h.view(n2 // 2, 2, b, h2).transpose(1, 2).reshape(n2 // 2, b, 2 * h2)

            state = tuple(merge(s) for s in state) if isinstance(state, tuple) else merge(state)
        out, _ = self.dec(m.drop(m.tgt_embed(tgt_in)), state)
        feats = m.drop(m._attend(out, enc, mask))
        keep = tgt_out != PAD
        return m.out.nll(feats, tgt_out, keep), int(keep.sum())


def zipf(shape, vocab: int, gen: torch.Generator, device) -> torch.Tensor:
    """Ids ≥ 4 with Zipf(1) frequencies over the vocabulary (as word frequencies are)."""
    ranks = torch.arange(1, vocab - 3, dtype=torch.float64)
    idx = torch.multinomial(
        (1 / ranks).float(), int(torch.tensor(shape).prod()), True, generator=gen
    )
    return (idx + 4).view(*shape).to(device)


def build(name: str, s: dict, device: torch.device, gen: torch.Generator):
    """(model, naive model, batch args, target tokens per step)."""
    torch.manual_seed(0)
    if s["kind"] == "lm":
        model = RNNLanguageModel(
            s["vocab"],
            s["embedding"],
            s["hidden"],
            s["layers"],
            s["cell"],
            0.0,
            s.get("tie", False),
            s["softmax"],
            s["cutoffs"],
        )
        data = zipf((s["batch"], s["bptt"] + 1), s["vocab"], gen, device)
        args = (data[:, :-1], data[:, 1:])
        naive = LoopLM(model)
        return model.to(device), naive.to(device), args, s["batch"] * s["bptt"]
    model = Seq2Seq(
        s["src_vocab"],
        s["tgt_vocab"],
        s["embedding"],
        s["hidden"],
        s["layers"],
        s["cell"],
        0.0,
        "general",
        True,
        s["softmax"],
        s["cutoffs"],
    )
    b = s["batch"]
    # lengths spread around the corpus mean, padded per batch as the bucketed loader does
    src_len = torch.randint(max(2, s["src_len"] - 3), s["src_len"] + 4, (b,), generator=gen)
    tgt_len = torch.randint(max(2, s["tgt_len"] - 3), s["tgt_len"] + 4, (b,), generator=gen)
    src = zipf((b, int(src_len.max())), s["src_vocab"], gen, "cpu")
    src[torch.arange(src.size(1))[None] >= src_len[:, None]] = PAD
    tgt = zipf((b, int(tgt_len.max()) + 1), s["tgt_vocab"], gen, "cpu")
    tgt[torch.arange(tgt.size(1))[None] > tgt_len[:, None]] = PAD
    args = (src.to(device), src_len, tgt[:, :-1].to(device), tgt[:, 1:].to(device))
    n = int((tgt[:, 1:] != PAD).sum())
    naive = LoopSeq2Seq(model)
    return model.to(device), naive.to(device), args, n


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(
    model: nn.Module,
    args,
    device: torch.device,
    steps: int,
    warmup: int = 2,
) -> float:
    """Seconds per training step (forward + backward + Adam), median of ``steps``."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        out = model(*args)
        loss = out[0] / out[1]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--sizes",
        choices=sorted(SIZES),
        default="default",
        help="model sizes: params.yaml defaults or the gpu profile",
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model")
    parser.add_argument(
        "--naive-steps",
        type=int,
        default=None,
        help="timed steps for the naive loop (default: --steps)",
    )
    parser.add_argument("--models", nargs="*", default=None, help="subset of models")
    parser.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0: default)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 steps per model")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON output (default: benchmarks/results/train_throughput_"
        "<device type>_<sizes>.json; --quick: ..._quick.json)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.naive_steps = 2, 2
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU, {torch.get_num_threads()} threads"
    print(
        f"device: {name}; torch {torch.__version__}; sizes: {args.sizes}; "
        f"median of {args.steps} steps"
    )
    print(
        f"{'model':18s} {'tokens/step':>11s} {'fused tok/s':>12s} {'loop tok/s':>11s} "
        f"{'ratio':>7s}   (fused: nn.LSTM kernels; loop: Python loop over nn.LSTMCell)"
    )
    gen = torch.Generator().manual_seed(0)
    rows = []
    for model_name, s in SIZES[args.sizes].items():
        if args.models and model_name not in args.models:
            continue
        model, naive, batch, tokens = build(model_name, s, device, gen)
        model.eval(), naive.eval()
        with torch.no_grad():  # same weights, same math: same loss (the comparison is fair)
            a, b = model(*batch)[0].item(), naive(*batch)[0].item()
        if abs(a - b) > 1e-3 * max(1.0, abs(a)):
            raise AssertionError(f"{model_name}: naive loss {b} != fused loss {a}")
        fused = time_steps(model, batch, device, args.steps)
        loop = time_steps(naive, batch, device, args.naive_steps or args.steps)
        print(
            f"{model_name:18s} {tokens:11d} {tokens / fused:12,.0f} {tokens / loop:11,.0f} "
            f"{loop / fused:6.1f}x",
            flush=True,
        )
        rows.append(
            {
                "model": model_name,
                "tokens_per_step": tokens,
                "fused_tokens_per_s": round(tokens / fused),
                "loop_tokens_per_s": round(tokens / loop),
                "ratio": round(loop / fused, 2),
            }
        )
    out = args.out or _HERE / "results" / (
        f"train_throughput_{device.type}_{args.sizes}{'_quick' if args.quick else ''}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "train_throughput",
                "quick": args.quick,
                "device": name,
                "torch": str(torch.__version__),
                "sizes": args.sizes,
                "steps": args.steps,
                "naive_steps": args.naive_steps or args.steps,
                "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
