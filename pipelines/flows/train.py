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
Everything that depends on the corpus task comes from the task (:mod:`pipelines.tasks`, found by
``spec["task"]``): how the corpus is loaded and prepared, the *job* that runs an epoch
(:class:`~pipelines.tensor.TensorJob` for the fixed-shape corpora, BPTT or seq2seq jobs
for the text models), the validation metric tracked per epoch, and what is saved beside the
weights (the text tasks' tokenizer). Data-parallel on several processes:
``torchrun --nproc_per_node=N -m pipelines.cli.ddp_train <model>`` (the same ``fit``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import rnnflow  # noqa: F401,I001  first: offline/telemetry env before Prefect reads it
from pipelines import device as dev
from pipelines import live as L
from pipelines import tasks
from pipelines.config import Layout, ModelConfig, TrainConfig
from pipelines.integrity import verify
from pipelines.lineage import artifact_key, publish_markdown, publish_table, stage_main
from pipelines.outputs import logger, save_torch
from pipelines.training import FitResult, curve_columns, fit, run_facts
from rnnflow.config import load_params, parse
from rnnflow.io import write_json


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
