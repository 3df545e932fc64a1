"""Tie the flows that ``dvc repro`` starts to the Prefect run that started ``dvc repro``.

A stage's flow (``python -m pipelines.flows.train mnist_cnn``) runs in a process of its own,
two subprocesses below the ``repro`` flow that ran ``dvc repro``, so Prefect cannot see that one
caused the other: each stage would show in the UI as an unrelated top-level run. The parent
passes its identity down in the environment instead:

- ``RNNFLOW_PARENT_TASK_RUN``: the id of the parent's task run that runs ``dvc`` (set by
  ``pipelines.ops.workspace`` for every subprocess it starts inside a task run). The stage's flow
  run is created with ``parent_task_run_id`` set to it, exactly what Prefect records for a
  subflow called in-process, so the UI draws it under the ``repro`` run (its "Subflow runs" tab
  and run graph) and the API finds it with ``FlowRunFilter(parent_flow_run_id=...)``.
- ``RNNFLOW_RUN_TAGS``: comma-separated tags every stage run carries, e.g. ``dvc-repro:<stamp>``
  set once by ``pipelines.ops.prefect_session`` for a whole ``make repro``, so the UI's tag filter
  shows what one run of the DAG did even when nothing Prefect-side started it.

Neither variable set: the flow runs as before. The parent unreachable or gone: a warning, and the
flow still runs (as a top-level run) — lineage is worth a log line, not a failed stage.

Two guards make a stage's faults cheap. A stage process sends itself SIGTERM once the ``dvc``
that started it is gone (Linux), so a ``kill -9`` of ``dvc`` does not leave a trainer running. With
``PREFECT_API_URL`` set, the server is asked first (``/admin/version``, with our credentials): a
server that does not answer, or refuses the credentials, ends the stage at once with one line,
instead of minutes of client retries and tracebacks.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from rnnflow.env import PROJECT_ROOT

PARENT_ENV = "RNNFLOW_PARENT_TASK_RUN"
TAGS_ENV = "RNNFLOW_RUN_TAGS"

_log = logging.getLogger(__name__)

# The parent this process started under, taken as early as possible: if it has changed by the
# time die_with_parent runs, the parent died before it could be watched.
_STARTED_UNDER = os.getppid()
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


#: Commands that run a stage's cmd for DVC (``$SHELL -c CMD``): bash execs a single command,
#: dash forks it and stays as the stage's parent, so the watched process is above them.
_SHELLS = frozenset({"sh", "dash", "bash", "zsh", "ksh", "mksh", "busybox"})


def _stat(pid: int) -> tuple[str, str, int, int]:
    """(command name, state, parent pid, start time) of ``pid`` from ``/proc/<pid>/stat``."""
    text = Path(f"/proc/{pid}/stat").read_text()
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return comm, fields[0], int(fields[1]), int(fields[19])


def die_with_parent(sig: int = signal.SIGTERM, every: float = 1.0) -> None:
    """Send this process ``sig`` once the process that started it is gone (Linux; a no-op
    elsewhere), so a stage does not train on after ``dvc repro`` is killed.

    The watched process is the nearest ancestor that is not a shell (dvc, when DVC runs the
    stage, whether ``$SHELL`` execs the cmd or forks it); a daemon thread checks every
    ``every`` seconds that it still runs (same pid and start time, not a zombie).
    """
    if not sys.platform.startswith("linux"):
        return
    if os.getppid() != _STARTED_UNDER:  # the parent died before we looked
        os.kill(os.getpid(), sig)
        return
    try:
        pid = os.getppid()
        comm, _, ppid, started = _stat(pid)
        while comm in _SHELLS and ppid > 1:
            pid = ppid
            comm, _, ppid, started = _stat(pid)
    except (OSError, ValueError, IndexError):  # no /proc: the guard is best effort
        return

    def watch() -> None:
        while True:
            time.sleep(every)
            try:
                _, state, _, start = _stat(pid)
                alive = start == started and state not in ("Z", "X")
            except (OSError, ValueError, IndexError):
                alive = False
            if not alive:
                os.kill(os.getpid(), sig)
                return

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def api_health(api_url: str, timeout: float = 3.0, path: str = "/health") -> int:
    """The HTTP status of ``<api_url><path>``, sent with the credentials Prefect's client uses.

    ``/health`` answers without credentials (a liveness probe); ``/admin/version`` needs them.

    ``PREFECT_API_AUTH_STRING`` (basic auth) or else ``PREFECT_API_KEY`` (bearer). Loopback is
    asked directly, never through a proxy. Raises ``OSError`` when nothing answers.
    """
    headers = {}
    auth = os.environ.get("PREFECT_API_AUTH_STRING")
    key = os.environ.get("PREFECT_API_KEY")
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    elif key:
        headers["Authorization"] = f"Bearer {key}"
    local = urllib.parse.urlsplit(api_url).hostname in _LOOPBACK
    opener = urllib.request.build_opener(*([urllib.request.ProxyHandler({})] if local else []))
    try:
        request = urllib.request.Request(f"{api_url.rstrip('/')}{path}", headers=headers)
        with opener.open(request, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (ValueError, http.client.HTTPException) as exc:  # not a URL, or not HTTP answering
        raise OSError(str(exc)) from exc


def _require_server(timeout: float = 3.0) -> None:
    """Exit with one line if ``PREFECT_API_URL`` names a server that does not answer, or
    refuses our credentials."""
    url = os.environ.get("PREFECT_API_URL", "").strip()
    if not url:
        return  # Prefect starts a temporary server of its own
    try:
        status = api_health(url, timeout, path="/admin/version")  # checks the credentials too
    except OSError as exc:
        why = " ".join(str(getattr(exc, "reason", exc)).split())  # one line, whatever it says
        raise SystemExit(
            f"Prefect server at {url} is not answering ({why}): start it "
            "(`prefect server start`) or unset PREFECT_API_URL to run with a temporary server"
        ) from None
    if status in (401, 403):
        raise SystemExit(
            f"Prefect server at {url} refused our credentials ({status}): set "
            "PREFECT_API_AUTH_STRING to the server's PREFECT_SERVER_API_AUTH_STRING (or "
            "PREFECT_API_KEY for Prefect Cloud)"
        )
    if status != 200:
        raise SystemExit(
            f"{url}/admin/version answered HTTP {status}, not as a Prefect server: check "
            "PREFECT_API_URL"
        )


def env_tags(environ: dict[str, str] | os._Environ[str] | None = None) -> list[str]:
    """The tags in ``RNNFLOW_RUN_TAGS`` (comma-separated, blanks dropped, order kept)."""
    raw = (environ if environ is not None else os.environ).get(TAGS_ENV, "")
    return list(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))


def child_env() -> dict[str, str]:
    """Variables that make flows started by a subprocess children of the current task run.

    Empty outside a Prefect task run (a plain script, a test calling the function directly).
    """
    try:
        from prefect.context import TaskRunContext

        ctx = TaskRunContext.get()
    except Exception:  # Prefect missing or broken: lineage is optional
        return {}
    return {PARENT_ENV: str(ctx.task_run.id)} if ctx is not None else {}


def _parent_task_run() -> UUID | None:
    raw = os.environ.get(PARENT_ENV, "").strip()
    if not raw:
        return None
    try:
        return UUID(raw)
    except ValueError:
        _log.warning("%s=%r is not a task run id; running as a top-level flow run", PARENT_ENV, raw)
        return None


def short_commit(root: Path) -> str:
    """The checkout's ``HEAD`` as 7 hex digits (``nogit`` outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=7", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "nogit"
    return out.stdout.strip() if out.returncode == 0 else "nogit"


