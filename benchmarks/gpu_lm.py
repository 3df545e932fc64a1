"""books_lm (2 x 650 tied LSTM, full softmax, bptt 70) training throughput and quality on one
GPU: batch size x precision x optimizer, against the bf16 roofline (issue #10).

    python benchmarks/gpu_lm.py [--device cuda] [--vocab 16597] [--quality-tokens 6000000] \
        [--out benchmarks/results/gpu_lm_h200.json]

The training step reproduces ``pipelines.flows.train.fit`` + ``pipelines.tasks.lm.LMJob.losses``
for an LM (those modules import Prefect/pydantic/pyarrow, absent on the GPU machine, so the
loop is written out here; it imports only ``pipelines.models.lm`` and
``pipelines.metrics.scoring.autocast``, which import nothing but torch):

    with autocast(device, amp_dtype): nll, n, hidden = model(x[:, i:i+bptt], y[:, i:i+bptt], hidden)
    hidden = detach(hidden); loss = nll / n
    opt.zero_grad(set_to_none=True); loss.backward()
    clip_grad_norm_(params, grad_clip); opt.step(); total += nll.detach()

(GradScaler is disabled for bf16, so scale/unscale_/step/update reduce to the above.) As in
``LMJob`` the whole epoch's ``(B, n)`` token matrix is moved to the GPU once, so a step has no
host→device copy and no host sync; ``pipelines.device.configure`` is mirrored (TF32 matmuls and
cuDNN, ``cudnn.benchmark``). Model: dropout 0.5, Adam(lr 1e-3), grad_clip 0.25 (params.yaml's
books_lm + profiles/gpu.yaml).

Data: a synthetic, *learnable* token stream (no corpus on the GPU machine): an order-1 Markov
source over V words in which each word has K successor candidates (drawn with Zipf(1)
frequencies, so the marginal looks like word counts) picked with weights ∝ 1/k. Its conditional
entropy (the best achievable loss) is printed beside each model's held-out loss.

Phase 1 (speed): for each config, ``--warmup`` steps then ``--steps`` steps timed with one
``torch.cuda.synchronize`` before and after (no per-step syncs: what a real epoch does).
Phase 2 (quality): a subset of configs each trains from the same initial weights on the same
stream for ``--quality-tokens`` target tokens, then the held-out loss/perplexity (fp32, eval
mode, state carried) is measured. Runs are skipped when ``--budget-s`` would be exceeded.

FLOPs/token (fwd+bwd = 3x fwd, 2 FLOPs/MAC): per LSTM layer 24·h·(x+h), softmax 6·h·V.
Peak: a bf16 8192³ matmul measured in the same run (KINDS.md: ~790 TFLOP/s on an H200).
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# the project root, for a checkout that is not pip-installed (e.g. the GPU machine)
sys.path.insert(0, str(_HERE.parent))

import os  # noqa: E402

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from pipelines.metrics.scoring import autocast  # noqa: E402
from pipelines.models.lm import RNNLanguageModel, detach  # noqa: E402

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


def sample_stream(
    succ: torch.Tensor,
    w: torch.Tensor,
    n: int,
    chains: int,
    seed: int,
) -> torch.Tensor:
    """``n`` tokens: ``chains`` parallel chains of the source, concatenated (int64, on succ's
    device)."""
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
    (duplicate candidates merged)."""
    v, k = succ.shape
    probs = torch.zeros(v, v, device=succ.device) if v <= 4096 else None
    if probs is not None:
        probs.scatter_add_(1, succ, w.expand(v, k).contiguous())
        h = -(probs * torch.log(probs.clamp_min(1e-30))).sum(1)
    else:  # per row: merge duplicates by sorting
        s, order = succ.sort(1)
        ws = w.expand(v, k).gather(1, order)
        h = torch.empty(v, device=succ.device)
        for start in range(0, v, 2048):
            rows_s, rows_w = s[start : start + 2048], ws[start : start + 2048]
            p = torch.zeros(rows_s.size(0), v, device=succ.device)
            p.scatter_add_(1, rows_s, rows_w)
            h[start : start + 2048] = -(p * torch.log(p.clamp_min(1e-30))).sum(1)
    counts = torch.bincount(stream[:-1], minlength=v).double()
    return float((counts * h.double()).sum() / counts.sum())


