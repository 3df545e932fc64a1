"""What the synthetic tasks of the classic RNN tutorials (parity, counting, addition,
timeseries) share: their *fetch* is generation, deterministic from ``fetch.<task>.seed``, so
a rerun with the same params produces the same bytes. They are reported as synthetic."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from stages.core.config import CleanConfig, FetchConfig
from stages.corpora.base import Corpus


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


class Generated(Corpus):
    """Base of the generated corpora: exactly ``n`` rows fetched, nothing dropped in clean."""

    CleanConfig = SyntheticCleanConfig

    def expected_rows(self, part: str, cfg: Any) -> tuple[int, int | None]:
        return cfg.n, cfg.n
