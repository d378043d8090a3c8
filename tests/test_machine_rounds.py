"""The benchmarks' timing protocol (``benchmarks/machine.py``) and lm_speed's
split of the step: what they compute, on stand-in callables."""
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import lm_speed  # noqa: E402
import machine  # noqa: E402


@pytest.fixture
def no_pause(monkeypatch):
    monkeypatch.setattr(machine, "settle", lambda seconds=0.3: None)


def _counter(cost=0.0):
    calls = []

    def f():
        calls.append(time.perf_counter())
        if cost:
            time.sleep(cost)
    return f, calls


def test_rounds_warm_up_for_calls_and_for_time(no_pause):
    fast, fast_calls = _counter()
    slow, slow_calls = _counter(0.02)
    times = machine.rounds({"fast": fast, "slow": slow}, repeats=2, number=3, warm=2,
                           warm_seconds=0.05)
    assert [len(v) for v in times.values()] == [2, 2]
    assert len(slow_calls) == 2 * (3 + 3)          # 2 calls are 0.04 s: a third reaches 0.05
    assert len(fast_calls) > 2 * (3 + 2) + 20      # many cheap calls fill the 0.05 s
    assert min(times["slow"]) >= 0.02


def test_rounds_without_warm_up_time_only_the_timed_calls(no_pause):
    f, calls = _counter()
    machine.rounds({"f": f}, repeats=3, number=2, warm=0)
    assert len(calls) == 6


def test_split_lines_say_what_the_rest_would_need():
    whole, decoder = {"rnnlab": 0.050, "torch": 0.043}, {"rnnlab": 0.020, "torch": 0.020}
    lines = lm_speed.split_lines(whole, decoder)
    assert "rnnlab 20.0 ms, torch 20.0 ms (1.00x)" in lines[0]
    assert "rnnlab 30.0 ms, torch 23.0 ms (0.77x)" in lines[1]
    need = 0.023 / (0.043 / 1.2 - 0.020)                           # 1.45
    assert f"run {need:.2f}x torch's" in lines[2]
    lines = lm_speed.split_lines(whole, {"rnnlab": 0.040, "torch": 0.020})
    assert lines[2] == "split: with this decoder time no rest could give 1.2x"
    lines = lm_speed.split_lines(whole, {"rnnlab": 0.051, "torch": 0.020})
    assert len(lines) == 2 and lines[1].endswith("no split")
