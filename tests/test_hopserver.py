"""The hop server: a hop forked from it behaves as ``python -m stages.<hop>`` in a fresh process.

Each test runs real hop processes (``python -m stages.<hop> parity``) in a copy of the project
with the CI profile's small parity corpus, against a server started by ``hop_server``; the
server's log (one line per hop it ran) tells served hops from the ones that ran in-process.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from rnnflow import hopserver
from tests.conftest import copy_checkout, write_params


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_checkout(tmp_path_factory.mktemp("hopserver") / "project")
    write_params(root, {})
    return root


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != hopserver.ENV}
    env.update(extra)
    return env


def hop(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=root, env=env, capture_output=True, text=True
    )


def tables(root: Path, layer: str) -> dict[str, object]:
    folder = root / "data" / layer / "parity"
    return {p.name: pq.read_table(p) for p in sorted(folder.glob("*.parquet"))}


@pytest.fixture(scope="module")
def server(copy: Path, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("hoplog") / "server.log"
    saved = os.environ.pop(hopserver.ENV, None)
    with hopserver.hop_server(log_path=log, quiet=True, cwd=copy, env=_env()) as address:
        yield address, log
    if saved is not None:
        os.environ[hopserver.ENV] = saved


def served(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith("pid ")]


def test_module_argv_only_for_a_plain_dash_m() -> None:
    assert hopserver._module_argv(["python", "-m", "stages.clean", "parity"]) == (
        "stages.clean",
        ["parity"],
    )
    assert hopserver._module_argv(["python", "-X", "importtime", "-m", "stages.clean"]) is None
    assert hopserver._module_argv(["python", "script.py"]) is None


def test_a_served_hop_writes_what_a_fresh_process_writes(copy: Path, server) -> None:
    address, log = server
    for name in ("fetch", "clean"):
        fresh = hop(copy, f"stages.{name}", "parity", env=_env())
        assert fresh.returncode == 0, fresh.stderr
    expected = tables(copy, "02_clean")
    assert expected and served(log) == []

    for name in ("fetch", "clean"):
        result = hop(copy, f"stages.{name}", "parity", env=_env(**{hopserver.ENV: str(address)}))
        assert result.returncode == 0, result.stderr
        # the child wrote to this process's stderr: DVC shows the hop's own lines
        assert f"rnnflow {name} parity: ok" in result.stderr
    lines = served(log)
    assert [line.split(": ")[1] for line in lines] == ["stages.fetch parity", "stages.clean parity"]
    assert all(": exit 0 in " in line for line in lines)
    got = tables(copy, "02_clean")
    assert got.keys() == expected.keys()
    for name, table in got.items():
        assert table.equals(expected[name], check_metadata=True), name


def test_exit_code_and_errors_come_back_from_the_child(copy: Path, server) -> None:
    address, log = server
    before = len(served(log))
    result = hop(copy, "stages.clean", "no_such_corpus", env=_env(**{hopserver.ENV: str(address)}))
    assert result.returncode == 2
    assert "invalid choice: 'no_such_corpus'" in result.stderr
    new = served(log)[before:]
    assert len(new) == 1 and ": stages.clean no_such_corpus: exit 2 in " in new[0]


def test_a_different_interpreter_setup_is_refused_and_runs_in_process(copy: Path, server) -> None:
    address, log = server
    before = len(served(log))
    env = _env(**{hopserver.ENV: str(address), "PYTHONPATH": str(copy)})
    result = hop(copy, "stages.clean", "parity", env=env)
    assert result.returncode == 0, result.stderr
    assert "rnnflow clean parity: ok" in result.stderr
    assert len(served(log)) == before  # the server refused it (PYTHONPATH differs)


def test_no_server_listening_runs_in_process(copy: Path, tmp_path: Path) -> None:
    env = _env(**{hopserver.ENV: str(tmp_path / "gone.sock")})
    result = hop(copy, "stages.clean", "parity", env=env)
    assert result.returncode == 0, result.stderr
    assert "rnnflow clean parity: ok" in result.stderr


def test_ctrl_c_reaches_the_forked_hop(copy: Path, server) -> None:
    """SIGINT to the hop's process is passed to the child: KeyboardInterrupt there, exit 130."""
    address, log = server
    (copy / "stages" / "sleeper.py").write_text(
        "import sys, time\nprint('ready', flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.sleeper"],
        cwd=copy,
        env=_env(**{hopserver.ENV: str(address)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and time.monotonic() - began < 20
    assert "KeyboardInterrupt" in err
    assert ": stages.sleeper: exit 130 in " in served(log)[-1]


def test_the_server_dies_with_its_session(tmp_path: Path) -> None:
    """A SIGKILLed session (no cleanup ran) still takes its hop server with it."""
    session = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nfrom rnnflow.hopserver import hop_server\n"
            "with hop_server():\n    time.sleep(120)\n",
        ],
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert session.stderr is not None
        line = session.stderr.readline()
        assert line.startswith("hop server started: "), line
        address = Path(line.split(": ", 1)[1].split(" (pid ")[0])
        deadline = time.monotonic() + 30
        while not (address.exists() and "warm in" in (address.parent / "server.log").read_text()):
            assert time.monotonic() < deadline, "the server did not warm up"
            time.sleep(0.1)
        session.kill()
        session.wait(10)
        deadline = time.monotonic() + 10
        while address.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not address.exists()  # the server got SIGTERM and removed its socket
    finally:
        if session.poll() is None:
            session.kill()
        if "address" in locals():
            shutil.rmtree(address.parent, ignore_errors=True)  # its log stays: no cleanup ran


def test_a_server_that_never_forks_the_hop_is_given_up_on(copy: Path, tmp_path: Path) -> None:
    """A socket that accepts connections but never answers (a server stuck in its warm-up):
    after RNNFLOW_HOP_SERVER_TIMEOUT the hop runs in its own process."""
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.bind(str(tmp_path / "stuck.sock"))
    stuck.listen(8)  # the kernel completes connections in the backlog; nobody accepts
    try:
        env = _env(
            **{hopserver.ENV: str(tmp_path / "stuck.sock"), "RNNFLOW_HOP_SERVER_TIMEOUT": "1"}
        )
        result = subprocess.run(
            [sys.executable, "-m", "stages.fetch", "parity"],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stuck.close()
    assert result.returncode == 0, result.stderr
    assert "rnnflow fetch parity: ok" in result.stderr


def test_no_hop_server_means_none_not_even_an_outer_one(tmp_path: Path) -> None:
    """``prefect_session --no-hop-server``: the command's hops see no server at all."""
    show = "import os; print(os.environ.get('RNNFLOW_HOP_SERVER'))"
    env = _env(**{hopserver.ENV: str(tmp_path / "outer.sock")}, PREFECT_API_URL="http://x/api")
    for flag, expected in (([], str(tmp_path / "outer.sock")), (["--no-hop-server"], "None")):
        result = subprocess.run(
            [sys.executable, "-m", "pipelines.ops.prefect_session", *flag, "--",
             sys.executable, "-c", show],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected
