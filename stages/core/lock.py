"""``sources/<corpus>.lock``: the bytes of every file (and the content of every dataset) a
corpus trusted on first use, verified on every later fetch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnflow import io
from rnnflow.config import ConfigError, check_identifier

#: The lock key of a dataset source (a file source's keys are its file keys).
DATASET_KEY = "dataset"


class UpstreamChanged(RuntimeError):
    """A locked file's bytes changed where it is fetched from; never silently replaced."""


def lock_path(root: Path, corpus: str) -> Path:
    """``sources/<corpus>.lock``: what trust-on-first-use recorded for ``corpus`` (in git)."""
    return root / "sources" / f"{check_identifier(corpus, 'corpus')}.lock"


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
