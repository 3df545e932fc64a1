"""Every DVC stage lists, as deps, every project file its command imports.

The import closure of a stage's command is computed from the source (``ast``: every
``import`` anywhere in a module, function-local ones included, ``TYPE_CHECKING`` blocks
excluded), starting at the module the command runs plus the modules it loads by name (the
corpus adapter from ``stages.corpora.REGISTRY``, the model families and tasks that
``pipelines.models`` and ``pipelines.tasks`` discover). A file of the closure that no dep
covers (the file itself or a folder above it) means ``dvc repro`` would keep outputs the
current code would not produce: the test fails and names the stage and the file.
"""

from __future__ import annotations

import ast
import shlex
from functools import cache
from pathlib import Path

import pytest

from rnnflow.env import PROJECT_ROOT

PACKAGES = ("rnnflow", "stages", "pipelines")


def module_file(name: str, root: Path = PROJECT_ROOT) -> Path | None:
    """The project file of module ``name`` (None if it is not the project's)."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(path: Path, name: str) -> set[str]:
    """Modules ``path`` (module ``name``) imports, wherever the import statement stands."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            found.add(mod)
            # `from pkg import sub` imports pkg.sub when sub is a module
            found.update(f"{mod}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def dynamic_imports(name: str, args: list[str]) -> set[str]:
    """Modules a stage loads by name at run time (registries), for its arguments."""
    extra: set[str] = set()
    if name == "stages.corpora" or name.startswith("stages.") and args:
        from stages import corpora

        if args and args[0] in corpora.REGISTRY:
            extra.add(corpora.REGISTRY[args[0]].split(":")[0])
    for registry in ("pipelines.models", "pipelines.tasks"):  # pkgutil-discovered modules
        if name == registry:
            folder = PROJECT_ROOT.joinpath(*registry.split("."))
            extra.update(
                f"{registry}.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__"
            )
    return extra


@cache
def _closure(entry: str, args: tuple[str, ...]) -> frozenset[Path]:
    seen: set[str] = set()
    files: set[Path] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        for mod in _with_parents(name):
            if mod in seen:
                continue
            seen.add(mod)
            path = module_file(mod)
            if path is None:
                continue
            files.add(path)
            todo.extend(imported_modules(path, mod) | dynamic_imports(mod, list(args)))
    return frozenset(files)


def import_closure(cmd: str) -> set[Path]:
    """Project files imported by a stage command ``python -m MODULE ARGS...``."""
    argv = shlex.split(cmd)
    if argv[:2] != ["python", "-m"]:
        raise AssertionError(f"stage command {cmd!r} is not `python -m MODULE ...`")
    return set(_closure(argv[2], tuple(argv[3:])))


def stages(root: Path = PROJECT_ROOT) -> list[tuple[str, str, list[Path]]]:
    """(stage name, command, dep paths) of every stage, resolved by DVC itself."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return [(s.addressing, s.cmd, [Path(d.fs_path) for d in s.deps]) for s in repo.index.stages]


def uncovered(closure: set[Path], deps: list[Path]) -> list[str]:
    """Files of ``closure`` that no dep (the file or a folder above it) covers."""
    resolved = [d.resolve() for d in deps]
    return sorted(
        str(f.relative_to(PROJECT_ROOT))
        for f in closure
        if not any(f == d or d in f.parents for d in resolved)
    )


ALL_STAGES = stages()


@pytest.mark.parametrize("name,cmd,deps", ALL_STAGES, ids=[s[0] for s in ALL_STAGES])
def test_stage_deps_cover_its_import_closure(name: str, cmd: str, deps: list[Path]) -> None:
    missing = uncovered(import_closure(cmd), deps)
    assert not missing, (
        f"dvc.yaml stage {name!r} ({cmd}) imports files it does not list as deps: {missing}"
    )


def test_the_closure_check_sees_a_missing_dep() -> None:
    """The check itself can fail: drop rnnflow/hashing.py's cover from a sample stage."""
    name, cmd, deps = next(s for s in ALL_STAGES if s[0] == "sample@parity")
    closure = import_closure(cmd)
    hashing = PROJECT_ROOT / "rnnflow" / "hashing.py"
    assert hashing in closure
    without = [d for d in deps if d.resolve() not in (hashing, hashing.parent)]
    assert "rnnflow/hashing.py" in uncovered(closure, without)


def test_function_local_imports_count(tmp_path: Path) -> None:
    mod = tmp_path / "m.py"
    mod.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import stages.x\n"
        "def f():\n    from rnnflow import hashing\n    import pipelines.y\n"
    )
    found = imported_modules(mod, "pkg.m")
    assert {"rnnflow", "rnnflow.hashing", "pipelines.y"} <= found
    assert "stages.x" not in found
