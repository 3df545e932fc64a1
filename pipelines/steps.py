"""The optimizer steps of an epoch (:func:`run_steps`), of a decoder's pretraining
(:func:`pretrain`) and of a chatbot's negative training (:func:`negative`), with a tqdm bar
on a terminal and a progress line in the log (and so the Prefect UI) every
:data:`PROGRESS_EVERY` seconds; :func:`pipelines.training.fit` calls them.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import torch
from tqdm import tqdm

from pipelines import data as D
from pipelines.config import ModelConfig


def epoch_bar(total: int, desc: str, progress: bool | None, rank: int) -> dict[str, Any]:
    """tqdm settings of one epoch's bar (stderr; on a terminal unless ``progress`` says)."""
    return {
        "total": total,
        "desc": desc,
        "file": sys.stderr,
        "leave": False,
        "mininterval": 1.0,
        "disable": (None if progress is None else not progress) if rank == 0 else True,
    }


#: Seconds between progress lines in the log (and so in the Prefect UI) during an epoch: the
#: tqdm bar shows only on a terminal, and a text model's epoch can take many minutes.
PROGRESS_EVERY = 30.0


def run_steps(
    losses: Any,
    bar: dict[str, Any],
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    grad_clip: float,
    device: torch.device,
    log: Any = None,
) -> tuple[torch.Tensor, int]:
    """One optimiser step per ``(loss, summed_nll, n)`` (a tqdm bar of ``bar`` settings);
    returns the summed loss and count. With ``log``, a progress line every
    :data:`PROGRESS_EVERY` seconds (batches done, mean loss so far, rate, time left)."""
    total = torch.zeros((), device=device)
    count = 0
    began = last = time.monotonic()
    with tqdm(losses, **bar) as batches:
        for i, (loss, summed, n) in enumerate(batches, 1):
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if grad_clip > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(opt)
            scaler.update()
            total += summed
            count += n
            now = time.monotonic()
            if log is not None and now - last >= PROGRESS_EVERY:
                last, rate = now, i / max(now - began, 1e-9)
                log.info(
                    "%s: batch %d/%d, loss %.4f so far, %.1f batches/s, about %.0f s left in "
                    "this epoch",
                    bar["desc"],
                    i,
                    bar["total"],
                    float(total) / max(count, 1),  # one device sync per line, not per batch
                    rate,
                    max(bar["total"] - i, 0) / rate,
                )
    return total, count


def pretrain(
    cfg: ModelConfig,
    job: Any,
    net: torch.nn.Module,
    model: torch.nn.Module,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    progress: bool | None,
    rank: int,
    name: str,
    log: Any,
) -> dict[str, Any]:
    """``cfg.pretrain`` epochs of ``job.pretrain_losses`` (seq2seq: monolingual target lines)
    with their own Adam at a constant rate; the record kept with the run."""
    pre = getattr(cfg, "pretrain", None)
    if pre is None:
        raise ValueError(f"{name}: no pretrain section to run")
    if not hasattr(job, "pretrain_losses"):
        raise ValueError(f"{name}: pretrain is for seq2seq models, not family {cfg.family!r}")
    opt = torch.optim.Adam(model.parameters(), lr=pre.lr or cfg.lr, weight_decay=cfg.weight_decay)
    t0 = time.perf_counter()
    total, count, batches = 0.0, 0, 0
    for e in range(pre.epochs):
        # a stream of its own: the pairs' epochs shuffle exactly as without pretraining
        gen = D.epoch_generator(cfg.seed + 7919, e)
        model.train()
        summed, n = run_steps(
            job.pretrain_losses(net, gen),
            epoch_bar(
                job.pretrain_batches(), f"{name} pretrain {e + 1}/{pre.epochs}", progress, rank
            ),
            model,
            opt,
            scaler,
            cfg.grad_clip,
            device,
            log if rank == 0 else None,
        )
        total, count, batches = total + float(summed), count + n, batches + job.pretrain_batches()
    record = {
        "epochs": pre.epochs,
        "batches": batches,
        "tokens": count,
        "train_loss": total / max(count, 1),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    log.info(
        "%s pretrain: %d epoch(s), %d batches, %d target tokens, loss %.4f (%.1fs)",
        name,
        pre.epochs,
        batches,
        count,
        record["train_loss"],
        record["seconds"],
    )
    return record


def negative(
    cfg: ModelConfig,
    job: Any,
    model: torch.nn.Module,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    progress: bool | None,
    name: str,
    log: Any,
) -> list[dict[str, Any]]:
    """``cfg.negative`` epochs of ``job.losses(..., negative=True)`` from ``model``'s weights,
    with their own Adam at a constant rate; a validation row per epoch (``job.validate``).
    One process only (the config refuses more): its greedy replies bypass DDP's forward."""
    neg = getattr(cfg, "negative", None)
    if neg is None or not hasattr(job, "negative_loss"):
        raise ValueError(f"{name}: negative training is for seq2seq models with a negative section")
    opt = torch.optim.Adam(model.parameters(), lr=neg.lr, weight_decay=cfg.weight_decay)
    rows = []
    for e in range(neg.epochs):
        t0 = time.perf_counter()
        gen = D.epoch_generator(cfg.seed + 104729, e)  # a stream of its own, as pretraining's
        model.train()
        summed, n = run_steps(
            job.losses(model, e, gen, negative=True),
            epoch_bar(job.num_batches(), f"{name} negative {e + 1}/{neg.epochs}", progress, 0),
            model,
            opt,
            scaler,
            cfg.grad_clip,
            device,
            log,
        )
        val = job.validate(model)
        rows.append(
            {
                "epoch": cfg.epochs + e + 1,
                "train_loss": float(summed) / max(n, 1),
                "val_loss": val["loss"],
                **{f"val_{k}": v for k, v in val.items() if k != "loss"},
                "seconds": round(time.perf_counter() - t0, 3),
            }
        )
        log.info("%s negative %d/%d: %s", name, e + 1, neg.epochs, rows[-1])
    return rows
