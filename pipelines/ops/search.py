"""Hyperparameter search: grid, random or TPE over a params space, each trial a DVC experiment.

    python -m pipelines.ops.search search/mnist_logreg.yaml
    python -m pipelines.ops.search search/mnist_cnn.yaml --method random --trials 6

The spec (YAML) names the model, the metric (a dotted key of ``metrics/<model>.json``), the
direction, the method and the space: dotted params keys with ``{type: loguniform|uniform,
low, high}``, ``{type: int, low, high, step}`` or ``{type: categorical, choices: [...]}``.
Grid search walks the product of the values (``points`` values for a continuous range);
random and TPE search ask Optuna (``TPESampler``, seeded) for each trial's values.

Trials run one after another under the workspace lock. Each writes its values into
params.yaml (comments kept) and runs ``dvc exp run -n <name> evaluate@<model>``, so DVC
reruns only the stages those params touch and ``dvc exp show`` lists every trial. At the
end the workspace is left at the best trial (its params written back, then ``dvc repro``
restores its outputs from DVC's run cache) only when it beats the *baseline*: the current
model's value of the same validation metric, read from the workspace's ``metrics/<model>.json``
(else ``dvclive/<model>/metrics.json``) before the first trial. Otherwise, or with
``apply_best: false``, the searched params go back to their values before the search, and
the page says so. The baseline heads the results table, and
``reports/search/<spec>.{md,html,json}`` hold the results table and a best-params summary
(rendered by :mod:`pipelines.render`: the best params as a table, the progress plot with whole
trial numbers), also published as Prefect artifacts.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, cast

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import Field, model_validator

import rnnflow  # noqa: F401,I001  first: offline/telemetry env before Prefect reads it
from pipelines import render as R
from pipelines.cli import positive_int
from pipelines.lineage import run_stage_flow
from pipelines.ops import params as P
from pipelines.ops import workspace as W
from pipelines.outputs import logger, write_atomic
from rnnflow.config import Config, ConfigError, Identifier, load_params


class Dimension(Config):
    """One searched params key."""

    type: Literal["uniform", "loguniform", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    step: float | None = None  # int: the step between values (default 1)
    log: bool = False  # int: sample on a log scale
    choices: list[Any] | None = None
    points: int = Field(3, ge=1)  # grid search: values of a continuous range

    @model_validator(mode="after")
    def _check(self) -> Dimension:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical needs a non-empty `choices` list")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(f"{self.type} needs low <= high")
        elif self.type == "loguniform" and self.low <= 0:
            raise ValueError("loguniform needs low > 0")
        return self

    def grid(self) -> list[Any]:
        """The values grid search tries."""
        import numpy as np

        if self.type == "categorical":
            return list(self.choices or [])
        low, high = cast(float, self.low), cast(float, self.high)  # checked for these types
        if self.type == "int":
            return list(range(int(low), int(high) + 1, int(self.step or 1)))
        space = np.geomspace if self.type == "loguniform" else np.linspace
        return [_round(float(v)) for v in space(low, high, self.points)]

    def distribution(self):
        """The Optuna distribution random and TPE search sample from."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.type == "categorical":
            return CategoricalDistribution(self.choices)
        if self.type == "int":
            return IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return FloatDistribution(self.low, self.high, log=self.type == "loguniform")


class SearchSpec(Config):
    """A search spec file (``search/<name>.yaml``)."""

    model: Identifier  # a key of train.models: stage names and experiment names are made of it
    metric: str = "validation.accuracy"  # chosen on validation; test is reported, never chosen on
    direction: Literal["maximize", "minimize"] = "maximize"
    method: Literal["grid", "random", "tpe"] = "tpe"
    n_trials: int | None = Field(None, ge=1)  # grid: default all of it
    seed: int = 0
    startup_trials: int | None = Field(None, ge=0)  # TPE: random trials first (default n/3)
    targets: list[str] | None = None  # default: evaluate@<model>
    apply_best: bool = True
    space: dict[str, Dimension]

    @model_validator(mode="after")
    def _check(self) -> SearchSpec:
        if not self.space:
            raise ValueError("the space is empty")
        if self.metric.split(".")[0] == "test":
            raise ValueError(
                f"metric {self.metric!r} reads the test split: a search chooses "
                f"on validation (e.g. validation.accuracy); test is reported only"
            )
        if self.method != "grid" and self.n_trials is None:
            raise ValueError(f"{self.method} search needs n_trials")
        return self


