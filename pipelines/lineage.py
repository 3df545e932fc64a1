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
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any
from uuid import UUID

PARENT_ENV = "RNNFLOW_PARENT_TASK_RUN"
TAGS_ENV = "RNNFLOW_RUN_TAGS"

_log = logging.getLogger(__name__)


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


def run_stage_flow(flow: Callable[..., Any], **parameters: Any) -> Any:
    """Call a stage's Prefect ``flow`` with ``parameters``, under its parent run when there is one.

    With ``RNNFLOW_PARENT_TASK_RUN`` set, the flow run is created first with that
    ``parent_task_run_id`` (and the ``RNNFLOW_RUN_TAGS`` tags), then executed by Prefect's own
    engine (``run_flow(flow, flow_run=...)``): retries, logs, artifacts and states as for any run.
    """
    from prefect import tags as prefect_tags

    tags = env_tags()
    parent = _parent_task_run()
    with prefect_tags(*tags):
        if parent is None:
            return flow(**parameters)
        from prefect.client.orchestration import get_client
        from prefect.flow_engine import run_flow

        try:
            with get_client(sync_client=True) as client:
                run = client.create_flow_run(
                    flow,  # type: ignore[arg-type]
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
