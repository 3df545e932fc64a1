"""Train one model of ``train.models`` in params.yaml: the ``train`` DVC stage as a Prefect flow.

    rnnflow train mnist_cnn     # or: python -m pipelines.flows.train mnist_cnn; --help

Reads ``data/05_tokens/<corpus>/``; writes ``models/<model>/model.pt`` (the weights of the best
validation epoch, or of the last with ``keep: last``; atomically) and logs through DVCLive into
``dvclive/<model>/`` (:mod:`pipelines.live`): every epoch's ``train_loss``, ``val_loss``,
``val_<monitor>`` and ``seconds`` as curves while training runs, the config and the run's facts
as params, and the final numbers (saved epoch, wall time, parameters, …) in ``metrics.json``.
Every epoch ends with ``checkpoints/<model>/last.pt`` (weights, optimizer, scaler, RNG,
history); a rerun with a matching fingerprint resumes after the last finished epoch — the
DVCLive curves continue from the checkpoint's history — and, on CPU with the same seed, ends
with exactly the weights and curves of an uninterrupted run.

The flow is coarse on purpose (STACK.md: a task costs a server round trip): load → fit → save.
Everything that depends on the corpus task comes from the task (``pipelines/tasks/``, found by
``spec["task"]``): how the corpus is loaded and prepared, the *job* that runs an epoch
(:class:`~pipelines.tasks.tensor.TensorJob` for the fixed-shape corpora, BPTT or seq2seq jobs
for the text models), the validation metric tracked per epoch, and what is saved beside the
weights (the text tasks' tokenizer). Data-parallel on several processes:
``torchrun --nproc_per_node=N -m pipelines.cli.ddp_train <model>`` (the same ``fit``).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

import rnnflow  # noqa: F401,I001  first: offline/telemetry env before Prefect reads it
from pipelines import data as D
from pipelines import device as dev
from pipelines import live as L
from pipelines import tasks
from pipelines.config import DECODE_FIELDS, Layout, ModelConfig, TrainConfig
from pipelines.integrity import code_hash, verify
from pipelines.lineage import artifact_key, publish_markdown, publish_table, stage_main
from pipelines.metrics import scoring
from pipelines.models import build_model
from pipelines.outputs import logger, save_torch
from pipelines.tasks.tensor import VAL_BATCH, Corpus, TensorJob  # noqa: F401  (re-exported)
from rnnflow.config import load_params, parse
from rnnflow.io import write_json


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


# --- training ---------------------------------------------------------------------------


def train_fingerprint(cfg: ModelConfig, corpus: Any, spec: dict[str, Any] | None = None) -> str:
    """What a checkpoint must match to be resumed: the model's params, the spec, the data and
    the training code (:func:`pipelines.integrity.code_hash`: the files dvc.yaml lists).

    ``epochs`` is left out when the schedule does not depend on it, so a run can be extended
    (or finished after an interruption) with more epochs; ``keep`` only picks what is saved,
    and the decoding fields (beam, sampling, prompts) only change evaluation.
    """
    exclude = {"keep"} | DECODE_FIELDS | ({"epochs"} if cfg.schedule == "constant" else set())
    return D.fingerprint(
        cfg.model_dump(exclude=exclude), spec or corpus.spec, corpus.files, code_hash("train")
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


def _scheduler(opt: torch.optim.Optimizer, cfg: ModelConfig):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def _load_checkpoint(path: Path, fp: str, epochs: int, log) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or from an incompatible version
        log.warning("checkpoint %s unreadable (%s): starting fresh", path, exc)
        return None
    if ckpt.get("code") != code_hash("train"):
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
        return model, net, opt, _scheduler(opt, cfg)

    model, net, opt, sched = build()
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    fp = train_fingerprint(cfg, corpus, spec)
    history: list[dict[str, Any]] = []
    start = 0
    best: dict[str, Any] = {"epoch": None, "state": None}
    ckpt = _load_checkpoint(checkpoint, fp, cfg.epochs, log) if checkpoint else None
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
        pretrained = _pretrain(cfg, job, net, model, scaler, device, progress, rank, name, log)
    else:  # resumed: the checkpoint's weights already hold it
        pretrained = dict(ckpt.get("pretrain") or {}) if ckpt is not None else {}
    done_here = 0
    for epoch in range(start, cfg.epochs):
        if stop_after is not None and done_here >= stop_after:
            break
        t0 = time.perf_counter()
        gen = D.epoch_generator(cfg.seed, epoch)
        model.train()
        total, count = _steps(
            job.losses(net, epoch, gen),
            _bar(job.num_batches(), f"{name} epoch {epoch + 1}/{cfg.epochs}", progress, rank),
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
                    "code": code_hash("train"),
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


def _bar(total: int, desc: str, progress: bool | None, rank: int) -> dict[str, Any]:
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


def _steps(
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


def _pretrain(
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
    pre = cfg.pretrain
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
        summed, n = _steps(
            job.pretrain_losses(net, gen),
            _bar(job.pretrain_batches(), f"{name} pretrain {e + 1}/{pre.epochs}", progress, rank),
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


def _better(value: float, incumbent: float | None, higher: bool) -> bool:
    """Strictly better (ties keep the earlier epoch); NaN never wins."""
    if math.isnan(value):
        return False
    if incumbent is None or math.isnan(incumbent):
        return True
    return value > incumbent if higher else value < incumbent


def save_outputs(
    layout: Layout, name: str, cfg: ModelConfig, corpus: Any, result: FitResult
) -> dict[str, Any]:
    """``model.pt``, and the run's final numbers into ``dvclive/<model>/``; returns the flat
    record (:func:`pipelines.live.flatten`: what ``<model>_train.json`` held before DVCLive)."""
    spec = result.spec or corpus.spec
    task_ = tasks.for_spec(spec)
    saved = {
        "name": name,
        "family": cfg.family,
        "config": cfg.model_dump(),
        "spec": spec,
        "state_dict": result.state_dict(cfg.keep),
        "torch": str(torch.__version__),
        **task_.saved_extras(corpus),
    }  # text: the tokenizer (CLIs need no data/)
    save_torch(layout.model(name), saved)
    chosen = result.selected(cfg.keep)
    key = f"val_{task_.monitor}"
    summary = {
        "epochs": len(result.history),
        "saved_epoch": chosen.get("epoch"),
        "saved": {k: chosen.get(k) for k in ("train_loss", "val_loss", key)},
        "resumed_from_epoch": result.resumed_from,
        "n_train": result.n_train,
        "n_validation": result.n_validation,
        "parameters": sum(p.numel() for p in result.model.parameters()),
    }
    if result.pretrain:
        summary["pretrain"] = {k: result.pretrain[k] for k in ("batches", "tokens")}
    facts = run_facts(name, cfg, task_.name, result.device, result.amp)
    # Reopened on what fit logged; the curves are rewritten from the result's history, so the
    # directory is complete even when fit ran without it (a DDP dump, a test).
    live = L.open_live(layout.live(name), resume=True)
    L.log_params(live, cfg.model_dump(), facts)
    L.relog(live, result.history, curve_columns(task_.name))
    L.finish(live, summary)
    timings = write_timings(layout.timings(name), result, facts)
    return {**L.flatten(live.summary, {**facts, "config": cfg.model_dump()}), **timings}


def write_timings(path: Path, result: FitResult, facts: dict[str, Any]) -> dict[str, Any]:
    """The run's wall times beside the machine that made them, at ``path``; returns them."""
    pretrain = (result.pretrain or {}).get("seconds", 0)
    timings = {
        "wall_seconds": round(sum(r["seconds"] for r in result.history) + pretrain, 3),
        "run_seconds": round(result.seconds, 3),
        "pretrain_seconds": pretrain,
        "epoch_seconds": [r["seconds"] for r in result.history],
    }
    write_json(path, {**{k: facts.get(k) for k in ("model", "device", "torch")}, **timings})
    return timings


