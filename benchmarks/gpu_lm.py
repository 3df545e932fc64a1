"""books_lm at the GPU profile's size (2 x 650 tied LSTM, full softmax, bptt 70) on one GPU:
training throughput and quality per batch size x precision x optimizer, against the bf16
roofline.

    python benchmarks/gpu_lm.py [--device cuda] [--budget-s 240] [--out FILE.json]

A step is ``fit``'s step on ``LMJob.losses`` written out with ``pipelines.models.lm``: autocast
forward of one ``bptt`` window, backward of ``nll / n``, clipping, Adam (GradScaler is a no-op
for bf16); the token matrix stays on the GPU, so a step has no host sync. Hyperparameters:
profiles/gpu.yaml.

Data: a synthetic, *learnable* order-1 Markov stream over V words (K successors each, Zipf(1)
frequencies, weights ∝ 1/k); its conditional entropy is the best achievable loss.

Speed: ``--steps`` steps after ``--warmup``, between two ``torch.cuda.synchronize`` calls.
Quality: some configs train from the same initial weights on ``--quality-tokens`` tokens, then
the held-out loss in fp32 (skipped past ``--budget-s``). FLOPs/token (fwd+bwd = 3x fwd): per
LSTM layer 24·h·(x+h), softmax 6·h·V; the bf16 peak is an 8192³ matmul measured in the same
run. ``benchmarks/gpu.sh`` writes ``benchmarks/results/gpu_lm_<device>.json``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import benchlib as B  # first: the project on sys.path, rnnflow's env defaults before torch
import torch

from pipelines.metrics.scoring import autocast
from pipelines.models.lm import RNNLanguageModel, detach

BOOKS_LM = dict(
    embedding=650, hidden=650, layers=2, dropout=0.5, bptt=70, lr=1e-3, grad_clip=0.25, batch=64
)

# (name, batch, amp, optimizer, lr multiplier, in quality phase)
CONFIGS = [
    ("baseline b64 fp32/tf32", 64, False, "adam", 1.0, True),
    ("b64 bf16", 64, True, "adam", 1.0, True),
    ("b256 fp32/tf32", 256, False, "adam", 1.0, False),
    ("b256 bf16", 256, True, "adam", 1.0, True),
    ("b512 fp32/tf32", 512, False, "adam", 1.0, False),
    ("b512 bf16", 512, True, "adam", 1.0, True),
    ("b512 bf16 fusedAdam", 512, True, "fused", 1.0, False),
    ("b512 bf16 fusedAdam lr x2", 512, True, "fused", 2.0, True),
    ("b1024 bf16 fusedAdam", 1024, True, "fused", 1.0, False),
    ("b1024 bf16 fusedAdam lr x2", 1024, True, "fused", 2.0, True),
]


def flops_per_token(emb: int, hid: int, layers: int, vocab: int) -> dict[str, float]:
    lstm = sum(24 * hid * ((emb if i == 0 else hid) + hid) for i in range(layers))
    softmax = 6 * hid * vocab
    return {"lstm": float(lstm), "softmax": float(softmax), "total": float(lstm + softmax)}


def markov_source(vocab: int, k: int, seed: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Successor table ``(V, K)`` (ids ≥ 4, Zipf(1) frequencies) and weights ``(K,)`` ∝ 1/k."""
    g = torch.Generator().manual_seed(seed)
    ranks = torch.arange(1, vocab - 3, dtype=torch.float64)
    succ = torch.multinomial((1 / ranks).float(), vocab * k, True, generator=g) + 4
    w = 1 / torch.arange(1, k + 1, dtype=torch.float64)
    return succ.view(vocab, k).to(device), (w / w.sum()).float().to(device)


