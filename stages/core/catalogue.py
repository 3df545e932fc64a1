"""``sources/<corpus>.yaml``: a corpus's source catalogue, merged into its fetch params."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rnnflow.config import ConfigError, check_identifier, load_params


def catalogue_path(root: Path, corpus: str) -> Path:
    """``sources/<corpus>.yaml``: the corpus's source catalogue (in git, beside its lock)."""
    return root / "sources" / f"{check_identifier(corpus, 'corpus')}.yaml"


def with_catalogue(params: dict[str, Any], corpus: str, root: Path) -> dict[str, Any]:
    """``params`` with ``fetch.<corpus>.sources`` read from ``sources/<corpus>.yaml``.

    The catalogue (URLs, files, checksums, rows) is not something a user tunes, so it lives
    beside the lock rather than in params.yaml, whose ``fetch.<corpus>.source`` picks and
    orders its entries. Without the file, params as given (a sources mapping written inline,
    as small test projects do); with it, an inline one too is refused: one place each.
    """
    path = catalogue_path(root, corpus)
    section = (params.get("fetch") or {}).get(corpus)
    if not path.exists() or not isinstance(section, dict):
        return params
    if "sources" in section:
        raise ConfigError(
            f"fetch.{corpus}.sources is set in params and in {path}: keep the catalogue "
            f"in {path.name} only"
        )
    from ruamel.yaml.error import YAMLError

    try:
        catalogue = load_params(path)
    except YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return {**params, "fetch": {**params["fetch"], corpus: {**section, "sources": catalogue}}}
