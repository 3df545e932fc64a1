"""A truthful record: hostile names never become paths, a resumed run is the same code, a damaged
model or token file is caught before use, and a non-finite metric fails its stage."""

from __future__ import annotations

import errno
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipelines import tasks
from pipelines import training as T
from pipelines.config import Layout, TrainConfig, model_config
from pipelines.integrity import IntegrityError, content_md5, verify
from pipelines.outputs import write_atomic, write_metrics
from rnnflow.config import ConfigError
from tests import synthetic

HOSTILE = [
    "z;touch PWNED;#",
    "$(touch PWNED)",
    "`touch PWNED`",
    "../../victim",
    "a/b",
    "/tmp/victim",
    "x\ntouch PWNED",
    "\u0430bc",  # Cyrillic 'а': looks like 'abc'
    "Upper",
    "",
]
CNN = dict(corpus="images", family="cnn", epochs=2, batch_size=32, lr=0.01, seed=3)


@pytest.mark.parametrize("name", HOSTILE, ids=repr)
def test_hostile_model_name_is_refused_by_the_typed_config(name: str) -> None:
    with pytest.raises(ValueError, match="not an identifier"):
        TrainConfig.model_validate({"models": {name: CNN}})
    with pytest.raises(ValueError, match="not an identifier"):
        TrainConfig.model_validate({"models": {"ok": {**CNN, "corpus": name}}})


@pytest.mark.parametrize("name", HOSTILE, ids=repr)
def test_hostile_name_never_becomes_a_path(tmp_path: Path, name: str) -> None:
    layout = Layout(tmp_path)
    for where in (layout.model, layout.checkpoint, layout.live, layout.metrics, layout.tokens):
        with pytest.raises(ConfigError, match="not an identifier"):
            where(name)


def test_a_path_leaving_the_root_through_a_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "root" / "models").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="outside the project root"):
        Layout(tmp_path / "root").model("m")


# --- a resumed run is the same run --------------------------------------------------------


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = synthetic.write(
        tmp_path_factory.mktemp("tok") / "images", "images", n=300, n_val=50, n_test=50
    )
    return tasks.load_corpus(d)


def test_code_change_trains_from_scratch(images, tmp_path, monkeypatch, caplog) -> None:
    cfg = model_config(**CNN)
    ckpt = tmp_path / "last.pt"
    T.fit(cfg, images, checkpoint=ckpt, progress=False)  # the old code's finished run
    monkeypatch.setattr(T, "code_hash", lambda stage, kind: "the edited training code")
    caplog.set_level("INFO")
    again = T.fit(cfg, images, checkpoint=ckpt, progress=False)
    assert again.resumed_from == 0 and len(again.history) == 2
    assert "made by other training code" in caplog.text


def test_a_checkpoint_that_does_not_fit_is_discarded(images, tmp_path, monkeypatch, caplog):
    cfg = model_config(**CNN)
    ckpt = tmp_path / "last.pt"
    T.fit(cfg, images, checkpoint=ckpt, stop_after=1, progress=False)
    # a layer added by a code edit that the code hash did not see (e.g. a site-packages change)
    real_build = T.build_model
    monkeypatch.setattr(
        T,
        "build_model",
        lambda family, c, spec: torch.nn.Sequential(real_build(family, c, spec), torch.nn.ReLU()),
    )
    caplog.set_level("INFO")
    result = T.fit(cfg, images, checkpoint=ckpt, progress=False)
    assert result.resumed_from == 0 and result.complete
    assert "does not fit the model" in caplog.text


# --- corruption is caught before use ----------------------------------------------------------


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    dvc = str(Path(sys.executable).parent / "dvc")
    return subprocess.run(
        [dvc, *args], cwd=root, capture_output=True, text=True, check=True, timeout=120
    )


