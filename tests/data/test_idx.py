"""IDX reading: round trips, and every malformed file fails naming itself."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from rnnflow.env import PROJECT_ROOT
from stages.corpora.idx import IdxError, read_idx, read_mnist_pair, write_idx

MNIST_MIRROR = PROJECT_ROOT.parent / "shared" / "corpora" / "mnist"


def _images(n: int = 5) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def _labels(n: int = 5) -> np.ndarray:
    return (np.arange(n) % 10).astype(np.uint8)


def _raw(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("gzip_", [True, False])
def test_round_trip(tmp_path: Path, gzip_: bool) -> None:
    x = _images()
    path = tmp_path / ("x.idx3.gz" if gzip_ else "x.idx3")
    write_idx(path, x, gzip_=gzip_)
    y = read_idx(path, dims=3)
    assert y.dtype == np.uint8 and y.shape == x.shape
    np.testing.assert_array_equal(x, y)
    y[0, 0, 0] = 1  # callers may normalise in place
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if gzip_ else b"\x00\x00")


def test_round_trip_wider_dtype(tmp_path: Path) -> None:
    x = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    write_idx(tmp_path / "x.gz", x)
    y = read_idx(tmp_path / "x.gz", dims=2, dtype_code=0x0C)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(x, y)


def test_write_is_deterministic(tmp_path: Path) -> None:
    write_idx(tmp_path / "a.gz", _labels())
    write_idx(tmp_path / "b.gz", _labels())
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_bad_magic(tmp_path: Path) -> None:
    path = _raw(tmp_path / "x.idx", b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"\x01\x02")
    with pytest.raises(IdxError, match="magic") as exc:
        read_idx(path, dims=1)
    assert str(path) in str(exc.value)


def test_wrong_dtype_code(tmp_path: Path) -> None:
    path = _raw(tmp_path / "x.idx", b"\x00\x00\x0d\x01" + struct.pack(">If", 1, 1.0))
    with pytest.raises(IdxError, match="dtype code 0x0D"):
        read_idx(path, dims=1)


def test_wrong_dims(tmp_path: Path) -> None:
    write_idx(tmp_path / "labels.gz", _labels())
    with pytest.raises(IdxError, match="1 dimensions, expected 3") as exc:
        read_idx(tmp_path / "labels.gz", dims=3)
    assert "labels.gz" in str(exc.value)


def test_truncated_payload_names_file_and_sizes(tmp_path: Path) -> None:
    full = struct.pack(">BBBB3I", 0, 0, 8, 3, 22699, 28, 28)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(full + bytes(1000)))
    with pytest.raises(IdxError) as exc:
        read_idx(path, dims=3)
    msg = str(exc.value)
    assert str(path) in msg
    assert f"22699×28×28 = {22699 * 28 * 28} bytes but only 1000 present" in msg


def test_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "x.idx"
    write_idx(path, _labels(), gzip_=False)
    path.write_bytes(path.read_bytes() + b"junk")
    with pytest.raises(IdxError, match="trailing"):
        read_idx(path, dims=1)


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    write_idx(path, _images(50))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IdxError, match="truncated") as exc:
        read_idx(path, dims=3)
    assert str(path) in str(exc.value)


def test_gz_name_but_not_gzip(tmp_path: Path) -> None:
    path = _raw(tmp_path / "x.gz", b"<html>not found</html>")
    with pytest.raises(IdxError, match="gzip") as exc:
        read_idx(path, dims=1)
    assert str(path) in str(exc.value)


def test_mnist_pair(tmp_path: Path) -> None:
    write_idx(tmp_path / "i.gz", _images())
    write_idx(tmp_path / "l.gz", _labels())
    x, y = read_mnist_pair(tmp_path / "i.gz", tmp_path / "l.gz")
    assert x.shape == (5, 28, 28) and y.shape == (5,)


def test_label_out_of_range(tmp_path: Path) -> None:
    labels = _labels()
    labels[3] = 10
    write_idx(tmp_path / "i.gz", _images())
    write_idx(tmp_path / "l.gz", labels)
    with pytest.raises(IdxError, match="label 10 at index 3") as exc:
        read_mnist_pair(tmp_path / "i.gz", tmp_path / "l.gz")
    assert str(tmp_path / "l.gz") in str(exc.value)


def test_count_mismatch_names_both_files(tmp_path: Path) -> None:
    write_idx(tmp_path / "i.gz", _images(5))
    write_idx(tmp_path / "l.gz", _labels(4))
    with pytest.raises(IdxError) as exc:
        read_mnist_pair(tmp_path / "i.gz", tmp_path / "l.gz")
    msg = str(exc.value)
    assert str(tmp_path / "i.gz") in msg and str(tmp_path / "l.gz") in msg


def test_images_must_be_28_by_28(tmp_path: Path) -> None:
    write_idx(tmp_path / "i.gz", np.zeros((5, 28, 27), dtype=np.uint8))
    write_idx(tmp_path / "l.gz", _labels())
    with pytest.raises(IdxError, match="28×27"):
        read_mnist_pair(tmp_path / "i.gz", tmp_path / "l.gz")


@pytest.mark.skipif(not MNIST_MIRROR.is_dir(), reason="no offline MNIST mirror")
def test_real_mnist_mirror_files() -> None:
    x, y = read_mnist_pair(
        MNIST_MIRROR / "t10k-images-idx3-ubyte.gz", MNIST_MIRROR / "t10k-labels-idx1-ubyte.gz"
    )
    assert x.shape == (10000, 28, 28) and y.shape == (10000,)
    assert set(np.unique(y)) == set(range(10))
