"""``dvc repro`` as a Prefect flow: what a run started from the Prefect UI does.

    python -m pipelines.ops.repro train@mnist_cnn -S train.models.mnist_cnn.lr=0.003
    python -m pipelines.ops.repro                     # the whole DAG (DVC skips what is fresh)

Overrides are written into params.yaml first (comments and layout kept; the same as editing
it by hand, or as ``dvc exp run -S`` without the reformatting), then ``dvc repro <targets>``
runs in a subprocess with its output streamed into the run's log. DVC decides what is stale
and keeps the one cache; the flow holds the workspace lock so no two runs use DVC at once.
With ``experiment`` the run is a DVC experiment instead (``dvc exp run -n NAME``), listed by
``dvc exp show``. The run publishes a Markdown artifact: overrides, stages run and skipped,
and ``dvc metrics diff`` against HEAD.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import rnnflow  # noqa: F401,I001  first: offline/telemetry env before Prefect reads it
from pipelines.lineage import run_stage_flow
from pipelines.ops import params as P
from pipelines.ops import workspace as W
from pipelines.outputs import logger
from pipelines.render import md_table

# DVC restored the outputs from its run cache instead of running the command.
_RESTORED = re.compile(r"^Stage '([^']+)' is cached - skipping run, checking out outputs")
# Keys (any dotted part) that are timings, not metrics: they change on every run.
_TIMING = re.compile(
    r"(^|[._-])(seconds?|secs?|s|time|times|timing|wall|elapsed|duration|"
    r"runtime|ms)($|[._-])",
    re.IGNORECASE,
)


def restored(run: W.Run) -> list[str]:
    """Stages DVC restored from its run cache (``Stage 'x' is cached - skipping run``)."""
    return [m.group(1) for ln in run.lines if (m := _RESTORED.match(ln))]


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_timing(key: str) -> bool:
    """``seconds``, ``train.time``, ``wall_s``, ``epoch_seconds``…: a timing, not a metric."""
    return any(_TIMING.search(part) for part in re.split(r"[./]", key))


def metrics_diff_rows(diff: dict[str, Any]) -> list[dict[str, Any]]:
    """``dvc metrics diff --json`` → one row per changed numeric metric.

    Text values (model, device, torch version…) and timings (seconds, time, wall…) are left
    out: they are not metrics, and timings differ on every run.
    """
    rows = []
    for path, metrics in sorted((diff or {}).items()):
        for key, d in sorted((metrics or {}).items()):
            d = d if isinstance(d, dict) else {}
            old, new = d.get("old"), d.get("new")
            if is_timing(key) or not (_number(old) or _number(new)):
                continue
            if any(v is not None and not _number(v) for v in (old, new)):
                continue  # a text value on one side
            if old == new:
                continue
            rows.append(
                {"file": path, "metric": key, "old": old, "new": new, "change": d.get("diff")}
            )
    return rows


def summary_markdown(
    targets: list[str],
    changed: dict[str, tuple[Any, Any]],
    run: W.Run,
    mdiff: list[dict[str, Any]],
    experiment: str | None,
) -> str:
    """The run's Markdown artifact: overrides, stages run and restored, metrics changed."""
    what = " ".join(targets) or "(whole DAG)"
    cmd = f"dvc exp run -n {experiment}" if experiment else "dvc repro"
    back = restored(run)
    parts = [
        f"# {cmd} {what}\n",
        f"{len(run.ran)} stage(s) ran, {len(back)} restored from the run cache, "
        f"{len(run.skipped)} up to date, {run.seconds:.1f} s.\n",
        "## Params overrides\n",
        md_table([{"key": k, "old": o, "new": n} for k, (o, n) in changed.items()]),
        "## Stages run\n",
        md_table([{"stage": s} for s in run.ran]),
        "## Stages restored from the run cache\n",
        md_table([{"stage": s} for s in back]),
        "## Metrics changed since HEAD (`dvc metrics diff`)\n",
        md_table(mdiff),
    ]
    return "\n".join(parts)


@task(cache_policy=NO_CACHE)
def apply_overrides(root: str, overrides: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Write the overrides into params.yaml (in place, comments kept)."""
    changed = P.set_params(W.resolve_root(root) / "params.yaml", overrides)
    for key, (old, new) in changed.items():
        logger().info("params.yaml: %s: %r → %r", key, old, new)
    return changed


@task(cache_policy=NO_CACHE)
def run_dvc(root: str, targets: list[str], force: bool, experiment: str | None) -> W.Run:
    """``dvc repro`` (or ``dvc exp run``), streamed into the log."""
    return W.dvc_repro(W.resolve_root(root), targets, force, logger(), experiment)


@flow(name="repro")
def repro(
    targets: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    experiment: str | None = None,
    lock_timeout: float = 3600.0,
    root: str | None = None,
) -> dict[str, Any]:
    """Run DVC stages: ``targets`` such as ``train@mnist_cnn`` (empty or ``all``: everything).

    ``overrides``: dotted params keys → values, e.g. ``{"train.models.mnist_cnn.lr": 0.003}``,
    written into params.yaml first. ``experiment``: run as the DVC experiment of that name.
    ``lock_timeout``: seconds to wait for another run holding the workspace.
    """
    path = W.resolve_root(root)
    targets = [t for t in (targets or []) if t and t != "all"]
    W.check_targets(targets, experiment)
    began = time.monotonic()
    with W.workspace_lock(path, f"repro {' '.join(targets) or 'all'}", lock_timeout, log=logger()):
        changed = apply_overrides(str(path), dict(overrides or {})) if overrides else {}
        run = run_dvc(str(path), targets, force, experiment)
        try:
            mdiff = metrics_diff_rows(W.dvc_json(path, "metrics", "diff"))
        except Exception as exc:  # no commit yet, or no metrics: the run itself succeeded
            logger().warning("dvc metrics diff: %s", exc)
            mdiff = []
    W.publish_markdown(
        summary_markdown(targets, changed, run, mdiff, experiment),
        "repro",
        f"dvc repro {' '.join(targets) or '(all)'}",
    )
    return {
        "targets": targets,
        "overrides": {k: v[1] for k, v in changed.items()},
        "ran": run.ran,
        "restored": restored(run),
        "skipped": run.skipped,
        "metrics_changed": len(mdiff),
        "seconds": round(time.monotonic() - began, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rnnflow repro",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "targets", nargs="*", help="DVC stages, e.g. train@mnist_cnn evaluate@mnist_cnn (none: all)"
    )
    parser.add_argument(
        "-S",
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="params override, e.g. train.models.mnist_cnn.lr=0.003 "
        "(value read as YAML; repeatable)",
    )
    parser.add_argument("--force", action="store_true", help="rerun even fresh stages")
    parser.add_argument(
        "--exp",
        metavar="NAME",
        default=None,
        help="run as the DVC experiment NAME (dvc exp run) instead",
    )
    W.workspace_arguments(parser)
    args = parser.parse_args(argv)
    out = run_stage_flow(
        repro,
        targets=args.targets,
        overrides=P.parse_assignments(args.set),
        force=args.force,
        experiment=args.exp,
        lock_timeout=args.lock_timeout,
        root=args.root,
    )
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
