"""The project workspace the operational flows act on: one lock, DVC and git in a subprocess.

The ``repro``, ``retrain`` and ``search`` flows never train anything themselves: they run the
same DVC stages a user runs (``dvc repro`` / ``dvc exp run`` in a subprocess, its output
streamed line by line into the Prefect run log), so DVC alone decides what is stale and keeps
the one cache. Two flows (or a flow and a second served run) never run DVC at once in one
workspace: each holds :func:`workspace_lock` (``fcntl.flock`` on ``.dvc/tmp/rnnflow.lock``)
for as long as it uses DVC, and a second one waits for it. params.yaml's checks and edits are
:mod:`pipelines.ops.params`.

No Prefect or DVC import at module top (both are slow to import); torch is never imported.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipelines.lineage import (  # noqa: F401  the ops publish through W.publish_*
    artifact_key,
    child_env,
    publish_markdown,
    publish_table,
)
from pipelines.ops.params import check_workspace_params
from rnnflow.config import ConfigError
from rnnflow.env import PROJECT_ROOT

LOCK_FILE = Path(".dvc") / "tmp" / "rnnflow.lock"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_RAN = re.compile(r"^Running stage '([^']+)'")
_SKIPPED = re.compile(r"^Stage '([^']+)' didn't change, skipping")


class WorkspaceBusy(RuntimeError):
    """The workspace lock was not free within the timeout."""


class CommandFailed(RuntimeError):
    """A subprocess (``dvc``, ``git``) exited non-zero; the message ends with its output."""

    def __init__(self, cmd: list[str], code: int, tail: list[str]):
        self.cmd, self.code, self.tail = cmd, code, tail
        out = "\n".join(tail[-40:])
        super().__init__(f"`{' '.join(cmd)}` exited {code}; last output:\n{out}")


def resolve_root(root: str | Path | None) -> Path:
    """The project root a flow acts on (default: this checkout)."""
    return Path(root).resolve() if root else PROJECT_ROOT


def inside(root: Path, rel: str | Path, what: str) -> Path:
    """``root / rel`` if it stays inside ``root`` (a flow parameter may come from anyone who
    reaches the Prefect API), else a ConfigError naming it."""
    base = Path(root).resolve()
    path = (base / rel).resolve()
    if not path.is_relative_to(base):
        raise ConfigError(f"{what} {str(rel)!r} is outside the project {base}")
    return path


#: A DVC target of this DAG: a stage, or one entry of a ``foreach`` stage (``train@mnist_cnn``).
#: Never a path (``other/dvc.yaml:stage``) or an option (``--allow-missing``).
_STAGE = re.compile(r"[a-z][a-z0-9_]*(@[a-z][a-z0-9_]*)?")
#: A DVC experiment name: letters, digits, ``_`` and ``-``; never an option.
_EXPERIMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


def evaluate_record(root: Path, model: str) -> Path:
    """Everything evaluate measured for ``model`` (``metrics/<model>.json``, the DVC metric,
    holds only its headline): what a search or a retrain judgement reads its metric from."""
    from pipelines.config import Layout
    from pipelines.flows.evaluate import record_path  # the one place that names it

    return record_path(Layout(root), model)


def check_targets(targets: list[str], experiment: str | None = None) -> None:
    """Refuse DVC targets that are not stage names, and an experiment name that is not one."""
    for target in targets:
        if not isinstance(target, str) or not _STAGE.fullmatch(target):
            raise ConfigError(f"target {target!r} is not a stage name (stage or stage@entry)")
    if experiment is not None and not _EXPERIMENT.fullmatch(experiment):
        raise ConfigError(f"{experiment!r} is not an experiment name ({_EXPERIMENT.pattern})")


def utc_now() -> str:
    """The time now, UTC, to the second (ISO 8601)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _log(log: Any) -> Any:
    if log is not None:
        return log
    from pipelines.outputs import logger

    return logger("pipelines.ops.workspace")


# --- the lock ---------------------------------------------------------------------------


