"""The ``retrain`` section of params.yaml, typed: what scheduled retraining reads, and what
every writer of params.yaml checks (:func:`pipelines.ops.params.check_params`)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from rnnflow.config import Config, ConfigError, Identifier


class RetrainConfig(Config):
    """``retrain`` section of params.yaml."""

    cron: str = "0 3 * * *"  # when the served deployment runs (Prefect cron schedule)
    timezone: str = "UTC"
    model: Identifier  # a key of train.models (a stage name: dvc repro evaluate@<model>)
    metric: str = "validation.accuracy"  # dotted key of reports/evaluate/<model>.json: never test.
    higher_is_better: bool = True
    # Promote only when better by more than this, so run-to-run noise never promotes:
    # "measured" takes the model's spread of `metric` over training seeds from
    # benchmarks/results/seed_spread.json (benchmarks/seed_spread.py); a number overrides it.
    margin: float | Literal["measured"] = Field("measured", union_mode="left_to_right")
    stage: str = "champion"  # GTO stage a promotion assigns (tags <model>#<stage>#N)

    @field_validator("margin")
    @classmethod
    def _not_negative(cls, value: float | str) -> float | str:
        if isinstance(value, float) and value < 0:
            raise ValueError("retrain.margin must be >= 0 (or 'measured')")
        return value

    def threshold(self) -> float:
        """The margin as a number (``retrain_config`` with a root resolves ``measured``)."""
        if isinstance(self.margin, str):
            raise ConfigError("retrain.margin 'measured' was not resolved against a project")
        return self.margin

    @field_validator("stage")
    @classmethod
    def _gto_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-zA-Z0-9]([a-zA-Z0-9-/_]*[a-zA-Z0-9])?", value):
            raise ValueError(
                f"retrain.stage {value!r} is not a GTO stage name (letters, "
                f"digits, '-', '_', '/'; starts and ends with a letter or digit)"
            )
        return value

    @field_validator("metric")
    @classmethod
    def _not_test(cls, value: str) -> str:
        if value.split(".")[0] == "test":
            raise ValueError(
                f"retrain.metric {value!r} reads the test split: promotion is "
                f"judged on validation (e.g. validation.accuracy)"
            )
        return value
