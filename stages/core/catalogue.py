"""A corpus's files under ``sources/`` (in git): ``<corpus>.yaml``, its source catalogue,
merged into its fetch params, and ``<corpus>.lock``, the bytes of every file (and the content
of every dataset) it trusted on first use, verified on every later fetch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnflow import io
from rnnflow.config import ConfigError, check_identifier
from stages.core.config import read_params

#: The lock key of a dataset source (a file source's keys are its file keys).
DATASET_KEY = "dataset"


def catalogue_path(root: Path, corpus: str) -> Path:
    """``sources/<corpus>.yaml``: the corpus's source catalogue (beside its lock)."""
    return root / "sources" / f"{check_identifier(corpus, 'corpus')}.yaml"


def lock_path(root: Path, corpus: str) -> Path:
    """``sources/<corpus>.lock``: what trust-on-first-use recorded for ``corpus``."""
    return root / "sources" / f"{check_identifier(corpus, 'corpus')}.lock"


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
    catalogue = read_params(path)
    return {**params, "fetch": {**params["fetch"], corpus: {**section, "sources": catalogue}}}


class UpstreamChanged(RuntimeError):
    """A locked file's bytes changed where it is fetched from; never silently replaced."""


@dataclass
class SourceLock:
    """The recorded bytes of every trusted-on-first-use file of one corpus.

    ``entries[source][file] = {path, url, sha256, size, date}``. Loaded at the start of a
    fetch, updated in memory by first uses, written back only when the hop succeeded.
    """

    corpus: str
    entries: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, corpus: str) -> SourceLock:
        if not path.exists():
            return cls(corpus)
        data = io.read_json(path)
        if not isinstance(data, dict) or data.get("corpus") != corpus:
            raise ConfigError(f"{path}: not a source lock for {corpus!r}")
        return cls(corpus, data.get("sources", {}))

    def get(self, source: str, key: str) -> dict[str, Any] | None:
        return self.entries.get(source, {}).get(key)

    def record(self, source: str, key: str, entry: dict[str, Any]) -> None:
        self.entries.setdefault(source, {})[key] = entry

    def save(self, path: Path) -> None:
        io.write_json(
            path,
            {
                "corpus": self.corpus,
                "note": "Trust on first use: bytes recorded when first fetched, verified on every "
                "later fetch. `rnnflow fetch CORPUS --update` accepts a new upstream version.",
                "sources": self.entries,
            },
        )
