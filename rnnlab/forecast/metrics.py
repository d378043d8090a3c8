"""Forecast accuracy as the field reports it (sktime's names), for one forecast
from one origin: actuals y (Hz,), point forecast f (Hz,), the training part
``train`` (N,) that came before the origin, the seasonal period m.

    MASE    mean|y - f| / mean_{t > m}|train_t - train_{t-m}|   (Hyndman & Koehler 2006,
            scaled by the in-sample seasonal naive error; m = 1 for a non-seasonal series)
    sMAPE   mean 2|y - f| / (|y| + |f|)     (a fraction, as sktime; x100 for percent)
    MAPE    mean |y - f| / |y|
    RMSE    sqrt(mean (y - f)^2)
    coverage_80 / _95   share of y inside the central 80% / 95% interval
    width_80 / _95      mean width of that interval
    pinball mean pinball loss over the horizons and the levels in ``heads.QUANTILES``
            (twice it is a coarse estimate of the CRPS)
"""
import numpy as np

from rnnlab.forecast import heads


def mase(y, f, train, m):
    scale = np.mean(np.abs(train[m:] - train[:-m]))
    if not scale > 0:
        raise ValueError(f"MASE: the training part has no seasonal variation at m = {m}")
    return float(np.mean(np.abs(y - f)) / scale)


def smape(y, f):
    return float(np.mean(2 * np.abs(y - f) / (np.abs(y) + np.abs(f))))


def mape(y, f):
    return float(np.mean(np.abs(y - f) / np.abs(y)))


def rmse(y, f):
    return float(np.sqrt(np.mean((y - f) ** 2)))


def coverage(y, lo, hi):
    return float(np.mean((lo <= y) & (y <= hi)))


def width(lo, hi):
    return float(np.mean(hi - lo))


def pinball(y, q, taus=heads.QUANTILES):
    """q (Hz, P) quantile forecasts at taus."""
    u = y[:, None] - q
    tau = np.asarray(taus)
    return float(np.mean(np.maximum(tau * u, (tau - 1) * u)))


def score(y, q, train, m):
    """Every metric for quantile forecasts q (Hz, P) at ``heads.QUANTILES``."""
    f = q[:, heads.MEDIAN]
    out = {"mase": mase(y, f, train, m), "smape": smape(y, f), "mape": mape(y, f),
           "rmse": rmse(y, f), "pinball": pinball(y, q)}
    for level, (lo, hi) in heads.LEVELS.items():
        pct = int(round(level * 100))
        out[f"coverage_{pct}"] = coverage(y, q[:, lo], q[:, hi])
        out[f"width_{pct}"] = width(q[:, lo], q[:, hi])
    return out
