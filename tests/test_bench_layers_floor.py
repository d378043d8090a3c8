"""``benchmarks/bench_layers.py --lengths`` prints the per-step products' cost
of the ragged batch against the full one by the fast path's cost model
(``step_floor``); it must follow ``gemm.cost`` step by step."""
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.needs_numba
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_step_floor_follows_the_cost_model():
    from bench_layers import step_floor
    from rnnlab.engine.fast import gemm
    assert step_floor(np.full(32, 8), 8, 32) == 1.0                   # every row every step
    assert step_floor(np.array([4] * 16 + [2] * 16), 4, 32) == 0.75   # 32, 32, 16, 16 rows
    lens = np.array([3] * 4 + [1] * 16)                               # 20, 4, 4 rows running
    want = (gemm.cost(20, np.float32) + 2 * gemm.cost(4, np.float32)) / (3 * gemm.cost(20, np.float32))
    assert step_floor(lens, 3, 20) == pytest.approx(want)
    assert 0.4 < step_floor(lens, 3, 20) < 0.9
