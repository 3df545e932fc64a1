"""Hugging Face ``datasets`` export: every hop's Parquet directory loads as a dataset.

The data hops run in-process on tiny format-exact corpora (MNIST from the conftest mirror,
the alternating-lines Twitter corpus from text_mirror.py) in a temp project; then each
hop directory is loaded with ``datasets.load_dataset("parquet", data_dir=...)``, fully
offline (rnnflow/env.py sets ``HF_DATASETS_OFFLINE=1``; ``HF_HOME`` and the cache are in tmp).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.core.hop import HOPS, data_dir
from tests.conftest import run_hop, write_params
from tests.data.text_mirror import run_hops, tweet_files

datasets = pytest.importorskip("datasets")

SPLITS = ("train", "validation", "test")
PARQUET_HOPS = ("fetch", "clean", "format", "sample", "tokenize")


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch) -> Path:
    """Offline, and nothing written outside tmp_path."""
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    return home


def int32_list(feature) -> bool:
    """``List(Value('int32'))`` (datasets ≥ 4) or ``Sequence(Value('int32'))`` (older)."""
    kind = getattr(datasets, "List", datasets.Sequence)
    return isinstance(feature, kind) and feature.feature == datasets.Value("int32")


def load_hop(directory: Path, cache: Path):
    return datasets.load_dataset("parquet", data_dir=str(directory), cache_dir=str(cache))


def check_hop_dir(directory: Path, cache: Path) -> dict[str, int]:
    """Load one hop directory; its splits, features and rows match the Parquet files."""
    files = sorted(directory.glob("*.parquet"))
    assert files, f"{directory}: no Parquet files"
    tables = {f.stem: pq.read_table(f) for f in files}
    ds = load_hop(directory, cache)
    rows = {name: split.num_rows for name, split in ds.items()}
    if set(tables) <= set(SPLITS):  # split hops: one dataset split per file, same name
        assert set(ds) == set(tables), (directory, set(ds))
        for name, table in tables.items():
            got = ds[name].data.table
            assert got.num_rows == table.num_rows
            assert got.column_names == table.column_names
            assert got.equals(table.cast(got.schema)), (directory, name)
    else:  # fetch/clean: one file per origin; datasets reads them all as "train"
        assert list(ds) == ["train"]
        assert rows["train"] == sum(t.num_rows for t in tables.values())
    for name, table in tables.items():
        want = datasets.Features.from_arrow_schema(table.schema)
        split = ds[name] if name in ds else ds["train"]
        assert split.features == want, (directory, name, split.features)
    return rows


def test_text_corpus_hops_load_with_datasets(tmp_path: Path, monkeypatch, hf_home: Path):
    root = tmp_path / "project"
    root.mkdir()
    (tmp_path / "mirror").mkdir()
    monkeypatch.setenv("RNNFLOW_MIRROR", str(tmp_path / "mirror"))
    write_params(root, tweet_files(tmp_path / "mirror"))
    run_hops(root, "twitter", PARQUET_HOPS)

    cache = tmp_path / "hf_cache"
    seen = {hop: check_hop_dir(data_dir(hop, "twitter", root), cache) for hop in PARQUET_HOPS}
    for hop in ("format", "sample", "tokenize"):
        assert set(seen[hop]) == set(SPLITS) and all(seen[hop].values()), (hop, seen[hop])

    tokens = load_hop(data_dir("tokenize", "twitter", root), cache)
    for split in SPLITS:
        feats = tokens[split].features
        assert int32_list(feats["context_ids"]) and int32_list(feats["response_ids"]), feats
        assert feats["context"] == datasets.Value("string")
        # The ids themselves come back unchanged, as Python ints.
        table = pq.read_table(data_dir("tokenize", "twitter", root) / f"{split}.parquet")
        assert tokens[split]["context_ids"] == table["context_ids"].to_pylist()
        assert tokens[split].data.table.schema.field("context_ids").type == pa.list_(pa.int32())
    # numpy formatting (what a training loop would use) keeps the integer ids.
    row = tokens["train"].with_format("numpy")[0]
    assert row["context_ids"].dtype.kind == "i"
    assert not list(hf_home.glob("**/hub/models--*"))  # nothing fetched from the Hub


def test_mnist_hops_load_with_datasets(project: Path, hf_home: Path, tmp_path: Path):
    for hop in PARQUET_HOPS:
        assert run_hop(hop, "mnist", project) == 0, hop
    cache = tmp_path / "hf_cache"
    for hop in PARQUET_HOPS:
        rows = check_hop_dir(data_dir(hop, "mnist", project), cache)
        assert sum(rows.values()) > 0
    final = load_hop(data_dir("tokenize", "mnist", project), cache)
    assert set(final) == set(SPLITS)
    assert sorted(PARQUET_HOPS) == sorted(h for h in HOPS if h in PARQUET_HOPS)
