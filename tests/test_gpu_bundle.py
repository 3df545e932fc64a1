"""What ``benchmarks/gpu_device/bundle.py`` carries to the offline GPU machine: the closure of
the train/evaluate side's dependencies in this environment, minus the image's compiled builds,
minus the data side. (Its ``--check`` runs real stages with only those importable; it is a tool
run before a device call, not a unit test.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import load_script

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bundle():
    return load_script(ROOT / "benchmarks" / "gpu_device" / "bundle.py", "gpu_bundle")


def test_plan_carries_the_train_side_not_the_image_or_the_data_side(bundle):
    names = {bundle.norm(d.metadata["Name"]) for d in bundle.plan()}
    image = bundle.image_packages()
    assert {"prefect", "dvclive", "pydantic", "pydantic-core", "sqlalchemy"} <= names
    assert "greenlet" in names  # through prefect's sqlalchemy[asyncio]: extras are followed
    assert not names & {"numpy", "pandas", "pyarrow", "torch"}  # the image's compiled builds
    assert not names & {"great-expectations", "datasets", "pygit2", "celery"}
    compiled_from_image = {
        bundle.norm(d.metadata["Name"]) for d in bundle.plan() if bundle.compiled(d)
    } & image
    assert not compiled_from_image
    assert "anyio" in names and "anyio" in image  # pure Python travels in the tested version


def test_closure_follows_markers_for_the_device_python(bundle):
    got = bundle.closure(["prefect"])
    assert "prefect" in got and "pydantic" in got
    assert not any(n.startswith("pytest") for n in got)  # test extras are not followed
