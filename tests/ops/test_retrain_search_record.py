"""Retrain keeps a truthful record; search never applies a trial worse than the current model.

Fast tests of the pure parts (pages, decision record, apply-or-not); the end-to-end runs
with a Prefect server and a DVC project are in tests/ops/test_ops.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.ops import judgement as J
from pipelines.ops import retrain as RT
from pipelines.ops import search as S

# --- retrain ----------------------------------------------------------------------------


def _cand(value: float, fp: str) -> J.Candidate:
    return J.Candidate(
        model="m",
        fingerprint=fp,
        value=value,
        metrics={"validation": {"accuracy": value}},
        params={},
        deps={},
        model_hash=None,
        commit="headcommit",
        dirty=True,
    )


def _entry(version: str, decision: str, value: float, champion: float | None, commit: str):
    """A version as the registry reads it back (``GitTagRegistry.history``)."""
    return {
        "version": version,
        "decision": decision,
        "value": value,
        "champion_value": champion,
        "margin": 0.002,
        "metric": "validation.accuracy",
        "registered_at": commit,
        "commit": "headcommit",
        "time": f"t-{version}",
        "reason": f"{decision} reason",
        "fingerprint": f"fp-{version}",
    }


def test_no_change_and_already_judged_runs_keep_the_real_decision_as_title(tmp_path):
    cfg = RT.RetrainConfig(model="m", margin=0.002)
    promoted = _entry("v0.0.1", "promoted", 0.95, None, "snap1")
    rejected = _entry("v0.0.2", "rejected", 0.951, 0.95, "snap2")

    def run(cand, decision, champ_value, history):
        verdict = J.Verdict(decision, f"{decision} reason", champ_value)
        md, _ = J.write_record(tmp_path, cand, verdict, history[0], cfg, [], history)
        return md

    md = run(_cand(0.95, "fp-v0.0.1"), "promoted", None, [promoted])
    assert md.startswith("# retrain m: promoted")
    assert "snap1" in md  # the commit `gto history` names, not HEAD

    md = run(_cand(0.95, "fp-v0.0.1"), "no change", 0.95, [promoted])
    assert md.startswith("# retrain m: promoted"), md.splitlines()[0]
    assert "snap1" in md

    md = run(_cand(0.951, "fp-v0.0.2"), "rejected", 0.95, [promoted, rejected])
    assert md.startswith("# retrain m: not promoted")
    head = md.split("## ", 1)[0]
    assert "snap2" in head and "0.951" in head and "0.95" in head and "0.002" in head

    md = run(_cand(0.951, "fp-v0.0.2"), "already judged", 0.95, [promoted, rejected])
    assert md.startswith("# retrain m: not promoted"), md.splitlines()[0]
    html = (tmp_path / "reports" / "retrain" / "m.html").read_text()
    assert "not promoted" in html and "snap2" in html
    runs = json.loads((tmp_path / "reports" / "retrain" / "m.json").read_text())
    assert [r["decision"] for r in runs] == ["promoted", "no change", "rejected", "already judged"]
    assert md.count("already judged") >= 1 and md.count("no change") >= 1


def _dvc(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, check=True, capture_output=True)


def test_a_rejected_challenger_leaves_the_champions_files(tmp_path):
    _dvc("init", "--no-scm", "-q", cwd=tmp_path)
    out = tmp_path / "models" / "m"
    out.mkdir(parents=True)
    (out / "model.pt").write_bytes(b"champion weights")
    (out / "spec.json").write_text('{"who": "champion"}')
    _dvc("add", "models/m", cwd=tmp_path)
    import yaml

    champion_hash = yaml.safe_load((tmp_path / "models" / "m.dvc").read_text())["outs"][0]["md5"]
    # the challenger's training replaced the files and added one
    (out / "model.pt").write_bytes(b"challenger weights")
    (out / "extra.bin").write_bytes(b"challenger only")

    RT.restore_champion(tmp_path, "m", champion_hash)

    assert sorted(p.name for p in out.iterdir()) == ["model.pt", "spec.json"]
    assert (out / "model.pt").read_bytes() == b"champion weights"


# --- search -----------------------------------------------------------------------------


def _spec() -> S.SearchSpec:
    return S.SearchSpec.model_validate(
        {
            "model": "m",
            "method": "grid",
            "space": {"train.lr": {"type": "categorical", "choices": [1]}},
        }
    )


def _trial(n: int, value: float) -> dict:
    return {
        "trial": n,
        "experiment": f"e{n}",
        "params": {"train.lr": n},
        "value": value,
        "state": "ok",
        "seconds": 1.0,
    }


def test_search_refuses_to_apply_a_trial_worse_than_the_current_model(tmp_path):
    spec = _spec()
    trials = [_trial(0, 0.9266), _trial(1, 0.91)]
    best = S.best_trial(trials, spec.direction)
    apply, note = S.apply_decision(best, 0.9293, spec)
    assert not apply
    assert "best trial 0.9266 did not beat the current model's 0.9293: nothing applied" in note
    apply, note = S.apply_decision(_trial(2, 0.95), 0.9293, spec)
    assert apply
    paths = S.write_report(tmp_path, "tiny", spec, trials, best, False, baseline=0.9293)
    md = paths["md"].read_text()
    assert "Applied to the workspace" not in md
    assert "nothing applied" in md
    assert "nothing applied" in paths["html"].read_text()
    rows = S.table_rows(trials, spec, best, baseline=0.9293)
    assert rows[0]["experiment"] == "baseline (current model)"
    assert rows[0][spec.metric] == 0.9293


def test_search_baseline_is_read_from_the_evaluate_record(tmp_path):
    record = tmp_path / "reports" / "evaluate" / "m.json"
    record.parent.mkdir(parents=True)
    # the record holds more than the DVC metric's headline: any measured value can be searched
    record.write_text(json.dumps({"validation": {"accuracy": 0.9293, "loss": 0.25}}))
    assert S.baseline_value(tmp_path, _spec()) == pytest.approx(0.9293)
    loss = S.SearchSpec.model_validate({**_spec().model_dump(), "metric": "validation.loss"})
    assert S.baseline_value(tmp_path, loss) == pytest.approx(0.25)
    record.unlink()
    (tmp_path / "dvclive" / "m").mkdir(parents=True)
    (tmp_path / "dvclive" / "m" / "metrics.json").write_text(json.dumps({"val_accuracy": 0.93}))
    assert S.baseline_value(tmp_path, _spec()) == pytest.approx(0.93)
    (tmp_path / "dvclive" / "m" / "metrics.json").unlink()
    assert S.baseline_value(tmp_path, _spec()) is None


def test_search_spaces_grid_and_samplers():
    from pipelines.ops.search_spec import Sampler, SearchSpec, grid_points

    spec = SearchSpec.model_validate(
        {
            "model": "m",
            "method": "grid",
            "space": {
                "a.lr": {"type": "loguniform", "low": 1e-3, "high": 1e-1, "points": 3},
                "a.bs": {"type": "categorical", "choices": [32, 64]},
                "a.n": {"type": "int", "low": 1, "high": 2},
            },
        }
    )
    points = grid_points(spec)
    assert len(points) == 12 and points[0] == {"a.lr": 0.001, "a.bs": 32, "a.n": 1}
    assert sorted({p["a.lr"] for p in points}) == [0.001, 0.01, 0.1]
    for method in ("random", "tpe"):
        s = spec.model_copy(update={"method": method, "n_trials": 5})
        a, b = Sampler(s), Sampler(s)
        va = [a.ask(i) for i in range(3)]
        assert va == [b.ask(i) for i in range(3)]  # seeded
        for v in va:
            assert 1e-3 <= v["a.lr"] <= 1e-1 and v["a.bs"] in (32, 64) and v["a.n"] in (1, 2)
        a.tell(0, 0.5)
