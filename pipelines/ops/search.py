"""Hyperparameter search: grid, random or TPE over a params space, each trial a DVC experiment.

    python -m pipelines.ops.search search/mnist_logreg.yaml
    python -m pipelines.ops.search search/mnist_cnn.yaml --method random --trials 6

The spec (YAML, :mod:`pipelines.ops.search_spec`) names the model, the metric (a dotted key of
evaluate's record, ``reports/evaluate/<model>.json``), the direction, the method and the space:
dotted params keys with ``{type: loguniform|uniform, low, high}``, ``{type: int, low, high,
step}`` or ``{type: categorical, choices: [...]}``. Grid search walks the product of the values
(``points`` values for a continuous range); random and TPE search ask Optuna (``TPESampler``,
seeded) for each trial's values.

Trials run one after another under the workspace lock. Each writes its values into
params.yaml (comments kept) and runs ``dvc exp run -n <name> evaluate@<model>``, so DVC
reruns only the stages those params touch and ``dvc exp show`` lists every trial. At the
end the workspace is left at the best trial (its params written back, then ``dvc repro``
restores its outputs from DVC's run cache) only when it beats the *baseline*: the current
model's value of the same validation metric, read from the workspace's evaluate record
(else ``dvclive/<model>/metrics.json``) before the first trial. Otherwise, or with
``apply_best: false``, the searched params go back to their values before the search, and
the page says so. The baseline heads the results table, and ``reports/search/<spec>.{md,html,
json}`` hold the results table and a best-params summary (rendered by :mod:`pipelines.render`:
the best params as a table, the progress plot with whole trial numbers), also published as
Prefect artifacts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import rnnflow  # noqa: F401,I001  first: offline/telemetry env before Prefect reads it
from pipelines import render as R
from pipelines.cli import fail, positive_int
from pipelines.lineage import run_stage_flow
from pipelines.ops import params as P
from pipelines.ops import workspace as W
from pipelines.ops.search_report import page_context, table_rows, write_report
from pipelines.ops.search_spec import Sampler, SearchSpec, apply_decision, best_trial, load_spec
from pipelines.outputs import logger
from rnnflow.config import ConfigError, load_params


def baseline_value(root: Path, spec: SearchSpec) -> float | None:
    """The current model's ``spec.metric`` from the workspace's evaluate record, else from
    DVCLive's training summary (which names ``validation.accuracy`` ``val_accuracy``)."""
    split, _, key = spec.metric.partition(".")
    places = [
        (W.evaluate_record(root, spec.model), spec.metric),
        (
            root / "dvclive" / spec.model / "metrics.json",
            f"val_{key}" if split == "validation" else key,
        ),
    ]
    for path, dotted in places:
        if path.exists():
            value = P.dig(json.loads(path.read_text()), dotted)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
    return None


# --- one trial --------------------------------------------------------------------------


@task(cache_policy=NO_CACHE)
def run_trial(
    root: str, spec: SearchSpec, number: int, name: str, values: dict[str, Any]
) -> dict[str, Any]:
    """Write the values into params.yaml, ``dvc exp run -n name``, read the metric."""
    path = Path(root)
    log = logger()
    log.info("trial %d (%s): %s", number, name, " ".join(P.as_s_args(values)))
    P.set_params(path / "params.yaml", values)
    targets = spec.targets or [f"evaluate@{spec.model}"]
    began = time.monotonic()
    run = W.stream([W.tool("dvc"), "exp", "run", "-n", name, *targets], path, log, check=False)
    row: dict[str, Any] = {
        "trial": number,
        "experiment": name,
        "params": values,
        "value": None,
        "state": "ok",
        "seconds": round(time.monotonic() - began, 1),
    }
    if run.code != 0:
        row.update(state="failed", error="\n".join(run.lines[-5:]))
        log.warning("trial %d failed: dvc exp run exited %d", number, run.code)
        return row
    metrics_file = W.evaluate_record(path, spec.model)
    value = P.dig(json.loads(metrics_file.read_text()), spec.metric)
    if not isinstance(value, (int, float)):
        row.update(state="failed", error=f"no {spec.metric} in {metrics_file.name}")
    else:
        row["value"] = float(value)
    log.info("trial %d: %s = %s", number, spec.metric, row["value"])
    return row


# --- flow -------------------------------------------------------------------------------


