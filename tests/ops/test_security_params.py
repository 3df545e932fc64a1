"""Hostile params edits: every writer of params.yaml refuses names that are not identifiers.

Model and corpus names are pasted into dvc.yaml's commands (``python -m pipelines.flows.train
${key}``) and into paths, so a key such as ``z;touch PWNED;#`` must never reach params.yaml,
whichever door it comes through: ``set_params`` (the repro flow's overrides), a profile, the
``rnnflow`` command line, or a run of the served ``repro`` deployment created over the Prefect
API (``test_security_api.py``). Every refusal names the key and leaves params.yaml byte for byte
as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.ops import params as P
from pipelines.ops import workspace as W
from rnnflow.config import ConfigError, load_params
from rnnflow.env import PROJECT_ROOT
from tests.conftest import lock_held
from tests.ops.conftest import copy_params

HOSTILE = [
    "z;touch PWNED;#",
    "$(touch PWNED)",
    "`touch PWNED`",
    "..",
    "../victim",
    "a/b",
    "/tmp/victim",
    "x\ntouch PWNED",
    "mnist_cnа",  # the last letter is Cyrillic 'а' (U+0430), a look-alike of an existing name
    "Mnist_cnn",
    "",
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A project root with the real params.yaml and profiles (nothing else is needed)."""
    copy_params(tmp_path)
    return tmp_path


def test_the_committed_params_validate():
    from rnnflow.config import load_params

    P.check_params(load_params(PROJECT_ROOT / "params.yaml"), PROJECT_ROOT)


def _refused(path: Path, overrides: dict, *named: str, reason: str = "") -> str:
    before = path.read_bytes()
    with pytest.raises(ConfigError) as exc:
        P.set_params(path, overrides)
    assert path.read_bytes() == before, "params.yaml was written"
    msg = str(exc.value)
    for name in named:
        assert name in msg or repr(name)[1:-1] in msg, msg
    assert reason in msg, msg
    return msg


# --- set_params: the code path of every writer ---------------------------------------------


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_model_key_is_refused(root, name):
    path = root / "params.yaml"
    entry = {"corpus": "mnist", "family": "mlp"}
    _refused(path, {f"train.models.{name}": entry}, name, reason="not an identifier")
    _refused(path, {f"train.models.{name}.epochs": 1}, name, reason="not an identifier")


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_corpus_and_source_keys_are_refused(root, name):
    path = root / "params.yaml"
    _refused(path, {f"clean.{name}": {"dedupe": True}}, name, reason="not an identifier")
    # A source is named in the catalogue file, which no params writer edits: a hand-edited
    # hostile name there stops the workspace check that runs before DVC renders dvc.yaml.
    catalogue = root / "sources" / "mnist.yaml"
    sources = load_params(catalogue)
    sources[name] = {"urls": [], "files": {}}
    catalogue.write_text(json.dumps(sources))
    with pytest.raises(ConfigError) as exc:
        P.check_workspace_params(root)
    assert "not an identifier" in str(exc.value) and repr(name)[1:-1] in str(exc.value)


@pytest.mark.parametrize(
    "key",
    ["train.models.newmodel", "clean.newcorpus", "fetch.newcorpus", "newsection"],
)
def test_a_new_name_is_refused_even_when_it_is_an_identifier(root, key):
    _refused(root / "params.yaml", {key: {"epochs": 1}}, key, reason="new name")


@pytest.mark.parametrize(
    "key, value",
    [
        ("train.models.mnist_cnn.corpus", "../../victim"),
        ("train.models.mnist_cnn.corpus", "/tmp/victim"),
        ("train.models.mnist_cnn.corpus", "mnist;touch PWNED"),
        ("fetch.mnist.source", ["published", "../victim"]),
        ("tokenize.twitter.monolingual.corpus", "../es_en"),
    ],
)
def test_hostile_name_values_are_refused(root, key, value):
    _refused(root / "params.yaml", {key: value}, key)


@pytest.mark.parametrize(
    "key, value",
    [
        ("train.models.mnist_cnn.epochs", "10; touch PWNED"),  # a string for an int
        ("train.models.mnist_cnn.epochs", True),  # a bool is not an int here
        ("train.models.mnist_cnn.lr", "fast"),
        ("train.models.mnist_cnn.epochs", [1]),
        ("train.models.mnist_cnn.nosuchfield", 1),  # not a field of the typed config
        ("train.models.mnist_cnn", 3),  # an entry replaced by a scalar
        ("retrain.margin", "lots"),  # a word the field does not take
        ("retrain.margin", "0.01"),  # a number as a string: the YAML would hold a string
        ("data.engine", "spark"),
    ],
)
def test_wrong_types_and_unknown_fields_are_refused(root, key, value):
    _refused(root / "params.yaml", {key: value}, key)


