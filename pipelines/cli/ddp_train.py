"""One rank of data-parallel training: what the train stage launches when its model has
``nproc`` > 1 (``train.models.<m>.nproc`` in params.yaml; ``nnodes``/``rdzv_endpoint`` for
several machines), through the standard launcher:

    python -m torch.distributed.run --nproc_per_node=2 --standalone \
        -m pipelines.cli.ddp_train books_lm

Every process loads the corpus and builds the same model (same seed); ``fit`` wraps it in
``DistributedDataParallel`` (gloo on CPU, NCCL on CUDA: one GPU per local rank) and each rank
trains on rows ``rank::world`` of every batch, so a global batch is ``batch_size`` as in a
single process. Rank 0 writes the checkpoint (resume works as in ``pipelines.flows.train``) and the
stage outputs (``models/<model>/model.pt``, DVCLive record, timings). ``--dump DIR`` makes
every rank write ``DIR/rank<k>.json`` with a checksum per parameter (the replica test)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

import rnnflow  # noqa: F401,I001  first: offline/telemetry env defaults
from pipelines import device as dev
from pipelines import tasks
from pipelines.config import Layout, TrainConfig
from pipelines.flows.train import save_outputs
from pipelines.training import fit
from rnnflow.config import load_params, parse


def state_checksums(model: torch.nn.Module) -> dict[str, str]:
    """sha256 of every tensor's bytes in the state dict (identical replicas ⇔ equal dicts)."""
    return {
        k: hashlib.sha256(v.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
        for k, v in model.state_dict().items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m torch.distributed.run --nproc_per_node=N -m pipelines.cli.ddp_train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="model name: a key of train.models in the params file")
    parser.add_argument(
        "--params",
        default="params.yaml",
        help="params file, relative to the root (default: %(default)s)",
    )
    parser.add_argument("--root", default=None, help="project root (default: this checkout)")
    parser.add_argument("--epochs", type=int, default=None, help="override train.models.<m>.epochs")
    parser.add_argument(
        "--max-batches", type=int, default=None, help="override max_batches (batches per epoch)"
    )
    parser.add_argument(
        "--no-checkpoint",
        action="store_true",
        help="neither resume from nor write checkpoints/<model>/last.pt",
    )
    parser.add_argument(
        "--dump",
        default=None,
        help="directory: each rank writes rank<k>.json with parameter checksums",
    )
    args = parser.parse_args(argv)

    layout = Layout(Path(args.root)) if args.root else Layout()
    tcfg = parse(TrainConfig, load_params(layout.params(args.params)), "train")
    cfg = tcfg.model(args.model)
    update = {
        k: v
        for k, v in (("epochs", args.epochs), ("max_batches", args.max_batches))
        if v is not None
    }
    cfg = cfg.model_copy(update=update) if update else cfg

    device = dev.resolve(tcfg.device)
    local = int(os.environ.get("LOCAL_RANK", 0))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    dev.configure(device, tcfg.threads)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        corpus = tasks.load_corpus(layout.tokens(cfg.corpus))
        result = fit(
            cfg,
            corpus,
            device=device,
            amp=tcfg.amp,
            checkpoint=None if args.no_checkpoint else layout.checkpoint(args.model),
            name=f"{args.model}[{rank}/{world}]",
            progress=False,
            live=layout.live(args.model),  # rank 0 logs
        )
        if args.dump:
            out = Path(args.dump)
            out.mkdir(parents=True, exist_ok=True)
            (out / f"rank{rank}.json").write_text(
                json.dumps(
                    {
                        "rank": rank,
                        "world": world,
                        "checksums": state_checksums(result.model),
                        "history": result.history,
                    }
                )
            )
        if rank == 0:
            metrics = save_outputs(layout, args.model, cfg, corpus, result)
            print(
                {k: metrics[k] for k in ("model", "epochs", "val_loss", "wall_seconds")},
                f"world={world}",
            )
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