# --- flow -------------------------------------------------------------------------------


@task(cache_policy=NO_CACHE)
def load_data(directory: Path) -> Any:
    """Train + validation splits of one corpus, as its task loads them."""
    return tasks.load_corpus(directory)


@task(cache_policy=NO_CACHE)
def fit_model(
    name: str,
    cfg: ModelConfig,
    corpus: Any,
    device: str,
    amp: bool,
    checkpoint: Path,
    live: Path | None = None,
) -> FitResult:
    """The whole training loop (one task: per-batch tasks would cost a round trip each)."""
    return fit(cfg, corpus, device=device, amp=amp, checkpoint=checkpoint, name=name, live=live)


@task(cache_policy=NO_CACHE)
def save(
    layout: Layout, name: str, cfg: ModelConfig, corpus: Any, result: FitResult
) -> dict[str, Any]:
    """Write the stage outputs."""
    return save_outputs(layout, name, cfg, corpus, result)


@task(cache_policy=NO_CACHE)
def fit_distributed(layout: Layout, name: str, cfg: ModelConfig, params_path: str) -> None:
    """``cfg.nproc`` training processes through ``torch.distributed.run`` (per machine; with
    ``nnodes`` > 1 every machine runs this stage against one rendezvous). Each runs
    :mod:`pipelines.cli.ddp_train`; rank 0 writes the stage outputs, as :func:`save` does."""
    import subprocess

    where = (
        ["--rdzv_backend=c10d", f"--rdzv_endpoint={cfg.rdzv_endpoint}"]
        if cfg.rdzv_endpoint
        else ["--standalone"]
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={cfg.nproc}",
        f"--nnodes={cfg.nnodes}",
        *where,
        "-m",
        "pipelines.cli.ddp_train",
        name,
        "--root",
        str(layout.root),
        "--params",
        str(params_path),
    ]
    logger("pipelines.flows.train").info("%s: %s", name, " ".join(cmd[1:]))
    code = subprocess.run(cmd, cwd=layout.root).returncode
    if code:
        raise RuntimeError(
            f"{name}: torch.distributed.run exited with {code} (the ranks' output is above)"
        )


