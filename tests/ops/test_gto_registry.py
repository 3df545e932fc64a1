"""The champion registry is Git tags (GTO).

Each test works in a throw-away git repository holding the project's real ``dvc.yaml`` and a
params.yaml, with a stub ``dvc.lock`` and ``metrics/<model>.json`` standing in for what
``dvc repro evaluate@<model>`` leaves: the judging and registering steps run for real
(``evaluate_and_record`` without the Prefect engine), no training runs. What they create is
checked through ``git tag -l``, ``gto show --json`` and the gto API.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from pipelines.ops import judgement as J
from pipelines.ops import registry as G
from pipelines.ops import retrain as RT
from pipelines.ops import workspace as W
from rnnflow.config import load_params
from rnnflow.env import PROJECT_ROOT
from tests.conftest import write_params

MODEL = "mnist_logreg"
GTO = str(Path(sys.executable).parent / "gto")


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


def tags(root: Path) -> list[str]:
    return git(root, "tag", "-l").split()


def write_result(root: Path, lr: float, accuracy: float, model: str = MODEL) -> None:
    """What ``dvc repro evaluate@<model>`` leaves: dvc.lock and the metrics (stubs)."""
    lock = {
        "schema": "2.0",
        "stages": {
            f"train@{model}": {
                "cmd": f"python -m pipelines.flows.train {model}",
                "deps": [
                    {"path": "data/05_tokens/mnist", "md5": "d" * 32 + ".dir"},
                    {"path": "pipelines/flows/train.py", "md5": "c" * 32},
                ],
                "params": {"params.yaml": {f"train.models.{model}": {"lr": lr, "epochs": 1}}},
                "outs": [{"path": f"models/{model}", "md5": f"{int(lr * 1e6):032d}.dir"}],
            },
            f"evaluate@{model}": {
                "cmd": f"python -m pipelines.flows.evaluate {model}",
                "deps": [
                    {"path": "data/05_tokens/mnist", "md5": "d" * 32 + ".dir"},
                    {"path": f"models/{model}", "md5": f"{int(lr * 1e6):032d}.dir"},
                ],
                "params": {"params.yaml": {"evaluate": {"batch_size": 1024}}},
                "outs": [
                    {"path": f"metrics/{model}.json", "md5": "e" * 32},
                    {"path": f"reports/evaluate/{model}.json", "md5": "f" * 32},
                ],
            },
        },
    }
    with (root / "dvc.lock").open("w") as f:
        YAML().dump(lock, f)
    # the DVC metric (the headline) and the full record, which the judgement reads
    scores = {"validation": {"accuracy": accuracy}, "test": {"accuracy": accuracy - 0.01}}
    for path in (root / "metrics" / f"{model}.json", W.evaluate_record(root, model)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(scores))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed project: real dvc.yaml (with ``artifacts:``), params, a first result."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "dvc.yaml").write_text((PROJECT_ROOT / "dvc.yaml").read_text())
    write_params(root, {"retrain": {"model": MODEL, "margin": 0.01}})
    write_result(root, lr=0.003, accuracy=0.80)
    (root / ".dvc").mkdir()  # a DVC project (what `dvc init` leaves that matters here)
    (root / ".dvc" / "config").write_text(
        "[core]\n    analytics = false\n    check_update = false\n"
    )
    (root / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    git(root, "init", "-q")
    git(root, "config", "user.name", "ci")
    git(root, "config", "user.email", "ci@localhost")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "trained")
    return root


def retrain(root: Path) -> tuple[J.Verdict, list[dict]]:
    """One scheduled run's judging step (the flow body after ``dvc repro``)."""
    cfg = RT.retrain_config(load_params(root / "params.yaml"))
    _, verdict, _, history = RT.evaluate_and_record.fn(str(root), cfg, "params.yaml", "run")
    return verdict, history


