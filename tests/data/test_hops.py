"""Every hop on small generated data: outputs, splits, validation failures, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.core.hop import HOPS, data_dir
from tests.conftest import run_hop

SYNTHETIC = ("parity", "counting", "addition", "timeseries")


def run_all(corpus: str, root: Path) -> None:
    for hop in HOPS:
        assert run_hop(hop, corpus, root) == 0, f"{hop} {corpus} failed"


def ids(root: Path, hop: str, corpus: str, split: str) -> set[int]:
    path = data_dir(hop, corpus, root) / f"{split}.parquet"
    return set(pq.read_table(path, columns=["row_id"])["row_id"].to_pylist())


@pytest.mark.parametrize("corpus", SYNTHETIC)
def test_synthetic_corpus_runs_every_hop(project: Path, corpus: str) -> None:
    run_all(corpus, project)
    tokens = data_dir("tokenize", corpus, project)
    spec = json.loads((tokens / "spec.json").read_text())
    sizes = {
        s: pq.ParquetFile(tokens / f"{s}.parquet").metadata.num_rows
        for s in ("train", "validation", "test")
    }
    params = json.loads((project / "params.yaml").read_text())
    n = params["fetch"][corpus]["n"]
    expected = n - params["format"][corpus].get("window", 0) if corpus == "timeseries" else n
    assert sum(sizes.values()) == expected
    assert sizes["train"] > sizes["validation"] > 0 and sizes["test"] > 0
    # Splits are disjoint by content.
    tr, va, te = (ids(project, "tokenize", corpus, s) for s in ("train", "validation", "test"))
    assert not (tr & va) and not (tr & te) and not (va & te)
    # Tokens have the declared fixed width.
    table = pq.read_table(tokens / "train.parquet")
    width = int(np.prod(spec["x_shape"]))
    assert table.schema.field("x").type.list_size == width
    for hop in HOPS:
        report = json.loads(
            (project / "reports" / "validation" / hop / f"{corpus}.json").read_text()
        )
        assert report["success"] is True and report["results"]


def test_synthetic_generation_is_deterministic(project: Path, tmp_path: Path) -> None:
    assert run_hop("fetch", "parity", project) == 0
    first = pq.read_table(data_dir("fetch", "parity", project) / "all.parquet")
    assert run_hop("fetch", "parity", project) == 0
    again = pq.read_table(data_dir("fetch", "parity", project) / "all.parquet")
    assert first.equals(again)
    other = tmp_path / "other"
    other.mkdir()
    params = json.loads((project / "params.yaml").read_text())
    params["fetch"]["parity"]["seed"] = 99
    (other / "params.yaml").write_text(json.dumps(params))
    assert run_hop("fetch", "parity", other) == 0
    assert not first.equals(pq.read_table(data_dir("fetch", "parity", other) / "all.parquet"))


def test_targets_are_right(project: Path) -> None:
    for corpus in ("parity", "addition"):
        run_all(corpus, project)
    par = pq.read_table(data_dir("format", "parity", project) / "train.parquet").to_pandas()
    assert (par["bits"].str.count("1") == par["ones"]).all()
    assert ((par["ones"] % 2) == par["parity"]).all()
    add = pq.read_table(data_dir("tokenize", "addition", project) / "test.parquet")
    x = np.stack(add["x"].to_numpy(zero_copy_only=False)).reshape(-1, 9, 2)
    y = np.stack(add["y"].to_numpy(zero_copy_only=False))
    weights = 2 ** np.arange(9)
    a, b, total = (x[:, :, 0] * weights).sum(1), (x[:, :, 1] * weights).sum(1), (y * weights).sum(1)
    assert np.array_equal(a + b, total)


def test_mnist_hops_keep_test_and_hold_out_validation(project: Path) -> None:
    run_all("mnist", project)
    tokens = data_dir("tokenize", "mnist", project)
    n = {
        s: pq.ParquetFile(tokens / f"{s}.parquet").metadata.num_rows
        for s in ("train", "validation", "test")
    }
    assert n["test"] == 100  # the published test set, untouched
    assert n["train"] + n["validation"] == 300  # validation comes out of train
    assert 0 < n["validation"] < 100
    spec = json.loads((tokens / "spec.json").read_text())
    assert spec["x_shape"] == [28, 28] and spec["num_classes"] == 10
    assert 0.0 < spec["x_mean"] < 1.0
    clean = json.loads((project / "reports" / "clean" / "mnist.json").read_text())
    assert clean["rows_in"] == clean["rows_out"] == 400


def _rewrite_raw(root: Path, part: str, change) -> None:
    path = data_dir("fetch", "mnist", root) / f"{part}.parquet"
    table = pq.read_table(path)
    pq.write_table(change(table), path)


def test_failing_expectation_stops_hop_and_leaves_nothing(project: Path, capsys) -> None:
    assert run_hop("fetch", "mnist", project) == 0

    def bad_labels(table: pa.Table) -> pa.Table:
        labels = table["label"].to_numpy().copy()
        labels[[3, 7]] = [11, 12]
        return table.set_column(1, "label", pa.array(labels, pa.uint8()))

    _rewrite_raw(project, "train", bad_labels)
    assert run_hop("clean", "mnist", project) == 1
    err = capsys.readouterr().err
    assert "data/02_clean/mnist/train.parquet" in err
    assert "expect_column_values_to_be_in_set" in err
    assert "11 (row 3)" in err and "12 (row 7)" in err
    out = data_dir("clean", "mnist", project)
    assert not out.exists()
    assert not list(out.parent.glob(".mnist.tmp-*")), "temp output left behind"
    report = json.loads((project / "reports" / "validation" / "clean" / "mnist.json").read_text())
    assert report["success"] is False
    failed = [r for r in report["results"] if not r["success"]]
    assert failed and failed[0]["failures"][0]["rows"] == [3, 7]


def test_failing_hop_keeps_the_last_good_output(project: Path) -> None:
    run_all("parity", project)
    before = pq.read_table(data_dir("clean", "parity", project) / "all.parquet")
    params = json.loads((project / "params.yaml").read_text())
    params["clean"]["parity"]["max_drop_fraction"] = 0.0
    (project / "params.yaml").write_text(json.dumps(params))
    # Duplicate every row of the raw file: dedupe must drop half, over the 0% bound.
    path = data_dir("fetch", "parity", project) / "all.parquet"
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, table]), path)
    assert run_hop("clean", "parity", project) == 1
    # The new output was not valid: the previous one stays, untouched, and no temp dir.
    assert pq.read_table(data_dir("clean", "parity", project) / "all.parquet").equals(before)
    assert not [
        p for p in data_dir("clean", "parity", project).parent.iterdir() if p.name.startswith(".")
    ]


def test_clean_drops_train_copies_of_test_images(project: Path) -> None:
    assert run_hop("fetch", "mnist", project) == 0
    test = pq.read_table(data_dir("fetch", "mnist", project) / "test.parquet")
    _rewrite_raw(project, "train", lambda t: pa.concat_tables([t, test.slice(0, 2)]))
    assert run_hop("clean", "mnist", project) == 0
    report = json.loads((project / "reports" / "clean" / "mnist.json").read_text())
    assert report["parts"]["train"]["dropped"] == {"duplicate": 2}
    assert report["parts"]["test"]["rows_out"] == 100


def test_split_overlap_is_caught(project: Path, capsys) -> None:
    params = json.loads((project / "params.yaml").read_text())
    params["clean"]["mnist"]["dedupe"] = False
    (project / "params.yaml").write_text(json.dumps(params))
    assert run_hop("fetch", "mnist", project) == 0
    test = pq.read_table(data_dir("fetch", "mnist", project) / "test.parquet")
    _rewrite_raw(project, "train", lambda t: pa.concat_tables([t, test.slice(0, 1)]))
    assert run_hop("clean", "mnist", project) == 0
    assert run_hop("format", "mnist", project) == 1
    err = capsys.readouterr().err
    assert "splits_disjoint" in err and "test" in err
    assert not data_dir("format", "mnist", project).exists()


def test_sample_is_exact_deterministic_and_disjoint(project: Path) -> None:
    params = json.loads((project / "params.yaml").read_text())
    params["sample"]["parity"] = {"seed": 0, "train": 500, "validation": 0.5, "test": None}
    (project / "params.yaml").write_text(json.dumps(params))
    run_all("parity", project)
    full = {s: ids(project, "format", "parity", s) for s in ("train", "validation", "test")}
    got = {s: ids(project, "sample", "parity", s) for s in ("train", "validation", "test")}
    assert len(got["train"]) == 500 and got["train"] <= full["train"]
    assert len(got["validation"]) == round(len(full["validation"]) * 0.5)
    assert got["test"] == full["test"]
    assert run_hop("sample", "parity", project) == 0
    assert ids(project, "sample", "parity", "train") == got["train"]


def test_offline_without_mirror_fails_fast_with_hint(project: Path, monkeypatch, capsys) -> None:
    import time

    params = json.loads((project / "params.yaml").read_text())
    params["fetch"]["mnist"]["source"] = "published"
    (project / "params.yaml").write_text(json.dumps(params))
    monkeypatch.delenv("RNNFLOW_MIRROR")
    started = time.monotonic()
    assert run_hop("fetch", "mnist", project) == 1
    err = capsys.readouterr().err
    assert "RNNFLOW_MIRROR" in err and "train-images-idx3-ubyte.gz" in err
    # Unresolvable hosts are not retried with backoff (a functional bound, not a benchmark).
    assert time.monotonic() - started < 30
    assert not data_dir("fetch", "mnist", project).exists()


def test_bad_mirror_checksum_is_an_error(project: Path, mnist_mirror, capsys) -> None:
    mirror, _ = mnist_mirror
    target = mirror / "mnist" / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:-3] + b"xyz")
    assert run_hop("fetch", "mnist", project) == 1
    assert "t10k-labels-idx1-ubyte.gz" in capsys.readouterr().err


def test_write_params_overlay_is_used(project: Path) -> None:
    params = json.loads((project / "params.yaml").read_text())
    assert params["fetch"]["mnist"]["source"] == "fixture"
