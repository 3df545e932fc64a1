"""A warm process that data hops fork from, so a hop stops paying for its imports.

A hop is a fresh ``python -m stages.<hop> <corpus>`` per DVC stage; most of its wall time on a
small corpus is importing Great Expectations, pandas and pyarrow (~2.5 s on 2 cores), not the
work. For one session (``make repro``: ``pipelines.ops.prefect_session`` starts it beside the
Prefect server with :func:`hop_server`; so does the ``repro`` flow) this module keeps one
server with those imports done and a GX context built once; each hop's process hands its
command to it and the server forks a child that runs the hop exactly as ``python -m`` would,
with the hop's argv, working directory, environment and stdin/stdout/stderr (the file
descriptors themselves, passed over a Unix socket), then reports the exit code back. DVC still
runs, times and hashes every stage as before: only the interpreter start-up is shared.

What keeps a forked hop equal to a fresh one:

- project code (``rnnflow``, ``stages``, ``pipelines``) is dropped from ``sys.modules`` in the
  child and imported again from disk, so an edit made during a session is what runs; only
  third-party modules stay warm (installing packages during a session is not picked up);
- the server refuses a hop (and the hop then runs in its own process, as without a server)
  whose interpreter, working directory or ``PYTHON*`` environment differ from the server's;
- no server, a stale socket or a refusal all fall back to running in-process: the server is an
  accelerator, never a requirement;
- signals the hop's process receives (Ctrl-C, DVC's SIGTERM) are passed on to the child, also
  those that come before it knows the child's pid (held until then), and the exit code is the
  child's (130 for an interrupted hop); a signal the hop's process started with ignored (Ctrl-C
  in a background job) stays ignored in the child, as in a fresh interpreter.

The client side (:func:`delegate`) imports only the standard library: it runs in every hop
process before anything heavy is imported (see ``stages/__init__.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

#: The environment variable that names the server's socket for the hop processes.
ENV = "RNNFLOW_HOP_SERVER"
#: Packages whose modules a child imports afresh from disk (the project's own code).
PROJECT_PACKAGES = ("rnnflow", "stages", "pipelines")
#: Third-party modules every hop imports; the server imports them once. Great Expectations
#: (with its context) comes through :func:`rnnflow.validate.warm`.
PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow",
    "pyarrow.compute",
    "pyarrow.parquet",
    "pydantic",
    "ruamel.yaml",
)
#: Environment variables Python reads once at start-up: a hop whose values differ from the
#: server's cannot be forked from it faithfully (PYTHONUNBUFFERED is applied per hop).
_STARTUP_VARS = ("PYTHONPATH", "PYTHONHOME", "PYTHONHASHSEED", "PYTHONSAFEPATH", "PYTHONNOUSERSITE")
_HEADER = struct.Struct("!I")
#: Seconds a hop waits for the server to fork it before running in-process instead.
FIRST_REPLY_TIMEOUT = float(os.environ.get("RNNFLOW_HOP_SERVER_TIMEOUT", "120"))
#: fork and descriptor passing over Unix sockets (Linux, macOS); elsewhere hops run in-process.
_SUPPORTED = hasattr(os, "fork") and hasattr(socket, "send_fds")
#: Signals the hop's process passes on to the child that runs the hop.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Refused(Exception):
    """The server will not run this hop; the reason is sent to the client."""


def _fingerprint(env: dict[str, str], cwd: str) -> dict[str, Any]:
    return {
        "executable": sys.executable,
        "prefix": sys.prefix,
        "cwd": os.path.realpath(cwd),
        "env": {k: env.get(k) for k in _STARTUP_VARS},
    }


# --- client ------------------------------------------------------------------------------


def _module_argv(orig_argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """``(module, args)`` of ``python -m module args...`` with no interpreter options."""
    if len(orig_argv) >= 3 and orig_argv[1] == "-m":
        return orig_argv[2], list(orig_argv[3:])
    return None


def delegate() -> None:
    """Hand this ``python -m stages.<hop> ...`` process to the hop server, if there is one.

    Returns (and the hop runs in this process, as usual) when ``$RNNFLOW_HOP_SERVER`` is unset,
    the command had interpreter options, the server cannot be reached or refuses. Otherwise it
    does not return: it waits for the forked hop and exits with its code.
    """
    address = os.environ.get(ENV, "").strip()
    command = _module_argv(getattr(sys, "orig_argv", []))
    # argv[0] is "-m" only while `python -m` imports the module's package: never in a child
    # the server forked (whose orig_argv is the server's own), so a hop is handed off once.
    if not address or command is None or sys.argv[:1] != ["-m"] or not _SUPPORTED:
        return
    module, args = command
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(address)
    except OSError:
        return
    cwd = os.getcwd()
    # A signal ignored at our start (SIGINT in a background job) stays ignored in the child,
    # as it would in a fresh interpreter, and is not forwarded.
    ignored = [s for s in FORWARDED if signal.getsignal(s) == signal.SIG_IGN]
    request = {
        "module": module,
        "args": args,
        "env": dict(os.environ),
        "cwd": cwd,
        "fingerprint": _fingerprint(dict(os.environ), cwd),
        "ignored": [s.name for s in ignored],
    }
    child: int | None = None
    pending: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if child is None:
            pending.append(signum)  # the child's pid is on its way
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    previous: dict[int, Any] = {}

    def run_here() -> None:
        """Give up on the server: our handlers go, and signals held back are raised here."""
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in pending:
            signal.raise_signal(signum)

    payload = json.dumps(request).encode()
    with conn:
        try:
            # A server stuck before forking (its warm-up takes ~2.5 s) must not hold the hop;
            # our stdio descriptors go only to a child that said it will run the hop, as
            # descriptors in flight would keep our pipes open (no EOF) for as long as it hangs.
            conn.settimeout(FIRST_REPLY_TIMEOUT)
            conn.sendall(_HEADER.pack(len(payload)) + payload)
            replies = conn.makefile("r", encoding="utf-8")
            if replies.readline() != "ready\n":
                return  # refused, or the server went away: run in-process
            conn.settimeout(None)
            # From here the hop may print before we read its pid (whoever reads its output
            # may signal it then): signals are caught now and passed on once the pid is known.
            previous.update((s, signal.signal(s, forward)) for s in FORWARDED if s not in ignored)
            socket.send_fds(conn, [b"F"], [0, 1, 2])
            first = replies.readline().split(" ", 1)
        except OSError:  # timeouts included
            run_here()
            return  # nothing ran yet: run in-process
        if first[0] != "pid":
            run_here()
            return
        child = int(first[1])
        while pending:
            forward(pending.pop(0), None)
        while True:
            try:
                line = replies.readline()
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue
    word, _, value = line.partition(" ")
    if word == "exit":
        os._exit(int(value))
    print(
        f"rnnflow hop server: the process running `python -m {module}` (pid {child}) died "
        "without reporting an exit code",
        file=sys.stderr,
    )
    os._exit(1)


# --- server ------------------------------------------------------------------------------


def warm(preload: Sequence[str] = PRELOAD) -> None:
    """Import what hops import (and build a GX context once), so children start warm."""
    import importlib

    for name in preload:
        importlib.import_module(name)
    from rnnflow import validate

    validate.warm()


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise _Refused("request cut short")
        data += chunk
    return bytes(data)


def _recv_request(conn: socket.socket) -> dict[str, Any]:
    (size,) = _HEADER.unpack(_recv_exactly(conn, _HEADER.size))
    return json.loads(_recv_exactly(conn, size))


def _recv_stdio(conn: socket.socket) -> list[int]:
    _msg, fds, _flags, _addr = socket.recv_fds(conn, 1, 3)
    if len(fds) != 3:
        raise _Refused("no stdin/stdout/stderr received")
    return fds


def _redirect_stdio(fds: list[int], env: dict[str, str]) -> None:
    """Make the client's stdin/stdout/stderr this process's, as a fresh interpreter sets them.

    (``sys.__stdout__`` and friends keep the server's objects, now writing to the client's
    descriptors too.)
    """
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))
    encoding = env.get("PYTHONIOENCODING", "").split(":")[0] or "utf-8"
    sys.stdin = open(0, encoding=encoding, closefd=False)
    sys.stdout = open(
        1,
        "w",
        encoding=encoding,
        buffering=1 if unbuffered or os.isatty(1) else -1,
        closefd=False,
    )
    sys.stderr = open(
        2, "w", encoding=encoding, errors="backslashreplace", buffering=1, closefd=False
    )


def _forget_project_modules() -> None:
    for name in list(sys.modules):
        if name.split(".", 1)[0] in PROJECT_PACKAGES:
            del sys.modules[name]


def _run_module(module: str, args: list[str]) -> int:
    """``python -m module args...`` in this process; its exit code."""
    import runpy
    import traceback

    sys.argv = [module, *args]  # runpy sets argv[0] to the module's file
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        print(exc.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        traceback.print_exc()
        return 130
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _child(conn: socket.socket, log: Any) -> NoReturn:
    """In the forked child: run one hop for the client on ``conn``, then exit."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the hop may wait for its own children
        for signum in FORWARDED:
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            request = _recv_request(conn)
            for name in request.get("ignored", []):
                signal.signal(signal.Signals[name], signal.SIG_IGN)
            ours = _fingerprint(_SERVER_ENV, _SERVER_CWD)
            mismatch = [key for key, value in ours.items() if request["fingerprint"][key] != value]
            if mismatch:
                raise _Refused(f"differs from the server in {', '.join(mismatch)}")
            conn.sendall(b"ready\n")
            fds = _recv_stdio(conn)
        except (_Refused, OSError, ValueError, KeyError) as exc:
            with contextlib.suppress(OSError):
                conn.sendall(f"refuse {exc}\n".encode())
            os._exit(0)
        started = time.perf_counter()
        conn.sendall(f"pid {os.getpid()}\n".encode())
        try:
            _redirect_stdio(fds, request["env"])
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            sys.path[0] = request["cwd"]  # what `python -m` puts first
            _forget_project_modules()
        except KeyboardInterrupt:  # a Ctrl-C forwarded before the hop started
            code = 130
        else:
            code = _run_module(request["module"], request["args"])
        with contextlib.suppress(Exception):
            import atexit

            atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        took = time.perf_counter() - started
        command = " ".join([request["module"], *request["args"]])
        with contextlib.suppress(Exception):
            log.write(f"pid {os.getpid()}: {command}: exit {code} in {took:.2f} s\n")
            log.flush()
        with contextlib.suppress(OSError):
            conn.sendall(f"exit {code}\n".encode())
    finally:
        os._exit(code)


