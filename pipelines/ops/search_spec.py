"""A search spec (``search/<name>.yaml``): the searched space, and the sampler that walks it.

Grid search walks the product of the values (``points`` values for a continuous range);
random and TPE search ask Optuna (``TPESampler``, seeded) for each trial's values.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import Field, model_validator

from pipelines import render as R
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
    """The spec file at ``path``, with the ``overrides`` that are not None."""
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
        """The values of trial ``number``."""
        if self.grid is not None:
            return dict(self.grid[number])
        dists = {k: d.distribution() for k, d in self.spec.space.items()}
        trial = self.study.ask(dists)
        self._open[number] = trial
        return {k: _round(trial.params[k]) for k in self.spec.space}

    def tell(self, number: int, value: float | None) -> None:
        """Trial ``number``'s result (None or NaN: it failed)."""
        trial = self._open.pop(number, None)
        if trial is None:
            return
        import optuna

        if value is None or math.isnan(value):
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)


def best_trial(trials: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    """The successful trial with the best value (None if none succeeded)."""
    ok = [
        t
        for t in trials
        if t["state"] == "ok" and t["value"] is not None and not math.isnan(t["value"])
    ]
    if not ok:
        return None
    pick = max if direction == "maximize" else min
    return pick(ok, key=lambda t: t["value"])  # ties: the earliest trial


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
