"""What the synthetic tasks of the classic RNN tutorials share.

Their *fetch* is generation: deterministic from ``fetch.<task>.seed``, so a rerun with
the same params produces the same bytes. They are synthetic and are reported as such.

- ``parity`` and ``counting``: the ones in bit strings (:mod:`stages.corpora.bitstrings`).
- ``addition``: binary addition, bit by bit (:mod:`stages.corpora.addition`).
- ``timeseries``: a noisy sum of sines (:mod:`stages.corpora.timeseries`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.core.config import CleanConfig, FetchConfig


def fixed_list(matrix: np.ndarray, dtype: pa.DataType) -> pa.FixedSizeListArray:
    """(N, K) array → fixed_size_list<dtype>[K] column."""
    n, k = matrix.shape
    return pa.FixedSizeListArray.from_arrays(
        pa.array(np.ascontiguousarray(matrix).reshape(-1), dtype), k
    )


class GeneratedConfig(FetchConfig):
    """How many examples to generate, from which seed."""

    n: int
    seed: int = 0


class SyntheticCleanConfig(CleanConfig):
    # Generation is exact; nothing may be dropped.
    max_drop_fraction: float = 0.0
