"""The project workspace the operational flows act on: one lock, DVC in a subprocess, params edits.

The ``repro``, ``retrain`` and ``search`` flows never train anything themselves: they run the
same DVC stages a user runs (``dvc repro`` / ``dvc exp run`` in a subprocess, its output
streamed line by line into the Prefect run log), so DVC alone decides what is stale and keeps
the one cache. Two flows (or a flow and a second served run) never run DVC at once in one
workspace: each holds :func:`workspace_lock` (``fcntl.flock`` on ``.dvc/tmp/rnnflow.lock``)
for as long as it uses DVC, and a second one waits for it.

No Prefect or DVC import at module top (both are slow to import); torch is never imported.
"""

from __future__ import annotations

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

from pipelines.lineage import child_env
from rnnflow.config import ConfigError, _plain, _yaml, dump_yaml
from rnnflow.env import PROJECT_ROOT
from rnnflow.hopserver import hop_server

LOCK_FILE = Path(".dvc") / "tmp" / "rnnflow.lock"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_RAN = re.compile(r"^Running stage '([^']+)'")
_SKIPPED = re.compile(r"^Stage '([^']+)' didn't change, skipping")
_HELD: dict[str, int] = {}  # lock path → depth: the lock is re-entrant within one process


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


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _log(log: Any) -> Any:
    if log is not None:
        return log
    from pipelines.outputs import logger

    return logger("pipelines.ops.workspace")


# --- the lock ---------------------------------------------------------------------------


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
    key = str(path.resolve())
    if _HELD.get(key):
        _HELD[key] += 1
        try:
            yield path
        finally:
            _HELD[key] -= 1
        return
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
        _HELD[key] = 1
        try:
            yield path
        finally:
            _HELD.pop(key, None)
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
    env.setdefault("DVC_NO_ANALYTICS", "1")
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


def capture(cmd: list[str], root: Path, check: bool = True) -> str:
    """Run ``cmd`` in ``root`` quietly; its stdout."""
    proc = subprocess.run(
        cmd,
        cwd=root,
        env=subprocess_env(root),
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


def metric_files(diff: Any) -> dict[str, Any]:
    """``dvc metrics diff --json`` → ``{file: {metric: {old, new, diff}}}``.

    The CLI prints the files at the top level (DVC 3.67); the Python API wraps them in
    ``{"diff": ...}``: accept both.
    """
    diff = diff or {}
    inner = diff.get("diff")
    return inner if isinstance(inner, dict) and "diff" not in inner else diff


def dvc_repro(
    root: Path, targets: list[str] | None = None, force: bool = False, log: Any = None
) -> Run:
    """``dvc repro [targets]`` (empty: the whole DAG), streamed into the log.

    Its data hops fork from one warm process (``rnnflow.hopserver``) instead of each importing
    Great Expectations and pandas anew.
    """
    cmd = [tool("dvc"), "repro", *(["--force"] if force else []), *(targets or [])]
    with hop_server(quiet=True, cwd=root, env=subprocess_env(root)):
        return stream(cmd, root, log)


# --- git --------------------------------------------------------------------------------


def git(root: Path, *args: str, check: bool = True) -> str:
    return capture(["git", *args], root, check=check).strip()


def git_head(root: Path) -> tuple[str | None, bool]:
    """(HEAD commit or None, whether tracked files differ from it)."""
    try:
        head = git(root, "rev-parse", "HEAD")
    except (CommandFailed, FileNotFoundError):
        return None, True
    dirty = bool(git(root, "status", "--porcelain", "--untracked-files=no", check=False))
    return head, dirty


def git_show(root: Path, rev: str | None, path: str) -> str | None:
    """``path`` as of ``rev`` (None or ``workspace``: the file on disk); None if absent."""
    if rev in (None, "", "workspace"):
        file = root / path
        return file.read_text() if file.exists() else None
    proc = subprocess.run(
        ["git", "show", f"{rev}:{path}"],
        cwd=root,
        capture_output=True,
        text=True,
        env=subprocess_env(root),
    )
    return proc.stdout if proc.returncode == 0 else None


# --- params.yaml edits ------------------------------------------------------------------


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[1, 2]"]`` → ``{"a.b": 1, "c": [1, 2]}`` (values read as YAML)."""
    from ruamel.yaml import YAML

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = _plain(YAML(typ="safe").load(value)) if value.strip() else None
    return out


def set_params(path: Path, overrides: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Set dotted keys in a params file in place, keeping its comments and layout.

    Every key's parent must exist and be a mapping (a new leaf is allowed: the stage's
    typed config rejects unknown names). Returns ``{key: (old, new)}`` for keys whose value
    changed; nothing is written when none did.
    """
    path = Path(path)
    yaml = _yaml()
    with path.open() as fh:
        doc = yaml.load(fh)
    changed: dict[str, tuple[Any, Any]] = {}
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = doc
        for i, key in enumerate(parents):
            if not isinstance(node, dict) or key not in node:
                where = ".".join(parents[:i]) or "<top>"
                raise ConfigError(f"{path.name}: no key {dotted!r} ({key!r} not under {where})")
            node = node[key]
        if not isinstance(node, dict):
            raise ConfigError(f"{path.name}: {'.'.join(parents)} is not a mapping")
        old = _plain(node.get(leaf))
        if old != value or leaf not in node:
            node[leaf] = value
            changed[dotted] = (old, value)
    if changed:
        dump_yaml(doc, path)
    return changed


def as_s_args(overrides: dict[str, Any]) -> list[str]:
    """The same overrides as ``dvc exp run -S`` arguments (for logs and docs)."""
    return [f"-S {k}={json.dumps(v)}" for k, v in overrides.items()]


def dig(data: Any, dotted: str) -> Any:
    """``data["a"]["b"]`` for ``"a.b"``; None where a key is missing."""
    for key in dotted.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes)."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def publish_markdown(markdown: str, key: str, description: str, log: Any = None) -> None:
    """A Markdown artifact on the current run; never fails the run."""
    try:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(markdown=markdown, key=key, description=description)
    except Exception as exc:  # no API (plain function call), or the server went away
        _log(log).warning("could not publish the %s artifact: %s", key, exc)


def publish_table(rows: list[dict[str, Any]], key: str, description: str, log: Any = None) -> None:
    """A table artifact on the current run; never fails the run."""
    try:
        from prefect.artifacts import create_table_artifact

        create_table_artifact(table=rows, key=key, description=description)
    except Exception as exc:
        _log(log).warning("could not publish the %s artifact: %s", key, exc)