_SERVER_ENV: dict[str, str] = {}
_SERVER_CWD = ""


def serve(address: Path, preload: Sequence[str] = PRELOAD, log: Any = None) -> NoReturn:
    """Listen on the Unix socket ``address``, warm up, then fork a child per hop, forever.

    The socket listens before the warm-up, so hops that start meanwhile wait in its backlog
    instead of falling back. Stops on SIGTERM/SIGINT (children finish on their own).
    """
    global _SERVER_ENV, _SERVER_CWD
    # A descriptor of its own: a child's fd 2 becomes its client's stderr.
    log = log or open(os.dup(2), "w", buffering=1)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(address))
    listener.listen(64)
    began = time.perf_counter()
    warm(preload)
    _SERVER_ENV, _SERVER_CWD = dict(os.environ), os.getcwd()
    print(
        f"rnnflow hop server: warm in {time.perf_counter() - began:.1f} s, listening on {address}",
        file=log,
        flush=True,
    )
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel

    def stop(*_: object) -> NoReturn:
        with contextlib.suppress(OSError):
            address.unlink()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        try:
            conn, _ = listener.accept()
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
        if os.fork() == 0:
            listener.close()
            _child(conn, log)
        conn.close()


def die_with_parent() -> None:
    """In a server child (Linux): SIGTERM it when its parent dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


@contextlib.contextmanager
def hop_server(
    log_path: Path | None = None,
    quiet: bool = False,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Path | None]:
    """Run a hop server for the ``with`` block and point ``$RNNFLOW_HOP_SERVER`` at it.

    ``cwd`` and ``env`` should be those DVC will run the hops with (default: this process's),
    or the server refuses them. Yields the socket path (``None``, starting nothing, when
    ``$RNNFLOW_HOP_SERVER`` is already set, as an outer session's server serves, or where there
    is no ``fork``). The server runs in its own session (a Ctrl-C at the terminal reaches the
    hops through their own processes) and is stopped on exit.
    """
    if os.environ.get(ENV) or not _SUPPORTED:
        yield None
        return
    directory = Path(tempfile.mkdtemp(prefix="rnnflow-hops-"))
    address = directory / "socket"
    log = (log_path or directory / "server.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnflow.hopserver", "--socket", str(address)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent,  # never outlives its session, even a SIGKILLed one
        cwd=cwd,
        env=None if env is None else dict(env),
    )
    log.close()
    deadline = time.monotonic() + 30
    while not address.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # bound before warm-up: hops queue on it from here on
    if not quiet:
        state = "started" if address.exists() else "did not start (hops run in-process)"
        print(f"hop server {state}: {address} (pid {proc.pid})", file=sys.stderr)
    os.environ[ENV] = str(address)
    try:
        yield address
    finally:
        os.environ.pop(ENV, None)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        with contextlib.suppress(OSError):
            address.unlink()
        if log_path is None:
            with contextlib.suppress(OSError):
                (directory / "server.log").unlink()
        with contextlib.suppress(OSError):
            directory.rmdir()


def main(argv: list[str] | None = None) -> int:
    """``python -m rnnflow.hopserver --socket PATH``: serve hops until SIGTERM."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m rnnflow.hopserver",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--socket", type=Path, required=True, help="Unix socket to listen on")
    serve(parser.parse_args(argv).socket)


if __name__ == "__main__":
    sys.exit(main())