def test_existing_leaves_and_declared_fields_can_be_set(root):
    path = root / "params.yaml"
    changed = P.set_params(
        path,
        {
            "train.models.mnist_cnn.epochs": 2,
            "train.models.mnist_cnn.lr": 1,  # an int where the old value is a float
            "sample.mnist.train": 2000,  # null → a count
            "train.models.books_lm.max_batches": 15,  # a field the typed config declares
        },
    )
    assert changed["train.models.mnist_cnn.lr"] == (0.003, 1)
    assert changed["train.models.books_lm.max_batches"] == (None, 15)
    # a field that takes a number or a word (`-S retrain.margin=0.01`, and back)
    assert P.set_params(path, {"retrain.margin": 0.01}) == {"retrain.margin": ("measured", 0.01)}
    assert P.set_params(path, {"retrain.margin": "measured"})["retrain.margin"][1] == "measured"
    assert "# rnnflow params" in path.read_text()  # comments kept


# --- the command line -----------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rnnflow.cli", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("name", ["z;touch PWNED;#", "../victim", "mnist_cnа"])
def test_profile_with_a_hostile_model_key_is_refused(root, name):
    (root / "profiles" / "evil.yaml").write_text(
        json.dumps({"train": {"models": {name: {"corpus": "mnist", "family": "mlp"}}}})
    )
    before = (root / "params.yaml").read_bytes()
    proc = _cli("profile", "evil", "--root", str(root))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert repr(name)[1:-1] in proc.stderr and "not an identifier" in proc.stderr, proc.stderr
    assert (root / "params.yaml").read_bytes() == before


@pytest.mark.parametrize("name", ["../params", "/etc/passwd", "ci;touch PWNED"])
def test_hostile_profile_names_are_refused(root, name):
    proc = _cli("profile", name, "--root", str(root))
    assert proc.returncode == 2 and "not an identifier" in proc.stderr, proc.stderr
    assert not list(root.rglob("PWNED"))


def test_the_ci_profile_applies(root):
    proc = _cli("profile", "ci", "--root", str(root))
    assert proc.returncode == 0, proc.stderr
    assert "train.models.books_lm.max_batches" in proc.stdout
    assert _cli("profile", "ci", "--root", str(root)).stdout.endswith("already matches\n")


def test_repro_command_refuses_a_hostile_override(root):
    before = (root / "params.yaml").read_bytes()
    proc = _cli("repro", "--root", str(root), "-S", "train.models.z;touch PWNED;#.epochs=1")
    assert proc.returncode != 0
    assert "z;touch PWNED;#" in proc.stdout + proc.stderr and "not an identifier" in proc.stderr
    assert (root / "params.yaml").read_bytes() == before and not list(root.rglob("PWNED"))


@pytest.mark.parametrize("name", ["z;touch PWNED;#", "../victim", "mnist_cnа"])
def test_retrain_and_search_refuse_a_hostile_model_name(root, name):
    from pipelines.ops.retrain import retrain_config
    from pipelines.ops.search_spec import SearchSpec
    from rnnflow.config import load_params

    with pytest.raises(ConfigError, match="not an identifier"):
        retrain_config(load_params(root / "params.yaml"), name)
    with pytest.raises(ValueError, match="not an identifier"):
        SearchSpec.model_validate(
            {
                "model": name,
                "method": "grid",
                "space": {"x.lr": {"type": "categorical", "choices": [1]}},
            }
        )


def test_a_search_trial_with_a_hostile_key_writes_nothing(root):
    from pipelines.ops.search import SearchSpec, run_trial

    spec = SearchSpec.model_validate(
        {
            "model": "mnist_cnn",
            "method": "grid",
            "space": {"x": {"type": "int", "low": 1, "high": 1}},
        }
    )
    before = (root / "params.yaml").read_bytes()
    with pytest.raises(ConfigError, match="not an identifier"):
        run_trial.fn(str(root), spec, 0, "t0", {"train.models.z;touch PWNED;#": {"epochs": 1}})
    assert (root / "params.yaml").read_bytes() == before


# --- the other parameters a deployment run takes ------------------------------------------


