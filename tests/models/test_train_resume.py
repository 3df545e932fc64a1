"""Checkpoint/resume: an interrupted run, resumed, ends with exactly the weights of an
uninterrupted one (CPU, same seed); a checkpoint that does not match starts fresh."""

from __future__ import annotations

import pytest
import torch

from pipelines import tasks
from pipelines.config import model_config
from pipelines.tensor import Corpus
from pipelines.training import fit, train_fingerprint
from tests import synthetic

# Dropout (global RNG) and shift augmentation (epoch generator) both have to resume exactly.
CNN = dict(corpus="images", family="cnn", epochs=2, batch_size=32, lr=0.01, seed=3, augment=True)
LSTM = dict(
    corpus="images",
    family="rnn_classifier",
    cell="lstm",
    hidden=16,
    layers=2,
    dropout=0.3,
    epochs=2,
    batch_size=32,
    lr=0.01,
    seed=3,
    grad_clip=1.0,
)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Corpus:
    d = synthetic.write(
        tmp_path_factory.mktemp("tok") / "images", "images", n=400, n_val=50, n_test=50
    )
    return tasks.load_corpus(d)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("params", [CNN, LSTM], ids=["cnn", "lstm"])
def test_interrupted_then_resumed_equals_uninterrupted(images, tmp_path, params):
    cfg = model_config(**params)
    straight = fit(cfg, images, progress=False)

    ckpt = tmp_path / "last.pt"
    first = fit(cfg, images, checkpoint=ckpt, stop_after=1, progress=False)  # "killed" after 1
    assert not first.complete and len(first.history) == 1 and ckpt.exists()
    resumed = fit(cfg, images, checkpoint=ckpt, progress=False)
    assert resumed.resumed_from == 1 and resumed.complete
    assert_same_weights(resumed.model, straight.model)
    assert [r["val_loss"] for r in resumed.history] == [r["val_loss"] for r in straight.history]
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert resumed.best_epoch == straight.best_epoch
    best, want = resumed.state_dict("best"), straight.state_dict("best")
    assert all(torch.equal(best[k], want[k]) for k in want)


def test_more_epochs_extend_a_finished_run(images, tmp_path):
    ckpt = tmp_path / "last.pt"
    fit(model_config(**{**CNN, "epochs": 1}), images, checkpoint=ckpt, progress=False)
    extended = fit(model_config(**CNN), images, checkpoint=ckpt, progress=False)
    assert extended.resumed_from == 1
    assert_same_weights(extended.model, fit(model_config(**CNN), images, progress=False).model)

    again = fit(model_config(**CNN), images, checkpoint=ckpt, progress=False)  # nothing left
    assert again.resumed_from == 2 and len(again.history) == 2
    assert_same_weights(again.model, extended.model)


def test_fingerprint_mismatch_starts_fresh(images, tmp_path, caplog):
    ckpt = tmp_path / "last.pt"
    fit(model_config(**CNN), images, checkpoint=ckpt, stop_after=1, progress=False)

    changed = model_config(**{**CNN, "lr": 0.02})
    with caplog.at_level("INFO", logger="pipelines.flows.train"):
        fresh = fit(changed, images, checkpoint=ckpt, progress=False)
    assert fresh.resumed_from == 0
    assert "fingerprint differs" in caplog.text
    assert_same_weights(fresh.model, fit(changed, images, progress=False).model)

    # the data is part of the fingerprint too
    other = Corpus(
        images.name,
        images.spec,
        images.train,
        images.validation,
        [{**images.files[0], "rows": images.files[0]["rows"] + 1}, *images.files[1:]],
    )
    assert train_fingerprint(changed, other) != train_fingerprint(changed, images)
    assert fit(changed, other, checkpoint=ckpt, progress=False).resumed_from == 0


def test_fingerprint_covers_params_but_not_epochs_unless_scheduled(images):
    base = model_config(**CNN)
    fp = train_fingerprint(base, images)
    assert train_fingerprint(model_config(**{**CNN, "epochs": 9}), images) == fp
    assert train_fingerprint(model_config(**{**CNN, "seed": 4}), images) != fp
    assert train_fingerprint(model_config(**{**CNN, "augment": False}), images) != fp
    cos = model_config(**{**CNN, "schedule": "cosine"})
    assert train_fingerprint(cos, images) != train_fingerprint(
        model_config(**{**CNN, "schedule": "cosine", "epochs": 9}), images
    )


def test_unreadable_checkpoint_starts_fresh(images, tmp_path):
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(b"not a checkpoint")
    result = fit(model_config(**{**CNN, "epochs": 1}), images, checkpoint=ckpt, progress=False)
    assert result.resumed_from == 0
    saved = torch.load(ckpt, weights_only=True)
    assert {"fingerprint", "epoch", "model", "optimizer", "rng_cpu", "history"} <= set(saved)
    assert saved["epoch"] == 1


# --- DVCLive continues the same curves ----------------------------------------------------


def live_files(directory) -> dict[str, str]:
    """DVCLive's curves, summary and params: no timings among them, so they compare whole."""
    out = {}
    for tsv in sorted((directory / "plots" / "metrics").glob("*.tsv")):
        out[tsv.name] = tsv.read_text()
    out["metrics.json"] = (directory / "metrics.json").read_text()
    out["params.yaml"] = (directory / "params.yaml").read_text()
    return out


@pytest.mark.parametrize("damage", ["none", "lost", "ahead"])
def test_resumed_dvclive_curves_equal_uninterrupted(images, tmp_path, damage):
    """Stopped after epoch 1 of 2 and resumed: DVCLive's files equal a straight run's.

    ``lost``: the directory is gone (``dvc repro`` removes a stage's outputs before rerunning
    it); ``ahead``: a kill between the DVCLive write and the checkpoint left an epoch logged
    that the checkpoint never saw (here: a bogus step 2). The checkpoint's history wins.
    """
    import shutil

    cfg = model_config(**CNN)
    straight_dir = tmp_path / "straight"
    straight = fit(cfg, images, progress=False, live=straight_dir)

    live = tmp_path / "live"
    ckpt = tmp_path / "last.pt"
    first = fit(cfg, images, checkpoint=ckpt, stop_after=1, progress=False, live=live)
    assert len(first.history) == 1
    steps = (live / "plots/metrics/val_loss.tsv").read_text().splitlines()
    assert steps[0] == "step\tval_loss" and [s.split("\t")[0] for s in steps[1:]] == ["1"]
    if damage == "lost":
        shutil.rmtree(live)
    elif damage == "ahead":
        for tsv in (live / "plots/metrics").glob("*.tsv"):
            tsv.write_text(tsv.read_text() + f"2\t{123.0}\n")
    resumed = fit(cfg, images, checkpoint=ckpt, progress=False, live=live)
    assert resumed.resumed_from == 1
    assert_same_weights(resumed.model, straight.model)  # DVCLive only observes
    assert live_files(live) == live_files(straight_dir)
    lines = (live / "plots/metrics/train_loss.tsv").read_text().splitlines()
    assert [ln.split("\t")[0] for ln in lines] == ["step", "1", "2"]
    assert float(lines[2].split("\t")[1]) == straight.history[1]["train_loss"]  # bit-exact


def test_dvclive_does_not_change_training(images, tmp_path):
    cfg = model_config(**LSTM)
    with_live = fit(cfg, images, progress=False, live=tmp_path / "live")
    without = fit(cfg, images, progress=False)
    assert_same_weights(with_live.model, without.model)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in without.history]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in with_live.history] == strip
