"""``benchmarks/machine.two_at_once`` (bench_layers' header line, step_columns'
fifth table) times a time loop's per-step products alone and on two threads at
once: every round must time both cases, and the header line must give the
median ratio as a number."""
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs_numba
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_two_at_once_times_both_cases_every_round():
    import machine
    t = machine.two_at_once(64, 32, rounds=3, steps=2)
    assert set(t) == {"alone", "both"}
    assert all(len(v) == 3 and min(v) > 0 for v in t.values())


def test_two_at_once_line_names_the_ratio():
    import machine
    line = machine.two_at_once_line(64, 32, rounds=2)
    assert line.startswith("two threads at once: ") and "x their time alone" in line
    ratio = float(line.split(" took ")[1].split("x")[0])
    assert 0 < ratio < 100