@flow(name="search")
def search(
    spec_path: str = "search/mnist_logreg.yaml",
    method: str | None = None,
    n_trials: int | None = None,
    lock_timeout: float = 3600.0,
    root: str | None = None,
) -> dict[str, Any]:
    """Run a search spec; ``method`` / ``n_trials`` override the spec's."""
    path = W.resolve_root(root)
    name, spec = check_arguments(spec_path, method, n_trials, root)
    log = logger()
    if W.git_head(path)[0] is None:
        raise ConfigError(f"{path}: `dvc exp run` needs a git repository with a commit")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    sampler = Sampler(spec)
    trials: list[dict[str, Any]] = []
    with W.workspace_lock(path, f"search {name}", lock_timeout, log=log):
        # Read before the first trial overwrites them: what a trial must beat, and what
        # the searched params go back to when none does.
        baseline = baseline_value(path, spec)
        before = load_params(path / "params.yaml")
        originals = {k: P.dig(before, k) for k in spec.space if P.dig(before, k) is not None}
        for number in range(sampler.n_trials):
            values = sampler.ask(number)
            exp = f"{name}-{spec.method}-{stamp}-{number:02d}".replace("_", "-")
            row = run_trial(str(path), spec, number, exp, values)
            sampler.tell(number, row["value"])
            trials.append(row)
        best = best_trial(trials, spec.direction)
        applied, note = apply_decision(best, baseline, spec)
        log.info("search %s: %s", name, note)
        # The chosen params, reproduced: DVC restores their outputs from its run cache
        # (`dvc exp apply` would also check out every other stage's outputs, which fails
        # where those were never produced).
        P.set_params(path / "params.yaml", best["params"] if applied and best else originals)
        W.dvc_repro(path, spec.targets or [f"evaluate@{spec.model}"], log=log)
        paths = write_report(path, name, spec, trials, best, applied, baseline, note)
    rows = [{k: R.fmt(v) for k, v in r.items()} for r in table_rows(trials, spec, best, baseline)]
    W.publish_table(rows, W.artifact_key("search", name), f"search {name}: trials")
    W.publish_markdown(
        # the Markdown summary: counts and the best trial's params
        R.render("search.md.j2", **page_context(spec, name, trials, best, baseline, note)),
        W.artifact_key("search", name, "best"),
        f"search {name}: best params",
    )
    if best is None:
        raise RuntimeError(f"search {name}: no trial succeeded (see {paths['md']})")
    return {
        "name": name,
        "method": spec.method,
        "trials": len(trials),
        "best": best,
        "baseline": baseline,
        "applied": applied,
        "report": str(paths["html"]),
    }


def check_arguments(
    spec_path: str, method: str | None, n_trials: int | None, root: str | None
) -> tuple[str, SearchSpec]:
    """The name and spec a run would search, read and validated; a :class:`ConfigError`
    saying what is wrong and which specs exist otherwise. Specs come only from the project's
    search/ folder: the path is a run parameter. The command runs this before the flow too,
    so a mistake costs no Prefect server and no workspace lock."""
    path = W.resolve_root(root)
    folder = (path / "search").resolve()
    spec_file = (path / spec_path).resolve()
    have = ", ".join(str(p.relative_to(path)) for p in sorted(folder.glob("*.yaml"))) or "none"
    if spec_file.parent != folder:
        raise ConfigError(
            f"search spec {spec_path!r} is outside the project's search/ folder ({have})"
        )
    if not spec_file.is_file():
        raise ConfigError(f"no search spec {spec_path!r} (have: {have})")
    return spec_file.stem, load_spec(spec_file, method=method, n_trials=n_trials)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rnnflow search",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("spec", help="search spec YAML, e.g. search/mnist_logreg.yaml")
    parser.add_argument(
        "--method",
        choices=["grid", "random", "tpe"],
        default=None,
        help="override the spec's method",
    )
    parser.add_argument(
        "--trials", type=positive_int, default=None, help="override n_trials (1 or more)"
    )
    W.workspace_arguments(parser)
    args = parser.parse_args(argv)
    try:
        check_arguments(args.spec, args.method, args.trials, args.root)
    except ConfigError as exc:
        return fail("search", str(exc))
    out = run_stage_flow(
        search,
        spec_path=args.spec,
        method=args.method,
        n_trials=args.trials,
        lock_timeout=args.lock_timeout,
        root=args.root,
    )
    best = out["best"]
    print(
        f"search {out['name']}: {out['trials']} trials; best: "
        + (f"{best['experiment']} {best['value']:.6g} {best['params']}" if best else "none")
        + f"\nreport: {out['report']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
