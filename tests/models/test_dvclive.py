"""DVCLive in training: the files it writes, and DVC reading them (`dvc exp show`,
`dvc metrics show`, `dvc plots show/diff`) in a small temporary DVC project whose `train`
stage is the one of this project's dvc.yaml."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from pipelines import live as L
from pipelines import tasks
from pipelines.config import Layout, model_config
from tests import synthetic
from tests.conftest import PROJECT_ROOT, copy_checkout, project_env
from tests.conftest import sh as run

TINY = dict(corpus="digits", family="cnn", epochs=2, batch_size=64, lr=0.01, seed=0)


def test_files_dvclive_writes_after_a_tiny_training(tmp_path):
    from pipelines.flows.train import save_outputs
    from pipelines.training import fit

    corpus = tasks.load_corpus(synthetic.write(tmp_path / "tok/digits", "images", n=300))
    cfg = model_config(**TINY)
    layout = Layout(tmp_path)
    result = fit(cfg, corpus, progress=False, live=layout.live("tiny"), name="tiny")
    record = save_outputs(layout, "tiny", cfg, corpus, result)

    live = tmp_path / "dvclive/tiny"
    assert sorted(p.relative_to(live).as_posix() for p in live.rglob("*") if p.is_file()) == [
        "metrics.json",
        "params.yaml",
        "plots/metrics/train_loss.tsv",
        "plots/metrics/val_accuracy.tsv",
        "plots/metrics/val_loss.tsv",
    ]  # no dvc.yaml of its own, no report
    with open(live / "plots/metrics/val_accuracy.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [r["step"] for r in rows] == ["1", "2"]
    assert [float(r["val_accuracy"]) for r in rows] == [h["val_accuracy"] for h in result.history]

    summary = json.loads((live / "metrics.json").read_text())
    best = result.selected("best")
    assert summary["saved_epoch"] == best["epoch"] and summary["epochs"] == summary["step"] == 2
    assert summary["saved"] == {k: best[k] for k in ("train_loss", "val_loss", "val_accuracy")}
    assert summary["val_loss"] == result.history[-1]["val_loss"]  # the curves' last values
    assert {"parameters", "n_train", "n_validation"} <= set(summary)
    # timings move on every run: beside the record, not in it
    assert not [k for k in json.dumps(summary).split('"') if "seconds" in k], summary
    timings = json.loads((tmp_path / "reports/timings/tiny.json").read_text())
    assert timings["wall_seconds"] > 0 and len(timings["epoch_seconds"]) == 2
    assert timings["device"] == "cpu" and record["wall_seconds"] == timings["wall_seconds"]
    assert all(isinstance(v, (int, float, dict)) for v in summary.values())  # numbers only

    params = L._yaml((live / "params.yaml").read_text())
    assert params["device"] == "cpu" and params["family"] == "cnn" and params["task"] == "classify"
    assert params["config"]["lr"] == 0.01 and params["config"]["epochs"] == 2
    assert {k: v for k, v in record.items() if not k.endswith("seconds")} == L.train_metrics(live)
    assert record["val_accuracy"] == best["val_accuracy"]
    assert record["last_val_accuracy"] == result.history[-1]["val_accuracy"]
    assert [r["epoch"] for r in L.history(live)] == [1, 2]


# --- DVC reads what DVCLive wrote -------------------------------------------------------

PARAMS = """\
train:
  device: cpu
  threads: 1
  amp: false
  models:
    tiny: {corpus: digits, family: cnn, epochs: 2, batch_size: 64, lr: 0.01, seed: 0}