def workspace_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every command that holds the workspace takes: ``--lock-timeout``, ``--root``."""
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=3600.0,
        help="seconds to wait for another run holding the workspace (default: %(default)s)",
    )
    parser.add_argument("--root", default=None, help="project root (default: this checkout)")


@contextlib.contextmanager
def workspace_lock(
    root: Path,
    what: str = "rnnflow",
    timeout: float | None = None,
    poll: float = 1.0,
    log: Any = None,
) -> Iterator[Path]:
    """Hold the workspace lock (blocking; ``timeout`` seconds at most, None: forever).

    The lock file names its holder (pid, what, since when) so a waiting run can say whom
    it waits for. The kernel drops an ``flock`` when its holder dies, so a crashed run
    never leaves the workspace locked.
    """
    path = Path(root) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        began, told = time.monotonic(), False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as busy:
                holder = path.read_text().strip() or "another process"
                waited = time.monotonic() - began
                if timeout is not None and waited >= timeout:
                    raise WorkspaceBusy(
                        f"{path}: still held by {holder} after {waited:.0f}s"
                    ) from busy
                if not told:
                    _log(log).info("waiting for the workspace lock %s (held by %s)", path, holder)
                    told = True
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} {what} since {utc_now()}\n".encode())
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --- subprocesses -----------------------------------------------------------------------


def subprocess_env(root: Path) -> dict[str, str]:
    """Environment for ``dvc``/``git`` children: this venv first, the root's code importable.

    Prefect's per-run variables (``PREFECT__*``) are dropped, so the flows DVC starts
    (``python -m pipelines.flows.train``) begin runs of their own against the same API server;
    inside a task run they are told its id (``pipelines.lineage``), so the UI shows them as its
    subflow runs rather than as unrelated top-level runs.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT__")}
    env.update(child_env())
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def tool(name: str) -> str:
    """``dvc``/``git``: the one beside this interpreter when there is one."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


@dataclass
class Run:
    """What a streamed command printed."""

    cmd: list[str]
    code: int
    lines: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ran(self) -> list[str]:
        """Stages DVC ran (``Running stage 'x':``)."""
        return [m.group(1) for ln in self.lines if (m := _RAN.match(ln))]

    @property
    def skipped(self) -> list[str]:
        """Stages DVC found up to date (``Stage 'x' didn't change, skipping``)."""
        return [m.group(1) for ln in self.lines if (m := _SKIPPED.match(ln))]


def stream(
    cmd: list[str], root: Path, log: Any = None, check: bool = True, keep: int = 2000
) -> Run:
    """Run ``cmd`` in ``root``, logging each output line as it comes (stdout + stderr)."""
    log = _log(log)
    log.info("$ %s", " ".join(cmd))
    began = time.monotonic()
    lines: list[str] = []
    with subprocess.Popen(
        cmd,
        cwd=root,
        env=subprocess_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            for line in _ANSI.sub("", raw).replace("\r", "\n").splitlines():
                if line.strip():
                    log.info("%s", line)
                    lines.append(line)
                    del lines[:-keep]
        code = proc.wait()
    run = Run(cmd, code, lines, time.monotonic() - began)
    if check and code != 0:
        raise CommandFailed(cmd, code, lines)
    return run


def capture(
    cmd: list[str], root: Path, check: bool = True, env: dict[str, str] | None = None
) -> str:
    """Run ``cmd`` in ``root`` quietly (``env`` added to :func:`subprocess_env`); its stdout."""
    proc = subprocess.run(
        cmd,
        cwd=root,
        env={**subprocess_env(root), **(env or {})},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise CommandFailed(cmd, proc.returncode, (proc.stdout + proc.stderr).splitlines())
    return proc.stdout


def dvc_json(root: Path, *args: str) -> Any:
    """``dvc <args> --json`` parsed."""
    return json.loads(capture([tool("dvc"), *args, "--json"], root) or "null")


def dvc_repro(
    root: Path,
    targets: list[str] | None = None,
    force: bool = False,
    log: Any = None,
    experiment: str | None = None,
) -> Run:
    """``dvc repro [targets]`` (empty: the whole DAG), or with ``experiment`` ``dvc exp run -n
    experiment [targets]``, streamed into the log."""
    check_workspace_params(root)
    run = ["exp", "run", "-n", experiment] if experiment else ["repro"]
    cmd = [tool("dvc"), *run, *(["--force"] if force else []), *(targets or [])]
    return stream(cmd, root, log)


# --- git --------------------------------------------------------------------------------


def git(root: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
    """``git args`` in ``root`` (``env`` added to its environment); its stdout, stripped."""
    return capture(["git", *args], root, check, env).strip()


def git_head(root: Path) -> tuple[str | None, bool]:
    """(HEAD commit or None, whether tracked files differ from it)."""
    try:
        head = git(root, "rev-parse", "HEAD")
    except (CommandFailed, FileNotFoundError):
        return None, True
    dirty = bool(git(root, "status", "--porcelain", "--untracked-files=no", check=False))
    return head, dirty
