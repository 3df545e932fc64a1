"""The training loop every train stage runs (:func:`fit`), apart from the flow and its outputs
(:mod:`pipelines.flows.train`).

``fit`` trains one model on a corpus as its task prepares it: the task's *job* yields the
batches' losses, ``fit`` steps the optimizer, validates every epoch, keeps the best epoch's
weights and writes a checkpoint after each epoch (weights, optimizer, scaler, RNG, history)
that a rerun with a matching fingerprint resumes. Under ``torchrun`` the model is wrapped in
``DistributedDataParallel`` and every rank trains on its share of each batch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipelines import data as D
from pipelines import device as dev
from pipelines import live as L
from pipelines import scoring, tasks
from pipelines.config import ModelConfig
from pipelines.integrity import code_hash
from pipelines.models import build_model
from pipelines.outputs import logger, save_torch
from pipelines.steps import epoch_bar, negative, pretrain, run_steps


def curve_columns(task_name: str) -> list[str]:
    """The per-epoch metrics DVCLive logs (``step`` is the epoch)."""
    return ["train_loss", "val_loss", f"val_{tasks.get(task_name).monitor}"]


def run_facts(name: str, cfg: ModelConfig, task_name: str, device: str, amp: str | None):
    """The text side of a run, logged as DVCLive params beside the config (``world``: the
    number of data-parallel processes, only when there are several)."""
    size = world()[1]
    return {
        "model": name,
        "corpus": cfg.corpus,
        "family": cfg.family,
        "task": task_name,
        "keep": cfg.keep,
        "device": device,
        "amp": amp,
        "torch": str(torch.__version__),
        **({"world": size} if size > 1 else {}),
    }


def train_fingerprint(cfg: ModelConfig, corpus: Any, spec: dict[str, Any] | None = None) -> str:
    """What a checkpoint must match to be resumed: the model's params, the spec, the data and
    the training code (:func:`pipelines.integrity.code_hash`: the files dvc.yaml lists).

    ``epochs`` is left out when the schedule does not depend on it, so a run can be extended
    (or finished after an interruption) with more epochs; ``keep`` only picks what is saved.
    """
    exclude = {"keep"} | ({"epochs"} if cfg.schedule == "constant" else set())
    return D.fingerprint(
        cfg.model_dump(exclude=exclude),
        spec or corpus.spec,
        corpus.files,
        code_hash("train", cfg.kind),
    )


def world() -> tuple[int, int]:
    """``(rank, world_size)`` under ``torchrun`` (an initialised process group), else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass
class FitResult:
    """A trained model and how it got there."""

    model: torch.nn.Module  # as after the last epoch
    history: list[dict[str, Any]]
    device: str
    amp: str | None
    resumed_from: int = 0  # epochs already done when this call started (0: fresh)
    seconds: float = 0.0  # wall time of this call
    complete: bool = True  # False when stopped early (``stop_after``)
    best_epoch: int | None = None  # epoch with the best validation headline metric
    best_state: dict[str, torch.Tensor] | None = None  # its weights (CPU)
    spec: dict[str, Any] | None = None  # the spec the model was built from (text: + its vocab)
    n_train: int = 0  # examples (text: target tokens or sentence pairs) per full epoch
    n_validation: int = 0
    pretrain: dict[str, Any] | None = None  # ``cfg.pretrain``'s record (seconds, tokens, loss)

    def state_dict(self, keep: str = "best") -> dict[str, torch.Tensor]:
        """Weights to save: the best validation epoch's, or the last epoch's."""
        if keep == "best" and self.best_state is not None:
            return self.best_state
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items()}

    def selected(self, keep: str = "best") -> dict[str, Any]:
        """The history row of the saved weights."""
        if keep == "best" and self.best_epoch is not None:
            return self.history[self.best_epoch - 1]
        return self.history[-1] if self.history else {}


