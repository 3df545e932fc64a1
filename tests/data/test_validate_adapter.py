"""The fast paths of the validation adapter agree with the slow ones they replace."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from stages.core.validate import _row_min_max, _row_min_max_grouped

CASES = [
    pa.FixedSizeListArray.from_arrays(pa.array(np.arange(12, dtype=np.uint8)), 4),
    pa.array([[3, 1, 2], [], [7], [-5, 5]], pa.list_(pa.int64())),
    pa.array([[0.5, -1.0], [2.0], []], pa.large_list(pa.float32())),
    pa.array([[1, 2, 3], [4, 5], [6]], pa.list_(pa.int8())).slice(1),
]


@pytest.mark.parametrize("arr", CASES, ids=range(len(CASES)))
def test_numpy_row_min_max_equals_the_arrow_group_by(arr: pa.Array) -> None:
    fast = _row_min_max(arr)
    assert fast is not None
    slow = _row_min_max_grouped(arr)
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(np.asarray(a, float), np.asarray(b, float))


def test_nulls_take_the_arrow_path() -> None:
    assert _row_min_max(pa.array([[1, None], [2]], pa.list_(pa.int64()))) is None


def test_deferred_gx_dependencies_still_work_when_used() -> None:
    """GX's unused heavy imports are deferred, not removed: first use loads the real module."""
    code = (
        "from stages.core.gxload import load_gx; load_gx(); import sys;"
        "assert type(sys.modules['scipy.stats']).__name__ == '_DeferredModule', 'not deferred';"
        "import scipy.stats; print(scipy.stats.entropy([0.5, 0.5]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().startswith("0.69")
