"""Serve rnnflow's flows as Prefect deployments, to run from the Prefect UI or on a schedule.

    prefect server start --host 127.0.0.1 --port 4200        # terminal 1 (UI + API, SQLite)
    export PREFECT_API_URL=http://127.0.0.1:4200/api         # terminal 2
    python -m pipelines.ops.serve                                 # or: rnnflow serve

Deployments (flow/deployment):

- ``repro/repro`` — ``dvc repro`` of chosen stages with params overrides (``targets``:
  e.g. ``["train@mnist_cnn"]``, empty for the whole DAG; ``overrides``: e.g.
  ``{"train.models.mnist_cnn.lr": 0.003}``; ``experiment``: run as a named DVC experiment).
- ``retrain/scheduled`` — champion/challenger retraining on the cron of ``retrain.cron``
  in params.yaml; concurrency 1, a run that finds one already running is cancelled.
- ``search/search`` — hyperparameter search from a spec under ``search/``.

Every run happens in this checkout (the served process's project root), holds the
workspace lock while it uses DVC, and streams DVC's output into its log. Stop serving
with Ctrl-C or SIGTERM (schedules are paused until the next ``serve``), then the server.

``rnnflow serve --pool NAME`` registers the same deployments on a work pool instead and
exits; a worker (``prefect worker start --pool NAME``) then runs them in the checkout it is
installed in, on this machine or another one sharing the DVC remote (``docs/scale.md``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import rnnflow  # noqa: F401,I001  first: offline/telemetry env before Prefect reads it
from pipelines.cli import fail
from rnnflow.config import ConfigError, load_params, parse
from rnnflow.env import PROJECT_ROOT

TAGS = ["rnnflow"]


def deployments(params: dict[str, Any], schedule: bool = True, pool: str | None = None) -> list:
    """The RunnerDeployments ``serve`` registers; for a work ``pool``, their entrypoints are
    module paths (``pipelines.ops.repro.repro``), so a worker runs them from its installed
    checkout."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    from pipelines.ops.repro import repro
    from pipelines.ops.retrain import RetrainConfig, retrain
    from pipelines.ops.search import search

    rcfg = parse(RetrainConfig, params, "retrain")
    where: dict[str, Any] = (
        {"work_pool_name": pool, "entrypoint_type": EntrypointType.MODULE_PATH} if pool else {}
    )
    return [
        repro.to_deployment(
            "repro",
            **where,
            tags=TAGS,
            concurrency_limit=1,
            description="dvc repro of chosen stages (targets) with params overrides",
        ),
        retrain.to_deployment(
            "scheduled",
            **where,
            tags=TAGS,
            schedules=[Cron(rcfg.cron, timezone=rcfg.timezone)] if schedule else None,
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
            ),
            description=f"retrain {rcfg.model}; promote if {rcfg.metric} beats the champion "
            f"by more than the margin ({rcfg.margin})",
        ),
        search.to_deployment(
            "search",
            **where,
            tags=TAGS,
            concurrency_limit=1,
            parameters={"spec_path": "search/mnist_logreg.yaml"},
            description="hyperparameter search; each trial a DVC experiment",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rnnflow serve",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--params",
        default="params.yaml",
        help="params file the schedule is read from (default: %(default)s)",
    )
    parser.add_argument(
        "--no-schedule",
        action="store_true",
        help="register the retraining deployment without its schedule",
    )
    parser.add_argument(
        "--list", action="store_true", help="print the deployments and exit (no server needed)"
    )
    parser.add_argument(
        "--pool",
        metavar="NAME",
        help="register the deployments on work pool NAME (a process pool is created if there "
        "is none) and exit: `prefect worker start --pool NAME` runs them, here or on another "
        "machine with this checkout and the DVC remote",
    )
    args = parser.parse_args(argv)
    try:
        params = load_params(PROJECT_ROOT / args.params)
        deps = deployments(params, schedule=not args.no_schedule, pool=args.pool)
    except ConfigError as exc:
        return fail("serve", str(exc))
    if args.list:
        for d in deps:
            sched = (
                ", ".join(getattr(s.schedule, "cron", str(s.schedule)) for s in d.schedules or [])
                or "-"
            )
            print(f"{d.flow_name}/{d.name}\tschedule: {sched}\t{d.description}")
        return 0
    from prefect import serve
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        print(
            "rnnflow serve: PREFECT_API_URL is not set. Start a server and point at it:\n"
            "  prefect server start --host 127.0.0.1 --port 4200\n"
            "  export PREFECT_API_URL=http://127.0.0.1:4200/api",
            file=sys.stderr,
        )
        return 2

    try:
        if args.pool:
            register(deps, args.pool)
            print(f"{len(deps)} deployments on work pool {args.pool!r}: `prefect worker start "
                  f"--pool {args.pool}` runs them")  # fmt: skip
        else:
            serve(*deps)
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code not in (401, 403):
            raise
        print(
            f"rnnflow serve: the Prefect server refused our credentials "
            f"({exc.response.status_code}): set PREFECT_API_AUTH_STRING to the server's "
            "PREFECT_SERVER_API_AUTH_STRING",
            file=sys.stderr,
        )
        return 2
    return 0


def register(deps: list, pool: str) -> None:
    """Create work pool ``pool`` (type process) unless it exists, then the deployments on it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            client.create_work_pool(
                WorkPoolCreate(name=pool, type="process", base_job_template=template)
            )
    for d in deps:
        d.apply(work_pool_name=pool)


if __name__ == "__main__":
    sys.exit(main())
