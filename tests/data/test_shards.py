"""sample and tokenize shard by shard on a local Dask cluster (Prefect's Dask task runner)
give exactly the serial hops' output, row for row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.core.hop import data_dir
from stages.core.validate import Expect, Suite
from stages.corpora import texttok
from stages.corpora.base import Corpus
from stages.corpora.texttok import TextTokenizeConfig
from tests.conftest import run_hop, write_params

COLS = ("src", "tgt")
ADAPTER = "tests.data.test_shards:ToyPairs"
WORDS = (
    "the cat dog sat ran on a mat big small red blue and then it was very quiet today , . ! ?"
).split()


class ToyPairs(Corpus):
    """A text-pair adapter built on texttok (the Dask workers import it by this path)."""

    name = "toypairs"
    TokenizeConfig = TextTokenizeConfig

    def formatted_suite(self, cfg):
        return Suite(
            "toypairs.formatted", (Expect.not_null("row_id"), Expect.between("src.len", 1, None))
        )

    def lengths(self, table):
        return np.asarray(pc_len(table.column("src")))

    def fit(self, train, cfg):
        return texttok.fit(train, COLS, cfg)

    def tokenize(self, table, artifacts, cfg):
        return texttok.encode(table, COLS, artifacts, cfg)

    def tokens_suite(self, artifacts, cfg):
        return Suite(
            "toypairs.tokens",
            texttok.suite_expectations(COLS, artifacts),
            schema=texttok.tokens_schema(COLS),
        )


def pc_len(col) -> np.ndarray:
    import pyarrow.compute as pc

    return pc.list_value_length(texttok.pretokenize(col)).to_numpy()


def sentences(rng: np.random.Generator, n: int) -> list[str]:
    lengths = rng.integers(1, 20, n)
    words = rng.choice(len(WORDS), int(lengths.sum()))
    out, at = [], 0
    for k in lengths:
        out.append(" ".join(WORDS[i] for i in words[at : at + k]))
        at += k
    return out


@pytest.fixture(scope="module")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def dask_address():
    """One local Dask cluster shared by the tests that pass an ``address``."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def toy_project(tmp_path: Path, monkeypatch) -> Path:
    from stages import corpora

    monkeypatch.setitem(corpora.REGISTRY, "toypairs", ADAPTER)
    root = tmp_path / "project"
    root.mkdir()
    write_params(
        root,
        {
            "sample": {
                "toypairs": {
                    "seed": 3,
                    "max_length": 14,
                    "train": 0.5,
                    "validation": 300,
                    "test": None,
                }
            },
            "tokenize": {"toypairs": {"kind": "word", "min_freq": 3, "max_vocab": 20}},
        },
    )
    rng = np.random.default_rng(0)
    formatted = data_dir("format", "toypairs", root)
    formatted.mkdir(parents=True)
    start = 0
    for split, n in (("train", 4000), ("validation", 900), ("test", 700)):
        table = pa.table(
            {
                "row_id": pa.array(np.arange(start, start + n), pa.uint64()),
                "src": sentences(rng, n),
                "tgt": sentences(rng, n),
            }
        )
        start += n
        # Small row groups, so each split is several shards.
        pq.write_table(table, formatted / f"{split}.parquet", row_group_size=500)
    return root


@pytest.mark.slow
def test_sharded_sample_and_tokenize_equal_serial_hops(
    toy_project: Path, prefect_server, dask_address: str, tmp_path: Path
) -> None:
    from stages import shards

    root = toy_project
    assert run_hop("sample", "toypairs", root) == 0
    assert run_hop("tokenize", "toypairs", root) == 0
    serial_sample, serial_tokens = (
        data_dir("sample", "toypairs", root),
        data_dir("tokenize", "toypairs", root),
    )

    plan = shards.plan_shards(data_dir("format", "toypairs", root) / "train.parquet", 1000)
    assert [(s.group_start, s.group_stop, s.row_start, s.row_stop) for s in plan][:2] == [
        (0, 2, 0, 1000),
        (2, 4, 1000, 2000),
    ] and len(plan) == 4

    # The flow's own local cluster (DaskTaskRunner with cluster_kwargs) ...
    rows = shards.sample_sharded(
        "toypairs",
        root=str(root),
        out=str(tmp_path / "sampled"),
        rows_per_shard=1000,
        adapter=ADAPTER,
    )
    assert rows == {
        s: pq.ParquetFile(serial_sample / f"{s}.parquet").metadata.num_rows
        for s in ("train", "validation", "test")
    }
    assert rows["validation"] == 300
    for split in rows:
        assert pq.read_table(tmp_path / "sampled" / f"{split}.parquet").equals(
            pq.read_table(serial_sample / f"{split}.parquet")
        ), split

    # ... and an existing cluster, by address.
    rows = shards.run(
        "tokenize",
        "toypairs",
        address=dask_address,
        root=str(root),
        out=str(tmp_path / "tokens"),
        rows_per_shard=400,
        adapter=ADAPTER,
    )
    out = tmp_path / "tokens"
    assert sorted(p.name for p in out.iterdir()) == [
        "spec.json",
        "test.parquet",
        "train.parquet",
        "validation.parquet",
        "vocab.json",
    ]
    assert json.loads((out / "vocab.json").read_text()) == json.loads(
        (serial_tokens / "vocab.json").read_text()
    )
    for split in rows:
        got, want = (
            pq.read_table(out / f"{split}.parquet"),
            pq.read_table(serial_tokens / f"{split}.parquet"),
        )
        assert got.num_rows == rows[split] > 0
        assert got.equals(want), split
        assert got.schema.field("src_ids").type == pa.list_(pa.int32())


@pytest.mark.slow
def test_a_failing_shard_fails_the_flow_and_writes_nothing(
    toy_project: Path, prefect_server, dask_address: str, tmp_path: Path
) -> None:
    from stages import shards

    root = toy_project
    assert run_hop("sample", "toypairs", root) == 0
    # An empty sentence in one shard of validation: its task's validation must fail.
    path = data_dir("sample", "toypairs", root) / "validation.parquet"
    table = pq.read_table(path)
    src = table["src"].to_pylist()
    src[150] = ""
    pq.write_table(table.set_column(1, "src", pa.array(src)), path, row_group_size=100)
    with pytest.raises(RuntimeError, match="src"):
        shards.run(
            "tokenize",
            "toypairs",
            address=dask_address,
            root=str(root),
            out=str(tmp_path / "tokens"),
            rows_per_shard=100,
            adapter=ADAPTER,
        )
    assert not (tmp_path / "tokens").exists()


def test_sharded_tokenize_refuses_monolingual_lines(tmp_path: Path) -> None:
    # the hop writes monolingual.parquet; shard by shard would silently leave it out
    from stages.shards import tokenize_sharded

    write_params(tmp_path, {})  # the real params: tokenize.twitter.monolingual is set
    with pytest.raises(ValueError, match=r"tokenize\.twitter\.monolingual.*tokenize@twitter"):
        tokenize_sharded.fn("twitter", root=str(tmp_path))