def gto_show(root: Path) -> dict:
    out = subprocess.run(
        [GTO, "show", "--json"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)


def tag_message(root: Path, tag: str) -> str:
    return git(root, "tag", "-l", "--format=%(contents)", tag)


# --- promotion both ways -----------------------------------------------------------------


def test_first_and_better_challengers_get_a_version_and_the_champion_stage(repo):
    head = git(repo, "rev-parse", "HEAD")
    verdict, history = retrain(repo)
    assert verdict.decision == "promoted"
    assert tags(repo) == [f"{MODEL}#champion#1", f"{MODEL}@v0.0.1"]
    # A clean workspace: the version is HEAD itself.
    assert git(repo, "rev-parse", f"{MODEL}@v0.0.1^{{commit}}") == head
    assert history[-1]["version"] == "v0.0.1" and history[-1]["snapshot"] is False

    # A better challenger, not committed (what `dvc repro` leaves): a new version at a
    # snapshot commit of the workspace, and the champion stage moves to it.
    write_result(repo, lr=0.05, accuracy=0.90)
    verdict, history = retrain(repo)
    assert verdict.decision == "promoted" and verdict.champion_value == 0.80
    assert tags(repo) == [
        f"{MODEL}#champion#1",
        f"{MODEL}#champion#2",
        f"{MODEL}@v0.0.1",
        f"{MODEL}@v0.0.2",
    ]
    assert gto_show(repo)[MODEL] == {
        "version": "v0.0.2",
        "stage": {"champion": "v0.0.2"},
        "registered": True,
        "active": True,
    }
    snap = git(repo, "rev-parse", f"{MODEL}@v0.0.2^{{commit}}")
    assert git(repo, "rev-parse", f"{snap}^") == head  # parent: HEAD
    assert git(repo, "show", f"{snap}:dvc.lock") == (repo / "dvc.lock").read_text().strip()
    assert json.loads(git(repo, "show", f"{snap}:metrics/{MODEL}.json"))["validation"] == {
        "accuracy": 0.90
    }
    # The branch, HEAD and the working tree are untouched: still the uncommitted result.
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain", "--untracked-files=no").split() == [
        "M",
        "dvc.lock",
        "M",
        f"metrics/{MODEL}.json",
        "M",
        f"reports/evaluate/{MODEL}.json",
    ]

    # The judgement is in the annotated tags' messages...
    msg = tag_message(repo, f"{MODEL}@v0.0.2")
    for line in (
        "decision: promoted",
        "metric: validation.accuracy",
        "value: 0.9",
        "champion_value: 0.8",
        "margin: 0.01",
        "dirty: True",
    ):
        assert line in msg.splitlines(), msg
    assert "better by 0.1" in msg and "dvc_lock: sha256:" in msg
    assert "decision: promoted" in tag_message(repo, f"{MODEL}#champion#2")
    # ... and read back from them: the champion as the flow sees it, weights hash included.
    champ = RT.GitTagRegistry(repo).champion(MODEL)
    assert (champ["version"], champ["value"], champ["decision"]) == ("v0.0.2", 0.90, "promoted")
    assert champ["model_hash"] == f"{50000:032d}.dir"
    assert champ["params"][f"train.models.{MODEL}"]["lr"] == 0.05
    assert [e["version"] for e in history] == ["v0.0.1", "v0.0.2"]
    # The Prefect Markdown artifact lists the versions.
    cfg = RT.retrain_config(load_params(repo / "params.yaml"))
    cand = RT.read_candidate(repo, MODEL, cfg.metric)
    md, _ = J.report_pages(cand, verdict, history[0], cfg, [], history)
    assert md.startswith(f"# retrain {MODEL}: promoted") and "| v0.0.2 |" in md
    assert "version `v0.0.1`" in md


def test_a_worse_challenger_gets_a_version_but_not_the_champion_stage(repo):
    assert retrain(repo)[0].decision == "promoted"
    write_result(repo, lr=1e-6, accuracy=0.50)
    verdict, history = retrain(repo)
    assert verdict.decision == "rejected" and "worse by 0.3" in verdict.reason
    assert tags(repo) == [f"{MODEL}#champion#1", f"{MODEL}@v0.0.1", f"{MODEL}@v0.0.2"]
    assert gto_show(repo)[MODEL]["stage"] == {"champion": "v0.0.1"}
    assert gto_show(repo)[MODEL]["version"] == "v0.0.2"
    msg = tag_message(repo, f"{MODEL}@v0.0.2")
    assert "decision: rejected" in msg and "champion_value: 0.8" in msg
    assert RT.GitTagRegistry(repo).champion(MODEL)["version"] == "v0.0.1"
    assert [e["decision"] for e in history] == ["promoted", "rejected"]
    # Better, but not by more than the margin (0.01): rejected too.
    write_result(repo, lr=0.004, accuracy=0.805)
    assert retrain(repo)[0].decision == "rejected"
    assert gto_show(repo)[MODEL]["stage"] == {"champion": "v0.0.1"}


