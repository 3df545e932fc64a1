"""Operations for real: served deployments run from the API and checked in a browser,
champion/challenger retraining both ways and a 4-trial search.

One real Prefect server (127.0.0.1, a free port, its own PREFECT_HOME) serves the module.
One project copy (git, the CI profile, a tiny format-exact MNIST mirror) is built with
``dvc repro evaluate@mnist_logreg`` once; each test works in its own copy of it.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines.ops import params as P
from pipelines.ops import workspace as W
from rnnflow.config import load_params
from tests.conftest import (
    RUN_OUTPUTS,
    chromium,
    copy_checkout,
    lock_held,
    project_env,
    sh,
    sha256,
)
from tests.ops.conftest import client, copy_params, stop

MODEL = "mnist_logreg"
KEY = MODEL.replace("_", "-")  # its Prefect artifact keys (lowercase, digits, dashes)


# --- fixtures ---------------------------------------------------------------------------


def _tiny_mnist_mirror(mirror: Path) -> dict:
    """A format-exact tiny MNIST (IDX gz) mirror; returns the params source for it."""
    from stages.corpora.idx import write_idx

    (mirror / "mnist").mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = {}
    for part, n in (("train", 400), ("test", 150)):
        labels = np.arange(n, dtype=np.uint8) % 10
        images = rng.integers(0, 40, size=(n, 28, 28), dtype=np.uint8)
        images[np.arange(n), labels * 2 + 4, 4:24] = 255  # a bright row per digit: learnable
        prefix = "train" if part == "train" else "t10k"
        for kind, arr in (("images", images), ("labels", labels)):
            name = f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz"
            write_idx(mirror / "mnist" / name, arr)
            files[f"{part}_{kind}"] = {"path": name, "checksum": sha256(mirror / "mnist" / name)}
    return {"urls": [], "files": files, "rows": {"train": 400, "test": 150}}


@pytest.fixture(scope="module")
def base_project(tmp_path_factory, server):
    """A git copy of the project, CI profile + tiny MNIST, with mnist_logreg reproduced."""
    _, _, senv = server
    top = tmp_path_factory.mktemp("ops")
    mirror = top / "mirror"
    source = _tiny_mnist_mirror(mirror)
    root = top / "base"
    copy_checkout(root, skip=RUN_OUTPUTS + ("registry/",))
    env = project_env(senv, RNNFLOW_MIRROR=str(mirror), PYTHONPATH=str(root))
    # The tiny mirror takes the place of the published files in the copy's catalogue.
    catalogue = root / "sources" / "mnist.yaml"
    catalogue.write_text(json.dumps({**load_params(catalogue), "published": source}))
    P.set_params(root / "params.yaml", {"fetch.mnist.source": ["published"]})
    sh([sys.executable, "-m", "rnnflow.cli", "profile", "ci"], root, env)
    P.set_params(
        root / "params.yaml",
        {
            "sample.mnist.train": None,
            "sample.mnist.validation": None,
            "sample.mnist.test": None,
            f"train.models.{MODEL}.lr": 0.003,
            "train.device": "cpu",
            "train.threads": 1,
            "retrain.model": MODEL,
        },
    )
    # retrain.margin stays `measured`: this model's validation spread over seeds, as
    # benchmarks/seed_spread.py records it, is 0.01.
    spread = {"model": MODEL, "metric": "accuracy", "spreads": {"validation.accuracy": 0.01}}
    (root / "benchmarks" / "results" / "seed_spread.json").write_text(
        json.dumps({"rows": [spread]})
    )
    sh(["git", "init", "-q"], root, env)
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "fresh copy"], root, env)
    sh([str(Path(sys.executable).parent / "dvc"), "repro", f"evaluate@{MODEL}"], root, env)
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "repro mnist_logreg"], root, env)
    return root, mirror


@pytest.fixture
def project(base_project, server, tmp_path) -> tuple[Path, dict]:
    """This test's own copy of the base project, and the environment to run in it."""
    base, mirror = base_project
    root = tmp_path / "proj"
    shutil.copytree(base, root, symlinks=True, ignore=shutil.ignore_patterns("tmp"))
    return root, project_env(server[2], RNNFLOW_MIRROR=str(mirror), PYTHONPATH=str(root))


