"""Data-parallel training (``torch.distributed.run``, gloo on CPU) of a toy translator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from pipelines import live as L
from pipelines.cli.ddp_train import state_checksums
from pipelines.config import model_config
from pipelines.models import build_model
from rnnflow.env import PROJECT_ROOT
from tests.models.conftest import CFGS
from tests.textdata import write_text_corpus


def ddp_root(tmp_path: Path, model: dict[str, Any]) -> Path:
    """A project root holding the toy translate corpus's tokens and a params.yaml that trains
    ``model`` as ``toy`` on the CPU, one torch thread a process."""
    root = tmp_path / "root"
    write_text_corpus(root / "data/05_tokens/translate", "translate")
    (root / "params.yaml").write_text(
        json.dumps({"train": {"device": "cpu", "threads": 1, "models": {"toy": model}}})
    )
    return root


def test_two_process_ddp_keeps_replicas_identical(tmp_path):
    """torchrun, 2 processes, gloo on CPU, 3 steps: both ranks end with identical weights,
    which moved from the start, and rank 0 wrote the model."""
    model = {
        **CFGS["translate"],
        "epochs": 1,
        "max_batches": 3,
        "dropout": 0.1,
        "softmax": "adaptive",
        "cutoffs": [8],
    }
    root = ddp_root(tmp_path, model)
    dump = tmp_path / "dump"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--standalone",
            "-m",
            "pipelines.cli.ddp_train",
            "toy",
            "--root",
            str(root),
            "--dump",
            str(dump),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=str(PROJECT_ROOT),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0, r1 = (json.loads((dump / f"rank{k}.json").read_text()) for k in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["checksums"] == r1["checksums"]
    saved = torch.load(root / "models/toy/model.pt", weights_only=True)
    torch.manual_seed(0)  # fit's seed: the weights every rank started from
    start = build_model("seq2seq", model_config(**model), saved["spec"])

    moved = state_checksums(start)
    assert moved.keys() == r0["checksums"].keys()
    assert sum(moved[k] != r0["checksums"][k] for k in moved) > len(moved) // 2
    assert (root / "checkpoints/toy/last.pt").exists()


def test_train_stage_with_nproc_2_trains_in_two_processes(tmp_path):
    """`nproc: 2` in the model's params: the train flow itself launches two gloo ranks, and the
    outputs the stage declares (model, DVCLive record) are theirs."""
    from prefect.testing.utilities import prefect_test_harness

    from pipelines.flows.train import train

    model = {**CFGS["translate"], "epochs": 1, "max_batches": 3, "nproc": 2}
    root = ddp_root(tmp_path, model)
    with prefect_test_harness(server_startup_timeout=120):
        metrics = train("toy", root=str(root))
    params = L._yaml((root / "dvclive/toy/params.yaml").read_text())
    assert params["world"] == 2  # written by rank 0 of a two-process group
    assert "nproc" not in params["config"]  # how it ran is not what it trained
    saved = torch.load(root / "models/toy/model.pt", weights_only=True)
    assert saved["name"] == "toy" and metrics["epochs"] == 1 and metrics["wall_seconds"] > 0
