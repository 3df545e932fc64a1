"""The whole DAG, for real: `dvc repro` with the CI profile in a fresh copy of the project.

Runs every stage and every model type once (small), then checks that a second `dvc repro`
does nothing and that `dvc metrics diff` / `dvc plots diff` work across two commits.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REAL_MIRROR, copy_checkout, project_env, sh

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    if not (REAL_MIRROR / "mnist").is_dir():
        pytest.skip("the real corpora mirror ../shared/corpora is not present")
    dst = copy_checkout(tmp_path_factory.mktemp("clone") / "rnnflow")
    # The copy imports its own code (DVC runs `python -m stages...` in its root).
    env = project_env(RNNFLOW_MIRROR=str(REAL_MIRROR), PREFECT_HOME=str(dst / ".prefect"),
                      PYTHONPATH=str(dst))  # fmt: skip
    env.pop("PREFECT_API_URL", None)
    sh(["git", "init", "-q"], dst, env)
    sh(["git", "add", "-A"], dst, env)
    sh(["git", "commit", "-qm", "fresh clone"], dst, env)
    sh([sys.executable, "-m", "rnnflow.cli", "profile", "ci"], dst, env)
    sh(["dvc", "repro"], dst, env)
    return dst, env


def test_repro_runs_every_stage_and_model(fresh_clone) -> None:
    root, _ = fresh_clone
    params = json.loads(
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import json,sys; from rnnflow.config import load_params;"
                "print(json.dumps(load_params(sys.argv[1])))",
                str(root / "params.yaml"),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=root,
        ).stdout
    )
    for model in params["train"]["models"]:
        record = json.loads((root / "reports" / "evaluate" / f"{model}.json").read_text())
        assert record["test"]["n"] > 0
        assert (root / "models" / model / "model.pt").exists()
        assert (root / "dvclive" / model / "plots" / "metrics" / "val_loss.tsv").exists()
    mnist = json.loads((root / "metrics" / "mnist_cnn.json").read_text())
    assert mnist["test"]["accuracy"] > 0.5  # one small epoch of a CNN on 2,000 real images
    html = (root / "reports" / "index.html").read_text()
    assert "mnist_cnn" in html and "<img" in html


def test_second_repro_is_a_no_op(fresh_clone) -> None:
    root, env = fresh_clone
    out = sh(["dvc", "repro"], root, env)
    assert "Running stage" not in out, out
    status = sh(["dvc", "status"], root, env)
    assert "up to date" in status


def test_metrics_and_plots_diff_across_commits(fresh_clone) -> None:
    root, env = fresh_clone
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "ci run"], root, env)
    params = (root / "params.yaml").read_text()
    changed = params.replace(
        "mnist_logreg: {corpus: mnist, family: logreg, epochs: 1,",
        "mnist_logreg: {corpus: mnist, family: logreg, epochs: 2,",
    )
    assert changed != params, "the CI profile's logreg entry moved; update this test"
    (root / "params.yaml").write_text(changed)
    out = sh(["dvc", "repro"], root, env)
    assert "Running stage 'train@mnist_logreg'" in out
    assert "Running stage 'train@mnist_cnn'" not in out  # only what the change touches reruns

    def dvc_json(*args: str) -> dict:
        return json.loads(
            subprocess.run(
                ["dvc", *args, "--json"],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )

    diff = dvc_json("metrics", "diff", "HEAD")
    # dvc 3: {file: {metric: {old, new, diff}}}
    touched = {path for path, metrics in diff.items() if metrics}
    assert any("mnist_logreg" in path for path in touched), diff
    curves = json.dumps(dvc_json("plots", "diff", "HEAD"))
    assert "dvclive/mnist_logreg/plots/metrics/val_loss.tsv" in curves
    assert "mnist_logreg" in json.dumps(dvc_json("params", "diff", "HEAD"))


def test_dask_engine_reruns_the_heavy_hops_to_the_same_md5s(fresh_clone) -> None:
    """`data.engine: dask` (a real two-worker LocalCluster) inside the DVC stages: forced
    reruns of es_en's clean, sample and tokenize leave dvc.lock and `dvc status` as they were."""
    root, env = fresh_clone
    params_file = root / "params.yaml"
    params = params_file.read_text()
    local = "data: {engine: local,"
    assert local in params, "params.yaml's data section moved; update this test"
    lock = (root / "dvc.lock").read_text()
    params_file.write_text(params.replace(local, "data: {engine: dask,"))
    try:
        stages = ["clean@es_en", "sample@es_en", "tokenize@es_en"]
        out = sh(["dvc", "repro", "--force", "--single-item", *stages], root, env)
    finally:
        params_file.write_text(params)
    assert out.count("on 2 Dask workers") == len(stages), out  # each hop ran on the cluster
    assert (root / "dvc.lock").read_text() == lock  # the same md5 for every output
    assert "up to date" in sh(["dvc", "status"], root, env)