@pytest.fixture
def dvc_project(tmp_path: Path) -> Path:
    """A real DVC project whose stage ``train@m`` wrote ``models/m/model.pt``."""
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    _dvc(root, "init", "-q")
    writer = "import os,pathlib; p=pathlib.Path('models/m'); p.mkdir(parents=True); "
    writer += "(p/'model.pt').write_bytes(bytes(range(256))*64)"
    (root / "dvc.yaml").write_text(
        "stages:\n  train:\n    foreach: [m]\n    do:\n"
        f'      cmd: {sys.executable} -c "{writer}"\n'
        "      outs:\n        - models/${item}\n"
    )
    _dvc(root, "repro", "-q")
    return root


def _flip_byte(path: Path, at: int = 100) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_the_cache_is_caught_before_use(dvc_project: Path) -> None:
    model = dvc_project / "models" / "m" / "model.pt"
    assert verify(model, dvc_project)
    lock = json.dumps(_lock(dvc_project))
    cached = next(
        p
        for p in (dvc_project / ".dvc" / "cache" / "files" / "md5").glob("??/*")
        if not p.name.endswith(".dir")
    )
    _flip_byte(cached)
    # the workspace copy made from the damaged object, as a checkout on another machine would
    (dvc_project / "models" / "m" / "model.pt").unlink()
    (dvc_project / "models" / "m" / "model.pt").write_bytes(cached.read_bytes())
    with pytest.raises(IntegrityError) as caught:
        verify(model, dvc_project)
    message = str(caught.value)
    assert "models/m/model.pt" in message and "dvc checkout --force train@m" in message
    assert json.dumps(_lock(dvc_project)) == lock

    check = subprocess.run(
        [sys.executable, "-m", "pipelines.integrity", "--root", str(dvc_project), "--cache"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 1
    assert "CHANGED  models/m" in check.stdout and "CORRUPT" in check.stdout


def _lock(root: Path) -> dict:
    from ruamel.yaml import YAML

    return YAML(typ="safe").load((root / "dvc.lock").read_text())


def test_evaluate_refuses_a_damaged_model_before_loading_it(dvc_project: Path) -> None:
    from pipelines.flows.evaluate import evaluate

    (dvc_project / "params.yaml").write_text("evaluate: {}\n")
    _flip_byte(dvc_project / "models" / "m" / "model.pt")
    with pytest.raises(IntegrityError, match="models/m/model.pt"):
        evaluate.fn("m", root=str(dvc_project))
    assert not (dvc_project / "metrics").exists()


def test_the_md5_is_dvcs_own(dvc_project: Path) -> None:
    recorded = _lock(dvc_project)["stages"]["train@m"]["outs"][0]["md5"]
    assert content_md5(dvc_project / "models" / "m") == recorded


# --- metrics are numbers ------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_a_non_finite_metric_fails_naming_it(tmp_path: Path, bad: float) -> None:
    path = tmp_path / "metrics" / "m.json"
    with pytest.raises(ValueError, match=r"metric test\.accuracy is"):
        write_metrics(path, {"model": "m", "test": {"loss": 0.1, "accuracy": bad}})
    assert not path.exists()


def test_a_full_disk_names_the_file(tmp_path: Path, monkeypatch) -> None:
    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", full)
    target = tmp_path / "models" / "m" / "model.pt"
    with pytest.raises(OSError, match=r"models/m/model\.pt: cannot write.*disk full"):
        write_atomic(target, b"weights")
    assert not list(target.parent.iterdir())


def test_retrain_refuses_a_damaged_champion_from_the_cache(dvc_project: Path) -> None:
    from pipelines.ops.retrain import cached_weights

    out_hash = _lock(dvc_project)["stages"]["train@m"]["outs"][0]["md5"]
    weights = cached_weights(dvc_project, out_hash)
    assert weights.read_bytes() == (dvc_project / "models" / "m" / "model.pt").read_bytes()
    _flip_byte(weights)
    with pytest.raises(IntegrityError, match="does not hash to"):
        cached_weights(dvc_project, out_hash)
