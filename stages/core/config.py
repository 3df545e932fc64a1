"""The typed params sections of the data hops, as the hop framework defines them.

Each hop reads ``<hop>.<corpus>`` from params.yaml into a config model (:mod:`rnnflow.config`).
The bases live here, beside :mod:`stages.core.hop`, so corpus adapters (``stages/corpora/``) can
extend them without importing the hop modules that run them: the hops import the adapters,
never the other way round. A corpus adds its own fields by subclassing (e.g. a text corpus's
``TextCleanConfig(CleanConfig)``) and naming the subclass on its adapter.

The ``sample`` section is not extended by adapters and stays in ``stages/sample.py``.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from rnnflow.config import Config, ConfigError, Identifier, check_identifier, load_params


def read_params(path: Path) -> dict[str, Any]:
    """:func:`load_params`, with a YAML syntax error reported as a :class:`ConfigError`."""
    from ruamel.yaml.error import YAMLError

    try:
        return load_params(path)
    except YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


# --- fetch -----------------------------------------------------------------------------------

#: The legacy checksum for "not pinned yet"; same as leaving ``checksum`` out.
UNPINNED = "sha256:unpinned"
#: Default of ``fetch.<corpus>.max_expanded_bytes``: most bytes one compressed source file
#: (gzip, zip member, IDX gz) may expand to. Finite, so a decompression bomb stops; generous,
#: since the real corpora are far smaller (full MNIST train images: 47 MB; the OPUS
#: OpenSubtitles en-es sides: a few GB each, streamed).
MAX_EXPANDED_BYTES = 4 << 30


class NetworkConfig(Config):
    """How hard to try the network before giving up."""

    retries: int = 4
    timeout_s: float = 60.0
    backoff_s: float = 1.0


class FetchConfig(Config):
    """Base of every corpus's fetch section (adapters extend it).

    Where a corpus names sources (``source``, ``sources``), the names must be identifiers:
    they become lock keys, report keys and parts (file names).
    """

    #: Every decompressor reading this corpus's files stops with an error past this many
    #: bytes (a decompression "bomb" must not fill memory or disk).
    max_expanded_bytes: int = Field(MAX_EXPANDED_BYTES, ge=1)

    @model_validator(mode="after")
    def _source_names(self) -> FetchConfig:
        listed = getattr(self, "source", None)
        for name in [listed] if isinstance(listed, str) else listed or []:
            check_identifier(name, "fetch source name")
        for name in getattr(self, "sources", None) or {}:
            check_identifier(name, "fetch source name")
        return self


class FileConfig(Config):
    """One file of a source: its path (relative to the URL base and the mirror) and checksum.

    No ``checksum`` (or the legacy ``sha256:unpinned``) means trust on first use: the bytes
    first fetched are recorded in ``sources/<corpus>.lock`` and verified ever after.
    """

    path: str
    checksum: str | None = None
    size: int | None = None

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        # Joined to the mirror and to data/downloads: it must not climb out of either.
        parts = PurePosixPath(path).parts
        if not parts or path.startswith("/") or ".." in parts or "\\" in path or "\0" in path:
            raise ValueError(
                f"path {path!r} must be a relative POSIX path without '..' (it is joined to "
                f"the mirror and the download directory)"
            )
        return path

    @property
    def pinned(self) -> bool:
        return self.checksum is not None and self.checksum.strip().lower() != UNPINNED

    @property
    def sha256_pinned(self) -> bool:
        """Pinned by a sha256 (an md5 pin proves integrity, not authenticity)."""
        return self.pinned and (self.checksum or "").strip().lower().startswith("sha256:")


class SourceConfig(Config):
    """A source: base URLs tried in order, the files, the rows they hold."""

    urls: list[str] = []
    files: dict[str, FileConfig]
    rows: dict[str, int] = {}
    note: str = ""
    #: Parts (and ``origin`` where a corpus keeps one) this source serves; sources of one
    #: origin are alternatives, tried in the order ``source`` lists them.
    origin: Identifier | None = None

    @model_validator(mode="after")
    def _https(self) -> SourceConfig:
        # Plain http can be tampered with on the way: only bytes a sha256 pins may use it.
        for url in self.urls:
            scheme = urllib.parse.urlsplit(url).scheme.lower()
            if scheme == "https":
                continue
            if scheme != "http":
                raise ValueError(f"urls: {url!r}: only https (or http) URLs can be fetched")
            unpinned = [k for k, f in self.files.items() if not f.sha256_pinned]
            if unpinned:
                raise ValueError(
                    f"urls: {url!r} is plain http, allowed only for files pinned by a sha256 "
                    f"checksum; not pinned so: {unpinned} (use an https URL or pin them)"
                )
        return self


class DatasetSourceConfig(SourceConfig):
    """A source that is either files (as :class:`SourceConfig`) or, with ``dataset`` set, a
    Hugging Face dataset read through ``datasets.load_dataset`` (format ``hf``).

    ``dataset`` is what ``load_dataset`` takes as its path: a Hub name
    (``Helsinki-NLP/opus-100``), a local directory (Parquet/Arrow files, or one written by
    ``save_to_disk``; relative to the project root) or a packaged builder (``parquet``,
    ``json``, ``csv``, ``arrow``) with ``data_files``. ``config`` is the dataset's config
    name, ``split`` the split(s) read (``train``, ``train+validation``). ``revision`` (a
    40-hex Hub commit) pins the dataset like a checksum pins a file; without one the content
    read is trusted on first use and verified against ``sources/<corpus>.lock`` after that.
    """

    files: dict[str, FileConfig] = {}
    dataset: str | None = None
    config: str | None = None
    revision: str | None = None
    split: str = "train"
    data_files: str | list[str] | dict[str, str | list[str]] | None = None

    @property
    def pinned_revision(self) -> bool:
        """A revision that names one commit (a branch or tag can move: not a pin)."""
        rev = (self.revision or "").lower()
        return len(rev) == 40 and all(c in "0123456789abcdef" for c in rev)


class SourcedFetchConfig(FetchConfig):
    """Fetch config of a corpus with named sources; ``source`` lists them in order of
    preference (a single name is a list of one)."""

    source: str | list[str]
    sources: dict[str, SourceConfig]

    def candidates(self) -> list[tuple[str, SourceConfig]]:
        """The listed sources, in order; errors list the defined ones."""
        return listed(self.source, self.sources)


def listed(source: str | list[str], sources: dict[str, Any]) -> list[tuple[str, Any]]:
    """``source`` (a name or a list of names) resolved against ``sources``, in order."""
    names = [source] if isinstance(source, str) else list(source)
    missing = [n for n in names if n not in sources]
    if missing or not names:
        raise ValueError(f"fetch source(s) {missing or names} not defined (have {sorted(sources)})")
    return [(n, sources[n]) for n in names]


# --- clean -----------------------------------------------------------------------------------


class CleanConfig(Config):
    """Base of every corpus's clean section (adapters extend it)."""

    dedupe: bool = True
    max_drop_fraction: float = 0.01