def scheduler(opt: torch.optim.Optimizer, cfg: ModelConfig):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def _load_checkpoint(path: Path, fp: str, code: str, epochs: int, log) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or from an incompatible version
        log.warning("checkpoint %s unreadable (%s): starting fresh", path, exc)
        return None
    if ckpt.get("code") != code:
        log.info("checkpoint %s was made by other training code: training from scratch", path)
        return None
    if ckpt.get("fingerprint") != fp:
        log.info(
            "checkpoint %s fingerprint differs (params, spec or data changed): starting fresh", path
        )
        return None
    if ckpt["epoch"] > epochs:
        log.info(
            "checkpoint %s has %d epochs, more than the %d asked: starting fresh",
            path,
            ckpt["epoch"],
            epochs,
        )
        return None
    return ckpt


def _resume(ckpt: dict[str, Any], path: Path, model, opt, sched, scaler, device, log) -> bool:
    """Load a checkpoint's state; False (and a message) when it does not fit the model."""
    try:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
    except (RuntimeError, KeyError, ValueError) as exc:
        log.warning("checkpoint %s does not fit the model (%s): training from scratch", path, exc)
        return False
    torch.set_rng_state(ckpt["rng_cpu"])
    if device.type == "cuda" and ckpt.get("rng_cuda") is not None:
        torch.cuda.set_rng_state(ckpt["rng_cuda"], device)
    return True


