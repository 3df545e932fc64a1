"""params.yaml as the ops read and write it: one validation for the whole document, the one rule
for every writer (``-S`` overrides, search trials, profiles), and dotted reads.

A key may change an existing value to one of the same kind, never add a name (a model, corpus,
source or section): names become stage names, paths and command words, so they are checked as
identifiers before anything runs.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnnflow.config import (
    Config,
    ConfigError,
    _plain,
    _yaml,
    check_identifier,
    dump_yaml,
    load_params,
    parse,
)


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[1, 2]"]`` → ``{"a.b": 1, "c": [1, 2]}`` (values read as YAML)."""
    from ruamel.yaml import YAML

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = _plain(YAML(typ="safe").load(value)) if value.strip() else None
    return out


#: The data hops: each has a params section keyed by corpus name.
HOPS = ("fetch", "clean", "format", "sample", "tokenize")


def _names(parents: tuple[str, ...]) -> str | None:
    """What the keys of the mapping at ``parents`` name, where they are names that become stage
    names, paths or command words (dvc.yaml pastes them into ``cmd``); None for a record."""
    if not parents:
        return "section"
    if parents == ("train", "models"):
        return "model"
    if len(parents) == 1 and parents[0] in HOPS:
        return "corpus"
    if len(parents) == 3 and parents[0] == "fetch" and parents[2] == "sources":
        return "source"
    return None


