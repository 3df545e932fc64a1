"""What a stage's flow run tells its watcher: progress lines during long epochs, the run's name
and tags (model, task, family, commit), and the evaluate artifact's metric rows."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import torch

from pipelines import lineage
from pipelines import steps as T
from pipelines.flows import evaluate as E


class Lines:
    """A logger that keeps its formatted info lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str, *args: Any) -> None:
        self.lines.append(msg % args)


def _losses(model: torch.nn.Module, n: int):
    x = torch.ones(4, 3)
    for _ in range(n):
        loss = model(x).pow(2).mean()
        yield loss, loss.detach() * 4, 4


def test_an_epoch_logs_progress_while_it_runs(monkeypatch) -> None:
    monkeypatch.setattr(T, "PROGRESS_EVERY", 0.0)  # every batch, so the test needs no clock
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    log = Lines()
    bar = T.epoch_bar(3, "m pretrain 1/2", progress=False, rank=0)
    total, count = T.run_steps(_losses(model, 3), bar, model, opt, scaler, 0.0, "cpu", log)
    assert count == 12 and float(total) > 0
    assert [ln.split(",")[0] for ln in log.lines] == [
        "m pretrain 1/2: batch 1/3",
        "m pretrain 1/2: batch 2/3",
        "m pretrain 1/2: batch 3/3",
    ]
    assert log.lines[-1].endswith("about 0 s left in this epoch"), log.lines
    # the mean loss of the batches done so far: after the last batch, the epoch's own
    assert log.lines[-1].split(", ")[1] == f"loss {float(total) / count:.4f} so far", log.lines


def test_stage_runs_are_named_and_tagged_by_model_and_commit(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "params.yaml").write_text("train:\n  models:\n    m1: {corpus: c1, family: mlp}\n")
    (tmp_path / "data" / "05_tokens" / "c1").mkdir(parents=True)
    (tmp_path / "data" / "05_tokens" / "c1" / "spec.json").write_text(json.dumps({"task": "x"}))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty",
         "-m", "one"],
        cwd=tmp_path,
        check=True,
    )  # fmt: skip
    sha = lineage.short_commit(tmp_path)
    assert len(sha) == 7
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(lineage, "run_stage_flow", lambda flow, **kw: calls.append(kw))

    class Flow:
        name = "train"

    lineage.stage_main(Flow, "doc", ["m1", "--root", str(tmp_path)])
    lineage.stage_main(Flow, "doc", ["nope", "--root", str(tmp_path)])
    assert calls[0]["run_name"] == f"train-m1-{sha}"
    assert calls[0]["run_tags"] == ["model:m1", "task:x", "family:mlp", f"commit:{sha}"]
    assert calls[0]["model"] == "m1" and calls[0]["root"] == str(tmp_path)
    # a model the params lack: no task or family to tell, and the flow says what is wrong
    assert calls[1]["run_tags"] == ["model:nope", f"commit:{sha}"]
    assert lineage.short_commit(tmp_path / "data") == sha
    assert lineage.short_commit(Path("/")) == "nogit"


def test_evaluate_artifact_rows_put_test_beside_validation() -> None:
    metrics = {
        "model": "m",
        "task": "translate",
        "test": {"n": 10, "bleu": 21.5, "greedy": {"bleu": 20.0}, "signature": "nrefs:1"},
        "validation": {"n": 5, "bleu": 19.0},
    }
    assert E.metric_rows(metrics) == [
        {"metric": "n", "test": 10, "validation": 5},
        {"metric": "bleu", "test": 21.5, "validation": 19.0},
        {"metric": "greedy.bleu", "test": 20.0, "validation": None},
    ]