def fit(
    cfg: ModelConfig,
    corpus: Any,
    *,
    device: torch.device | str = "cpu",
    amp: bool = False,
    checkpoint: Path | None = None,
    stop_after: int | None = None,
    progress: bool | None = None,
    name: str = "model",
    live: Path | None = None,
) -> FitResult:
    """Train ``cfg.family`` on ``corpus.train``, validating on ``corpus.validation`` each epoch.

    ``checkpoint``: resume from / save to this file every epoch (None: neither).
    ``stop_after``: stop after this many epochs in this call, as an interruption would.
    ``progress``: tqdm bar per epoch on stderr (None: only on a terminal).
    ``live``: a DVCLive directory (``dvclive/<model>``) to log each epoch into (rank 0 only);
    resuming from ``checkpoint`` continues its curves from the checkpoint's history, a fresh
    start clears it. DVCLive only observes: the training is the same with or without it.
    Under ``torchrun`` (a process group initialised, see ``pipelines.cli.ddp_train``) the model
    is wrapped in ``DistributedDataParallel``, every rank trains on its share of each batch,
    and only rank 0 writes the checkpoint.
    """
    log = logger("pipelines.flows.train")
    device = torch.device(device)
    amp_dtype = dev.amp_dtype(device, amp)
    rank, size = world()
    task_ = tasks.get(corpus.task)
    corpus = task_.prepare(cfg, corpus)
    job = task_.make_job(cfg, corpus, device, amp_dtype, rank, size)
    spec = corpus.spec
    key = f"val_{task_.monitor}"

    def build() -> tuple[torch.nn.Module, torch.nn.Module, torch.optim.Optimizer, Any]:
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.family, cfg, spec).to(device)
        net = model
        if size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # an adaptive softmax's tail clusters get no gradient in a batch without their words
            net = DDP(
                model,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=getattr(cfg, "softmax", "full") == "adaptive",
            )
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        return model, net, opt, scheduler(opt, cfg)

    model, net, opt, sched = build()
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    fp = train_fingerprint(cfg, corpus, spec)
    history: list[dict[str, Any]] = []
    start = 0
    best: dict[str, Any] = {"epoch": None, "state": None}
    ckpt = (
        _load_checkpoint(checkpoint, fp, code_hash("train", cfg.kind), cfg.epochs, log)
        if checkpoint
        else None
    )
    if (
        ckpt is not None
        and checkpoint is not None
        and not _resume(ckpt, checkpoint, model, opt, sched, scaler, device, log)
    ):
        model, net, opt, sched = build()  # a half-loaded state is no start: from the seed
        ckpt = None
    if ckpt is not None:
        start, history = int(ckpt["epoch"]), list(ckpt["history"])
        best = dict(ckpt.get("best") or best)
        log.info("%s: resuming from %s after epoch %d", name, checkpoint, start)

    amp_name = str(amp_dtype).removeprefix("torch.") if amp_dtype else None
    columns = curve_columns(task_.name)
    dvclive = None
    if live is not None and rank == 0:
        dvclive = L.open_live(live, resume=bool(history))
        L.log_params(
            dvclive, cfg.model_dump(), run_facts(name, cfg, task_.name, str(device), amp_name)
        )
        if history:  # the checkpoint's record, whatever the directory held (or lost)
            L.relog(dvclive, history, columns)

    began = time.perf_counter()
    if start == 0 and getattr(cfg, "pretrain", None) is not None:
        pretrained = pretrain(cfg, job, net, model, scaler, device, progress, rank, name, log)
    else:  # resumed: the checkpoint's weights already hold it
        pretrained = dict(ckpt.get("pretrain") or {}) if ckpt is not None else {}
    done_here = 0
    for epoch in range(start, cfg.epochs):
        if stop_after is not None and done_here >= stop_after:
            break
        t0 = time.perf_counter()
        gen = D.epoch_generator(cfg.seed, epoch)
        model.train()
        total, count = run_steps(
            job.losses(net, epoch, gen),
            epoch_bar(job.num_batches(), f"{name} epoch {epoch + 1}/{cfg.epochs}", progress, rank),
            model,
            opt,
            scaler,
            cfg.grad_clip,
            device,
            log if rank == 0 else None,
        )
        sched.step()
        val = job.validate(model)
        row = {
            "epoch": epoch + 1,
            "train_loss": float(total) / max(count, 1),
            "val_loss": val["loss"],
            key: val[task_.monitor],
            "seconds": round(time.perf_counter() - t0, 3),
        }
        history.append(row)
        done_here += 1
        if _better(
            row[key],
            history[best["epoch"] - 1][key] if best["epoch"] else None,
            higher=scoring.higher_is_better(key),
        ):
            best = {
                "epoch": epoch + 1,
                "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            }
        log.info(
            "%s epoch %d/%d: train_loss %.4f val_loss %.4f %s %.4f (%.1fs)",
            name,
            row["epoch"],
            cfg.epochs,
            row["train_loss"],
            row["val_loss"],
            key,
            row[key],
            row["seconds"],
        )
        if dvclive is not None:
            L.log_epoch(dvclive, row, columns)
        if checkpoint is not None and rank == 0:
            save_torch(
                checkpoint,
                {
                    "fingerprint": fp,
                    "code": code_hash("train", cfg.kind),
                    "epoch": epoch + 1,
                    "history": history,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "best": best,
                    "pretrain": pretrained,
                    "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                    "rng_cpu": torch.get_rng_state(),
                    "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                },
            )
    if getattr(cfg, "negative", None) is not None and len(history) >= cfg.epochs:
        if cfg.keep == "best" and best["state"] is not None:
            model.load_state_dict(best["state"])  # from the kept weights
        for row in negative(cfg, job, model, scaler, device, progress, name, log):
            history.append(row)
            if dvclive is not None:
                L.log_epoch(dvclive, row, columns)
        best = {"epoch": len(history), "state": None}  # its last weights are the model
    return FitResult(
        model=model,
        history=history,
        device=str(device),
        amp=amp_name,
        resumed_from=start,
        seconds=time.perf_counter() - began,
        complete=len(history) >= cfg.epochs,
        best_epoch=best["epoch"],
        best_state=best["state"],
        spec=spec,
        n_train=job.n_train,
        n_validation=job.n_validation,
        pretrain=pretrained,
    )


def _better(value: float, incumbent: float | None, higher: bool) -> bool:
    """Strictly better (ties keep the earlier epoch); NaN never wins."""
    if math.isnan(value):
        return False
    if incumbent is None or math.isnan(incumbent):
        return True
    return value > incumbent if higher else value < incumbent