def artifacts_of(api: str, flow_run_id) -> list:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with client(api) as c:
        return c.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )


def params_of(root: Path) -> dict:
    from rnnflow.config import load_params

    return load_params(root / "params.yaml")


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


# --- fast unit checks -------------------------------------------------------------------


def test_decide_needs_more_than_the_margin():
    from pipelines.ops.judgement import decide

    assert decide(None, 0.5, True, 0.01, "acc")[0] is True
    assert decide(0.90, 0.905, True, 0.01, "acc")[0] is False
    assert decide(0.90, 0.92, True, 0.01, "acc")[0] is True
    assert decide(0.90, 0.80, True, 0.0, "acc")[0] is False
    assert decide(0.30, 0.20, False, 0.05, "rmse")[0] is True  # lower is better
    assert decide(0.30, 0.28, False, 0.05, "rmse")[0] is False
    assert decide(0.9, float("nan"), True, 0.0, "acc")[0] is False


def test_set_params_keeps_comments_and_rejects_unknown_sections(tmp_path):
    from rnnflow.config import ConfigError

    path = copy_params(tmp_path)
    key = "train.models.mnist_cnn"
    changed = P.set_params(path, {f"{key}.lr": 0.01, f"{key}.weight_decay": 0.0001})
    assert changed == {f"{key}.lr": (0.003, 0.01), f"{key}.weight_decay": (None, 0.0001)}
    text = path.read_text()
    assert "# rnnflow params" in text and "lr: 0.01" in text
    assert P.set_params(path, {f"{key}.lr": 0.01}) == {}
    with pytest.raises(ConfigError, match="nosuch"):
        P.set_params(path, {"train.nosuch.lr": 1})
    with pytest.raises(ConfigError, match="'max_batches' is not a field of family 'cnn_bn'"):
        P.set_params(path, {f"{key}.max_batches": 5})
    assert P.parse_assignments(["a.b=3", "c=[1, 2]", "d=x"]) == {"a.b": 3, "c": [1, 2], "d": "x"}


def test_workspace_lock_keeps_a_second_run_out(tmp_path):
    with lock_held(tmp_path, "holder"):
        with pytest.raises(W.WorkspaceBusy, match="holder"):
            with W.workspace_lock(tmp_path, "second", timeout=0.5, poll=0.1):
                pass
    with W.workspace_lock(tmp_path, "after", timeout=5):  # released when its holder died
        with W.workspace_lock(tmp_path, "nested", timeout=0):  # re-entrant in one process
            pass


def test_search_spaces_grid_and_samplers():
    from pipelines.ops.search_spec import Sampler, SearchSpec, grid_points

    spec = SearchSpec.model_validate(
        {
            "model": "m",
            "method": "grid",
            "space": {
                "a.lr": {"type": "loguniform", "low": 1e-3, "high": 1e-1, "points": 3},
                "a.bs": {"type": "categorical", "choices": [32, 64]},
                "a.n": {"type": "int", "low": 1, "high": 2},
            },
        }
    )
    points = grid_points(spec)
    assert len(points) == 12 and points[0] == {"a.lr": 0.001, "a.bs": 32, "a.n": 1}
    assert sorted({p["a.lr"] for p in points}) == [0.001, 0.01, 0.1]
    for method in ("random", "tpe"):
        s = spec.model_copy(update={"method": method, "n_trials": 5})
        a, b = Sampler(s), Sampler(s)
        va = [a.ask(i) for i in range(3)]
        assert va == [b.ask(i) for i in range(3)]  # seeded
        for v in va:
            assert 1e-3 <= v["a.lr"] <= 1e-1 and v["a.bs"] in (32, 64) and v["a.n"] in (1, 2)
        a.tell(0, 0.5)


def test_ops_commands_have_help(capsys):
    from rnnflow import cli

    for op in ("repro", "serve", "retrain", "search"):
        with pytest.raises(SystemExit) as exc:
            cli.main([op, "--help"])
        assert exc.value.code == 0
    assert cli.main(["serve", "--list"]) == 0
    out = capsys.readouterr().out
    assert "retrain/scheduled\tschedule: 0 3 * * *" in out and "repro/repro" in out
