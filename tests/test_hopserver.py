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
from collections.abc import Callable
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
    """``python -m args...`` in ``root``; a hop that hangs fails the test after 120 s."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def start_hop(
    root: Path, module: str, address: Path, sigint: Callable[[], None]
) -> subprocess.Popen[str]:
    """``python -m module`` against the server at ``address``, outputs piped; ``sigint`` sets
    its SIGINT disposition at start (so it does not depend on this test process's)."""
    return subprocess.Popen(
        [sys.executable, "-m", module],
        cwd=root,
        env=_env(**{hopserver.ENV: str(address)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint,
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


def interrupt_when_ready(
    root: Path, name: str, script: str, address: Path, sigint: Callable[[], None]
) -> tuple[int, str, str, float]:
    """Run hop ``stages.<name>`` (``script``, which prints ``ready`` first), SIGINT it once it
    is ready; its exit code, stdout, stderr and the seconds from the signal to its end."""
    (root / "stages" / f"{name}.py").write_text(script)
    proc = start_hop(root, f"stages.{name}", address, sigint)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err, time.monotonic() - began


def test_ctrl_c_reaches_the_forked_hop(copy: Path, server) -> None:
    """SIGINT to the hop's process is passed to the child: KeyboardInterrupt there, exit 130."""
    address, log = server
    script = "import sys, time\nprint('ready', flush=True)\ntime.sleep(60)\n"
    code, _, err, took = interrupt_when_ready(copy, "sleeper", script, address, _sigint_default)
    assert code == 130 and took < 20
    assert "KeyboardInterrupt" in err
    assert ": stages.sleeper: exit 130 in " in served(log)[-1]


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _sigint_ignored() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_a_ctrl_c_before_the_pid_arrives_still_reaches_the_hop(copy: Path, tmp_path: Path) -> None:
    """The hop prints (through its descriptors) before its process has read the child's pid,
    and whoever reads that output presses Ctrl-C: the signal waits for the pid, then goes on.

    A scripted server makes the order certain: it writes the hop's first line itself, lets the
    test send SIGINT, and only then names the "child" (a sleeping process of this test).
    """
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "scripted.sock"))
    listener.listen(1)
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time\ntime.sleep(60)"],
        stderr=subprocess.DEVNULL,
        preexec_fn=_sigint_default,
    )
    proc = start_hop(copy, "stages.sleeper", tmp_path / "scripted.sock", _sigint_default)
    try:
        listener.settimeout(60)
        conn, _ = listener.accept()
        with conn:
            (size,) = hopserver._HEADER.unpack(hopserver._recv_exactly(conn, 4))
            assert hopserver._recv_exactly(conn, size)
            conn.sendall(b"ready\n")
            _, fds, _, _ = socket.recv_fds(conn, 1, 3)
            os.write(fds[1], b"started\n")
            for fd in fds:
                os.close(fd)
            assert proc.stdout is not None and proc.stdout.readline() == "started\n"
            proc.send_signal(signal.SIGINT)
            time.sleep(0.5)  # the hop's process takes the signal before it knows the pid
            assert proc.poll() is None  # it did not die of it
            conn.sendall(f"pid {sleeper.pid}\n".encode())
            assert sleeper.wait(30) == -signal.SIGINT  # forwarded once the pid came
            conn.sendall(b"exit 130\n")
        assert proc.wait(30) == 130
    finally:
        listener.close()
        for each in (proc, sleeper):
            if each.poll() is None:
                each.kill()


def test_a_signal_ignored_by_the_hop_process_stays_ignored(copy: Path, server) -> None:
    """A hop started with SIGINT ignored (a background job) ignores it as a fresh one would."""
    address, log = server
    script = "import time\nprint('ready', flush=True)\ntime.sleep(2)\nprint('done')\n"
    code, out, err, _ = interrupt_when_ready(copy, "patient", script, address, _sigint_ignored)
    assert code == 0, err
    assert out.strip() == "done"
    assert ": stages.patient: exit 0 in " in served(log)[-1]


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
        result = hop(copy, "stages.fetch", "parity", env=env)
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
