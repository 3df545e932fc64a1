"""Hugging Face sources in process: the source config's checks, column paths into structs and
lists of structs, and the content digest the lock records."""

from __future__ import annotations

import pyarrow as pa
import pytest

REV_A = "a" * 40


def test_hf_source_config_is_checked() -> None:
    from stages.corpora.text.config import TextSourceConfig

    with pytest.raises(ValueError, match="maps columns"):
        TextSourceConfig(format="hf", dataset="x/y")
    with pytest.raises(ValueError, match="names its `dataset`"):
        TextSourceConfig(format="hf", columns={"src": "a"})
    with pytest.raises(ValueError, match="names its `files`"):
        TextSourceConfig(format="tsv", columns=["en", "es"])
    src = TextSourceConfig(format="hf", dataset="x/y", revision=REV_A, columns={"text": "t"})
    assert src.pinned_revision and src.files == {}
    assert not TextSourceConfig(
        format="hf", dataset="x/y", revision="main", columns={"text": "t"}
    ).pinned_revision


def test_column_paths_reach_into_structs_and_lists_of_structs() -> None:
    from stages.core.context import column_path

    table = pa.table(
        {
            "translation": [{"es": "hola", "en": "hi"}, {"es": "sí", "en": "yes"}],
            "messages": [[{"content": "a", "role": "user"}, {"content": "b", "role": "bot"}], None],
        }
    )
    assert column_path(table, "translation.es").to_pylist() == ["hola", "sí"]
    assert column_path(table, "messages.content").to_pylist() == [["a", "b"], None]
    with pytest.raises(KeyError, match="translation has no field 'fr'"):
        column_path(table, "translation.fr")
    with pytest.raises(KeyError, match="no column 'dialog'"):
        column_path(table, "dialog.x")


def test_content_digest_ignores_batching_and_sees_values() -> None:
    from stages.core.context import ContentDigest

    table = pa.table(
        {
            "a": ["x", "yy", None, "", "zzz"] * 20,
            "turns": [["p", "q"], [], None, ["r"], ["s", "t"]] * 20,
        }
    )

    def digest(t: pa.Table, size: int) -> str:
        d = ContentDigest(["a", "turns"])
        for b in t.to_batches(max_chunksize=size):
            d.update(pa.Table.from_batches([b]))
        return d.hexdigest()

    assert digest(table, 7) == digest(table, 100) == digest(table.combine_chunks(), 3)
    other = table.set_column(0, "a", pa.array(["x", "y", None, "y", "zzz"] * 20))
    assert digest(other, 7) != digest(table, 7)  # same bytes overall, other boundaries