"""


def sh(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    return run(args, cwd, env, timeout=600, stderr=False)  # stdout: JSON is read from it


def train_stage_only(dvc_yaml: str, root: Path) -> str:
    """This project's dvc.yaml with its ``train`` stage only (same cmd, deps, outs), over the
    models of ``root/params.yaml``."""
    from ruamel.yaml import YAML

    from rnnflow.deps import model_vars

    data = YAML(typ="safe").load(dvc_yaml)
    train = data["stages"]["train"]
    train["do"]["deps"] = [d for d in train["do"]["deps"] if not d.startswith("data/")] + [
        "data/05_tokens/${item.corpus}"
    ]
    doc = {"vars": [{"models": model_vars(root)}], "stages": {"train": train}}
    return json.dumps(doc, indent=1)  # JSON is YAML


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = copy_checkout(tmp_path_factory.mktemp("live") / "proj")
    (root / "params.yaml").write_text(PARAMS)
    (root / "dvc.yaml").write_text(train_stage_only((PROJECT_ROOT / "dvc.yaml").read_text(), root))
    synthetic.write(root / "data/05_tokens/digits", "images", n=300)
    env = project_env(PREFECT_HOME=str(root / ".prefect"), PYTHONPATH=str(root))
    for key in ("PREFECT_API_URL", "DVC_STUDIO_OFFLINE"):  # .dvc/config alone keeps it off
        env.pop(key, None)
    sh(["git", "init", "-q"], root, env)
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "tiny project"], root, env)
    return root, env


@pytest.mark.slow
def test_dvc_reads_dvclive_outputs(project):
    root, env = project
    dvc_yaml = (root / "dvc.yaml").read_bytes()
    sh(["dvc", "repro", "train@tiny"], root, env)
    assert (root / "dvc.yaml").read_bytes() == dvc_yaml  # DVCLive never writes it
    assert not list((root / "dvclive").rglob("dvc.yaml"))

    tiny = json.loads((root / "dvclive/tiny/metrics.json").read_text())
    assert 0 <= tiny["saved"]["val_accuracy"] <= 1 and tiny["epochs"] == 2
    # the training summary is an output, not a DVC metric (model quality is evaluate's)
    assert "dvclive/tiny" not in sh(["dvc", "metrics", "show", "--json"], root, env)

    plots = json.loads(sh(["dvc", "plots", "show", "--json"], root, env))
    names = json.dumps(plots)
    for curve in ("train_loss", "val_loss", "val_accuracy"):
        assert f"dvclive/tiny/plots/metrics/{curve}.tsv" in names

    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "trained"], root, env)
    # an experiment: DVCLive saves none of its own and stages nothing in git
    sh(["dvc", "exp", "run", "-n", "lr2", "-S", "train.models.tiny.lr=0.02"], root, env)
    assert sh(["git", "diff", "--cached", "--name-only"], root, env) == ""
    assert (root / "dvc.yaml").read_bytes() == dvc_yaml
    exps = json.loads(sh(["dvc", "exp", "show", "--json"], root, env))
    seen = {}
    for base in exps:
        rows = [base] + [e for exp in base.get("experiments") or [] for e in exp["revs"]]
        for row in rows:
            params = ((row.get("data") or {}).get("params") or {}).get("params.yaml") or {}
            models = ((params.get("data") or {}).get("train") or {}).get("models") or {}
            if "tiny" in models:
                seen[row.get("name") or row["rev"]] = models["tiny"]["lr"]
    assert seen.get("lr2") == 0.02 and len(seen) >= 2, seen  # the baseline and the experiment
    diff = json.loads(sh(["dvc", "plots", "diff", "HEAD", "--json"], root, env))
    assert "dvclive/tiny/plots/metrics/val_loss.tsv" in json.dumps(diff)


def test_outside_a_dvc_project_dvclive_inits_nothing(tmp_path, monkeypatch):
    """Run from a git repository without DVC: DVCLive logs, and `dvc init`s nothing."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    live = L.open_live(tmp_path / "dvclive/m", resume=False)
    L.log_epoch(live, {"epoch": 1, "val_loss": 0.5}, ["val_loss"])
    L.finish(live, {"epochs": 1})
    assert not (tmp_path / ".dvc").exists()
    assert L.history(tmp_path / "dvclive/m") == [{"epoch": 1, "val_loss": 0.5}]
