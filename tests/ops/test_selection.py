"""Choose on validation, report on test: no search spec and no promotion reads a test key."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnflow.config import ConfigError, load_params, parse
from rnnflow.env import PROJECT_ROOT

SPECS = sorted((PROJECT_ROOT / "search").glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_search_specs_choose_on_validation(path: Path) -> None:
    from pipelines.ops.search_spec import SearchSpec

    spec = SearchSpec.model_validate(load_params(path))
    assert spec.metric.split(".")[0] == "validation", spec.metric


def test_a_search_on_test_is_refused() -> None:
    from pydantic import ValidationError

    from pipelines.ops.search_spec import SearchSpec

    raw = load_params(SPECS[0])
    with pytest.raises(ValidationError, match="reads the test split"):
        SearchSpec.model_validate({**raw, "metric": "test.accuracy"})


def test_promotion_is_judged_on_validation() -> None:
    from pipelines.ops.retrain import RetrainConfig

    params = load_params(PROJECT_ROOT / "params.yaml")
    cfg = parse(RetrainConfig, params, "retrain")
    assert cfg.metric.split(".")[0] == "validation"
    params["retrain"]["metric"] = "test.accuracy"
    with pytest.raises(ConfigError, match="reads the test split"):
        parse(RetrainConfig, params, "retrain")
