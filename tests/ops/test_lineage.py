"""Lineage: the flows ``dvc repro`` starts run as children of the Prefect run that started it
(``pipelines/lineage.py``), tagged with the session."""

from __future__ import annotations

import sys

import pytest

from pipelines.ops.prefect_session import prefect_server
from tests.conftest import sh
from tests.ops.conftest import CHILD_SCRIPT, FLOWS, clean_env, tiny_project


def test_lineage_env_outside_a_run_is_empty(monkeypatch):
    from pipelines import lineage

    assert lineage.child_env() == {}
    monkeypatch.setenv(lineage.TAGS_ENV, " a, b,,a ,session:1 ")
    assert lineage.env_tags() == ["a", "b", "session:1"]


def test_lineage_without_parent_runs_the_flow_plainly(monkeypatch):
    """No RNNFLOW_PARENT_TASK_RUN: run_stage_flow is a plain call (no server needed for this)."""
    from pipelines import lineage

    monkeypatch.delenv(lineage.PARENT_ENV, raising=False)
    seen = {}

    def fake_flow(**kw):
        seen.update(kw)
        return "done"

    assert lineage.run_stage_flow(fake_flow, model="m", root=None) == "done"
    assert seen == {"model": "m", "root": None}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_repro_flow_runs_are_children_of_the_repro_run(tmp_path, monkeypatch):
    """``python -m pipelines.ops.repro`` inside a session: afterwards the API lists both stage
    runs as subflow runs of the ``repro`` run (parent_flow_run_id), Completed, with the
    session's tag; the repro run carries the tag too."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root, home = tmp_path / "proj", tmp_path / ".prefect"
    env = clean_env(PREFECT_HOME=str(home))
    tiny_project(root, env, CHILD_SCRIPT)

    cmd = [sys.executable, "-m", "pipelines.ops.prefect_session", "--home", home]
    sh(
        [
            *cmd,
            "--tag",
            "lineage-test",
            "--",
            sys.executable,
            "-m",
            "pipelines.ops.repro",
            "--root",
            root,
        ],
        root,
        env,
    )
    assert (root / "first.txt").read_text().strip() == f"{FLOWS[0]} ran"
    assert (root / "second.txt").read_text().strip() == f"{FLOWS[1]} ran"

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(home))
    with prefect_server(home, quiet=True) as api, temporary_settings({PREFECT_API_URL: api}):
        with get_client(sync_client=True) as client:
            (parent,) = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["repro"]))
            )
            assert parent.state.type == StateType.COMPLETED, parent.state
            assert parent.parent_task_run_id is None  # the repro run itself is top-level
            assert "lineage-test" in parent.tags, parent.tags
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id])
                )
            )
            names = {
                f.id: f.name
                for f in client.read_flows(
                    flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOWS)))
                )
            }
            assert sorted(names.get(r.flow_id, "?") for r in children) == sorted(FLOWS), children
            for run in children:
                assert run.state.type == StateType.COMPLETED, run.state
                assert "lineage-test" in run.tags, run.tags
                owner = client.read_task_run(run.parent_task_run_id)
                assert owner.flow_run_id == parent.id
                assert owner.name.startswith("run_dvc"), owner.name
