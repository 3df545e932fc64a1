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
import importlib
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
from rnnflow.config import (
    Config,
    ConfigError,
    _plain,
    _yaml,
    check_identifier,
    dump_yaml,
    load_params,
    parse,
)
from rnnflow.env import PROJECT_ROOT

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


def check_targets(targets: list[str], experiment: str | None = None) -> None:
    """Refuse DVC targets that are not stage names, and an experiment name that is not one."""
    for target in targets:
        if not isinstance(target, str) or not _STAGE.fullmatch(target):
            raise ConfigError(f"target {target!r} is not a stage name (stage or stage@entry)")
    if experiment is not None and not _EXPERIMENT.fullmatch(experiment):
        raise ConfigError(f"{experiment!r} is not an experiment name ({_EXPERIMENT.pattern})")


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
    """``dvc repro [targets]`` (empty: the whole DAG), streamed into the log."""
    check_workspace_params(root)
    cmd = [tool("dvc"), "repro", *(["--force"] if force else []), *(targets or [])]
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


#: The data hops: each has a params section keyed by corpus name.
HOPS = ("fetch", "clean", "format", "sample", "tokenize")


def _names(parents: tuple[str, ...]) -> str | None:
    """What the keys of the mapping at ``parents`` name, where they are names that become stage
    names, paths or command words (dvc.yaml pastes them into ``cmd``); None for a record."""
    if not parents:
        return "section"
    if parents == ("train", "models"):
        return "model"
    if len(parents) == 1 and parents[0] in HOPS:
        return "corpus"
    if len(parents) == 3 and parents[0] == "fetch" and parents[2] == "sources":
        return "source"
    return None