def batchify(stream: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``pipelines.text_data.batchify`` (offset 0, no tail) on a tensor."""
    x, y = stream[:-1], stream[1:]
    n = len(x) // rows
    return x[: n * rows].view(rows, n), y[: n * rows].view(rows, n)


def build(vocab: int, device, seed: int = 0) -> RNNLanguageModel:
    torch.manual_seed(seed)
    s = BOOKS_LM
    return RNNLanguageModel(
        vocab, s["embedding"], s["hidden"], s["layers"], "lstm", s["dropout"], True, "full", None
    ).to(device)


def make_opt(model, kind: str, lr: float, device) -> torch.optim.Optimizer:
    if kind == "fused" and device.type == "cuda":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=0.0, fused=True)
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=0.0)


def train_steps(
    model,
    opt,
    x,
    y,
    steps: int,
    bptt: int,
    amp_dtype,
    device,
    grad_clip: float,
    start: int = 0,
    hidden=None,
):
    """``steps`` windows of LMJob.losses + fit's step; returns (summed nll tensor, tokens,
    hidden). No host sync inside."""
    total = torch.zeros((), device=device)
    count = 0
    windows = max(1, x.size(1) // bptt)
    for j in range(steps):
        i = ((start + j) % windows) * bptt
        if i == 0 and (start + j) > 0:
            hidden = None  # wrapped around the stream: a new epoch starts from a zero state
        with autocast(device, amp_dtype):
            nll, n, hidden = model(x[:, i : i + bptt], y[:, i : i + bptt], hidden)
        hidden = detach(hidden)
        loss = nll / n
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        total += nll.detach()
        count += n
    return total, count, hidden


@torch.no_grad()
def heldout_nll(
    model,
    stream: torch.Tensor,
    device,
    rows: int = 64,
    window: int = 256,
) -> tuple[float, int]:
    """fp32, eval mode, state carried across windows (``pipelines.tasks.lm.stream_nll``)."""
    was = model.training
    model.eval()
    x, y = batchify(stream, rows)
    hidden, total, count = None, torch.zeros((), device=device, dtype=torch.float64), 0
    for i in range(0, x.size(1), window):
        nll, n, hidden = model(x[:, i : i + window], y[:, i : i + window], hidden)
        total += nll.double()
        count += n
    model.train(was)
    return float(total), count


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device) -> float | None:
    """bf16 8192³ matmul TFLOP/s (mean of 10 after 3 warm-ups), or None off CUDA."""
    if device.type != "cuda":
        return None
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    sync(device)
    dt = (time.perf_counter() - t0) / 10
    del a, b
    return 2 * 8192**3 / dt / 1e12


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--vocab",
        type=int,
        default=16597,
        help="vocabulary (16597: books on the offline mirror, as train_throughput)",
    )
    p.add_argument("--successors", type=int, default=16, help="K candidates per word")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=20, help="timed steps per config")
    p.add_argument(
        "--quality-tokens",
        type=int,
        default=6_000_000,
        help="target tokens each quality run trains on (0: no quality phase)",
    )
    p.add_argument("--val-tokens", type=int, default=500_000)
    p.add_argument(
        "--budget-s",
        type=float,
        default=240.0,
        help="skip quality runs that would end the script past this many seconds",
    )
    p.add_argument("--configs", nargs="*", default=None, help="substrings of config names")
    p.add_argument(
        "--batches",
        type=int,
        nargs="*",
        default=None,
        help="override batch sizes (CPU smoke tests: small ones)",
    )
    p.add_argument("--hidden", type=int, default=None, help="override 650 (CPU smoke tests)")
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="bf16 peak for the roofline (default: measured; CPU: 790)",
    )
    p.add_argument("--out", default=None, help="JSON path (default: print only)")
    a = p.parse_args(argv)

    began = time.perf_counter()
    device = torch.device(a.device)
    if a.hidden:
        BOOKS_LM.update(embedding=a.hidden, hidden=a.hidden)
    if device.type == "cuda":  # pipelines.device.configure
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(device)
    else:
        torch.use_deterministic_algorithms(True, warn_only=True)
        name = f"CPU, {torch.get_num_threads()} threads"
    s = BOOKS_LM
    bptt, V = s["bptt"], a.vocab
    fl = flops_per_token(s["embedding"], s["hidden"], s["layers"], V)
    peak = a.peak_tflops or matmul_peak(device) or 790.0
    roof = peak * 1e12 / fl["total"]
    print(
        f"device: {name}; torch {torch.__version__}; cuda {torch.version.cuda}; "
        f"cudnn {torch.backends.cudnn.version() if device.type == 'cuda' else None}"
    )
    print(
        f"model: {s['layers']}x{s['hidden']} LSTM, tied, full softmax, V={V}, bptt {bptt}, "
        f"dropout {s['dropout']}, clip {s['grad_clip']}"
    )
    print(
        f"FLOPs/token (fwd+bwd): LSTM {fl['lstm'] / 1e6:.1f}M + softmax "
        f"{fl['softmax'] / 1e6:.1f}M = {fl['total'] / 1e6:.1f}M; bf16 peak {peak:.0f} TFLOP/s"
        f" -> roofline {roof / 1e6:.2f}M tokens/s",
        flush=True,
    )

    configs = [c for c in CONFIGS if not a.configs or any(t in c[0] for t in a.configs)]
    if a.batches:
        sub = sorted(set(a.batches))
        remap = {
            64: sub[0],
            256: sub[min(1, len(sub) - 1)],
            512: sub[min(2, len(sub) - 1)],
            1024: sub[-1],
        }
        configs = [(n, remap.get(b, b), *rest) for n, b, *rest in configs]
    maxb = max(c[1] for c in configs)
    need = max(
        maxb * (bptt * (a.warmup + a.steps) + 1) + 1, a.quality_tokens + maxb * (bptt + 1) + 1
    )
    succ, w = markov_source(V, a.successors, 0, device)
    t0 = time.perf_counter()
    train = sample_stream(succ, w, need, 4096 if device.type == "cuda" else 256, 1)
    val = sample_stream(succ, w, a.val_tokens, 64, 2)
    floor = source_entropy(succ, w, val)
    print(
        f"synthetic Markov stream: {need:,} train + {a.val_tokens:,} held-out tokens "
        f"({time.perf_counter() - t0:.1f}s); source entropy {floor:.4f} nats "
        f"(best perplexity {math.exp(floor):.2f}); uniform {math.log(V - 4):.3f}",
        flush=True,
    )

    result = {
        "device": name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "model": dict(s, vocab=V, tie_weights=True, softmax="full"),
        "flops_per_token": fl,
        "peak_bf16_tflops": peak,
        "peak_source": "measured 8192^3 bf16 matmul"
        if device.type == "cuda" and not a.peak_tflops
        else "assumed",
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
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out).write_text(json.dumps(result, indent=2) + "\n")

    # --- phase 1: speed ---------------------------------------------------------------------
    print(
        f"\n{'config':28s} {'batch':>5s} {'tok/step':>8s} {'ms/step':>8s} {'tokens/s':>11s} "
        f"{'roofline':>8s} {'TFLOP/s':>8s} {'peak GiB':>8s}",
        flush=True,
    )
    speed = {}
    for cname, batch, amp, optk, lrm, _ in configs:
        amp_dtype = torch.bfloat16 if amp and device.type == "cuda" else None
        x, y = batchify(train, batch)
        model = build(V, device)
        opt = make_opt(model, optk, s["lr"] * lrm, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            _, _, hidden = train_steps(
                model, opt, x, y, a.warmup, bptt, amp_dtype, device, s["grad_clip"]
            )
            sync(device)
            t0 = time.perf_counter()
            total, count, _ = train_steps(
                model,
                opt,
                x,
                y,
                a.steps,
                bptt,
                amp_dtype,
                device,
                s["grad_clip"],
                start=a.warmup,
                hidden=hidden,
            )
            sync(device)
            dt = time.perf_counter() - t0
        except torch.OutOfMemoryError as e:
            print(f"{cname:28s} OOM: {e}", flush=True)
            result["speed"].append({"config": cname, "batch": batch, "error": "OOM"})
            continue
        tps = count / dt
        mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0
        row = {
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
        speed[cname] = tps
        result["speed"].append(row)
        print(
            f"{cname:28s} {batch:5d} {batch * bptt:8d} {row['ms_per_step']:8.2f} {tps:11,.0f} "
            f"{tps / roof:8.1%} {row['achieved_tflops']:8.1f} {mem:8.1f}",
            flush=True,
        )
        del model, opt, x, y
        save()
    base = result["speed"][0].get("tokens_per_s") if result["speed"] else None
    if base:
        for row in result["speed"]:
            if "tokens_per_s" in row:
                row["speedup_vs_baseline"] = row["tokens_per_s"] / base

    # --- phase 2: quality after a fixed number of tokens ----------------------------------------
    if a.quality_tokens > 0:
        print(
            f"\nquality: {a.quality_tokens:,} training tokens from the same init, held-out "
            f"loss in fp32 (source entropy {floor:.4f})"
        )
        print(
            f"{'config':28s} {'steps':>6s} {'seconds':>7s} {'train loss':>10s} "
            f"{'val loss':>8s} {'val ppl':>8s} {'excess':>7s}",
            flush=True,
        )
    for cname, batch, amp, optk, lrm, q in configs:
        if not q or a.quality_tokens <= 0 or cname not in speed:
            continue
        steps = a.quality_tokens // (batch * bptt)
        est = steps * batch * bptt / speed[cname] * 1.1 + 5
        left = a.budget_s - (time.perf_counter() - began)
        if est > left:
            print(
                f"{cname:28s} skipped: needs ~{est:.0f}s, {left:.0f}s left in --budget-s",
                flush=True,
            )
            result["quality"].append({"config": cname, "skipped": f"needs ~{est:.0f}s"})
            continue
        amp_dtype = torch.bfloat16 if amp and device.type == "cuda" else None
        x, y = batchify(train, batch)
        model = build(V, device)
        opt = make_opt(model, optk, s["lr"] * lrm, device)
        t0 = time.perf_counter()
        last = max(1, steps // 10)
        _, _, hidden = train_steps(
            model, opt, x, y, steps - last, bptt, amp_dtype, device, s["grad_clip"]
        )
        tail, tcount, _ = train_steps(
            model,
            opt,
            x,
            y,
            last,
            bptt,
            amp_dtype,
            device,
            s["grad_clip"],
            start=steps - last,
            hidden=hidden,
        )
        sync(device)
        secs = time.perf_counter() - t0
        nll, n = heldout_nll(model, val, device)
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
        print(
            f"{cname:28s} {steps:6d} {secs:7.1f} {row['train_loss_last_10pct']:10.4f} "
            f"{row['val_loss']:8.4f} {row['val_perplexity']:8.2f} "
            f"{row['excess_over_entropy']:7.4f}",
            flush=True,
        )
        del model, opt, x, y
        save()
    result["wall_s"] = time.perf_counter() - began
    save()
    print(f"\ntotal {result['wall_s']:.0f}s" + (f"; wrote {a.out}" if a.out else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
