"""``benchmarks/step_columns.py`` calls the per-step product below the public API
(``gemm.pack``, ``gemm.product``, ``gemm.width``); it must still run, on a tiny
layer for CI, and print its five tables."""
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.needs_numba, pytest.mark.needs_torch]


def test_step_columns_runs_and_prints_its_tables():
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "step_columns.py"),
                        "--rounds", "1", "--layer", "3", "4", "16", "--vocab", "50"],
                       capture_output=True, text=True, timeout=600, cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [line.split("|")[1].strip() for line in r.stdout.splitlines()
            if line.startswith(("| (", "| lstm", "| gru", "| layer", "| lm", "| pair", "| loop"))]
    assert rows == ["(512, 256)", "(1024, 512)", "lstm forward", "lstm step", "gru step",
                    "layer", "lm", "pair (512, 256)", "pair (800, 400)", "pair (1024, 512)",
                    "pair (2048, 1024)", "loop (512, 256)", "loop (1024, 256)",
                    "loop (1024, 512)", "loop (2048, 1024)"], r.stdout
    at16 = [line for line in r.stdout.splitlines() if line.startswith("| (")]
    assert all(line.split("|")[5].strip() == "1.00" for line in at16)       # n = 16 is 1
