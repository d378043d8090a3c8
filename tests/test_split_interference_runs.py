"""``benchmarks/split_interference.py`` reaches below the public API (it spies on
``kernels.split_waited`` and reads ``sync.off_core``), like ``lstm_profile.py``,
which a signature change once broke unnoticed. It must still run, on a size
small enough for CI that still runs on rnnlab's own threads (H = 96: an LSTM's
W_hh has 36,864 weights, above ``kernels.MIN_OWN_WEIGHTS``)."""
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs_numba


def test_split_interference_runs_and_prints_its_table():
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "split_interference.py"),
                        "--sizes", "96", "--rounds", "1"],
                       capture_output=True, text=True, timeout=600, cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [line for line in r.stdout.splitlines() if line.startswith("| ") and " ms |" in line]
    assert [row.split("|")[1].strip() for row in rows] == ["lstm", "gru", "rnn"]
    assert all(row.split("|")[2].strip() == "96" for row in rows)