def _same_kind(old: Any, new: Any) -> bool:
    """Whether ``new`` may replace ``old``: the same type, an int for a float, and null either
    way; a number for a word and a word for a number, where a field takes both
    (``retrain.margin``: a number or ``measured``). Whether the field takes it is the typed
    config's to say, and it is asked next. A numeric string replaces only another one: the
    config would read ``"0.1"`` as 0.1 while params.yaml held a string."""
    if old is None or new is None:
        return True
    if isinstance(old, bool) or isinstance(new, bool):  # bool is an int to Python, not here
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(new, str):
        if _numeric(new):
            return isinstance(old, str) and _numeric(old)
        return isinstance(old, (int, float, str))
    if isinstance(old, (str, float)):
        return isinstance(new, (int, float))
    return any(isinstance(old, t) and isinstance(new, t) for t in (int, list, dict))


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _leaves(keys: tuple[str, ...], value: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
    """A mapping value is set leaf by leaf (as a profile merges), so it cannot add a name."""
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            yield from _leaves((*keys, str(key)), sub)
    else:
        yield keys, value


def _edit(doc: Any, overrides: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    changed: dict[str, tuple[Any, Any]] = {}
    for dotted, value in overrides.items():
        for keys, leaf_value in _leaves(tuple(dotted.split(".")), value):
            name = ".".join(keys)
            node = doc
            for i, key in enumerate(keys):
                what = _names(keys[:i])
                if what:
                    check_identifier(key, f"params key {name!r}: {what}")
                if not isinstance(node, dict):
                    where = ".".join(keys[:i])
                    raise ConfigError(f"params key {name!r}: {where} is not a mapping")
                if key not in node and what:
                    raise ConfigError(
                        f"params key {name!r}: {key!r} is a new name (params.yaml has no "
                        f"{what} {key!r}): a writer changes existing entries, never adds one"
                    )
                if key not in node and i < len(keys) - 1:
                    where = ".".join(keys[:i]) or "<top>"
                    raise ConfigError(f"params key {name!r}: no {key!r} under {where}")
                if i < len(keys) - 1:
                    node = node[key]
            leaf = keys[-1]
            old = _plain(node[leaf]) if leaf in node else None
            if leaf in node and not _same_kind(old, leaf_value):
                raise ConfigError(
                    f"params key {name!r}: {leaf_value!r} ({type(leaf_value).__name__}) cannot "
                    f"replace {old!r} ({type(old).__name__})"
                )
            if leaf not in node or old != leaf_value:
                node[leaf] = leaf_value
                changed[name] = (old, leaf_value)
    return changed


def check_params(params: dict[str, Any], root: Path | None = None) -> None:
    """Validate a whole params document as the stages will read it; ConfigError names the key.

    ``train``, ``evaluate``, ``report``, ``retrain`` and ``data`` go through their typed
    configs; each hop section
    through its corpus adapter's config (what ``stages/<hop>.py`` parses), a corpus's fetch
    section with its source catalogue (``root/sources/<corpus>.yaml``) when ``root`` is given.
    Every model, corpus and source name, and every ``corpus`` value, must be an identifier.
    """
    from pipelines.config import EvaluateConfig, ReportConfig, TrainConfig
    from pipelines.ops.retrain_config import RetrainConfig

    typed: dict[str, type[Config]] = {
        "train": TrainConfig,
        "evaluate": EvaluateConfig,
        "report": ReportConfig,
        "retrain": RetrainConfig,
        "data": importlib.import_module("stages.core.engine").DataConfig,
    }
    for name, model in typed.items():
        if name in params:
            parse(model, params, name)
    for model_name in dig(params, "train.models") or {}:
        check_identifier(model_name, "train.models: model")
    _check_corpus_values(params, "")
    # The hops' typed configs live with the corpus adapters in `stages`, which `pipelines`
    # never imports statically (the layers contract): ops run both sides of the DAG, so
    # they import it by name, as `rnnflow.cli` dispatches to both.
    corpora = importlib.import_module("stages.corpora")
    sample_config = importlib.import_module("stages.sample").SampleConfig
    network_config = importlib.import_module("stages.core.config").NetworkConfig
    if root is not None:
        catalogued = importlib.import_module("stages.core.sources").with_catalogue
        for corpus in list(params.get("fetch") or {}):
            if corpus not in ("network", "require_pinned"):
                check_identifier(corpus, "fetch: corpus")
                params = catalogued(params, corpus, root)
    for hop in HOPS:
        for corpus, raw in (params.get(hop) or {}).items():
            if hop == "fetch" and corpus == "network":
                parse(network_config, params, "fetch.network")
                continue
            if hop == "fetch" and corpus == "require_pinned":
                continue  # a flag, not a corpus: its type is checked as it is set
            check_identifier(corpus, f"{hop}: corpus")
            if corpus not in corpora.REGISTRY:
                raise ConfigError(f"{hop}.{corpus}: no corpus adapter named {corpus!r}")
            adapter = corpora.get(corpus)
            model = sample_config if hop == "sample" else getattr(adapter, f"{hop.title()}Config")
            parse(model, params, f"{hop}.{corpus}")
            if hop == "fetch" and isinstance(raw, dict):
                for source in raw.get("sources") or {}:
                    check_identifier(source, f"fetch.{corpus}.sources: source")
                listed = raw.get("source")
                for source in [listed] if isinstance(listed, str) else listed or []:
                    check_identifier(source, f"fetch.{corpus}.source: source")


def check_workspace_params(root: Path) -> None:
    """:func:`check_params` on ``root/params.yaml`` (when there is one) before DVC renders
    dvc.yaml from it: a hand-edited hostile name stops here, not in DVC's shell."""
    path = Path(root) / "params.yaml"
    if path.exists():
        check_params(load_params(path), Path(root))


def _check_corpus_values(node: Any, where: str) -> None:
    """Every ``corpus: NAME`` anywhere (a model's corpus, a hop's other corpus) is a name."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            if key == "corpus":
                check_identifier(value, f"{here}: corpus")
            _check_corpus_values(value, here)


def plan_params(path: Path, overrides: dict[str, Any]) -> tuple[Any, dict[str, tuple[Any, Any]]]:
    """``overrides`` applied to the params file in memory and the whole result validated.

    The one rule for every writer of params.yaml (the repro flow's overrides, search trials,
    profiles, the ``rnnflow`` commands): a key may change an existing value to one of the
    same kind (:func:`_same_kind`), or add a field inside an existing entry (a profile's
    ``max_batches`` for a model that leaves it at its default: the typed config says whether
    that field exists). It never adds a name (a model, corpus, source or section). A mapping
    value is set leaf by leaf. The whole document must then pass :func:`check_params`.
    Returns the edited round-trip document and ``{key: (old, new)}`` of what changed.
    """
    path = Path(path)
    with path.open() as fh:
        doc = _yaml().load(fh)
    try:
        changed = _edit(doc, overrides)
    except ConfigError as exc:
        raise ConfigError(f"{path.name}: {exc}; nothing was written") from exc
    try:
        check_params(_plain(doc), path.parent)
    except ConfigError as exc:
        keys = ", ".join(repr(k) for k in changed) or "nothing"
        raise ConfigError(
            f"{path.name}: setting {keys} leaves params that do not validate, so nothing was "
            f"written: {exc}"
        ) from exc
    return doc, changed


def set_params(path: Path, overrides: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Set params keys in place, keeping comments and layout, under :func:`plan_params`'s rule.

    Nothing is written unless every key passes and the whole document validates, and
    nothing when no value changed. Returns ``{key: (old, new)}`` for the keys that changed.
    The caller holds :func:`workspace_lock`.
    """
    doc, changed = plan_params(path, overrides)
    if changed:
        dump_yaml(doc, Path(path))
    return changed


def load_profile(root: Path, name: str) -> dict[str, Any]:
    """``profiles/<name>.yaml`` of the project at ``root`` (the name must be an identifier)."""
    check_identifier(name, "profile")
    path = Path(root) / "profiles" / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"{path}: no such profile (known: {known})")
    return load_params(path)


def apply_profile(root: Path, name: str) -> dict[str, tuple[Any, Any]]:
    """Merge ``profiles/<name>.yaml`` into params.yaml: :func:`set_params` with the profile's
    keys, so the same rule holds. Applying it twice changes nothing the second time."""
    return set_params(Path(root) / "params.yaml", load_profile(root, name))


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
