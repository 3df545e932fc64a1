"""Fixtures and helpers of the operations tests: a real Prefect server and its client, the
environment a Prefect subprocess gets, the project's params in a throw-away root, and the
``rnnflow`` command line run as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from pipelines.ops import params as P
from rnnflow.config import load_params
from rnnflow.env import PROJECT_ROOT
from tests.conftest import RUN_OUTPUTS, copy_checkout, project_env, sh, write_mnist_mirror

#: Seconds one ``rnnflow`` command may take: the checks read params.yaml only, so even a loaded
#: machine answers in a few seconds; a command that goes on to load a model or start Prefect is
#: cut off.
CASE_TIMEOUT_S = 60


# --- a real Prefect server ---------------------------------------------------------------


def free_port() -> int:
    """A loopback TCP port free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 60) -> None:
    """Send ``sig`` to ``proc`` if it still runs; kill it after ``wait`` seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real ``prefect server start`` on 127.0.0.1; yields (api url, ui url, env)."""
    home = tmp_path_factory.mktemp("prefect_home")
    port = free_port()
    api, ui = f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_UI_API_URL": api,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"prefect server did not start:\n{(home / 'server.log').read_text()}")
        time.sleep(0.5)
    env["PREFECT_API_URL"] = api
    try:
        yield api, ui, env
    finally:
        stop(proc, signal.SIGTERM, 30)
        log.close()


def client(api: str):
    """A synchronous Prefect client of the server at ``api``."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}):
        return get_client(sync_client=True)


# --- Prefect subprocesses ----------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment for a Prefect subprocess: no API URL or key of its own,
    the venv's tools first, the project importable, no telemetry, a git identity; then
    ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PREFECT__") and k not in ("PREFECT_API_URL", "PREFECT_API_KEY")
    }
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": str(PROJECT_ROOT),
            "DO_NOT_TRACK": "1",
            "DVC_NO_ANALYTICS": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "GIT_AUTHOR_NAME": "ci",
            "GIT_AUTHOR_EMAIL": "ci@localhost",
            "GIT_COMMITTER_NAME": "ci",
            "GIT_COMMITTER_EMAIL": "ci@localhost",
        }
    )
    env.update(extra)
    return env


CHILD_SCRIPT = textwrap.dedent('''\
    """A stage whose flow runs through pipelines.lineage, as train/evaluate/report do."""
    import sys
    from pathlib import Path

    from prefect import flow

    from pipelines.lineage import run_stage_flow

    name, out = sys.argv[1], Path(sys.argv[2])

    @flow(name=name)
    def stage(word: str) -> str:
        return f"{name} {word}"

    out.write_text(run_stage_flow(stage, word="ran") + "\\n")
    ''')


# --- the project's params and command line -----------------------------------------------


def copy_params(root: Path) -> Path:
    """The real params.yaml, source catalogues and profiles under ``root``; returns the
    params file."""
    shutil.copy(PROJECT_ROOT / "params.yaml", root / "params.yaml")
    shutil.copytree(PROJECT_ROOT / "profiles", root / "profiles")
    shutil.copytree(
        PROJECT_ROOT / "sources", root / "sources", ignore=shutil.ignore_patterns("*.lock")
    )
    return root / "params.yaml"


def rnnflow(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``rnnflow ARGS`` in the project root; on timeout kill its whole process group, so
    no Prefect server it may have started outlives the test."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnflow.cli", *args],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(stdin, timeout=CASE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"rnnflow {' '.join(args)}: still running after {CASE_TIMEOUT_S} s\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


#: The two flows of :func:`tiny_project`'s stages.
FLOWS = ("rnnflow-session-first", "rnnflow-session-second")
BIN = Path(sys.executable).parent


def tiny_project(root: Path, env: dict, script: str) -> None:
    """A git+DVC project whose two stages each run ``script`` (one Prefect flow) once."""
    root.mkdir()
    (root / "flow.py").write_text(script)
    stages = "".join(
        f"  {s}:\n    cmd: {sys.executable} flow.py {name} {s}.txt\n"
        f"    deps: [flow.py]\n    outs: [{s}.txt]\n"
        for s, name in zip(("first", "second"), FLOWS)
    )
    (root / "dvc.yaml").write_text("stages:\n" + stages)
    sh(["git", "init", "-q"], root, env)
    sh([BIN / "dvc", "init", "-q"], root, env)
    sh([BIN / "dvc", "config", "core.analytics", "false"], root, env)
    sh([BIN / "dvc", "config", "core.check_update", "false"], root, env)
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "tiny flow project"], root, env)


#: The model the end-to-end ops tests reproduce, retrain and search.
MODEL = "mnist_logreg"


# --- a project copy with MODEL reproduced (the end-to-end ops tests) ---------------------


@pytest.fixture(scope="module")
def base_project(tmp_path_factory, server):
    """A git copy of the project, CI profile + tiny MNIST, with mnist_logreg reproduced."""
    _, _, senv = server
    top = tmp_path_factory.mktemp("ops")
    mirror = top / "mirror"
    source = write_mnist_mirror(mirror, train=400, test=150)
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
