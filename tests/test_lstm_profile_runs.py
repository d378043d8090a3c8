"""``benchmarks/lstm_profile.py`` times rnnlab's per-step kernel directly
(``gemm.product``, ``product_t``), below the public API: a change of the
kernel's signature broke it once unnoticed (round ten added product_t's end
row). It must still run, on a size small enough for CI."""
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.needs_numba, pytest.mark.needs_torch]


def test_lstm_profile_runs_and_prints_its_table(tmp_path):
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "profile.md"
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "lstm_profile.py"), "--sizes", "16",
                        "--threads", "1", "--repeats", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    text = out.read_text()
    assert "### H = 16" in text and "T backward products" in text and "weight gradients" in text
    assert "| whole forward + backward, T = 1 |" in text