def model_tags(root: Path, params_path: str, model: str) -> list[str]:
    """``task:<task>`` and ``family:<family>`` of ``model``, as far as they can be read.

    Best effort: a model the params file lacks gets no tags here, and the flow itself then
    says what is wrong with it.
    """
    from rnnflow.config import load_params

    try:
        entry = load_params(root / params_path)["train"]["models"][model]
        family, corpus = str(entry["family"]), str(entry["corpus"])
    except (OSError, KeyError, TypeError, ValueError):
        return []
    tags = [f"family:{family}"]
    try:
        spec = json.loads((root / "data" / "05_tokens" / corpus / "spec.json").read_text())
        tags.insert(0, f"task:{spec['task']}")
    except (OSError, KeyError, TypeError, ValueError):
        pass
    return tags


def stage_main(flow: Any, doc: str, argv: list[str] | None, *, model: bool = True) -> Any:
    """The command line of a stage's flow (``rnnflow train|evaluate MODEL``, ``rnnflow
    report``): parse it, then run the flow named ``<flow>-<model>-<commit>`` and tagged with
    the model, its task, family and commit (:func:`run_stage_flow`); returns what it returned."""
    parser = argparse.ArgumentParser(
        prog=f"rnnflow {flow.name}",
        description=doc.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if model:
        parser.add_argument("model", help="model name: a key of train.models in the params file")
    parser.add_argument(
        "--params",
        default="params.yaml",
        help="params file, relative to the root (default: %(default)s)",
    )
    parser.add_argument(
        "--root", default=None, help="project root (default: this checkout)", type=str
    )
    args = parser.parse_args(argv)
    root = Path(args.root) if args.root else PROJECT_ROOT
    commit = short_commit(root)
    parameters: dict[str, Any] = {"params_path": args.params, "root": args.root}
    name, tags = f"{flow.name}-{commit}", [f"commit:{commit}"]
    if model:
        parameters["model"] = args.model
        name = f"{flow.name}-{args.model}-{commit}"
        tags = [f"model:{args.model}", *model_tags(root, args.params, args.model), *tags]
    return run_stage_flow(flow, run_name=name, run_tags=tags, **parameters)


def run_stage_flow(
    flow: Callable[..., Any],
    *,
    run_name: str | None = None,
    run_tags: list[str] | tuple[str, ...] = (),
    **parameters: Any,
) -> Any:
    """Call a stage's Prefect ``flow`` with ``parameters``, under its parent run when there is one.

    The run is named ``run_name`` (Prefect's random name if None) and tagged with ``run_tags``
    and the ``RNNFLOW_RUN_TAGS`` tags. With ``RNNFLOW_PARENT_TASK_RUN`` set, the flow run is
    created first with that ``parent_task_run_id``, then executed by Prefect's own engine
    (``run_flow(flow, flow_run=...)``): retries, logs, artifacts and states as for any run.

    First this process is tied to its parent's life and the server named by ``PREFECT_API_URL``
    is checked (see the module's docstring): ``SystemExit`` with one line if it does not answer.
    """
    die_with_parent()
    _require_server()
    from prefect import tags as prefect_tags

    tags = list(dict.fromkeys([*env_tags(), *run_tags]))
    parent = _parent_task_run()
    if run_name is not None:
        flow = flow.with_options(flow_run_name=run_name)  # type: ignore[attr-defined]
    with prefect_tags(*tags):
        if parent is None:
            return flow(**parameters)
        from prefect.client.orchestration import get_client
        from prefect.flow_engine import run_flow

        try:
            with get_client(sync_client=True) as client:
                run = client.create_flow_run(
                    flow,  # type: ignore[arg-type]
                    name=run_name,
                    parameters=parameters,
                    tags=tags,
                    parent_task_run_id=parent,
                )
        except Exception as exc:
            _log.warning(
                "could not create the run under parent task run %s (%s); running it top-level",
                parent,
                exc,
            )
            return flow(**parameters)
        return run_flow(flow, flow_run=run, parameters=parameters)  # type: ignore[arg-type]


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes)."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def publish_markdown(markdown: str, key: str, description: str, log: Any = None) -> None:
    """A Markdown artifact on the current run; never fails the run."""
    try:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(markdown=markdown, key=key, description=description)
    except Exception as exc:  # no API (plain function call), or the server went away
        (log or _log).warning("could not publish the %s artifact: %s", key, exc)


def publish_table(rows: list[dict[str, Any]], key: str, description: str, log: Any = None) -> None:
    """A table artifact on the current run; never fails the run."""
    try:
        from prefect.artifacts import create_table_artifact

        create_table_artifact(table=rows, key=key, description=description)
    except Exception as exc:
        (log or _log).warning("could not publish the %s artifact: %s", key, exc)
