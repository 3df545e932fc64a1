"""``benchmarks/validate_override.py``: the field overrides it trains with."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import load_script

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "validate_override.py"


@pytest.fixture(scope="module")
def vo():
    return load_script(SCRIPT)


def test_override_sets_nested_fields_as_yaml_without_mutating(vo):
    base = {"epochs": 6, "pretrain": {"epochs": 2, "batch_size": 128}, "origins": None}
    got = vo.override(base, ["epochs=5", "pretrain.batch_size=256", "origins=[tatoeba]"])
    assert got == {
        "epochs": 5,
        "pretrain": {"epochs": 2, "batch_size": 256},
        "origins": ["tatoeba"],
    }
    assert base["pretrain"]["batch_size"] == 128 and base["epochs"] == 6
    assert vo.override({"pretrain": None}, ["pretrain.epochs=1"]) == {"pretrain": {"epochs": 1}}
    with pytest.raises(SystemExit, match="not key=value"):
        vo.override(base, ["epochs"])


def test_unknown_model_is_named(vo):
    with pytest.raises(SystemExit, match="no train.models.nope"):
        vo.main(["nope"])