# --- format ----------------------------------------------------------------------------------


class SplitConfig(Config):
    """How rows are assigned to train / validation / test.

    ``document``: whole documents (the ``document_column`` value, e.g. a book's ``doc_id``) go
    to validation and test as listed; every other document trains. Nothing of a held-out
    document is seen in training, so its scores measure text the model has never read.
    ``validation``/``test`` fractions are not used then.
    """

    method: Literal["hash", "given", "ordered", "document"] = "hash"
    validation: float = 0.1
    test: float = 0.1
    seed: int = 0
    document_column: str = "doc_id"
    validation_docs: list[str] = Field(default_factory=list)
    test_docs: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _documents(self) -> SplitConfig:
        if self.method != "document":
            if self.validation_docs or self.test_docs:
                raise ValueError("validation_docs/test_docs need method: document")
            return self
        if not self.validation_docs or not self.test_docs:
            raise ValueError("method: document needs validation_docs and test_docs")
        both = sorted(set(self.validation_docs) & set(self.test_docs))
        if both:
            raise ValueError(f"documents in both validation_docs and test_docs: {both}")
        return self


class FormatConfig(Config):
    """Base of every corpus's format section (adapters extend it)."""

    split: SplitConfig = SplitConfig()
    #: Most rows that may be dropped from train for sharing a held-out sentence with test.
    max_held_out_drop: float = 0.05


# --- tokenize --------------------------------------------------------------------------------


class TokenizeConfig(Config):
    """Base of every corpus's tokenize section (adapters extend it)."""

    max_drop_fraction: float = 0.0