@flow(name="train")
def train(model: str, params_path: str = "params.yaml", root: str | None = None) -> dict[str, Any]:
    """Train ``model`` (a key of ``train.models``) and write its outputs under ``root``."""
    layout = Layout(Path(root)) if root else Layout()
    tcfg = parse(TrainConfig, load_params(layout.params(params_path)), "train")
    cfg = tcfg.model(model)
    device = dev.resolve(tcfg.device)
    dev.configure(device, tcfg.threads)
    verify(layout.tokens(cfg.corpus), layout.root)
    if cfg.nproc > 1 or cfg.nnodes > 1:
        fit_distributed(layout, model, cfg, params_path)
        record = L.train_metrics(layout.live(model)) or {}
        timings = json.loads(layout.timings(model).read_text())
        metrics = {**record, **{k: v for k, v in timings.items() if k.endswith("seconds")}}
        publish_run(model, cfg, L.history(layout.live(model)), metrics)
        return metrics
    corpus = load_data(layout.tokens(cfg.corpus))
    result = fit_model(
        model, cfg, corpus, str(device), tcfg.amp, layout.checkpoint(model), layout.live(model)
    )
    metrics = save(layout, model, cfg, corpus, result)
    publish_run(model, cfg, result.history, metrics)
    return metrics


def publish_run(
    name: str, cfg: ModelConfig, history: list[dict[str, Any]], metrics: dict[str, Any]
) -> None:
    """The run in the Prefect UI: one table row per epoch, and what was saved and where."""
    publish_table(
        [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in history],
        artifact_key("train", name),
        f"train {name}: one row per epoch",
    )
    facts = [
        ("model", f"`models/{name}/model.pt` ({cfg.family}, {metrics['parameters']:,} parameters)"),
        ("saved epoch", f"{metrics['saved_epoch']} of {metrics['epochs']} (`keep: {cfg.keep}`)"),
        ("wall time", f"{metrics['wall_seconds']:.0f} s on {metrics.get('device', '?')}"),
        ("examples", f"{metrics['n_train']:,} train, {metrics['n_validation']:,} validation"),
        ("curves", f"`dvclive/{name}/plots/metrics/` — `dvc plots show dvclive/{name}`"),
    ]
    publish_markdown(
        f"# train {name}\n\n| | |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in facts),
        artifact_key("train", name, "summary"),
        f"train {name}: saved model and where its curves are",
    )


def main(argv: list[str] | None = None) -> int:
    metrics = stage_main(train, __doc__, argv)
    print({k: metrics[k] for k in ("model", "epochs", "val_loss", "wall_seconds", "device")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
