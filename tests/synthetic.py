"""Small generated corpora in the token format, for the tests of every family.

Each generator returns ``(spec, {split: (x, y)})`` ready for
:func:`pipelines.tensor.write_corpus`; the tasks mirror the real ones (images, bit
counting/parity, binary addition, a time series) at a size that trains in seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipelines.tensor import write_corpus

Splits = dict[str, tuple[np.ndarray, np.ndarray]]


def _split(x: np.ndarray, y: np.ndarray, n_val: int, n_test: int) -> Splits:
    a, b = len(x) - n_val - n_test, len(x) - n_test
    return {"train": (x[:a], y[:a]), "validation": (x[a:b], y[a:b]), "test": (x[b:], y[b:])}


def images(
    n: int = 600,
    size: int = 8,
    classes: int = 4,
    seed: int = 0,
    n_val: int = 100,
    n_test: int = 100,
) -> tuple[dict[str, Any], Splits]:
    """uint8 ``size×size`` images: class ``c`` lights up one cell of a 2×2 grid, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 60, (n, size, size))
    h = size // 2
    for c in range(classes):
        r, k = divmod(c % 4, 2)
        x[y == c, r * h : (r + 1) * h, k * h : (k + 1) * h] += 150 + 20 * (c // 4)
    x = x.clip(0, 255).astype(np.uint8)
    spec = {
        "task": "classify",
        "x_shape": [size, size],
        "x_dtype": "uint8",
        "x_scale": 255.0,
        "x_mean": float(x.mean() / 255),
        "x_std": float(x.std() / 255),
        "num_classes": classes,
        "y_shape": [],
    }
    return spec, _split(x, y.astype(np.int64), n_val, n_test)


def counting(
    n: int = 600,
    length: int = 8,
    parity: bool = False,
    seed: int = 0,
    n_val: int = 100,
    n_test: int = 100,
) -> tuple[dict[str, Any], Splits]:
    """Bit strings ``(length, 1)``; y = number of ones (``derived: parity`` when asked)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, (n, length, 1)).astype(np.int8)
    y = x.sum((1, 2)).astype(np.int64)
    spec = {
        "task": "classify",
        "x_shape": [length, 1],
        "x_dtype": "int8",
        "num_classes": length + 1,
        "y_shape": [],
    }
    if parity:
        spec["derived"] = "parity"
    return spec, _split(x, y, n_val, n_test)


def addition(
    n: int = 600, bits: int = 8, seed: int = 0, n_val: int = 100, n_test: int = 100
) -> tuple[dict[str, Any], Splits]:
    """``a + b`` of two ``bits``-bit numbers, LSB first, ``bits + 1`` steps: x the operand bits
    ``(T, 2)``, y the sum bit at each step."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 2**bits, n), rng.integers(0, 2**bits, n)
    steps = np.arange(bits + 1)

    def to_bits(v: np.ndarray) -> np.ndarray:
        return (v[:, None] >> steps) & 1

    x = np.stack([to_bits(a), to_bits(b)], -1).astype(np.int8)
    y = to_bits(a + b).astype(np.int8)
    spec = {
        "task": "tag",
        "x_shape": [bits + 1, 2],
        "x_dtype": "int8",
        "num_classes": 2,
        "y_shape": [bits + 1],
    }
    return spec, _split(x, y, n_val, n_test)


def timeseries(
    n: int = 600, window: int = 20, seed: int = 0, n_val: int = 100, n_test: int = 100
) -> tuple[dict[str, Any], Splits]:
    """Windows of a noisy two-tone series; y the next value; normalised with train stats."""
    rng = np.random.default_rng(seed)
    t = np.arange(n + window, dtype=np.float64)
    series = 10 + 3 * np.sin(t / 4) + np.sin(t / 1.7) + 0.1 * rng.standard_normal(len(t))
    n_train = n - n_val - n_test
    mean, std = series[: n_train + window].mean(), series[: n_train + window].std()
    z = ((series - mean) / std).astype(np.float32)
    idx = np.arange(n)[:, None] + np.arange(window)
    x, y = z[idx][..., None], z[np.arange(n) + window]
    spec = {
        "task": "regress",
        "x_shape": [window, 1],
        "x_dtype": "float32",
        "y_shape": [],
        "y_mean": float(mean),
        "y_std": float(std),
    }
    return spec, _split(x, y, n_val, n_test)


GENERATORS = {
    "images": images,
    "counting": counting,
    "addition": addition,
    "timeseries": timeseries,
}


def write(directory: Path | str, kind: str, **kwargs: Any) -> Path:
    """Generate corpus ``kind`` and write it to ``directory`` in the token format."""
    spec, splits = GENERATORS[kind](**kwargs)
    return write_corpus(directory, spec, splits)