def load_spec(path: Path, **overrides: Any) -> SearchSpec:
    from pydantic import ValidationError

    try:
        raw = load_params(path)
        return SearchSpec.model_validate(
            {**raw, **{k: v for k, v in overrides.items() if v is not None}}
        )
    except ValidationError as exc:
        raise ConfigError(f"search spec {path}: {exc}") from exc


def _round(v: Any) -> Any:
    """Floats to 6 significant digits (readable params.yaml values and experiment names)."""
    return float(f"{v:.6g}") if isinstance(v, float) else v


def grid_points(spec: SearchSpec) -> list[dict[str, Any]]:
    """Every combination, first key varying slowest; cut at ``n_trials``."""
    keys = list(spec.space)
    combos = itertools.product(*(spec.space[k].grid() for k in keys))
    points = [dict(zip(keys, c)) for c in combos]
    return points[: spec.n_trials] if spec.n_trials else points


class Sampler:
    """The next trial's values: a fixed grid, or an Optuna study (random / TPE)."""

    def __init__(self, spec: SearchSpec):
        self.spec = spec
        self.grid = grid_points(spec) if spec.method == "grid" else None
        self.n_trials = len(self.grid) if self.grid is not None else int(spec.n_trials or 0)
        self.study: Any = None  # an optuna Study (imported only when sampling)
        if self.grid is None:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            sampler: optuna.samplers.BaseSampler
            if spec.method == "random":
                sampler = optuna.samplers.RandomSampler(seed=spec.seed)
            else:
                startup = (
                    spec.startup_trials
                    if spec.startup_trials is not None
                    else max(1, self.n_trials // 3)
                )
                sampler = optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=startup)
            self.study = optuna.create_study(direction=spec.direction, sampler=sampler)
        self._open: dict[int, Any] = {}

    def ask(self, number: int) -> dict[str, Any]:
        if self.grid is not None:
            return dict(self.grid[number])
        dists = {k: d.distribution() for k, d in self.spec.space.items()}
        trial = self.study.ask(dists)
        self._open[number] = trial
        return {k: _round(trial.params[k]) for k in self.spec.space}

    def tell(self, number: int, value: float | None) -> None:
        trial = self._open.pop(number, None)
        if trial is None:
            return
        import optuna

        if value is None or math.isnan(value):
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)


