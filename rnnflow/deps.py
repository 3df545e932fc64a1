"""Every DVC stage lists, as deps, every project file its command imports: ``rnnflow deps``.

The import closure of a stage's command is computed from the source (``ast``: every
``import`` anywhere in a module, function-local ones included, ``TYPE_CHECKING`` blocks
excluded), starting at the module the command runs plus the modules it loads by name (the
corpus adapter from ``stages.corpora.REGISTRY``; the kind package ``pipelines/<kind>`` that
``pipelines.kinds`` loads: the model's own kind for a command whose argument is a model, both
kinds otherwise). dvc.yaml's ``vars.models`` gives each model's stages their corpus and kind
package (``${item.corpus}``, ``${item.code}``); :func:`model_vars` derives it from
params.yaml, :func:`check` compares and :func:`write` writes it. A file of the closure that no dep
covers (the file itself or a folder above it) means ``dvc repro`` would keep outputs the
current code would not produce: :func:`check` names the stage and the file, and
:func:`write` rewrites each stage's code deps in ``dvc.yaml`` to exactly its closure.

This module imports neither ``stages`` nor ``pipelines`` (the core sits below both): the
corpus registry is loaded by name, and DVC only inside the function that asks it for the
stages.
"""

from __future__ import annotations

import ast
import importlib
import io
import shlex
from functools import cache
from pathlib import Path
from typing import Any

from rnnflow.env import PROJECT_ROOT

PACKAGES = ("rnnflow", "stages", "pipelines")
#: The comment ``write`` puts above each stage's code deps.
COMMENT = (
    "the command's import closure (`rnnflow deps` checks it; `rnnflow deps --write` writes it)"
)


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
            for stmt in node.orelse:
                visit(stmt)
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


def dynamic_imports(name: str, args: list[str], root: Path = PROJECT_ROOT) -> set[str]:
    """Modules a stage loads by name at run time (registries, the train stage's ranks), for
    its arguments.

    The corpus registry is the importable ``stages.corpora`` (loaded by name: the core does
    not import the data side); the kind packages ``pipelines.kinds`` loads are read under
    ``root``: the model's own when the first argument is a model of ``root/params.yaml``."""
    extra: set[str] = set()
    if name == "pipelines.flows.train":  # nproc > 1: each rank runs it, by module name
        extra.add("pipelines.cli.ddp_train")
    if name == "stages.corpora" or name.startswith("stages.") and args:
        corpora = importlib.import_module("stages.corpora")

        if args and args[0] in corpora.REGISTRY:
            extra.add(corpora.REGISTRY[args[0]].split(":")[0])
    if name == "pipelines.kinds":  # loads pipelines/<kind>/*.py by name
        models = model_vars(root)
        if args and args[0] in models:
            folders = [root / models[args[0]]["code"]]
        else:
            folders = [root / "pipelines" / kind for kind in _pipelines("kinds").KINDS]
        for folder in folders:
            package = ".".join(folder.relative_to(root).parts)
            extra.update(f"{package}.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__")
    return extra


def _pipelines(module: str) -> Any:
    """A module of the training side, loaded by name (the core does not import it)."""
    return importlib.import_module(f"pipelines.{module}")


def model_vars(root: Path = PROJECT_ROOT) -> dict[str, dict[str, str]]:
    """What dvc.yaml's ``vars.models`` must hold: for each ``train.models`` entry of
    ``root/params.yaml``, its corpus and the package of its family's kind."""
    from rnnflow.config import load_params

    families = _pipelines("config").FAMILIES
    models = load_params(Path(root) / "params.yaml").get("train", {}).get("models", {})
    out = {}
    for name, entry in models.items():
        if entry.get("family") not in families:
            raise ValueError(f"train.models.{name}: unknown family {entry.get('family')!r}")
        kind = families[entry["family"]].kind
        out[name] = {"corpus": str(entry["corpus"]), "code": f"pipelines/{kind}"}
    return out


