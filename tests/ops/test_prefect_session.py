"""One Prefect server per session (pipelines/ops/prefect_session.py).

The slow test runs ``python -m pipelines.ops.prefect_session -- dvc repro`` on a tiny git+DVC
project whose two stages each run a Prefect flow, with no ``PREFECT_API_URL``; afterwards a
new server over the same ``PREFECT_HOME`` still has both runs, Completed, with their artifacts.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipelines.ops.prefect_session import healthy, prefect_server
from rnnflow.env import PROJECT_ROOT
from tests.conftest import sh
from tests.ops.conftest import BIN, CHILD_SCRIPT, FLOWS, clean_env, tiny_project

FLOW_SCRIPT = textwrap.dedent('''\
    """A trivial stage: one flow run, one log line, one Markdown artifact, one output file."""
    import sys
    from pathlib import Path

    from prefect import flow, get_run_logger
    from prefect.artifacts import create_markdown_artifact

    name, out = sys.argv[1], Path(sys.argv[2])

    @flow(name=name)
    def stage() -> str:
        get_run_logger().info("stage %s ran", name)
        create_markdown_artifact(markdown=f"# {name}\\n\\nran.", key=name,
                                 description=f"artifact of {name}")
        return name

    out.write_text(stage() + "\\n")
    ''')


# --- fast: no server -------------------------------------------------------------------


def test_help_works():
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.ops.prefect_session", "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "-- CMD ARGS" in proc.stdout and "PREFECT_API_URL" in proc.stdout


def test_existing_api_url_is_used_and_exit_code_passed_on(tmp_path, monkeypatch):
    """With PREFECT_API_URL set nothing starts; the command's exit code comes back."""
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    with prefect_server(tmp_path / "home", quiet=True) as api:
        assert api == "http://127.0.0.1:9/api"
    assert not (tmp_path / "home").exists()
    code = "import os, sys; print(os.environ['PREFECT_API_URL']); sys.exit(3)"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.ops.prefect_session",
            "--home",
            str(tmp_path / "home"),
            "--",
            sys.executable,
            "-c",
            code,
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(PREFECT_API_URL="http://127.0.0.1:9/api"),
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.strip() == "http://127.0.0.1:9/api"
    assert not (tmp_path / "home").exists()


# --- slow: a real server, a real dvc repro ----------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_dvc_repro_runs_persist_in_the_session_server(tmp_path, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root, home = tmp_path / "proj", tmp_path / ".prefect"
    env = clean_env(PREFECT_HOME=str(home))
    tiny_project(root, env, FLOW_SCRIPT)

    out = sh(
        [
            sys.executable,
            "-m",
            "pipelines.ops.prefect_session",
            "--home",
            home,
            "--",
            BIN / "dvc",
            "repro",
        ],
        root,
        env,
    )
    assert (root / "first.txt").read_text().strip() == FLOWS[0]
    assert (root / "second.txt").read_text().strip() == FLOWS[1]
    assert "Starting temporary server" not in out, out[-3000:]  # no per-stage server
    session_api = re.search(r"Prefect server at (http://127\.0\.0\.1:\d+/api)", out)
    assert session_api, out[-3000:]
    assert not healthy(session_api.group(1), timeout=1), "the session server was left running"
    assert (home / "prefect.db").exists()

    # After the session: a new server over the same home still has both runs.
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(home))
    with prefect_server(home, quiet=True) as api, temporary_settings({PREFECT_API_URL: api}):
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOWS)))
            )
            flows = {
                f.id: f.name
                for f in client.read_flows(
                    flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOWS)))
                )
            }
            assert sorted(flows[r.flow_id] for r in runs) == sorted(FLOWS), runs
            for run in runs:
                assert run.state.type == StateType.COMPLETED, (flows[run.flow_id], run.state)
                arts = client.read_artifacts(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
                )
                assert [a.key for a in arts] == [flows[run.flow_id]], arts
                assert f"# {flows[run.flow_id]}" in arts[0].data
    assert "PREFECT_API_URL" not in os.environ


# --- faults: a dead server fails a stage fast; a stage dies with its parent -------------------

STALL_SCRIPT = textwrap.dedent('''\
    """A stage whose flow runs through run_stage_flow; it records its pid and parent, then waits."""
    import os, sys, time
    from pathlib import Path

    from pipelines.lineage import run_stage_flow

    def stage(out: str) -> str:
        ppid = os.getppid()
        comm = Path(f"/proc/{ppid}/comm").read_text().strip()
        Path(out).write_text(f"{os.getpid()} {comm}")
        time.sleep(120)
        return "slept"

    run_stage_flow(stage, out=sys.argv[1])
    ''')


