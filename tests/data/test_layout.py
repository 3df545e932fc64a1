"""The project's layout agrees with itself.

* The corpora are named in three places: dvc.yaml's ``vars`` (``corpora``: one DVC stage per
  corpus and hop), ``stages.corpora.REGISTRY`` (the adapters) and params.yaml (one section per
  hop and corpus). A corpus added to one and forgotten in another fails here, named.
* Imports only point down (``pipelines``/``stages`` → ``rnnflow``) and never go round in a
  circle: the import-linter contracts in pyproject.toml hold, and the import graph of the
  project's modules (function-local imports included) has no cycle.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rnnflow.config import load_params
from rnnflow.env import PROJECT_ROOT
from stages.core.hop import HOPS

PACKAGES = ("rnnflow", "stages", "pipelines")
#: params.yaml keys of a hop section that are settings of the hop, not corpora.
HOP_SETTINGS = {"fetch": {"network", "require_pinned"}}


def layout_problems(
    dvc: dict[str, Any], registry: dict[str, str], params: dict[str, Any]
) -> list[str]:
    """Every disagreement between dvc.yaml, the adapter registry and params.yaml."""
    problems = []
    dvc_corpora: dict[str, Any] = {}
    for entry in dvc.get("vars", []):
        if isinstance(entry, dict) and "corpora" in entry:
            dvc_corpora = dict(entry["corpora"])
    names = {
        "dvc.yaml vars.corpora": set(dvc_corpora),
        "stages.corpora.REGISTRY": set(registry),
    }
    for hop in HOPS:
        section = params.get(hop) or {}
        names[f"params.yaml {hop}"] = set(section) - HOP_SETTINGS.get(hop, set())
    every = set().union(*names.values())
    for where, have in names.items():
        for corpus in sorted(every - have):
            found = sorted(w for w, h in names.items() if corpus in h)
            problems.append(f"corpus {corpus!r} missing from {where} (it is in {', '.join(found)})")
    # dvc.yaml's adapter file for a corpus is the module its registry entry names.
    for corpus in sorted(set(dvc_corpora) & set(registry)):
        module = registry[corpus].split(":")[0]
        want = module.replace(".", "/") + ".py"
        adapter = (dvc_corpora[corpus] or {}).get("adapter")
        if adapter != want:
            problems.append(
                f"corpus {corpus!r}: dvc.yaml vars.corpora.{corpus}.adapter is {adapter!r}, "
                f"but stages.corpora.REGISTRY loads it from {want!r}"
            )
    return problems


def _real_layout() -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    from stages.corpora import REGISTRY

    dvc = load_params(PROJECT_ROOT / "dvc.yaml")
    return dvc, dict(REGISTRY), load_params(PROJECT_ROOT / "params.yaml")


def test_corpora_agree_between_dvc_registry_and_params() -> None:
    problems = layout_problems(*_real_layout())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("where", ["dvc", "registry", "params", "adapter"])
def test_a_forgotten_corpus_is_named(where: str) -> None:
    dvc, registry, params = copy.deepcopy(_real_layout())
    if where == "dvc":
        corpora = next(e["corpora"] for e in dvc["vars"] if "corpora" in e)
        del corpora["es_en"]
        expect = "corpus 'es_en' missing from dvc.yaml vars.corpora"
    elif where == "registry":
        del registry["es_en"]
        expect = "corpus 'es_en' missing from stages.corpora.REGISTRY"
    elif where == "params":
        del params["sample"]["es_en"]
        expect = "corpus 'es_en' missing from params.yaml sample"
    else:
        registry["es_en"] = "stages.corpora.other:EsEn"
        expect = "dvc.yaml vars.corpora.es_en.adapter is 'stages/corpora/es_en.py'"
    problems = layout_problems(dvc, registry, params)
    assert any(expect in p for p in problems), problems
    assert all("es_en" in p for p in problems), problems


def test_a_new_corpus_only_in_params_is_named() -> None:
    dvc, registry, params = copy.deepcopy(_real_layout())
    params["clean"]["klingon"] = {}
    problems = layout_problems(dvc, registry, params)
    assert problems and all("'klingon'" in p for p in problems), problems
    assert any("missing from stages.corpora.REGISTRY" in p for p in problems)
    assert any("missing from params.yaml tokenize" in p for p in problems)


# --- imports ---------------------------------------------------------------------------------


def import_cycles(packages: tuple[str, ...] = PACKAGES) -> list[list[str]]:
    """Strongly connected groups of two or more project modules in grimp's import graph
    (function-local and ``TYPE_CHECKING`` imports count)."""
    import grimp

    graph = grimp.build_graph(*packages, cache_dir=None)
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    # Tarjan's algorithm, iterative (no recursion limit to worry about).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            for j in range(i, len(edges[node])):
                nxt = edges[node][j]
                if nxt not in index:
                    work.append((node, j + 1))
                    work.append((nxt, 0))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
    return groups


def test_cycle_finder_finds_a_function_local_cycle(tmp_path: Path, monkeypatch) -> None:
    pkg = tmp_path / "cyc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyc import b\n")
    (pkg / "b.py").write_text("def f():\n    from cyc import c\n")
    (pkg / "c.py").write_text("import cyc.a\n")
    (pkg / "d.py").write_text("import cyc.a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles(("cyc",)) == [["cyc.a", "cyc.b", "cyc.c"]]


def test_no_import_cycles_among_rnnflow_and_stages() -> None:
    cycles = [c for c in import_cycles() if not all(m.startswith("pipelines.") for m in c)]
    assert not cycles, f"import cycles (function-local imports count): {cycles}"


def test_no_import_cycles_in_pipelines() -> None:
    cycles = [c for c in import_cycles() if all(m.startswith("pipelines.") for m in c)]
    assert not cycles, f"import cycles (function-local imports count): {cycles}"


def test_import_contracts_hold() -> None:
    """``lint-imports``: the contracts of pyproject.toml's ``[tool.importlinter]``."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    out = subprocess.run(
        [exe, "--no-logo", "--no-cache"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