@pytest.mark.parametrize(
    "targets, experiment",
    [
        (["train@z;touch PWNED;#"], None),
        (["--allow-missing"], None),  # an option smuggled in as a target
        (["../other/dvc.yaml"], None),
        (["/tmp/victim/dvc.yaml:train"], None),
        (["train@../victim"], None),
        ([], "--queue"),
        ([], "x;touch PWNED"),
    ],
)
def test_repro_refuses_targets_and_experiments_that_are_not_stage_names(
    root, monkeypatch, targets, experiment
):
    from pipelines.ops import repro as R

    ran = []
    monkeypatch.setattr(R, "run_dvc", lambda *a: ran.append(a))
    with pytest.raises(ConfigError, match="not a stage name|not an experiment name"):
        R.repro.fn(targets=targets, experiment=experiment, root=str(root))
    assert not ran


@pytest.mark.parametrize("spec", ["/etc/passwd", "../victim.yaml", "search/../../victim.yaml"])
def test_search_reads_specs_only_from_the_projects_search_folder(root, spec):
    from pipelines.ops.search import search

    with pytest.raises(ConfigError, match="outside the project.s search/ folder"):
        search.fn(spec_path=spec, root=str(root))


@pytest.mark.parametrize("params", ["/etc/passwd", "../params.yaml"])
def test_retrain_reads_params_only_from_the_project(root, params):
    from pipelines.ops.retrain import retrain

    with pytest.raises(ConfigError, match="outside the project"):
        retrain.fn(params_path=params, root=str(root))


# --- one workspace lock -----------------------------------------------------------------------


@pytest.fixture
def held(root):
    """Another process holding ``root``'s workspace lock; yields its pid."""
    with lock_held(root, "repro all") as pid:
        yield pid


@pytest.mark.parametrize("extra", [[], ["--exp-run"]])
def test_a_profile_is_refused_while_another_process_holds_the_workspace(root, held, extra):
    before = (root / "params.yaml").read_bytes()
    began = time.monotonic()
    proc = _cli("profile", "ci", "--root", str(root), *extra)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert f"pid {held} repro all" in proc.stderr, proc.stderr
    assert time.monotonic() - began < 60  # refused, not waited for
    assert (root / "params.yaml").read_bytes() == before


def test_a_profile_runs_its_experiment_holding_the_lock(root, tmp_path_factory):
    """`--exp-run` applies the checked profile, then runs `dvc exp run` under the lock."""
    bin_dir = tmp_path_factory.mktemp("bin")
    fake = bin_dir / "dvc"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "$@" > seen.txt\n'
        "cat .dvc/tmp/rnnflow.lock >> seen.txt\n"
        "grep -c 'max_batches: 15' params.yaml >> seen.txt\n"
    )
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [sys.executable, "-m", "rnnflow.cli", "profile", "ci", "--exp-run", "--root", str(root)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    args, holder, applied = (root / "seen.txt").read_text().splitlines()
    assert args.startswith("exp run --name ci-"), args
    assert holder.startswith("pid ") and " rnnflow profile ci since " in holder, holder
    assert int(applied) >= 1  # the profile was in params.yaml before DVC started


def test_the_locked_wrapper_refuses_while_held_and_runs_when_free(root, held):
    marker = root / "ran"
    proc = _cli("locked", "--root", str(root), "--", "touch", str(marker))
    assert proc.returncode != 0 and f"pid {held}" in proc.stderr, proc.stderr
    assert not marker.exists()


def test_the_locked_wrapper_passes_on_the_exit_code(root):
    proc = _cli("locked", "--root", str(root), "--", sys.executable, "-c", "raise SystemExit(3)")
    assert proc.returncode == 3, proc.stderr


def test_make_repro_holds_the_lock_with_and_without_a_profile():
    for extra in ([], ["PROFILE=ci"]):
        out = subprocess.run(
            ["make", "-n", "--always-make", "repro", *extra],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.replace("\\\n", " ")  # one line per command, continuations joined
        line = next(ln for ln in out.splitlines() if "prefect_session" in ln)
        assert ("profile ci --exp-run" in line) if extra else ("rnnflow locked -- " in line), line


def test_a_hand_edited_hostile_name_stops_before_dvc(root: Path, monkeypatch) -> None:
    text = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(
        text.replace(
            "  models:\n",
            "  models:\n    'z;touch PWNED;#': {corpus: mnist, family: mlp, epochs: 1}\n",
            1,
        )
    )

    def never(*_a, **_k):
        raise AssertionError("dvc ran")

    monkeypatch.setattr(W, "stream", never)
    with pytest.raises(ConfigError, match="not an identifier"):
        W.dvc_repro(root)
