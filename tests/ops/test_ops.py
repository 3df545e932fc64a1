"""Operations for real: served deployments run from the API and checked in a browser,
champion/challenger retraining both ways and a 4-trial search.

One real Prefect server (127.0.0.1, a free port, its own PREFECT_HOME) serves the module.
One project copy (git, the CI profile, a tiny format-exact MNIST mirror) is built with
``dvc repro evaluate@mnist_logreg`` once; each test works in its own copy of it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.ops import params as P
from pipelines.ops import workspace as W
from tests.conftest import (
    chromium,
    sh,
)
from tests.ops.conftest import MODEL, artifacts_of, client, params_of, stop

KEY = MODEL.replace("_", "-")  # its Prefect artifact keys (lowercase, digits, dashes)


# --- served deployments, a run through the API, the UI in a browser ---------------------


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_served_deployments_run_from_the_api_and_show_in_the_ui(project, server, tmp_path):
    from prefect.client.schemas.objects import StateType

    root, env = project
    api, ui, _ = server
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "pipelines.ops.serve"],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        # The deployments are registered, the retraining one with the cron from params.yaml.
        wanted = {"repro/repro", "retrain/scheduled", "search/search"}
        deadline = time.monotonic() + 120
        while True:
            with client(api) as c:
                deps = {f"{c.read_flow(d.flow_id).name}/{d.name}": d for d in c.read_deployments()}
            if wanted <= set(deps):
                break
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, f"deployments not registered: {sorted(deps)}"
            time.sleep(1)
        cron = params_of(root)["retrain"]["cron"]
        assert [s.schedule.cron for s in deps["retrain/scheduled"].schedules] == [cron]
        assert deps["retrain/scheduled"].global_concurrency_limit.limit == 1

        # A run started through the API: dvc repro with a params override, in the workspace.
        run = run_repro(api, epochs=2)
        assert run.state.type == StateType.COMPLETED, (tmp_path / "serve.log").read_text()
        arts = {a.key: a for a in artifacts_of(api, run.id)}
        md = arts["repro"].data
        assert f"train@{MODEL}" in md and f"train.models.{MODEL}.epochs" in md, md
        assert f"evaluate@{MODEL}" in md
        assert params_of(root)["train"]["models"][MODEL]["epochs"] == 2
        trained = json.loads((root / "dvclive" / MODEL / "metrics.json").read_text())
        assert trained["epochs"] == 2 and trained["step"] == 2
        assert "# CI / smoke" not in (root / "params.yaml").read_text()  # params, not a profile
        assert "# rnnflow params" in (root / "params.yaml").read_text()  # comments kept

        # Each stage's flow run says which model and commit it was, and shows what it made.
        sha = sh(["git", "rev-parse", "--short=7", "HEAD"], root, env).strip()
        children = {r.name: r for r in subflow_runs(api, run.id)}
        trained, evaluated = children[f"train-{MODEL}-{sha}"], children[f"evaluate-{MODEL}-{sha}"]
        for child in (trained, evaluated):
            assert {f"model:{MODEL}", "task:classify", "family:logreg", f"commit:{sha}"} <= set(
                child.tags
            ), child.tags
        arts = {a.key: a for a in artifacts_of(api, trained.id)}
        epochs = json.loads(arts[f"train-{KEY}"].data)
        assert [r["epoch"] for r in epochs] == [1, 2] and "val_accuracy" in epochs[0], epochs
        assert f"dvclive/{MODEL}" in arts[f"train-{KEY}-summary"].data
        arts = {a.key: a for a in artifacts_of(api, evaluated.id)}
        rows = {r["metric"]: r for r in json.loads(arts[f"evaluate-{KEY}"].data)}
        assert 0 <= rows["accuracy"]["test"] <= 1 and rows["accuracy"]["validation"] is not None

        check_run_page_in_browser(ui, run, tmp_path, trained)
    finally:
        stop(serve, signal.SIGTERM, 90)  # SIGTERM: serve pauses its schedules and exits
        log.close()
    assert serve.returncode is not None


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_process_worker_runs_a_deployment_from_its_work_pool(project, server, tmp_path):
    from prefect.client.schemas.objects import StateType

    root, env = project
    api, pool = server[0], "rnnflow-workers"
    sh([sys.executable, "-m", "pipelines.ops.serve", "--pool", pool, "--no-schedule"], root, env)
    with client(api) as c:
        assert c.read_work_pool(pool).type == "process"
        dep = c.read_deployment_by_name("repro/repro")
    assert dep.work_pool_name == pool and dep.entrypoint == "pipelines.ops.repro.repro"
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", pool],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        run = run_repro(api, epochs=3)
        assert run.state.type == StateType.COMPLETED, (tmp_path / "worker.log").read_text()
        assert run.work_pool_name == pool
        # run by the worker, in the checkout it was started in
        assert "Worker 'ProcessWorker" in (tmp_path / "worker.log").read_text()
        trained = json.loads((root / "dvclive" / MODEL / "metrics.json").read_text())
        assert trained["epochs"] == 3
    finally:
        stop(worker, signal.SIGTERM, 60)
        log.close()


def run_repro(api: str, epochs: int):
    """A ``repro/repro`` deployment run through the API: ``evaluate@MODEL`` with ``epochs``."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}):
        return run_deployment(
            "repro/repro",
            timeout=400,
            poll_interval=1,
            as_subflow=False,
            parameters={
                "targets": [f"evaluate@{MODEL}"],
                "overrides": {f"train.models.{MODEL}.epochs": epochs},
            },
        )


