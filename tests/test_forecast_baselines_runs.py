"""``forecast_backtest.py baselines``: the classical models on a series' validation
origins, the ones whose targets all end by the first test origin."""
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
pytest.importorskip("statsmodels")
import forecast_backtest as fb  # noqa: E402
from rnnlab.forecast import backtest, data  # noqa: E402


def test_baselines_score_the_validation_origins_before_the_test():
    lines = fb.baselines("airline", 24)
    s = data.load("airline")
    first = backtest.origins(len(s), 12, fb.SETTINGS["airline"][2], 24)[0]
    n, step = fb.validation_plan("airline")
    head = re.match(r"### airline: (\d+) validation origins (\d+) apart, (\S+) \.\. (\S+) ", lines[0])
    assert head and (int(head[1]), int(head[2])) == (n, step)
    last = [str(t) for t in s.time].index(head[4])
    assert last + 12 <= first                # the last validation target is before the test
    rows = [ln.split(" | ") for ln in lines if ln.startswith("| ") and "---" not in ln][1:]
    assert [r[0].strip("| ") for r in rows] == ["naive", "snaive", "drift", "ets", "arima"]
    for r in rows:
        mase, cov80, cov95 = float(r[2]), float(r[3].split(" ± ")[0]), float(r[4].split(" ± ")[0])
        assert mase > 0 and 0 <= cov80 <= cov95 <= 1
    assert rows[4][1].startswith("ARIMA(")