def _same_kind(old: Any, new: Any) -> bool:
    """Whether ``new`` may replace ``old``: the same type, an int for a float, and null either
    way; a number for a word and a word for a number, where a field takes both
    (``retrain.margin``: a number or ``measured``). Whether the field takes it is the typed
    config's to say, and it is asked next. A numeric string replaces only another one: the
    config would read ``"0.1"`` as 0.1 while params.yaml held a string."""
    if old is None or new is None:
        return True
    if isinstance(old, bool) or isinstance(new, bool):  # bool is an int to Python, not here
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(new, str):
        if _numeric(new):
            return isinstance(old, str) and _numeric(old)
        return isinstance(old, (int, float, str))
    if isinstance(old, (str, float)):
        return isinstance(new, (int, float))
    return any(isinstance(old, t) and isinstance(new, t) for t in (int, list, dict))


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _leaves(keys: tuple[str, ...], value: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
    """A mapping value is set leaf by leaf (as a profile merges), so it cannot add a name."""
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            yield from _leaves((*keys, str(key)), sub)
    else:
        yield keys, value


def _edit(doc: Any, overrides: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    changed: dict[str, tuple[Any, Any]] = {}
    for dotted, value in overrides.items():
        for keys, leaf_value in _leaves(tuple(dotted.split(".")), value):
            name = ".".join(keys)
            node = doc
            for i, key in enumerate(keys):
                what = _names(keys[:i])
                if what:
                    check_identifier(key, f"params key {name!r}: {what}")
                if not isinstance(node, dict):
                    where = ".".join(keys[:i])
                    raise ConfigError(f"params key {name!r}: {where} is not a mapping")
                if key not in node and what:
                    raise ConfigError(
                        f"params key {name!r}: {key!r} is a new name (params.yaml has no "
                        f"{what} {key!r}): a writer changes existing entries, never adds one"
                    )
                if key not in node and i < len(keys) - 1:
                    where = ".".join(keys[:i]) or "<top>"
                    raise ConfigError(f"params key {name!r}: no {key!r} under {where}")
                if i < len(keys) - 1:
                    node = node[key]
            leaf = keys[-1]
            old = _plain(node[leaf]) if leaf in node else None
            if leaf in node and not _same_kind(old, leaf_value):
                raise ConfigError(
                    f"params key {name!r}: {leaf_value!r} ({type(leaf_value).__name__}) cannot "
                    f"replace {old!r} ({type(old).__name__})"
                )
            if leaf not in node or old != leaf_value:
                node[leaf] = leaf_value
                changed[name] = (old, leaf_value)
    return changed


def check_params(params: dict[str, Any], root: Path | None = None) -> None:
    """Validate a whole params document as the stages will read it; ConfigError names the key.

    ``train``, ``evaluate``, ``report``, ``retrain`` and ``data`` go through their typed
    configs; each hop section through its corpus adapter's config (what ``stages/<hop>.py``
    parses), a corpus's fetch section with its source catalogue (``root/sources/<corpus>.yaml``)
    when ``root`` is given. Every model, corpus and source name, and every ``corpus`` value,
    must be an identifier (model and source names are checked by their typed configs).
    """
    from pipelines.config import EvaluateConfig, ReportConfig, TrainConfig
    from pipelines.ops.retrain_config import RetrainConfig

    typed: dict[str, type[Config]] = {
        "train": TrainConfig,
        "evaluate": EvaluateConfig,
        "report": ReportConfig,
        "retrain": RetrainConfig,
        "data": importlib.import_module("stages.core.engine").DataConfig,
    }
    for name, model in typed.items():
        if name in params:
            parse(model, params, name)
    trained = dig(params, "train.models") or {}
    for model_name in dig(params, "evaluate.models") or {}:
        if model_name not in trained:
            raise ConfigError(
                f"evaluate.models.{model_name}: no model {model_name!r} in train.models "
                f"(its models: {', '.join(trained)})"
            )
    _check_corpus_values(params, "")
    # The hops' typed configs live with the corpus adapters in `stages`, which `pipelines`
    # never imports statically (the layers contract): ops run both sides of the DAG, so
    # they import it by name, as `rnnflow.cli` dispatches to both.
    corpora = importlib.import_module("stages.corpora")
    sample_config = importlib.import_module("stages.sample").SampleConfig
    network_config = importlib.import_module("stages.core.config").NetworkConfig
    if root is not None:
        catalogued = importlib.import_module("stages.core.catalogue").with_catalogue
        for corpus in list(params.get("fetch") or {}):
            if corpus not in ("network", "require_pinned"):
                check_identifier(corpus, "fetch: corpus")
                params = catalogued(params, corpus, root)
    for hop in HOPS:
        for corpus in params.get(hop) or {}:
            if hop == "fetch" and corpus == "network":
                parse(network_config, params, "fetch.network")
                continue
            if hop == "fetch" and corpus == "require_pinned":
                continue  # a flag, not a corpus: its type is checked as it is set
            check_identifier(corpus, f"{hop}: corpus")
            if corpus not in corpora.REGISTRY:
                raise ConfigError(f"{hop}.{corpus}: no corpus adapter named {corpus!r}")
            adapter = corpora.get(corpus)
            model = sample_config if hop == "sample" else getattr(adapter, f"{hop.title()}Config")
            parse(model, params, f"{hop}.{corpus}")


def check_workspace_params(root: Path) -> None:
    """:func:`check_params` on ``root/params.yaml`` (when there is one) before DVC renders
    dvc.yaml from it: a hand-edited hostile name stops here, not in DVC's shell."""
    path = Path(root) / "params.yaml"
    if path.exists():
        check_params(load_params(path), Path(root))
        if (Path(root) / "dvc.yaml").exists():
            from rnnflow.deps import model_vars_drift

            drift = model_vars_drift(Path(root))
            if drift:  # a model without its stages would silently not be trained
                raise ConfigError("; ".join(drift))


def _check_corpus_values(node: Any, where: str) -> None:
    """Every ``corpus: NAME`` anywhere (a model's corpus, a hop's other corpus) is a name."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            if key == "corpus":
                check_identifier(value, f"{here}: corpus")
            _check_corpus_values(value, here)


def plan_params(path: Path, overrides: dict[str, Any]) -> tuple[Any, dict[str, tuple[Any, Any]]]:
    """``overrides`` applied to the params file in memory and the whole result validated.

    The one rule for every writer of params.yaml (the repro flow's overrides, search trials,
    profiles, the ``rnnflow`` commands): a key may change an existing value to one of the
    same kind (:func:`_same_kind`), or add a field inside an existing entry (a profile's
    ``max_batches`` for a model that leaves it at its default: the typed config says whether
    that field exists). It never adds a name (a model, corpus, source or section). A mapping
    value is set leaf by leaf. The whole document must then pass :func:`check_params`.
    Returns the edited round-trip document and ``{key: (old, new)}`` of what changed.
    """
    path = Path(path)
    with path.open() as fh:
        doc = _yaml().load(fh)
    try:
        changed = _edit(doc, overrides)
    except ConfigError as exc:
        raise ConfigError(f"{path.name}: {exc}; nothing was written") from exc
    try:
        check_params(_plain(doc), path.parent)
    except ConfigError as exc:
        keys = ", ".join(repr(k) for k in changed) or "nothing"
        raise ConfigError(
            f"{path.name}: setting {keys} leaves params that do not validate, so nothing was "
            f"written: {exc}"
        ) from exc
    return doc, changed


def set_params(path: Path, overrides: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Set params keys in place, keeping comments and layout, under :func:`plan_params`'s rule.

    Nothing is written unless every key passes and the whole document validates, and
    nothing when no value changed. Returns ``{key: (old, new)}`` for the keys that changed.
    The caller holds :func:`workspace_lock`.
    """
    doc, changed = plan_params(path, overrides)
    if changed:
        dump_yaml(doc, Path(path))
    return changed


def load_profile(root: Path, name: str) -> dict[str, Any]:
    """``profiles/<name>.yaml`` of the project at ``root`` (the name must be an identifier)."""
    check_identifier(name, "profile")
    path = Path(root) / "profiles" / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"{path}: no such profile (known: {known})")
    return load_params(path)


def apply_profile(root: Path, name: str) -> dict[str, tuple[Any, Any]]:
    """Merge ``profiles/<name>.yaml`` into params.yaml: :func:`set_params` with the profile's
    keys, so the same rule holds. Applying it twice changes nothing the second time."""
    return set_params(Path(root) / "params.yaml", load_profile(root, name))


def as_s_args(overrides: dict[str, Any]) -> list[str]:
    """The same overrides as ``dvc exp run -S`` arguments (for logs and docs)."""
    return [f"-S {k}={json.dumps(v)}" for k, v in overrides.items()]


def dig(data: Any, dotted: str) -> Any:
    """``data["a"]["b"]`` for ``"a.b"``; None where a key is missing."""
    for key in dotted.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data