def model_vars_drift(root: Path = PROJECT_ROOT) -> list[str]:
    """One line per model whose dvc.yaml ``vars.models`` entry is missing, extra or differs
    from what params.yaml says (:func:`model_vars`); empty when they agree."""
    recorded = _dvc_model_vars(_yaml().load((Path(root) / "dvc.yaml").read_text())) or {}
    expected = model_vars(root)
    return [
        f"dvc.yaml vars.models.{m}: {dict(recorded[m]) if m in recorded else 'missing'}, "
        f"params.yaml train.models says {expected[m] if m in expected else 'no such model'} "
        f"(`rnnflow deps --write` writes it)"
        for m in sorted(set(recorded) | set(expected))
        if m not in recorded or m not in expected or dict(recorded[m]) != expected[m]
    ]


def _dvc_model_vars(doc: Any) -> Any:
    """The ``models`` mapping of ``doc``'s (dvc.yaml's) ``vars`` list, or None."""
    for v in doc.get("vars", []):
        if isinstance(v, dict) and "models" in v:
            return v["models"]
    return None


@cache
def _closure(entry: str, args: tuple[str, ...], root: Path) -> frozenset[Path]:
    seen: set[str] = set()
    files: set[Path] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        for mod in _with_parents(name):
            if mod in seen:
                continue
            seen.add(mod)
            path = module_file(mod, root)
            if path is None:
                continue
            files.add(path)
            todo.extend(imported_modules(path, mod) | dynamic_imports(mod, list(args), root))
    return frozenset(files)


def import_closure(cmd: str, root: Path = PROJECT_ROOT) -> set[Path]:
    """Project files imported by a stage command ``python -m MODULE ARGS...``."""
    argv = shlex.split(cmd)
    if argv[:2] != ["python", "-m"]:
        raise ValueError(f"stage command {cmd!r} is not `python -m MODULE ...`")
    return set(_closure(argv[2], tuple(argv[3:]), root))


def stages(root: Path = PROJECT_ROOT) -> list[tuple[str, str, list[Path]]]:
    """(stage name, command, dep paths) of every stage, resolved by DVC itself. The name is
    the stage's address from ``root`` (``fetch@mnist``), wherever the process runs."""
    from dvc.repo import Repo  # type: ignore[import-untyped]

    def address(s: Any) -> str:
        return s.name if s.path_in_repo == "dvc.yaml" else f"{s.path_in_repo}:{s.name}"

    with Repo(str(root)) as repo:
        return [(address(s), s.cmd, [Path(d.fs_path) for d in s.deps]) for s in repo.index.stages]


def uncovered(closure: set[Path], deps: list[Path], root: Path = PROJECT_ROOT) -> list[str]:
    """Files of ``closure`` that no dep (the file or a folder above it) covers."""
    resolved = [d.resolve() for d in deps]
    return sorted(
        str(f.relative_to(root))
        for f in closure
        if not any(f == d or d in f.parents for d in resolved)
    )


def check(root: Path = PROJECT_ROOT) -> list[str]:
    """One line per file a stage's command imports that its deps do not cover: the stage,
    its command, the file (relative to ``root``). Empty when every stage is covered."""
    root = Path(root).resolve()
    return model_vars_drift(root) + [
        f"{name} ({cmd}): {file}"
        for name, cmd, deps in stages(root)
        for file in uncovered(import_closure(cmd, root), deps, root)
    ]


# --- writing dvc.yaml ------------------------------------------------------------------------


def _yaml() -> Any:
    """ruamel.yaml in round-trip mode, set to dvc.yaml's layout (comments survive)."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never wrap: a flow mapping (vars, artifacts) stays on its one line
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def closures_by_group(root: Path = PROJECT_ROOT) -> dict[str, set[str]]:
    """Stage group (``fetch`` for ``fetch@mnist``) → the files, relative to ``root``, its
    stages' commands import, less those a folder dep already covers (``pipelines/text``)."""
    root = Path(root).resolve()
    by_group: dict[str, set[str]] = {}
    for name, cmd, deps in stages(root):
        if ":" in name:  # a stage of another dvc.yaml: only root/dvc.yaml is written
            continue
        group = name.split("@")[0]
        dirs = [
            d.resolve()
            for d in deps
            if d.resolve().is_dir() and "data" not in d.parts[len(root.parts) :]
        ]
        by_group.setdefault(group, set()).update(
            str(f.relative_to(root))
            for f in import_closure(cmd, root)
            if not any(dd in f.parents for dd in dirs)
        )
    return by_group