def stall_project(root: Path, env: dict[str, str], script: str) -> None:
    """A git+DVC project in ``root`` whose one stage runs ``script`` (which writes pid.txt)."""
    root.mkdir()
    (root / "stage.py").write_text(script)
    (root / "dvc.yaml").write_text(
        f"stages:\n  stall:\n    cmd: {sys.executable} stage.py pid.txt\n"
        "    deps: [stage.py]\n    outs: [out.txt]\n"
    )
    sh(["git", "init", "-q"], root, env)
    sh([BIN / "dvc", "init", "-q"], root, env)
    sh([BIN / "dvc", "config", "core.analytics", "false"], root, env)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stage_fails_fast_when_the_server_is_gone(tmp_path, monkeypatch):
    """A stage pointed at a server that died: one line naming the URL, non-zero, in < 10 s."""
    import time

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with prefect_server(tmp_path / "home", quiet=True) as api:
        assert healthy(api)
    assert not healthy(api, timeout=1)  # stopped: what a crashed server looks like to a stage

    (tmp_path / "stage.py").write_text(CHILD_SCRIPT)
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, tmp_path / "stage.py", "rnnflow-dead-server", tmp_path / "out.txt"],
        cwd=PROJECT_ROOT,
        env=clean_env(PREFECT_API_URL=api, PREFECT_HOME=str(tmp_path / "home")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - began
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0, proc.stderr[-3000:]
    assert took < 10, f"took {took:.1f} s; stderr:\n{proc.stderr[-3000:]}"
    assert len(lines) == 1, proc.stderr[-3000:]
    assert api in lines[0] and "prefect server start" in lines[0], lines[0]
    assert not (tmp_path / "out.txt").exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize(
    ("shell", "parent"), [("/bin/bash", "dvc"), ("/bin/dash", "dash")], ids=["exec", "fork"]
)
def test_stage_dies_with_a_killed_dvc(tmp_path, shell, parent):
    """``kill -9`` of ``dvc repro`` takes the stage's flow process with it within seconds,
    whether DVC's ``$SHELL -c CMD`` execs the stage (bash) or forks it and stays (dash)."""
    import signal
    import time

    if not Path(shell).exists():
        pytest.skip(f"no {shell}")
    root = tmp_path / "proj"
    env = clean_env(SHELL=shell)
    stall_project(root, env, STALL_SCRIPT)

    dvc = subprocess.Popen(
        [BIN / "dvc", "repro"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not (root / "pid.txt").exists() or not (root / "pid.txt").read_text():
            assert dvc.poll() is None and time.monotonic() < deadline, "the stage never started"
            time.sleep(0.2)
        pid, seen = (root / "pid.txt").read_text().split()
        child = int(pid)
        assert seen == parent, f"the stage's parent is {seen!r}, not {parent}"
        dvc.send_signal(signal.SIGKILL)
        dvc.wait(10)
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), "the stage outlived dvc"
    finally:
        if dvc.poll() is None:
            dvc.kill()
        with contextlib.suppress(Exception):
            os.kill(int((root / "pid.txt").read_text().split()[0]), signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_CHILD_SUBREAPER")
def test_killed_session_leaves_its_stage_run_crashed(tmp_path, monkeypatch):
    """SIGTERM to a session running ``dvc repro``: dvc dies at once and its stage a second later
    (``die_with_parent``); the server waits for the stage, so its run reads Crashed, not Running,
    and no stage is left retrying a gone server."""
    import signal
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root, home = tmp_path / "proj", tmp_path / ".prefect"
    env = clean_env(PREFECT_HOME=str(home))
    flow_stage = STALL_SCRIPT.replace("from pipelines", "from prefect import flow\nfrom pipelines")
    stall_project(root, env, flow_stage.replace("def stage(", "@flow(name='stall')\ndef stage("))
    log = tmp_path / "session.log"
    with log.open("w") as err:  # not a pipe: a stage left behind would hold it open
        session = subprocess.Popen(
            [sys.executable, "-m", "pipelines.ops.prefect_session", "--home", home, "--"]
            + [BIN / "dvc", "repro"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    stage, left = None, False
    try:
        deadline = time.monotonic() + 180
        while not (root / "pid.txt").exists() or not (root / "pid.txt").read_text():
            assert session.poll() is None and time.monotonic() < deadline, "no stage ran"
            time.sleep(0.2)
        stage = int((root / "pid.txt").read_text().split()[0])
        session.send_signal(signal.SIGTERM)
        session.wait(60)
        left = _alive(stage)
    finally:
        if session.poll() is None:
            session.kill()
        if stage and _alive(stage):
            os.kill(stage, signal.SIGKILL)
    assert not left, "the stage outlived its session: " + log.read_text()[-3000:]

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(home))
    with prefect_server(home, quiet=True) as api, temporary_settings({PREFECT_API_URL: api}):
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs()
    assert [run.state.type for run in runs] == [StateType.CRASHED], runs
