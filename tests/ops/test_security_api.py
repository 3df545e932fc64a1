"""A hostile override posted to the served ``repro`` deployment over the Prefect API (one
unauthenticated POST, as anyone who reaches the API can send it) fails the run before anything
runs, and params.yaml stays byte for byte as it was."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from rnnflow.env import PROJECT_ROOT
from tests.conftest import RUN_OUTPUTS, copy_checkout
from tests.ops.conftest import client, stop


def post(req: urllib.request.Request, tries: int = 10) -> bytes:
    """Send ``req`` and return the body, retrying 503 as Prefect's own client does.

    The server answers 503 while its SQLite database is busy (the served flows write to it
    too); Prefect documents that code as one a client retries.
    """
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.read()
        except urllib.error.HTTPError as err:
            if err.code != 503 or attempt == tries - 1:
                raise
            time.sleep(float(err.headers.get("Retry-After") or 2))
    raise AssertionError("unreachable")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_hostile_override_posted_to_the_prefect_api_fails_the_run(server, tmp_path):
    from prefect.client.schemas.objects import StateType

    api, _, senv = server
    top = tmp_path / "top"
    proj = top / "proj"
    copy_checkout(proj, skip=(*RUN_OUTPUTS, "registry/", "data/", "tests/", "benchmarks/"))
    (proj / ".dvc" / "tmp").mkdir(parents=True, exist_ok=True)
    before = (proj / "params.yaml").read_bytes()
    env = {**senv, "PYTHONPATH": str(proj)}
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "pipelines.ops.serve", "--no-schedule"],
        cwd=proj,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            with client(api) as c:
                deps = {f"{c.read_flow(d.flow_id).name}/{d.name}": d for d in c.read_deployments()}
            if "repro/repro" in deps:
                break
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(1)

        # One unauthenticated POST, as anyone who reaches the API can send it.
        key = "train.models.z;touch PWNED;#"
        body = json.dumps({"parameters": {"overrides": {key: 1, f"{key}.epochs": 1}}}).encode()
        req = urllib.request.Request(
            f"{api}/deployments/{deps['repro/repro'].id}/create_flow_run",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        run_id = json.loads(post(req))["id"]

        deadline = time.monotonic() + 300
        while True:
            with client(api) as c:
                run = c.read_flow_run(run_id)
            if run.state and run.state.is_final():
                break
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(1)
        served = (tmp_path / "serve.log").read_text()
        assert run.state.type == StateType.FAILED, served
        with client(api) as c:
            from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

            logs = c.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        text = "\n".join(entry.message for entry in logs) + run.state.message
        assert "z;touch PWNED;#" in text and "not an identifier" in text, text
    finally:
        stop(serve, signal.SIGTERM, 90)
        log.close()
    assert (proj / "params.yaml").read_bytes() == before
    assert not list(top.rglob("PWNED")) and not list(tmp_path.rglob("PWNED"))
    assert not (PROJECT_ROOT / "PWNED").exists() and not (Path.home() / "PWNED").exists()
    assert {p.name for p in top.iterdir()} == {"proj"}  # nothing written beside the project
