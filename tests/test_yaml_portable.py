"""The project's YAML reads the same with libyaml (ruamel.yaml.clib) as with pure Python.

DVC loads params.yaml with ruamel's ``safe`` loader, which uses libyaml when
``ruamel.yaml.clib`` is installed (a dependency: it halves a no-op ``dvc repro``). libyaml is
stricter: ``urls: [https://host/]`` (a colon inside a flow sequence) is an error there and fine
in pure Python, so a file that only one parser reads would break DVC for some users.
"""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from rnnflow.env import PROJECT_ROOT

FILES = sorted(
    [
        PROJECT_ROOT / name
        for name in ("params.yaml", "dvc.yaml", "dvc.lock")
        if (PROJECT_ROOT / name).exists()
    ]
    + list((PROJECT_ROOT / "profiles").glob("*.yaml"))
    + list((PROJECT_ROOT / "search").glob("*.yaml"))
)


@pytest.mark.skipif(platform.python_implementation() != "CPython", reason="clib is CPython-only")
def test_libyaml_is_installed() -> None:
    from _ruamel_yaml import CParser  # noqa: F401  (ruamel.yaml.clib's module)

    assert YAML(typ="safe").Parser is CParser


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PROJECT_ROOT)) for p in FILES])
def test_both_parsers_read_the_same(path: Path) -> None:
    text = path.read_text()
    pure = YAML(typ="safe", pure=True).load(text)
    fast = YAML(typ="safe").load(text)
    assert fast == pure, f"{path.name}: libyaml and pure-Python ruamel disagree"


def test_a_flow_sequence_url_is_what_libyaml_refuses() -> None:
    """The check above can fail: the form params.yaml used to have is refused by libyaml."""
    text = "fetch:\n  urls: [https://example.org/data/]\n"
    assert YAML(typ="safe", pure=True).load(text)["fetch"]["urls"] == ["https://example.org/data/"]
    with pytest.raises(Exception, match="unexpected ':'"):
        YAML(typ="safe").load(text)