def sample_stream(succ: torch.Tensor, w: torch.Tensor, n: int, chains: int, seed: int):
    """``n`` tokens: ``chains`` parallel chains of the source, concatenated (on succ's device)."""
    dev = succ.device
    g = torch.Generator(device=dev).manual_seed(seed)
    length = -(-n // chains)
    picks = torch.multinomial(w, chains * length, True, generator=g).view(chains, length)
    state = torch.randint(4, succ.size(0), (chains,), generator=g, device=dev)
    out = torch.empty(chains, length, dtype=torch.long, device=dev)
    for t in range(length):
        state = succ[state, picks[:, t]]
        out[:, t] = state
    return out.reshape(-1)[:n]


def source_entropy(succ: torch.Tensor, w: torch.Tensor, stream: torch.Tensor) -> float:
    """Conditional entropy (nats/token) of the source, weighted by the stream's word counts
    (duplicate successors merged), 2048 rows of the transition matrix at a time."""
    v, k = succ.shape
    h = torch.empty(v, device=succ.device)
    for start in range(0, v, 2048):
        rows = succ[start : start + 2048]
        p = torch.zeros(rows.size(0), v, device=succ.device)
        p.scatter_add_(1, rows, w.expand(rows.size(0), k).contiguous())
        h[start : start + 2048] = -(p * torch.log(p.clamp_min(1e-30))).sum(1)
    counts = torch.bincount(stream[:-1], minlength=v).double()
    return float((counts * h.double()).sum() / counts.sum())


def batchify(stream: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``pipelines.text_data.batchify`` (offset 0, no tail) on a tensor."""
    x, y = stream[:-1], stream[1:]
    n = len(x) // rows
    return x[: n * rows].view(rows, n), y[: n * rows].view(rows, n)


def build(vocab: int, device, optimizer: str, lr: float):
    """The model (same initial weights every time) and its Adam (``fused``: fused kernels)."""
    torch.manual_seed(0)
    s = BOOKS_LM
    model = RNNLanguageModel(
        vocab, s["embedding"], s["hidden"], s["layers"], "lstm", s["dropout"], True, "full", None
    ).to(device)
    fused = {"fused": True} if optimizer == "fused" and device.type == "cuda" else {}
    return model, torch.optim.Adam(model.parameters(), lr=lr, weight_decay=0.0, **fused)


def train_steps(model, opt, x, y, steps: int, amp_dtype, start: int = 0, hidden=None):
    """``steps`` windows of LMJob.losses + fit's step from window ``start``; returns (summed
    nll tensor, tokens, hidden). No host sync inside."""
    bptt, clip = BOOKS_LM["bptt"], BOOKS_LM["grad_clip"]
    total, count = torch.zeros((), device=x.device), 0
    windows = max(1, x.size(1) // bptt)
    for j in range(start, start + steps):
        i = (j % windows) * bptt
        if i == 0 and j > 0:
            hidden = None  # wrapped around the stream: a new epoch starts from a zero state
        with autocast(x.device, amp_dtype):
            nll, n, hidden = model(x[:, i : i + bptt], y[:, i : i + bptt], hidden)
        hidden = detach(hidden)
        opt.zero_grad(set_to_none=True)
        (nll / n).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        total += nll.detach()
        count += n
    return total, count, hidden


@torch.no_grad()
def heldout_nll(model, stream: torch.Tensor, rows: int = 64, window: int = 256):
    """fp32, eval mode, state carried across windows (``pipelines.tasks.lm.stream_nll``)."""
    model.eval()
    x, y = batchify(stream, rows)
    hidden, total, count = None, torch.zeros((), device=x.device, dtype=torch.float64), 0
    for i in range(0, x.size(1), window):
        nll, n, hidden = model(x[:, i : i + window], y[:, i : i + window], hidden)
        total += nll.double()
        count += n
    model.train()
    return float(total), count


def matmul_peak(device) -> float | None:
    """bf16 8192³ matmul TFLOP/s (mean of 10 after 3 warm-ups), or None off CUDA."""
    if device.type != "cuda":
        return None
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ a
    B.sync(device)
    t0 = time.perf_counter()
    for _ in range(10):
        a @ a
    B.sync(device)
    return 2 * 8192**3 / ((time.perf_counter() - t0) / 10) / 1e12


def main(argv: list[str] | None = None) -> int:
    p = B.parser(__doc__, __file__)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--vocab", type=int, default=16597, help="vocabulary (books on the mirror)")
    p.add_argument("--successors", type=int, default=16, help="K candidates per word")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=20, help="timed steps per config")
    p.add_argument("--quality-tokens", type=int, default=6_000_000, help="0: no quality phase")
    p.add_argument("--val-tokens", type=int, default=500_000)
    p.add_argument("--budget-s", type=float, default=240.0, help="skip quality runs past this")
    p.add_argument("--configs", nargs="*", help="substrings of config names")
    p.add_argument("--batches", type=int, nargs="*", help="override batch sizes (CPU smoke)")
    p.add_argument("--hidden", type=int, help="override 650 (CPU smoke)")
    p.add_argument("--peak-tflops", type=float, help="bf16 peak (none: measured; CPU: 790)")
    p.add_argument("--out", type=Path, help="results JSON (none: print only)")
    a = p.parse_args(argv)

    began = time.perf_counter()
    device = torch.device(a.device)
    if a.hidden:
        BOOKS_LM.update(embedding=a.hidden, hidden=a.hidden)
    if device.type == "cuda":  # pipelines.device.configure
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    name = B.device_name(device)
    s = BOOKS_LM
    bptt, V = s["bptt"], a.vocab
    fl = flops_per_token(s["embedding"], s["hidden"], s["layers"], V)
    peak = a.peak_tflops or matmul_peak(device) or 790.0
    roof = peak * 1e12 / fl["total"]
    print(
        f"device: {name}; torch {torch.__version__}; {s['layers']}x{s['hidden']} LSTM, tied, "
        f"full softmax, V={V}; FLOPs/token {fl['total'] / 1e6:.1f}M (LSTM "
        f"{fl['lstm'] / 1e6:.1f}M); bf16 peak {peak:.0f} TFLOP/s -> {roof / 1e6:.2f}M tokens/s",
        flush=True,
    )

    configs = [c for c in CONFIGS if not a.configs or any(t in c[0] for t in a.configs)]
    if a.batches:
        sub = sorted(set(a.batches))
        remap = {64: sub[0], 256: sub[min(1, len(sub) - 1)], 512: sub[min(2, len(sub) - 1)]}
        remap[1024] = sub[-1]
        configs = [(n, remap.get(b, b), *rest) for n, b, *rest in configs]
    maxb = max(c[1] for c in configs)
    need = max(maxb * (bptt * (a.warmup + a.steps) + 1), a.quality_tokens + maxb * (bptt + 1)) + 1
    succ, w = markov_source(V, a.successors, 0, device)
    train = sample_stream(succ, w, need, 4096 if device.type == "cuda" else 256, 1)
    val = sample_stream(succ, w, a.val_tokens, 64, 2)
    floor = source_entropy(succ, w, val)
    print(f"Markov stream: {need:,} train + {a.val_tokens:,} held-out tokens; source entropy "
          f"{floor:.4f} nats (best perplexity {math.exp(floor):.2f})", flush=True)  # fmt: skip
    result = {
        "device": name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "model": dict(s, vocab=V, tie_weights=True, softmax="full"),
        "flops_per_token": fl,
        "peak_bf16_tflops": peak,
        "peak_source": "assumed"
        if a.peak_tflops or device.type != "cuda"
        else "measured 8192^3 bf16 matmul",
        "roofline_tokens_per_s": roof,
        "source_entropy_nats": floor,
        "warmup": a.warmup,
        "steps": a.steps,
        "speed": [],
        "quality": [],
        "quality_tokens": a.quality_tokens,
        "val_tokens": a.val_tokens,
    }

    def save() -> None:
        if a.out:
            B.write(a.out, result, say=False)

    # --- speed -----------------------------------------------------------------------------
    speed = {}
    for cname, batch, amp, optk, lrm, _ in configs:
        amp_dtype = torch.bfloat16 if amp and device.type == "cuda" else None
        x, y = batchify(train, batch)
        model, opt = build(V, device, optk, s["lr"] * lrm)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            _, _, hidden = train_steps(model, opt, x, y, a.warmup, amp_dtype)
            B.sync(device)
            t0 = time.perf_counter()
            total, count, _ = train_steps(model, opt, x, y, a.steps, amp_dtype, a.warmup, hidden)
            B.sync(device)
            dt = time.perf_counter() - t0
        except torch.OutOfMemoryError:
            print(f"{cname:28s} OOM", flush=True)
            result["speed"].append({"config": cname, "batch": batch, "error": "OOM"})
            continue
        tps = count / dt
        mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0
        speed[cname] = tps
        result["speed"].append(
            {
                "config": cname,
                "batch": batch,
                "amp": "bf16" if amp_dtype else None,
                "optimizer": optk,
                "tokens_per_step": batch * bptt,
                "ms_per_step": dt / a.steps * 1e3,
                "tokens_per_s": tps,
                "fraction_of_roofline": tps / roof,
                "achieved_tflops": tps * fl["total"] / 1e12,
                "peak_mem_gib": mem,
                "train_loss_timed_steps": float(total) / count,
            }
        )
        print(f"{cname:28s} {batch:5d} {tps:11,.0f} tokens/s {tps / roof:7.1%} of roofline "
              f"{mem:6.1f} GiB", flush=True)  # fmt: skip
        del model, opt, x, y
        save()
    base = result["speed"][0].get("tokens_per_s") if result["speed"] else None
    for row in result["speed"]:
        if base and "tokens_per_s" in row:
            row["speedup_vs_baseline"] = row["tokens_per_s"] / base

    # --- quality after a fixed number of tokens ----------------------------------------------
    for cname, batch, amp, optk, lrm, q in configs:
        if not q or a.quality_tokens <= 0 or cname not in speed:
            continue
        steps = a.quality_tokens // (batch * bptt)
        est = steps * batch * bptt / speed[cname] * 1.1 + 5
        left = a.budget_s - (time.perf_counter() - began)
        if est > left:
            print(f"{cname:28s} quality skipped: needs ~{est:.0f}s, {left:.0f}s left", flush=True)
            result["quality"].append({"config": cname, "skipped": f"needs ~{est:.0f}s"})
            continue
        amp_dtype = torch.bfloat16 if amp and device.type == "cuda" else None
        x, y = batchify(train, batch)
        model, opt = build(V, device, optk, s["lr"] * lrm)
        t0 = time.perf_counter()
        last = max(1, steps // 10)
        _, _, hidden = train_steps(model, opt, x, y, steps - last, amp_dtype)
        tail, tcount, _ = train_steps(model, opt, x, y, last, amp_dtype, steps - last, hidden)
        B.sync(device)
        secs = time.perf_counter() - t0
        nll, n = heldout_nll(model, val)
        row = {
            "config": cname,
            "batch": batch,
            "amp": "bf16" if amp_dtype else None,
            "optimizer": optk,
            "lr": s["lr"] * lrm,
            "steps": steps,
            "tokens": steps * batch * bptt,
            "seconds": secs,
            "train_loss_last_10pct": float(tail) / tcount,
            "val_loss": nll / n,
            "val_perplexity": math.exp(nll / n),
            "excess_over_entropy": nll / n - floor,
        }
        result["quality"].append(row)
        print(f"{cname:28s} {steps:6d} steps {secs:7.1f}s val loss {row['val_loss']:.4f} "
              f"(excess {row['excess_over_entropy']:.4f})", flush=True)  # fmt: skip
        del model, opt, x, y
        save()
    result["wall_s"] = time.perf_counter() - began
    save()
    print(f"total {result['wall_s']:.0f}s" + (f"; wrote {a.out}" if a.out else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
