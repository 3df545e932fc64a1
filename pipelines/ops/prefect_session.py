"""One Prefect server for a whole session: every flow a command starts reports to it.

    python -m pipelines.ops.prefect_session -- dvc repro
    python -m pipelines.ops.prefect_session --home .prefect --port 4200 -- dvc repro train@mnist_cnn

With no ``PREFECT_API_URL``, each process that runs a Prefect flow starts a temporary server of
its own (~13 s cold, per training or evaluation stage) and its runs vanish with it. This wraps a
command instead: when ``PREFECT_API_URL`` is unset it starts ``prefect server start --host
127.0.0.1 --port <free port>`` once, with ``PREFECT_HOME=<home>`` (its SQLite database lives
there, so the runs of every session stay and show in the UI of the next server over that home),
waits for ``/api/health``, runs the command with ``PREFECT_API_URL`` pointing at it, then stops
the server (SIGTERM, then SIGKILL after a grace period), also on Ctrl-C. A process the command
leaves behind (a stage whose ``dvc`` was killed, still reporting its crash) is adopted and waited
for, up to the same grace period, before the server stops: its run ends Crashed, not Running. When
``PREFECT_API_URL`` is already set, that server is used and nothing is started. The exit code
is the command's (128+N when it died of signal N).

Every flow run the command starts carries the tag ``session:<UTC time>`` (or ``--tag``; through
``RNNFLOW_RUN_TAGS``, see ``pipelines.lineage``), so the UI's tag filter shows what one session,
e.g. one ``make repro``, ran.

The server listens on 127.0.0.1 only, with CSRF protection on and CORS limited to its own UI's
origin; ``PREFECT_SERVER_API_AUTH_STRING`` in the environment adds basic auth (clients then need
``PREFECT_API_AUTH_STRING``; see docs/security.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

from pipelines.lineage import TAGS_ENV, api_health, env_tags
from rnnflow.env import PROJECT_ROOT, apply_offline_defaults

HOST = "127.0.0.1"
LOG_NAME = "server.log"
#: Seconds the server gets to stop, and the command's leftover processes to end, before more force.
GRACE = 20.0


def _prctl(option: int, arg: int) -> None:
    """Linux's ``prctl(option, arg)``; a no-op where libc has none (its guards are best effort)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, arg)
    except Exception:
        pass


def _die_with_parent() -> None:
    """In a forked child before exec (Linux): SIGTERM it when its parent dies, even by SIGKILL.

    Not ``pipelines.lineage.die_with_parent``: that one watches from a thread, which ``exec``
    does not carry into the server.
    """
    _prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


class ServerStartError(RuntimeError):
    """``prefect server start`` exited or did not answer ``/api/health`` in time."""


def free_port(host: str = HOST) -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    """Whether ``<api_url>/health`` answers 200 (with ``PREFECT_API_AUTH_STRING`` when set)."""
    try:
        return api_health(api_url, timeout) == 200
    except OSError:
        return False


def _say(message: str) -> None:
    """Tell the user ``message`` on stderr, as this command."""
    print(f"prefect_session: {message}", file=sys.stderr)