def set_code_deps(doc: Any, by_group: dict[str, set[str]], root: Path = PROJECT_ROOT) -> None:
    """Make each stage group's code deps in ``doc`` (dvc.yaml as ruamel loaded it) exactly
    ``by_group``'s files, sorted, after its data deps and under :data:`COMMENT`.

    Data deps and folder deps of the packages (``pipelines/text``) are kept. A ``vars``
    key whose values are modules or package folders (``adapter``, ``lib`` of
    ``vars.corpora``, ``code`` of ``vars.models``) stands for them in the stages that name it
    (``${item.adapter}``): those files are left out there. Other
    comments inside a deps list are dropped, so running twice changes nothing."""
    code_keys: set[str] = set()
    templ_files: set[str] = set()
    for v in doc.get("vars", []):
        for val in v.values() if isinstance(v, dict) else []:
            for inner in val.values() if isinstance(val, dict) else []:
                if isinstance(inner, dict):
                    for key, x in inner.items():
                        folder = str(x).split("/")[0] in PACKAGES and (root / str(x)).is_dir()
                        if str(x).endswith(".py") or folder:
                            code_keys.add(str(key))
                            templ_files.add(str(x))
    templates = {f"${{item.{key}}}" for key in code_keys}

    def is_code(s: str) -> bool:
        """A module, or a package folder (registries: every file of it, new ones too)."""
        return (
            s in templates
            or s.endswith(".py")
            or (s.split("/")[0] in PACKAGES and (root / s).is_dir())
        )

    for group, files in by_group.items():
        st = doc["stages"][group]
        body = st["do"] if "do" in st else st
        deps = body["deps"]
        old = [str(d) for d in deps]
        data = [s for s in old if not is_code(s)]
        templ = [s for s in old if is_code(s) and "${" in s]
        dirs = [s for s in old if "${" not in s and is_code(s) and (root / s).is_dir()]
        code = sorted((files - (templ_files if templ else set())) | set(dirs))
        deps.clear()
        deps.ca.items.clear()  # the comment is written anew below
        deps.ca.comment = None
        start = body.ca.items.get("deps")  # ruamel keeps a comment at the list's start here
        if start and len(start) > 3:
            start[3] = None
        for s in data + templ + code:
            deps.append(s)
        deps.yaml_set_comment_before_after_key(
            len(data), before=COMMENT, indent=8 if "do" in st else 6
        )


def _set_model_vars(doc: Any, expected: dict[str, dict[str, str]]) -> None:
    """Make ``doc``'s ``vars.models`` exactly ``expected``, one flow mapping a line."""
    from ruamel.yaml.comments import CommentedMap

    models = _dvc_model_vars(doc)
    if models is None:
        raise ValueError("dvc.yaml: vars has no `models` mapping for the train/evaluate stages")
    for name in [m for m in models if m not in expected]:
        del models[name]
    for name, entry in expected.items():
        if name not in models or dict(models[name]) != entry:
            flow = CommentedMap(entry)
            flow.fa.set_flow_style()
            models[name] = flow


def write(root: Path = PROJECT_ROOT) -> bool:
    """Rewrite ``root/dvc.yaml``'s ``vars.models`` from params.yaml, then each stage's code deps
    to exactly its import closure (comments elsewhere survive); whether the file changed. Run
    twice, it changes nothing."""
    root = Path(root).resolve()
    path = root / "dvc.yaml"
    before = path.read_text()
    yaml = _yaml()
    try:
        for step in ("vars", "deps"):  # DVC resolves the deps from the file as written
            doc = yaml.load(path.read_text())
            if step == "vars":
                _set_model_vars(doc, model_vars(root))
            else:
                set_code_deps(doc, closures_by_group(root), root)
            out = io.StringIO()
            yaml.dump(doc, out)
            path.write_text(out.getvalue())
    except BaseException:
        path.write_text(before)  # nothing half-written
        raise
    return path.read_text() != before
