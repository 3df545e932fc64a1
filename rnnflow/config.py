"""params.yaml → typed config.

Config flows one way: ``params.yaml`` is read once at the edge (a stage's ``main``), the
section that stage owns is validated into a pydantic model, and only that model reaches
the pure functions. Unknown keys are errors, so a typo in params.yaml fails loudly
instead of being silently ignored.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict

from rnnflow.env import PROJECT_ROOT

PARAMS_FILE = PROJECT_ROOT / "params.yaml"

M = TypeVar("M", bound="Config")


class Config(BaseModel):
    """Base of every typed params section: strict, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigError(ValueError):
    """params.yaml (or a profile) does not match what a stage expects."""


#: What a name from params.yaml must look like when it becomes a stage name, a path or a
#: command word (models, corpora, sources, trials, artifacts): no shell metacharacters, no
#: path separators, no dots, ASCII only (no look-alikes), so nothing hostile reaches DVC's
#: shell or the file system.
IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,63}")


def check_identifier(name: object, what: str = "name") -> str:
    """``name`` if it matches :data:`IDENTIFIER`, else a :class:`ConfigError` naming it."""
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise ConfigError(
            f"{what} {name!r} is not an identifier: use lowercase ASCII letters, digits and "
            f"'_', starting with a letter, at most 64 characters ({IDENTIFIER.pattern})"
        )
    return name


def _identifier(name: str) -> str:
    try:
        return check_identifier(name)
    except ConfigError as exc:  # pydantic reports ValueError with the field's location
        raise ValueError(str(exc)) from None


#: A pydantic field type for names that become paths, stage names or command words.
Identifier = Annotated[str, AfterValidator(_identifier)]


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: keeps comments and order when a profile is applied
    yaml.width = 4096
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def load_params(path: Path | str = PARAMS_FILE) -> dict[str, Any]:
    """Read a params file as plain dicts/lists."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: params file not found")
    with path.open() as fh:
        data = _yaml().load(fh) or {}
    return _plain(data)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def section(params: dict[str, Any], dotted: str) -> Any:
    """Return ``params[a][b]...`` for ``dotted = "a.b"``; error names the missing key."""
    node: Any = params
    for i, key in enumerate(dotted.split(".")):
        if not isinstance(node, dict) or key not in node:
            have = sorted(node) if isinstance(node, dict) else []
            where = ".".join(dotted.split(".")[:i]) or "<top>"
            raise ConfigError(f"params: no key {dotted!r} (under {where}: {have})")
        node = node[key]
    return node


def parse(model: type[M], params: dict[str, Any], dotted: str, **extra: Any) -> M:
    """Validate one params section into ``model``; errors name the section."""
    from pydantic import ValidationError

    raw = section(params, dotted)
    try:
        return model.model_validate({**raw, **extra} if isinstance(raw, dict) else raw)
    except ValidationError as exc:
        raise ConfigError(f"params section {dotted!r}: {exc}") from exc


def deep_merge(base: Any, overlay: Any) -> Any:
    """Overlay ``overlay`` onto ``base``: dicts merge key by key, anything else replaces."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = copy.copy(base)
        for key, value in overlay.items():
            out[key] = deep_merge(base[key], value) if key in base else value
        return out
    return overlay


def flatten(overlay: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``: the form ``dvc exp run -S`` takes."""
    flat: dict[str, Any] = {}
    for key, value in overlay.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def dump_yaml(doc: Any, path: Path) -> None:
    """Write a round-trip YAML document atomically (temp file, then rename)."""
    tmp = path.with_suffix(".yaml.tmp")
    with tmp.open("w") as fh:
        _yaml().dump(doc, fh)
    tmp.replace(path)
