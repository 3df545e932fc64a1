"""The Prefect server a session starts is not an open door (pipelines/ops/prefect_session.py).

Real servers, started by the project's own ``prefect_server``: a web page on another origin can
neither read a CSRF token nor create a flow run; the project's own clients still run flows, with
CSRF protection on and with basic auth on.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.ops.prefect_session import healthy, prefect_server
from rnnflow.env import PROJECT_ROOT
from tests.ops.conftest import CHILD_SCRIPT, clean_env

EVIL = "http://evil.example"
AUTH = "rnnflow:s3cret"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _http(
    method: str, url: str, body: dict | None = None, **headers: str
) -> tuple[int, dict[str, str], str]:
    """Status, lower-cased headers and text of one request, straight to loopback (no proxy)."""
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(
        url, data=data, method=method, headers={k.replace("_", "-"): v for k, v in headers.items()}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as resp:
            status, head, text = resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as exc:
        status, head, text = exc.code, exc.headers, exc.read().decode()
    return status, {k.lower(): v for k, v in head.items()}, text


def _run_flow(tmp: Path, api: str, name: str, **env: str) -> subprocess.CompletedProcess:
    """A stage-like subprocess: one flow through run_stage_flow against ``api``."""
    script = tmp / "stage.py"
    script.write_text(CHILD_SCRIPT)
    return subprocess.run(
        [sys.executable, script, name, tmp / f"{name}.txt"],
        cwd=PROJECT_ROOT,
        env=clean_env(PREFECT_API_URL=api, PREFECT_HOME=str(tmp / "client-home"), **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A session server with the settings ``make repro`` gets."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("PREFECT_API_URL", raising=False)
        with prefect_server(tmp_path_factory.mktemp("prefect"), quiet=True) as api:
            yield api


def test_a_cross_origin_page_cannot_create_a_flow_run(server: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: server}), get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("rnnflow-csrf-target")

    # A form-like POST from a page on another origin, no token: refused.
    status, _, text = _http("POST", f"{server}/flow_runs/", {"flow_id": str(flow_id)}, Origin=EVIL)
    assert status == 403, (status, text)

    # The page cannot read a token to try again: no CORS grant for its origin...
    status, head, _ = _http("GET", f"{server}/csrf-token?client=evil", Origin=EVIL)
    assert head.get("access-control-allow-origin") not in ("*", EVIL), head
    # ...nor send the token header at all (the preflight fails).
    assert _preflight(server, EVIL) not in ("*", EVIL)
    # The UI's own origin is granted.
    ui = server.removesuffix("/api")
    assert _preflight(server, ui) == ui


def _preflight(server: str, origin: str) -> str | None:
    """The origin a browser's preflight for a token-carrying POST from ``origin`` is granted."""
    _, head, _ = _http(
        "OPTIONS",
        f"{server}/flow_runs/",
        Origin=origin,
        Access_Control_Request_Method="POST",
        Access_Control_Request_Headers="content-type,prefect-csrf-token,prefect-csrf-client",
    )
    return head.get("access-control-allow-origin")


def test_project_clients_work_with_csrf_on(server: str, tmp_path: Path) -> None:
    """The server hands out CSRF tokens (protection on) and a stage's flow still completes."""
    status, _, text = _http("GET", f"{server}/csrf-token?client=rnnflow-test")
    assert status == 200 and json.loads(text)["token"], (status, text)
    proc = _run_flow(tmp_path, server, "rnnflow-csrf-client")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "rnnflow-csrf-client.txt").read_text().strip() == "rnnflow-csrf-client ran"


def test_basic_auth_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Server with an auth string: no credentials, 401; with them, healthy() and a flow work."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_SERVER_API_AUTH_STRING", AUTH)
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", AUTH)
    with prefect_server(tmp_path / "home", quiet=True) as api:
        assert healthy(api)
        status, _, _ = _http("GET", f"{api}/admin/version")
        assert status == 401
        basic = "Basic " + base64.b64encode(AUTH.encode()).decode()
        status, _, _ = _http("GET", f"{api}/admin/version", Authorization=basic)
        assert status == 200

        proc = _run_flow(tmp_path, api, "rnnflow-auth-client", PREFECT_API_AUTH_STRING=AUTH)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert (tmp_path / "rnnflow-auth-client.txt").exists()

        monkeypatch.delenv("PREFECT_API_AUTH_STRING")
        proc = _run_flow(tmp_path, api, "rnnflow-no-auth-client")
        # a stage's flow without credentials: one line naming the refusal, no traceback
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert proc.stderr.strip().splitlines()[-1] == (
            f"Prefect server at {api} refused our credentials (401): set PREFECT_API_AUTH_STRING "
            "to the server's PREFECT_SERVER_API_AUTH_STRING (or PREFECT_API_KEY for Prefect Cloud)"
        ), proc.stderr[-3000:]
        assert not (tmp_path / "rnnflow-no-auth-client.txt").exists()
        # serving without credentials: one line saying so, not a client traceback
        proc = subprocess.run(
            [sys.executable, "-m", "pipelines.ops.serve", "--no-schedule"],
            cwd=PROJECT_ROOT,
            env=clean_env(PREFECT_API_URL=api, PREFECT_HOME=str(tmp_path / "client-home")),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert (
            proc.stderr.strip()
            .splitlines()[-1]
            .startswith("rnnflow serve: the Prefect server refused our credentials (401)")
        ), proc.stderr[-3000:]
