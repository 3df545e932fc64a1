"""The ``retrain`` flow without a Prefect server or a DVC run: it takes the model to retrain
as a parameter (CLI ``--model``, deployment parameter) or from params.yaml, and a challenger
already judged is not judged again, however many registry entries came after it.

The flow's body is called with ``.fn`` (no Prefect engine); the DVC subprocess steps are
replaced by stand-ins through monkeypatch.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pipelines.ops import judgement as J
from pipelines.ops import retrain as RT
from pipelines.ops import workspace as W
from tests.conftest import lock_held, write_params

MODEL = "mnist_logreg"


# --- the model to retrain ----------------------------------------------------------------


@pytest.fixture
def retrain_root(tmp_path: Path, monkeypatch) -> tuple[Path, list]:
    """A project root whose params name another model; DVC and judging are stand-ins."""
    root = tmp_path / "project"
    root.mkdir()
    write_params(root, {"retrain": {"model": "mnist_cnn", "margin": 0.0}})
    calls: list = []

    def reproduce(root_: str, targets: list[str]) -> list[str]:
        calls.append(("reproduce", targets))
        return []

    def evaluate_and_record(root_, cfg, params_path, flow_run):
        calls.append(("judge", cfg.model))
        cand = J.Candidate(
            model=cfg.model,
            fingerprint="f" * 16,
            value=0.5,
            metrics={},
            params={},
            deps={},
            model_hash=None,
            commit=None,
            dirty=False,
        )
        return cand, J.Verdict("no change", "stand-in", None), None, []

    monkeypatch.setattr(RT, "reproduce", reproduce)
    monkeypatch.setattr(RT, "evaluate_and_record", evaluate_and_record)
    monkeypatch.setattr(W, "publish_markdown", lambda *a, **k: None)
    return root, calls


def test_retrain_flow_takes_a_model_parameter(retrain_root):
    root, calls = retrain_root
    out = RT.retrain.fn(model=MODEL, root=str(root))
    assert out["model"] == MODEL
    assert calls == [("reproduce", [f"evaluate@{MODEL}"]), ("judge", MODEL)]


def test_retrain_without_a_model_uses_params(retrain_root):
    root, calls = retrain_root
    assert RT.retrain.fn(root=str(root))["model"] == "mnist_cnn"
    assert calls[0] == ("reproduce", ["evaluate@mnist_cnn"])


def test_retrain_cli_model_option(retrain_root, monkeypatch, capsys):
    root, calls = retrain_root
    monkeypatch.setattr(RT, "retrain", RT.retrain.fn)  # the flow body, no Prefect engine
    assert RT.main(["--model", MODEL, "--root", str(root)]) == 0
    assert capsys.readouterr().out.startswith(f"retrain {MODEL}: no change")
    assert ("judge", MODEL) in calls


def test_retrain_config_override_keeps_the_rest_and_validates():
    params = {"retrain": {"model": "mnist_cnn", "margin": 0.5}}
    cfg = RT.retrain_config(params, MODEL)
    assert (cfg.model, cfg.margin) == (MODEL, 0.5)
    assert params["retrain"]["model"] == "mnist_cnn"  # not modified in place
    assert RT.retrain_config(params).model == "mnist_cnn"
    with pytest.raises(RT.ConfigError, match="retrain"):
        RT.retrain_config({"retrain": {"model": "x", "margin": -1}}, MODEL)


def test_a_measured_margin_is_the_validation_spread_over_seeds(tmp_path: Path) -> None:
    params = {"retrain": {"model": MODEL, "margin": "measured"}, "train": {"models": {MODEL: {}}}}
    with pytest.raises(RT.ConfigError, match=f"benchmarks/seed_spread.py {MODEL} --seeds"):
        RT.retrain_config(params, root=tmp_path)
    spread = tmp_path / RT.SPREAD
    spread.parent.mkdir(parents=True)
    row = {"model": MODEL, "spreads": {"validation.accuracy": 0.0031, "test.accuracy": 0.0005}}
    spread.write_text(json.dumps({"rows": [{"model": "other", "spreads": {}}, row]}))
    assert RT.retrain_config(params, root=tmp_path).threshold() == 0.0031
    assert RT.retrain_config(params).margin == "measured"  # no project: left as written
    with pytest.raises(RT.ConfigError, match="not resolved"):
        RT.retrain_config(params).threshold()
    other = {"retrain": {"model": MODEL, "metric": "validation.loss", "higher_is_better": False}}
    with pytest.raises(RT.ConfigError, match=f"no validation.loss of {MODEL}"):
        RT.retrain_config(other, root=tmp_path)
    # checked before the flow starts, like the model's name
    write_params(tmp_path, params)
    assert RT.check_arguments(None, "params.yaml", str(tmp_path)) == MODEL
    spread.unlink()
    with pytest.raises(RT.ConfigError, match="retrain.margin is 'measured'"):
        RT.check_arguments(None, "params.yaml", str(tmp_path))


# --- already judged, anywhere in the history ---------------------------------------------


def _cfg(**kw) -> RT.RetrainConfig:
    return RT.RetrainConfig(model=MODEL, margin=0.0, **kw)


def _cand(fp: str, value: float) -> J.Candidate:
    return J.Candidate(
        model=MODEL,
        fingerprint=fp,
        value=value,
        metrics={},
        params={},
        deps={},
        model_hash=None,
        commit=None,
        dirty=False,
    )


def _entry(cand: J.Candidate, decision: str, champion_value) -> dict:
    e = {**RT.asdict(cand), "decision": decision, "reason": "r", "champion_value": champion_value}
    e.pop("model")
    return e


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def registry(tmp_path: Path) -> RT.GitTagRegistry:
    """Promoted A (0.8), rejected B (0.7), promoted C (0.9): B is no longer the last entry.

    The registry is GTO tags in a throw-away git repository (tests/ops/test_gto_registry.py).
    """
    write_params(tmp_path, {"retrain": {"model": MODEL, "margin": 0.0}})
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.name", "ci")
    _git(tmp_path, "config", "user.email", "ci@localhost")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "project")
    reg = RT.GitTagRegistry(tmp_path)
    reg.record(MODEL, _entry(_cand("a" * 16, 0.8), "promoted", None))
    reg.record(MODEL, _entry(_cand("b" * 16, 0.7), "rejected", 0.8))
    reg.record(MODEL, _entry(_cand("c" * 16, 0.9), "promoted", 0.8))
    return reg


def test_a_rejected_challenger_is_not_judged_again_after_another_promotion(registry, tmp_path):
    verdict = RT.judge(tmp_path, registry, _cand("b" * 16, 0.7), _cfg(), {})
    assert verdict.decision == "already judged"
    assert "rejected" in verdict.reason
    assert verdict.champion_value == 0.8  # what it was judged against then


def test_an_earlier_champion_coming_back_is_already_judged(registry, tmp_path):
    verdict = RT.judge(tmp_path, registry, _cand("a" * 16, 0.8), _cfg(), {})
    assert verdict.decision == "already judged" and "promoted" in verdict.reason


def test_the_champion_and_new_challengers_are_still_judged(registry, tmp_path):
    assert RT.judge(tmp_path, registry, _cand("c" * 16, 0.9), _cfg(), {}).decision == "no change"
    assert RT.judge(tmp_path, registry, _cand("d" * 16, 0.95), _cfg(), {}).decision == "promoted"
    assert RT.judge(tmp_path, registry, _cand("e" * 16, 0.5), _cfg(), {}).decision == "rejected"


def test_the_registry_gets_no_second_entry_for_a_judged_fingerprint(
    registry, tmp_path, monkeypatch
):
    root = registry.root
    monkeypatch.setattr(RT, "read_candidate", lambda r, m, metric: _cand("b" * 16, 0.7))
    before = _git(root, "tag", "-l").split()
    assert len(before) == 5  # 3 versions, 2 champion assignments
    _, verdict, _, history = RT.evaluate_and_record.fn(str(root), _cfg(), "params.yaml", None)
    assert verdict.decision == "already judged"
    assert len(history) == 3
    assert _git(root, "tag", "-l").split() == before


def test_decide_needs_more_than_the_margin():
    from pipelines.ops.judgement import decide

    assert decide(None, 0.5, True, 0.01, "acc")[0] is True
    assert decide(0.90, 0.905, True, 0.01, "acc")[0] is False
    assert decide(0.90, 0.92, True, 0.01, "acc")[0] is True
    assert decide(0.90, 0.80, True, 0.0, "acc")[0] is False
    assert decide(0.30, 0.20, False, 0.05, "rmse")[0] is True  # lower is better
    assert decide(0.30, 0.28, False, 0.05, "rmse")[0] is False
    assert decide(0.9, float("nan"), True, 0.0, "acc")[0] is False


def test_workspace_lock_keeps_a_second_run_out(tmp_path):
    with lock_held(tmp_path, "holder"):
        with pytest.raises(W.WorkspaceBusy, match="holder"):
            with W.workspace_lock(tmp_path, "second", timeout=0.5, poll=0.1):
                pass
    with W.workspace_lock(tmp_path, "after", timeout=5):  # released when its holder died
        pass
