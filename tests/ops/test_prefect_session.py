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
from tests.ops.conftest import CHILD_SCRIPT, clean_env

BIN = Path(sys.executable).parent
FLOWS = ("rnnflow-session-first", "rnnflow-session-second")

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


def _run(args: list, cwd: Path, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, (
        f"{' '.join(map(str, args))} exited {proc.returncode}\n"
        f"stdout:\n{proc.stdout[-5000:]}\nstderr:\n{proc.stderr[-5000:]}"
    )
    return proc


def _tiny_project(root: Path, env: dict, script: str) -> None:
    """A git+DVC project whose two stages each run ``script`` (one Prefect flow) once."""
    root.mkdir()
    (root / "flow.py").write_text(script)
    stages = "".join(
        f"  {s}:\n    cmd: {sys.executable} flow.py {name} {s}.txt\n"
        f"    deps: [flow.py]\n    outs: [{s}.txt]\n"
        for s, name in zip(("first", "second"), FLOWS)
    )
    (root / "dvc.yaml").write_text("stages:\n" + stages)
    _run(["git", "init", "-q"], root, env)
    _run([BIN / "dvc", "init", "-q"], root, env)
    _run([BIN / "dvc", "config", "core.analytics", "false"], root, env)
    _run([BIN / "dvc", "config", "core.check_update", "false"], root, env)
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "tiny flow project"], root, env)


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
    _tiny_project(root, env, FLOW_SCRIPT)

    proc = _run(
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
    out = proc.stdout + proc.stderr
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


# --- lineage: the flows dvc repro starts are children of the run that started it -------------


def test_lineage_env_outside_a_run_is_empty(monkeypatch):
    from pipelines import lineage

    assert lineage.child_env() == {}
    monkeypatch.setenv(lineage.TAGS_ENV, " a, b,,a ,session:1 ")
    assert lineage.env_tags() == ["a", "b", "session:1"]


def test_lineage_without_parent_runs_the_flow_plainly(monkeypatch):
    """No RNNFLOW_PARENT_TASK_RUN: run_stage_flow is a plain call (no server needed for this)."""
    from pipelines import lineage

    monkeypatch.delenv(lineage.PARENT_ENV, raising=False)
    seen = {}

    def fake_flow(**kw):
        seen.update(kw)
        return "done"

    assert lineage.run_stage_flow(fake_flow, model="m", root=None) == "done"
    assert seen == {"model": "m", "root": None}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_repro_flow_runs_are_children_of_the_repro_run(tmp_path, monkeypatch):
    """``python -m pipelines.ops.repro`` inside a session: afterwards the API lists both stage
    runs as subflow runs of the ``repro`` run (parent_flow_run_id), Completed, with the
    session's tag; the repro run carries the tag too."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root, home = tmp_path / "proj", tmp_path / ".prefect"
    env = clean_env(PREFECT_HOME=str(home))
    _tiny_project(root, env, CHILD_SCRIPT)

    cmd = [sys.executable, "-m", "pipelines.ops.prefect_session", "--home", home]
    _run(
        [
            *cmd,
            "--tag",
            "lineage-test",
            "--",
            sys.executable,
            "-m",
            "pipelines.ops.repro",
            "--root",
            root,
        ],
        root,
        env,
    )
    assert (root / "first.txt").read_text().strip() == f"{FLOWS[0]} ran"
    assert (root / "second.txt").read_text().strip() == f"{FLOWS[1]} ran"

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(home))
    with prefect_server(home, quiet=True) as api, temporary_settings({PREFECT_API_URL: api}):
        with get_client(sync_client=True) as client:
            (parent,) = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["repro"]))
            )
            assert parent.state.type == StateType.COMPLETED, parent.state
            assert parent.parent_task_run_id is None  # the repro run itself is top-level
            assert "lineage-test" in parent.tags, parent.tags
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id])
                )
            )
            names = {
                f.id: f.name
                for f in client.read_flows(
                    flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOWS)))
                )
            }
            assert sorted(names.get(r.flow_id, "?") for r in children) == sorted(FLOWS), children
            for run in children:
                assert run.state.type == StateType.COMPLETED, run.state
                assert "lineage-test" in run.tags, run.tags
                owner = client.read_task_run(run.parent_task_run_id)
                assert owner.flow_run_id == parent.id
                assert owner.name.startswith("run_dvc"), owner.name


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
    root.mkdir()
    (root / "stage.py").write_text(STALL_SCRIPT)
    (root / "dvc.yaml").write_text(
        f"stages:\n  stall:\n    cmd: {sys.executable} stage.py pid.txt\n"
        "    deps: [stage.py]\n    outs: [out.txt]\n"
    )
    _run(["git", "init", "-q"], root, env)
    _run([BIN / "dvc", "init", "-q"], root, env)
    _run([BIN / "dvc", "config", "core.analytics", "false"], root, env)

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