# --- idempotence: no new tag for a fingerprint already judged ---------------------------


def test_duplicate_and_late_runs_create_no_tag(repo):
    assert retrain(repo)[0].decision == "promoted"
    before = tags(repo)
    verdict, history = retrain(repo)  # same fingerprint as the champion
    assert verdict.decision == "no change" and tags(repo) == before and len(history) == 1

    write_result(repo, lr=1e-6, accuracy=0.50)
    assert retrain(repo)[0].decision == "rejected"
    after_reject = tags(repo)
    verdict, _ = retrain(repo)  # a duplicate scheduled run
    assert verdict.decision == "already judged" and "rejected" in verdict.reason
    write_result(repo, lr=0.05, accuracy=0.90)
    assert retrain(repo)[0].decision == "promoted"
    write_result(repo, lr=1e-6, accuracy=0.50)  # the rejected one again, after a promotion
    after = tags(repo)
    verdict, history = retrain(repo)
    assert verdict.decision == "already judged" and verdict.champion_value == 0.80
    assert tags(repo) == after and len(after) == len(after_reject) + 2
    assert [e["decision"] for e in history] == ["promoted", "rejected", "promoted"]


def test_judging_the_same_commit_twice_gives_two_versions(repo):
    """GTO allows one version per commit: the second challenger of a HEAD gets a snapshot."""
    assert retrain(repo)[0].decision == "promoted"
    write_result(repo, lr=1e-6, accuracy=0.50)
    git(repo, "commit", "-qam", "a worse result, committed")
    assert retrain(repo)[0].decision == "rejected"  # clean: at HEAD
    assert git(repo, "rev-parse", f"{MODEL}@v0.0.2^{{commit}}") == git(repo, "rev-parse", "HEAD")


# --- what reads the registry --------------------------------------------------------------


def test_a_hand_made_rollback_is_the_champion(repo):
    """``gto assign`` by hand (a rollback) wins: the latest assignment counts, not SemVer."""
    retrain(repo)
    write_result(repo, lr=0.05, accuracy=0.90)
    retrain(repo)
    subprocess.run(
        [GTO, "assign", MODEL, "--version", "v0.0.1", "--stage", "champion", "--force"],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    champ = RT.GitTagRegistry(repo).champion(MODEL)
    assert champ["version"] == "v0.0.1" and champ["value"] == 0.80


def test_dvc_finds_the_champion_through_the_artifacts_section(repo):
    import dvc.api

    retrain(repo)
    write_result(repo, lr=0.05, accuracy=0.90)
    retrain(repo)
    shown = dvc.api.artifacts_show(MODEL, stage="champion", repo=str(repo))
    assert shown == {
        "rev": git(repo, "rev-parse", f"{MODEL}@v0.0.2^{{commit}}"),
        "path": f"models/{MODEL}",
    }


def test_every_model_is_a_dvc_artifact():
    dvc_yaml = YAML(typ="safe").load((PROJECT_ROOT / "dvc.yaml").read_text())
    models = load_params(PROJECT_ROOT / "params.yaml")["train"]["models"]
    assert sorted(dvc_yaml["artifacts"]) == sorted(models)
    for name, art in dvc_yaml["artifacts"].items():
        assert art["path"] == f"models/{name}" and art["type"] == "model" and art["desc"]


def test_no_git_repository_is_a_clear_error(tmp_path):
    with pytest.raises(RT.ConfigError, match="git"):
        RT.GitTagRegistry(tmp_path)


def test_stage_must_be_a_gto_name():
    with pytest.raises(RT.ConfigError, match="stage"):
        RT.retrain_config({"retrain": {"model": MODEL, "stage": "champ ion"}})


def test_messages_round_trip():
    entry = {"decision": "rejected", "value": 0.5, "reason": "worse\nby a lot", "deps": {}}
    msg = G.judgement_message("title", entry)
    assert G.parse_judgement(msg) == entry
    assert G.parse_judgement("registered by hand") is None
