"""Every DVC stage lists, as deps, every project file its command imports.

The closure and the check are ``rnnflow.deps`` (``rnnflow deps`` runs them); here every stage
of the project's dvc.yaml is checked, the check is shown to fail on a missing dep, and
``rnnflow deps --write`` is run on a copy of the project.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rnnflow import cli
from rnnflow.deps import (
    COMMENT,
    PACKAGES,
    check,
    import_closure,
    imported_modules,
    stages,
    uncovered,
    write,
)
from rnnflow.env import PROJECT_ROOT

ALL_STAGES = stages()


@pytest.mark.parametrize("name,cmd,deps", ALL_STAGES, ids=[s[0] for s in ALL_STAGES])
def test_stage_deps_cover_its_import_closure(name: str, cmd: str, deps: list[Path]) -> None:
    missing = uncovered(import_closure(cmd), deps)
    assert not missing, (
        f"dvc.yaml stage {name!r} ({cmd}) imports files it does not list as deps: {missing}"
    )


def test_the_closure_check_sees_a_missing_dep() -> None:
    """The check itself can fail: drop stages/core/hashing.py's cover from a sample stage."""
    name, cmd, deps = next(s for s in ALL_STAGES if s[0] == "sample@parity")
    closure = import_closure(cmd)
    hashing = PROJECT_ROOT / "stages" / "core" / "hashing.py"
    assert hashing in closure
    without = [d for d in deps if d.resolve() not in (hashing, hashing.parent)]
    assert "stages/core/hashing.py" in uncovered(closure, without)


def test_the_train_closure_holds_the_module_its_ranks_run() -> None:
    """With nproc > 1 the train stage starts ``python -m pipelines.cli.ddp_train`` by name."""
    closure = import_closure("python -m pipelines.flows.train mnist_cnn")
    assert PROJECT_ROOT / "pipelines" / "cli" / "ddp_train.py" in closure