def best_trial(trials: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    ok = [
        t
        for t in trials
        if t["state"] == "ok" and t["value"] is not None and not math.isnan(t["value"])
    ]
    if not ok:
        return None
    pick = max if direction == "maximize" else min
    return pick(ok, key=lambda t: t["value"])  # ties: the earliest trial


def baseline_value(root: Path, spec: SearchSpec) -> float | None:
    """The current model's ``spec.metric``, from the workspace's metrics files (None: none).

    ``metrics/<model>.json`` is what evaluate wrote; dvclive's file, the fallback, names
    ``validation.accuracy`` ``val_accuracy``.
    """
    split, _, key = spec.metric.partition(".")
    places = [
        (root / "metrics" / f"{spec.model}.json", spec.metric),
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


def apply_decision(
    best: dict[str, Any] | None, baseline: float | None, spec: SearchSpec
) -> tuple[bool, str]:
    """(apply the best trial?, the sentence the page shows): only a trial that beats the
    current model is applied, so a search never leaves the workspace worse."""
    if best is None:
        return False, ""
    if not spec.apply_best:
        return False, f"Not applied (`apply_best: false`): `dvc exp apply {best['experiment']}`."
    if baseline is None:
        return (
            True,
            "Applied to the workspace (params.yaml + `dvc repro`): no current model to beat.",
        )
    beats = best["value"] > baseline if spec.direction == "maximize" else best["value"] < baseline
    if not beats:
        return False, (
            f"best trial {R.fmt(best['value'])} did not beat the current model's "
            f"{R.fmt(baseline)}: nothing applied."
        )
    return True, (
        f"best trial {R.fmt(best['value'])} beats the current model's {R.fmt(baseline)}: "
        f"applied to the workspace (params.yaml + `dvc repro`)."
    )


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
    metrics_file = path / "metrics" / f"{spec.model}.json"
    value = P.dig(json.loads(metrics_file.read_text()), spec.metric)
    if not isinstance(value, (int, float)):
        row.update(state="failed", error=f"no {spec.metric} in {metrics_file.name}")
    else:
        row["value"] = float(value)
    log.info("trial %d: %s = %s", number, spec.metric, row["value"])
    return row


# --- report -----------------------------------------------------------------------------


def table_rows(
    trials: list[dict[str, Any]],
    spec: SearchSpec,
    best: dict[str, Any] | None,
    baseline: float | None = None,
) -> list[dict[str, Any]]:
    """The results table: the current model (baseline) first, then every trial."""
    rows = []
    if baseline is not None:
        rows.append({"trial": "", "experiment": "baseline (current model)", spec.metric: baseline})
    for t in trials:
        rows.append(
            {
                "trial": t["trial"],
                "experiment": t["experiment"],
                **{
                    k.rsplit(".", 1)[-1] if _short_ok(spec) else k: v
                    for k, v in t["params"].items()
                },
                spec.metric: t["value"],
                "state": t["state"],
                "seconds": t["seconds"],
                "best": "★" if best is not None and t is best else "",
            }
        )
    return rows


def _short_ok(spec: SearchSpec) -> bool:
    """Column names by the last key part when those are unique."""
    short = [k.rsplit(".", 1)[-1] for k in spec.space]
    return len(set(short)) == len(short)


def progress_png(trials: list[dict[str, Any]], spec: SearchSpec) -> bytes:
    """The metric per trial and the best so far (whole trial numbers on the x axis)."""
    return R.figure_png(progress_figure(trials, spec))


def progress_figure(trials: list[dict[str, Any]], spec: SearchSpec):
    """The matplotlib figure of :func:`progress_png`."""
    from matplotlib.ticker import MaxNLocator

    plt = R.pyplot()
    xs = [t["trial"] for t in trials if t["value"] is not None]
    ys = [t["value"] for t in trials if t["value"] is not None]
    pick = max if spec.direction == "maximize" else min
    running = [pick(ys[: i + 1]) for i in range(len(ys))]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(xs, ys, "o", label=spec.metric)
    ax.step(xs, running, where="post", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(spec.metric)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{spec.model}: {spec.method} search")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def page_context(
    spec: SearchSpec,
    name: str,
    trials: list[dict[str, Any]],
    best: dict[str, Any] | None,
    applied: bool,
    baseline: float | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """What the search templates (``search.md.j2``, ``search.html.j2``) show."""
    how = note if note is not None else apply_decision(best, baseline, spec)[1]
    return {
        "title": f"search {name}",
        "name": name,
        "method": spec.method,
        "model": spec.model,
        "metric": spec.metric,
        "direction": spec.direction,
        "n_trials": len(trials),
        "n_ok": sum(t["state"] == "ok" for t in trials),
        "baseline": baseline,
        "best": best,
        "best_params": (
            [{"param": k, "value": v} for k, v in best["params"].items()]
            if best is not None
            else []
        ),
        "overrides": " ".join(P.as_s_args(best["params"])) if best is not None else "",
        "applied_note": how,
        "applied_note_html": how.replace("`", ""),
        "trials": None,
        "trial_cols": None,
        "png_name": None,
        "png_src": None,
    }


def summary(
    spec: SearchSpec,
    name: str,
    trials: list[dict[str, Any]],
    best: dict[str, Any] | None,
    applied: bool,
    baseline: float | None = None,
    note: str | None = None,
) -> str:
    """The Markdown summary: counts and the best trial's params (the Prefect artifact)."""
    ctx = page_context(spec, name, trials, best, applied, baseline, note)
    return R.render("search.md.j2", **ctx)


def write_report(
    root: Path,
    name: str,
    spec: SearchSpec,
    trials: list[dict[str, Any]],
    best: dict[str, Any] | None,
    applied: bool,
    baseline: float | None = None,
    note: str | None = None,
) -> dict[str, Path]:
    """``reports/search/<name>.{md,html,json,png}``; the HTML page is self-contained."""
    out = root / "reports" / "search"
    rows = table_rows(trials, spec, best, baseline)
    for r in rows:
        if r.get("best"):
            r["_class"] = "best"
    png = progress_png(trials, spec) if any(t["value"] is not None for t in trials) else b""
    paths = {ext: out / f"{name}.{ext}" for ext in ("md", "html", "json", "png")}
    ctx = page_context(spec, name, trials, best, applied, baseline, note)
    ctx.update(
        trials=rows,
        trial_cols=R.columns(rows) or None,
        png_name=f"{name}.png" if png else None,
        png_src=R.data_uri(png) if png else None,
    )
    if png:
        write_atomic(paths["png"], png)
    write_atomic(paths["md"], R.render("search.md.j2", **ctx).encode())
    write_atomic(
        paths["json"],
        json.dumps(
            {
                "spec": spec.model_dump(),
                "name": name,
                "best": best,
                "trials": trials,
                "applied": applied,
                "baseline": baseline,
            },
            indent=2,
            default=str,
        ).encode(),
    )
    write_atomic(paths["html"], R.render("search.html.j2", **ctx).encode())
    R.write_pages_index(root / "reports")
    return paths


def _cell(v: Any) -> str:
    return R.fmt(v)


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
    # Specs come only from the project's search/ folder: the path is a run parameter.
    spec_file = (path / spec_path).resolve()
    if spec_file.parent != (path / "search").resolve():
        raise ConfigError(f"search spec {spec_path!r} is outside the project's search/ folder")
    spec = load_spec(spec_file, method=method, n_trials=n_trials)
    name = spec_file.stem
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
    rows = [{k: _cell(v) for k, v in r.items()} for r in table_rows(trials, spec, best, baseline)]
    W.publish_table(rows, W.artifact_key("search", name), f"search {name}: trials")
    W.publish_markdown(
        summary(spec, name, trials, best, applied, baseline, note),
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
) -> SearchSpec:
    """The spec a run would search, read and validated as the flow will; a
    :class:`ConfigError` saying what is wrong and which specs exist otherwise. Run before the
    flow, so a mistake costs no Prefect server and no workspace lock."""
    path = W.resolve_root(root)
    folder = (path / "search").resolve()
    spec_file = (path / spec_path).resolve()
    have = ", ".join(str(p.relative_to(path)) for p in sorted(folder.glob("*.yaml"))) or "none"
    if spec_file.parent != folder:
        raise ConfigError(f"search spec {spec_path!r} is not in the project's search/ ({have})")
    if not spec_file.is_file():
        raise ConfigError(f"no search spec {spec_path!r} (have: {have})")
    return load_spec(spec_file, method=method, n_trials=n_trials)


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
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=3600.0,
        help="seconds to wait for another run holding the workspace",
    )
    parser.add_argument("--root", default=None, help="project root (default: this checkout)")
    args = parser.parse_args(argv)
    try:
        check_arguments(args.spec, args.method, args.trials, args.root)
    except ConfigError as exc:
        print(f"rnnflow search: error: {exc}", file=sys.stderr)
        return 2
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