def _tail(path: Path, offset: int, lines: int = 40) -> str:
    """The last ``lines`` lines written to ``path`` after byte ``offset``."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def stop_process(proc: subprocess.Popen, grace: float = GRACE) -> int | None:
    """SIGTERM ``proc``; SIGKILL it if it is still running after ``grace`` seconds.

    A Ctrl-C while waiting kills it at once (and is then re-raised): the server never
    outlives its session.
    """
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except BaseException as exc:  # still running after the grace period, or a Ctrl-C
            proc.kill()
            proc.wait(10)
            if not isinstance(exc, subprocess.TimeoutExpired):
                raise
    return proc.returncode


def _server_env(home: Path, api: str) -> dict[str, str]:
    """The server's environment: ours (telemetry off: :func:`apply_offline_defaults`), minus
    client settings, plus its home and safe defaults.

    Any web page the user visits can send requests to a port on 127.0.0.1, so CSRF protection
    is on (Prefect's client and UI fetch tokens themselves) and CORS grants only the UI's own
    origin: a page elsewhere can neither read a token nor send one. These are set, not
    defaulted, so an inherited ``*`` cannot reopen the server.
    """
    ui = api.removesuffix("/api")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PREFECT__") and k not in ("PREFECT_API_URL", "PREFECT_API_KEY")
    }
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_UI_API_URL": api,
            "PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED": "true",
            # The UI opened as localhost:<port> calls the API at 127.0.0.1:<port>: cross-origin.
            "PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS": f"{ui},{ui.replace(HOST, 'localhost')}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@contextlib.contextmanager
def prefect_server(
    home: Path,
    port: int | None = None,
    startup_timeout: float = 120.0,
    grace: float = GRACE,
    quiet: bool = False,
) -> Iterator[str]:
    """Yield the API URL of a Prefect server that runs for the ``with`` block.

    ``PREFECT_API_URL`` already set: yield it, start nothing. Otherwise start ``prefect server
    start --host 127.0.0.1 --port <port or a free one>`` with ``PREFECT_HOME=home`` (its output
    appended to ``home/server.log``), wait up to ``startup_timeout`` seconds for
    ``/api/health``, and set ``PREFECT_API_URL`` in ``os.environ`` for the block (so every child
    process inherits it; unset again after). On exit, Ctrl-C included, the server gets SIGTERM
    and, after ``grace`` seconds, SIGKILL. It runs in its own session, so a Ctrl-C at the
    terminal reaches the command but not the server, which is stopped only after the command
    has finished writing its runs.

    Raises :class:`ServerStartError` (with the tail of the server's log) if it exits early or
    is not healthy in time; with no ``port`` given, a lost race for the free port is retried.
    """
    existing = os.environ.get("PREFECT_API_URL", "").strip()
    if existing:
        if not quiet:
            _say(f"using the server at PREFECT_API_URL={existing}")
        yield existing
        return

    apply_offline_defaults()
    home = Path(home).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / LOG_NAME
    attempts = 1 if port else 3
    for attempt in range(1, attempts + 1):
        use_port = port or free_port()
        api = f"http://{HOST}:{use_port}/api"
        with log_path.open("ab") as log:
            offset = log.tell()
            log.write(
                f"--- prefect_session {datetime.now(timezone.utc).isoformat()} "
                f"pid {os.getpid()} port {use_port} ---\n".encode()
            )
            log.flush()
            began = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start"]
                + ["--host", HOST, "--port", str(use_port)],
                env=_server_env(home, api),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # never outlives its session, even a SIGKILLed one
            )
        try:
            while not healthy(api):
                if proc.poll() is not None or time.monotonic() - began > startup_timeout:
                    break
                time.sleep(0.25)
            else:
                break  # healthy
        except BaseException:  # Ctrl-C while waiting
            stop_process(proc, grace)
            raise
        code = proc.poll()
        stop_process(proc, grace)
        why = (
            f"exited with code {code}"
            if code is not None
            else f"was not healthy after {startup_timeout:.0f} s"
        )
        if code is not None and attempt < attempts and "address" in _tail(log_path, offset):
            continue  # someone took the free port between our check and the server's bind
        raise ServerStartError(
            f"prefect server start (PREFECT_HOME={home}, {api}) {why}; last lines of "
            f"{log_path}:\n{_tail(log_path, offset)}"
        )

    if not quiet:
        _say(
            f"Prefect server at {api} (UI http://{HOST}:{use_port}, PREFECT_HOME={home}, "
            f"healthy in {time.monotonic() - began:.1f} s)"
        )
    os.environ["PREFECT_API_URL"] = api  # unset or blank before: a set one returned above
    try:
        yield api
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        code = stop_process(proc, grace)
        if not quiet:
            how = signal.Signals(-code).name if code and code < 0 else f"exit {code}"
            _say(f"stopped the Prefect server ({how}); its runs are kept in {home}")


def _terminal_signals_child() -> bool:
    """Whether a Ctrl-C at the terminal reaches our child too (we are its foreground group)."""
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        try:
            return os.tcgetpgrp(stream.fileno()) == os.getpgrp()
        except (OSError, ValueError, AttributeError):
            continue
    return False


def _orphans() -> list[int]:
    """Our running children in our own session: what the command left behind.

    The server is a child too, but in a session of its own. Zombies are reaped, not counted.
    """
    me, sid, found = os.getpid(), os.getsid(0), []
    if not sys.platform.startswith("linux"):  # no subreaper: nothing is adopted
        return found
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) != me or int(fields[3]) != sid:
            continue
        if fields[0] == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(entry.name), os.WNOHANG)
        else:
            found.append(int(entry.name))
    return found


def wait_for_orphans(grace: float = GRACE) -> None:
    """Wait up to ``grace`` seconds for the processes the command left behind.

    A stage whose ``dvc`` is killed learns it within a second (``die_with_parent``) and then
    reports its crash to the server; stopping the server before that leaves its run Running.
    """
    deadline = time.monotonic() + grace
    if not (left := _orphans()):
        return
    _say(
        f"waiting up to {grace:.0f} s for {len(left)} process(es) the command left behind, "
        "so their runs end in a final state"
    )
    while _orphans() and time.monotonic() < deadline:
        time.sleep(0.2)


def run_command(cmd: Sequence[str]) -> int:
    """Run ``cmd``; its exit code (128+N if signal N ended it).

    SIGTERM and SIGHUP are passed on to it. A SIGINT is passed on unless the terminal already
    sent it to the whole foreground process group (the child included); either way this
    process waits for the command to end, and for what it left behind (:func:`wait_for_orphans`),
    so the server outlives the command's last write.
    """
    _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: what the command leaves behind becomes our child
    proc = subprocess.Popen(list(cmd))
    terminal = _terminal_signals_child()

    def forward(signum, _frame):
        if proc.poll() is None and not (signum == signal.SIGINT and terminal):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        code = proc.wait()
        wait_for_orphans()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return 128 - code if code < 0 else code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.ops.prefect_session",
        description="\n\n".join(__doc__.split("\n\n")[::2]),
        epilog="examples:\n" + __doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="PREFECT_HOME of the server: its SQLite database and server.log "
        "(default: $PREFECT_HOME, else <project>/.prefect)",
    )
    parser.add_argument(
        "--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)"
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for /api/health (default: %(default)s)",
    )
    parser.add_argument(
        "--tag",
        default=None,
        help="tag for every flow run of the session (default: session:<UTC time>)",
    )
    parser.add_argument(
        "cmd",
        nargs=argparse.REMAINDER,
        metavar="-- CMD ARGS...",
        help="the command to run inside the session, after --",
    )
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("no command given: python -m pipelines.ops.prefect_session -- CMD ARGS...")
    home = args.home or Path(os.environ.get("PREFECT_HOME") or PROJECT_ROOT / ".prefect")
    tag = args.tag or f"session:{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
    os.environ[TAGS_ENV] = ",".join(dict.fromkeys([*env_tags(), tag]))
    try:
        with prefect_server(home, args.port, args.startup_timeout):
            return run_command(cmd)
    except ServerStartError as exc:
        _say(str(exc))
        return 1
    except FileNotFoundError as exc:
        _say(str(exc))
        return 127
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