def test_function_local_imports_count(tmp_path: Path) -> None:
    mod = tmp_path / "m.py"
    mod.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import stages.x\n"
        "def f():\n    from stages.core import hashing\n    import pipelines.y\n"
    )
    found = imported_modules(mod, "pkg.m")
    assert {"stages.core", "stages.core.hashing", "pipelines.y"} <= found
    assert "stages.x" not in found


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The project's dvc.yaml, params.yaml and packages in a fresh DVC repository (no git):
    what DVC needs to resolve the stages and the closure to read the sources."""
    from dvc.repo import Repo

    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    for package in PACKAGES:
        shutil.copytree(
            PROJECT_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    Repo.init(str(tmp_path), no_scm=True).close()
    return tmp_path


def _deps_of(text: str, group: str) -> list[str]:
    from ruamel.yaml import YAML

    stage = YAML(typ="safe").load(text)["stages"][group]
    return list(stage.get("do", stage)["deps"])


def test_write_puts_a_removed_code_dep_back_and_a_second_write_changes_nothing(
    project_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dvc_yaml = project_copy / "dvc.yaml"
    original = dvc_yaml.read_text()
    head, sample = original.split("\n  sample:\n")
    sample = sample.replace("        - stages/core/hashing.py\n", "", 1)
    dvc_yaml.write_text(f"{head}\n  sample:\n{sample}")
    dropped = [d for d in _deps_of(original, "sample") if d != "stages/core/hashing.py"]
    assert _deps_of(dvc_yaml.read_text(), "sample") == dropped

    assert cli.main(["deps", "--root", str(project_copy)]) == 1
    out = capsys.readouterr().out
    assert "sample@parity (python -m stages.sample parity): stages/core/hashing.py" in out

    assert cli.main(["deps", "--write", "--root", str(project_copy)]) == 0
    assert capsys.readouterr().out == "dvc.yaml: deps rewritten\n"
    written = dvc_yaml.read_text()
    groups = ("fetch", "clean", "format", "sample", "tokenize", "train", "evaluate", "report")
    for group in groups:
        assert _deps_of(written, group) == _deps_of(original, group), group
    # one comment over each stage's code deps: an old one is replaced, not kept beside it
    assert written.count("the command's import closure") == written.count(COMMENT) == len(groups)
    assert check(project_copy) == []

    assert write(project_copy) is False
    assert dvc_yaml.read_text() == written


def _params_changed(root: Path) -> set[str]:
    """The stages whose params.yaml deps differ from dvc.lock (``dvc status``)."""
    import json
    import subprocess

    out = subprocess.run(
        ["dvc", "status", "--json"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    return {
        stage
        for stage, changes in json.loads(out).items()
        for change in changes
        if isinstance(change, dict) and "params.yaml" in change.get("changed deps", {})
    }


def test_a_decoding_change_makes_evaluate_stale_and_no_train_stage(tmp_path: Path) -> None:
    """How a model decodes is evaluate's (``evaluate.models.<model>``): a new beam makes the
    evaluate stages stale by their params and no train stage."""
    import subprocess

    from ruamel.yaml import YAML

    from tests.conftest import copy_checkout

    root = copy_checkout(tmp_path / "project", skip=())
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    before = _params_changed(root)
    yaml = YAML()
    params = yaml.load(root / "params.yaml")
    decode = params["evaluate"]["models"]["es_en_translator"]
    decode["beam"] = decode.get("beam", 5) + 1
    yaml.dump(params, root / "params.yaml")
    new = _params_changed(root) - before
    assert "evaluate@es_en_translator" in new, new
    assert not [stage for stage in new if stage.startswith("train@")], new


def _changed_code(root: Path) -> dict[str, set[str]]:
    """Per stage, the code deps ``dvc status`` reports changed against dvc.lock."""
    import json
    import subprocess

    out = subprocess.run(
        ["dvc", "status", "--json"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    return {
        stage: {
            dep
            for change in changes
            if isinstance(change, dict)
            for dep in change.get("changed deps", {})
            if dep.startswith(("pipelines", "rnnflow"))
        }
        for stage, changes in json.loads(out).items()
    }


def test_a_model_stage_is_stale_by_its_own_kinds_code_only(tmp_path: Path) -> None:
    """Each train/evaluate stage depends on its kind's package: after an edit of the
    translator's task and one of the MNIST CNN, ``dvc status`` reports the text package
    changed for the text models only and the tensor package for the others only."""
    import subprocess

    from rnnflow.deps import model_vars
    from tests.conftest import copy_checkout

    root = copy_checkout(tmp_path / "project", skip=())
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    for edited in ("pipelines/text/translate.py", "pipelines/tensor/cnn_bn.py"):
        with (root / edited).open("a") as fh:
            fh.write("# edited\n")
    changed = _changed_code(root)
    kinds = {m: entry["code"] for m, entry in model_vars(root).items()}
    assert set(kinds.values()) == {"pipelines/text", "pipelines/tensor"}
    for model, package in kinds.items():
        other = ({"pipelines/text", "pipelines/tensor"} - {package}).pop()
        for stage in (f"train@{model}", f"evaluate@{model}"):
            assert package in changed.get(stage, set()), (stage, changed.get(stage))
            assert not any(d.startswith(other) for d in changed.get(stage, set())), stage


def test_a_model_added_to_params_without_its_stages_is_named_until_written(
    project_copy: Path,
) -> None:
    """dvc.yaml's ``vars.models`` is written from params.yaml: a model added to
    ``train.models`` alone would have no train stage, so the check and the workspace's
    params check name it, and ``rnnflow deps --write`` gives it its stages."""
    from ruamel.yaml import YAML

    from pipelines.ops.params import check_workspace_params
    from rnnflow.config import ConfigError

    shutil.copytree(PROJECT_ROOT / "sources", project_copy / "sources")  # fetch's catalogue
    yaml = YAML()
    params = yaml.load(project_copy / "params.yaml")
    params["train"]["models"]["mnist_mlp2"] = dict(params["train"]["models"]["mnist_mlp"])
    yaml.dump(params, project_copy / "params.yaml")
    missing = "dvc.yaml vars.models.mnist_mlp2: missing, params.yaml train.models says"
    assert [line for line in check(project_copy) if "vars.models" in line] == [
        f"{missing} {{'corpus': 'mnist', 'code': 'pipelines/tensor'}} "
        "(`rnnflow deps --write` writes it)"
    ]
    with pytest.raises(ConfigError, match=missing):
        check_workspace_params(project_copy)
    assert write(project_copy) is True
    assert check(project_copy) == []
    assert "train@mnist_mlp2" in [name for name, _, _ in stages(project_copy)]