def subflow_runs(api: str, parent_id) -> list:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with client(api) as c:
        return c.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id])
            )
        )


def browser_text(url: str, shot: Path, tmp_path: Path) -> tuple[Path, str]:
    """The text of the page at ``url`` in headless Chromium, and its screenshot at ``shot``."""
    with chromium(tmp_path / "chromium-profile", width=1400) as browser:
        page = browser.new_page()
        page.goto(url, wait_until="load", timeout=60_000)
        page.screenshot(path=str(shot), full_page=True)
        return shot, page.inner_text("body")


def check_run_page_in_browser(ui: str, run, tmp_path: Path, trained) -> None:
    """The flow run's page in headless Chromium shows its name and state, and the train
    subflow's Artifacts tab its epoch table; screenshots saved."""
    shot = tmp_path / "flow-run.png"
    with chromium(tmp_path / "chromium-profile", width=1400) as browser:
        page = browser.new_page()
        page.goto(f"{ui}/runs/flow-run/{run.id}", wait_until="load", timeout=60_000)
        page.get_by_text(run.name).first.wait_for(timeout=60_000)
        page.get_by_text("Completed").first.wait_for(timeout=60_000)
        page.get_by_text("repro", exact=True).first.wait_for(timeout=30_000)  # the flow
        page.screenshot(path=str(shot), full_page=True)
        text = page.inner_text("body")
        page.goto(f"{ui}/runs/flow-run/{trained.id}", timeout=60_000)
        page.get_by_text("Artifacts", exact=True).first.click(timeout=60_000)
        page.wait_for_function(
            "key => document.body.innerText.includes(key)",
            arg=f"train-{KEY}-summary",
            timeout=60_000,
        )
        page.screenshot(path=str(tmp_path / "train-artifacts.png"), full_page=True)
        artifacts_tab = page.inner_text("body")
    assert run.name in text and "Completed" in text
    assert trained.name in artifacts_tab and f"train {MODEL}: one row per epoch" in artifacts_tab
    assert shot.read_bytes()[:4] == b"\x89PNG"
    print(f"\nscreenshot of the flow run page: {shot}")


# --- retraining: champion / challenger ---------------------------------------------------


