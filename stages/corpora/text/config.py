"""The configs of a text corpus: its sources (files or a dataset, and their format), the
fetch hop's choice among them and the clean hop's length limit."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from stages.core.config import CleanConfig, DatasetSourceConfig, FetchConfig, listed


class TextSourceConfig(DatasetSourceConfig):
    """One text source: files with checksums (see :class:`SourceConfig`) and how to read them,
    or (format ``hf``) a Hugging Face dataset (see :class:`DatasetSourceConfig`)."""

    format: Literal["moses", "tsv", "alternating", "gutenberg", "hf"]
    # ``origin`` (from SourceConfig): the fetched part and ``origin`` column; default: the
    # source's own name. Published and mirror copies share an origin: alternatives.
    #: tsv: names of the tab-separated fields, in file order. hf: raw column → dataset
    #: column (dotted into structs), e.g. ``{src: translation.es, tgt: translation.en}``.
    columns: list[str] | dict[str, str] = []
    #: The member to read when a (single-file) source is a zip archive.
    member: str | None = None
    #: gutenberg: require and strip the ``*** START/END OF THE PROJECT GUTENBERG EBOOK`` lines
    #: (also for an hf book dataset: each row's text is one book).
    gutenberg_header: bool = True

    @model_validator(mode="after")
    def _files_or_dataset(self) -> TextSourceConfig:
        if self.format == "hf":
            if not self.dataset:
                raise ValueError("a source of format hf names its `dataset`")
            if self.files:
                raise ValueError("a source of format hf has a `dataset`, not `files`")
            if not isinstance(self.columns, dict) or not self.columns:
                raise ValueError(
                    "a source of format hf maps columns: `columns: {name: dataset column}`"
                )
        else:
            if self.dataset is not None:
                raise ValueError(f"`dataset` is for format hf, not {self.format}")
            if not self.files:
                raise ValueError(f"a source of format {self.format} names its `files`")
            if isinstance(self.columns, dict):
                raise ValueError(f"format {self.format}: `columns` is a list of field names")
        return self

    @property
    def column_list(self) -> list[str]:
        """tsv: the field names."""
        return list(self.columns) if isinstance(self.columns, list) else []


class TextFetchConfig(FetchConfig):
    """fetch.<text corpus>: named sources; ``source`` lists them in order of preference.

    Sources of different origins are combined (one part each); sources of one origin are
    alternatives, the first that can be had serving it (e.g. ``[tatoeba, tatoeba_mirror]``).
    """

    source: str | list[str]
    sources: dict[str, TextSourceConfig]
    #: Sub-directory of ``$RNNFLOW_MIRROR`` holding this corpus (default: the corpus name).
    mirror_dir: str | None = None
    #: Lines read per chunk (one Arrow table each).
    chunk_lines: int = Field(50_000, ge=2)

    def origins(self) -> dict[str, list[tuple[str, TextSourceConfig]]]:
        """The listed sources grouped by origin (part), each group in listed order."""
        groups: dict[str, list[tuple[str, TextSourceConfig]]] = {}
        for name, source in listed(self.source, self.sources):
            groups.setdefault(source.origin or name, []).append((name, source))
        return groups


class TextCleanConfig(CleanConfig):
    """clean.<text corpus>: length limits (characters, after normalisation)."""

    max_chars: int = 1000