def retrain(root: Path, env: dict) -> str:
    out = sh([sys.executable, "-m", "pipelines.ops.retrain"], root, env)
    line = next(ln for ln in out.splitlines() if ln.startswith(f"retrain {MODEL}: "))
    return line.removeprefix(f"retrain {MODEL}: ").split(" — ")[0]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_retrain_promotes_only_a_better_challenger(project, server, tmp_path):
    root, env = project
    api = server[0]
    from pipelines.ops.registry import GitTagRegistry

    def entries() -> list[dict]:  # the registry is GTO tags (gto history MODEL)
        return GitTagRegistry(root).history(MODEL)

    def champion() -> dict:  # the version last assigned the `champion` stage
        return GitTagRegistry(root).champion(MODEL)

    key = f"train.models.{MODEL}"
    assert retrain(root, env) == "promoted"  # no champion yet
    first = champion()
    assert first["decision"] == "promoted" and first["value"] is not None

    # Worse: a learning rate too small to learn anything in one epoch.
    P.set_params(root / "params.yaml", {f"{key}.lr": 1e-7})
    assert retrain(root, env) == "rejected"
    rejected = entries()[-1]
    assert rejected["value"] < first["value"] - 0.01, (rejected, first)
    assert champion() == first
    assert "worse by" in rejected["reason"]

    # A late duplicate: nothing new, nothing recorded.
    assert retrain(root, env) == "already judged"
    assert len(entries()) == 2

    # Better, on a changed test split: the champion is scored again on the same examples.
    P.set_params(
        root / "params.yaml", {f"{key}.lr": 0.05, f"{key}.epochs": 3, "sample.mnist.test": 120}
    )
    assert retrain(root, env) == "promoted"
    new = champion()
    assert new["value"] > new["champion_value"] + 0.01
    assert new["champion_rescored"] is True and new["metrics"]["test"]["n"] == 120
    assert new["params"][key]["lr"] == 0.05

    # Same data, params and code as the champion: no change, no entry.
    assert retrain(root, env) == "no change"
    assert [e["decision"] for e in entries()] == ["promoted", "rejected", "promoted"]
    tags = sh(["git", "tag", "-l"], root, env).split()
    assert tags == [
        f"{MODEL}#champion#1",
        f"{MODEL}#champion#2",
        f"{MODEL}@v0.0.1",
        f"{MODEL}@v0.0.2",
        f"{MODEL}@v0.0.3",
    ], tags

    # Each run published a report saying what happened and why.
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with client(api) as c:
        arts = c.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[W.artifact_key("retrain", MODEL)])
            )
        )
    # The title is the latest real decision; "This run" says what each run decided.
    titles = sorted({a.data.splitlines()[0] for a in arts})
    assert titles == [f"# retrain {MODEL}: not promoted", f"# retrain {MODEL}: promoted"], titles
    lines = [line for a in arts for line in a.data.splitlines()]
    this_runs = [line for line in lines if line.startswith("**This run")]
    for decision in ("promoted", "rejected", "already judged", "no change"):
        assert any(f"): {decision} — " in line for line in this_runs), (decision, this_runs)
    # The run that promoted on the changed split (the API returns artifacts in no set order,
    # and the later "no change" run repeats the same headline without a diff).
    promoted = next(
        a.data
        for a in arts
        if any(
            line.startswith("**This run") and "): promoted — " in line and "scored again" in line
            for line in a.data.splitlines()
        )
    )
    assert "train.models.mnist_logreg.lr" in promoted and "data/05_tokens/mnist" in promoted

    # The page after promote → reject → already judged → promote → no change, in Chromium.
    page = root / "reports" / "retrain" / f"{MODEL}.html"
    shot, text = browser_text(page.as_uri(), tmp_path / "retrain.png", tmp_path)
    assert text.splitlines()[0] == f"retrain {MODEL}: promoted", text[:200]
    runs = text.split("Runs (newest first)")[1].split("Stages DVC ran")[0]
    decisions = ["no change", "promoted", "already judged", "rejected", "promoted"]
    found = [ln.split("\t")[1] for ln in runs.splitlines() if ln[:4].isdigit()]  # decision column
    assert found == decisions, runs
    # The registry's rows name the commits `gto history` names, as the headline does.
    history = text.split("Registry history")[1]
    v3 = next(ln for ln in history.splitlines() if ln.startswith("v0.0.3\t")).split("\t")
    assert v3[5] == new["registered_at"] and f"commit {new['registered_at']}" in text, v3
    assert shot.read_bytes()[:4] == b"\x89PNG"


# --- hyperparameter search --------------------------------------------------------------

SPEC = """\
model: mnist_logreg
metric: validation.accuracy
direction: maximize
method: tpe
n_trials: 4
startup_trials: 2
seed: 0
space:
  train.models.mnist_logreg.lr: {type: loguniform, low: 1.0e-3, high: 1.0e-1}
  train.models.mnist_logreg.batch_size: {type: categorical, choices: [32, 64]}
"""


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_search_runs_four_trials_as_dvc_experiments(project, server):
    root, env = project
    api = server[0]
    (root / "search" / "tiny.yaml").write_text(SPEC)
    sh(["git", "add", "search/tiny.yaml"], root, env)
    sh(["git", "commit", "-qm", "search spec"], root, env)
    out = sh([sys.executable, "-m", "pipelines.ops.search", "search/tiny.yaml"], root, env)
    assert "search tiny: 4 trials" in out, out

    shown = json.loads(
        sh([str(Path(sys.executable).parent / "dvc"), "exp", "show", "--json"], root, env)
    )
    exps = {r["name"]: r for rev in shown for e in rev.get("experiments") or [] for r in e["revs"]}
    names = sorted(n for n in exps if n.startswith("tiny-tpe-"))
    assert len(names) == 4, sorted(exps)

    result = json.loads((root / "reports/search/tiny.json").read_text())
    trials, best = result["trials"], result["best"]
    assert [t["state"] for t in trials] == ["ok"] * 4
    assert sorted(t["experiment"] for t in trials) == names
    assert best["value"] == max(t["value"] for t in trials)
    # Each experiment recorded its trial's params and metric.
    for t in trials:
        data = exps[t["experiment"]]["data"]
        lr = data["params"]["params.yaml"]["data"]["train"]["models"][MODEL]["lr"]
        assert lr == t["params"][f"train.models.{MODEL}.lr"]
        acc = data["metrics"][f"metrics/{MODEL}.json"]["data"]["validation"]["accuracy"]
        assert acc == pytest.approx(t["value"])
    md = (root / "reports/search/tiny.md").read_text()
    assert "## Best" in md and best["experiment"] in md and "| trial |" in md
    assert "data:image/png;base64," in (root / "reports/search/tiny.html").read_text()
    # The workspace is left at the best trial.
    assert (
        params_of(root)["train"]["models"][MODEL]["lr"]
        == best["params"][f"train.models.{MODEL}.lr"]
    )
    assert json.loads((root / f"metrics/{MODEL}.json").read_text())["validation"][
        "accuracy"
    ] == pytest.approx(best["value"])

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with client(api) as c:
        table = c.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["search-tiny"]))
        )
    assert table and table[-1].type == "table"
