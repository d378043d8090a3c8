"""Rolling-origin backtests (expanding window) and the single split, every model
in the same harness on the same origins (darts' ``historical_forecasts`` /
``backtest``, sktime's ``ExpandingWindowSplitter``).

Origins: the last one leaves exactly ``horizon`` observations after it; each
earlier one is ``step`` observations before the next; ``count`` of them. A
forecaster is any ``f(history: Series, horizon) -> q (horizon, P)`` (quantiles at
``heads.QUANTILES``); it sees only the observations up to its origin. The single
split is the backtest with one origin (``count=1``, ``horizon`` = test length).
"""
from dataclasses import dataclass, field

import numpy as np

from rnnlab.forecast import baselines, data, heads, metrics
from rnnlab.io.progress import progress


def origins(n, horizon, step, count):
    """Indices of the last observed point, oldest first."""
    for flag, v in (("--origins", count), ("--step", step)):     # 0 crashed, -1 misfired
        if v < 1:
            raise ValueError(f"{flag}: expected an integer >= 1, got {v}")
    last = n - 1 - horizon
    out = [last - step * k for k in reversed(range(count))]
    if out[0] < 1:
        raise ValueError(f"{count} origins {step} apart with horizon {horizon} need more than "
                         f"{n} observations; lower --origins or --step")
    return out


@dataclass
class ModelResult:
    """One model's forecasts and scores over every origin."""
    label: str
    q: list = field(default_factory=list)              # per origin (Hz, P)
    scores: list = field(default_factory=list)         # per origin: metrics.score dict

    def mean(self):
        return {k: float(np.mean([s[k] for s in self.scores])) for k in self.scores[0]}

    def se(self, key, lags):
        """Standard error of ``mean()[key]``: Newey-West over the per-origin values,
        which are correlated up to ``lags`` origins apart (overlapping targets)."""
        return mean_se([s[key] for s in self.scores], lags)

    def per_horizon(self, actual, scales):
        """Mean absolute scaled error per horizon step (Hz,), over the origins."""
        err = [np.abs(a - q[:, heads.MEDIAN]) / sc for a, q, sc in zip(actual, self.q, scales)]
        return np.mean(err, axis=0)


def mean_se(x, lags):
    """Standard error of the mean of x (n,) whose terms are correlated up to ``lags``
    apart (Newey & West 1987: Bartlett weights 1 - k / (lags + 1))."""
    d = np.asarray(x, np.float64) - np.mean(x)
    n = len(d)
    v = d @ d / n
    for k in range(1, min(lags, n - 1) + 1):
        v += 2.0 * (1.0 - k / (lags + 1)) * (d[k:] @ d[:-k]) / n
    return float(np.sqrt(max(v, 0.0) / n))


@dataclass
class Backtest:
    series: data.Series
    horizon: int
    origins: list
    actual: list
    scales: list                                       # MASE denominators per origin
    models: dict                                       # name -> ModelResult

    def table(self):
        """Rows: model, label, then the mean of every metric over the origins."""
        return [(name, r.label, r.mean()) for name, r in self.models.items()]

    @property
    def overlap(self):
        """How many origins apart two forecasts can still share a target."""
        step = self.origins[1] - self.origins[0] if len(self.origins) > 1 else self.horizon
        return -(-self.horizon // step) - 1

    def to_dict(self):
        return {"series": self.series.name, "horizon": self.horizon,
                "origins": [str(self.series.time[o]) for o in self.origins],
                "models": {n: {"label": r.label, "mean": r.mean(),
                               "se": {k: r.se(k, self.overlap) for k in r.scores[0]},
                               "per_horizon": r.per_horizon(self.actual, self.scales).tolist()}
                           for n, r in self.models.items()}}


def simple(fn):
    """A NumPy baseline ``(y, horizon, m)`` as a forecaster of Series."""
    return lambda s, horizon: fn(s.values, horizon, s.period)


def baseline_forecasters():
    return {name: simple(fn) for name, fn in baselines.BASELINES.items()}


COMBINE = {"median": np.median, "mean": np.mean}


def combine(qs, how="median"):
    """Several forecasts' quantiles (M, Hz, P) -> one (Hz, P): per horizon step and
    level the median (or mean) over the M members (Vincentization: the quantile
    averaging of forecast combination; the elementwise median or mean of sorted
    rows is sorted, so the result is a valid quantile forecast)."""
    return COMBINE[how](np.asarray(qs, np.float64), axis=0)


class Combination:
    """A forecaster that combines ``members`` by ``combine``; the M4 way of
    ensembling: networks differing in seed and in settings.

    ``joint=False``: each member calibrated on its own, then combined. ``joint=True``
    (members are ``train.Network``s): the members' own quantiles are combined,
    and the combination is calibrated as one forecaster on the windows its members
    calibrate on (``Forecaster.calibration_windows``), in the series' units and
    allowed to narrow (``heads.factors`` with floor 0): averaging quantiles keeps
    the members' widths while the combined median errs less, so a combination of
    calibrated members over-covers."""

    def __init__(self, members, how="median", label=None, joint=False, aci=0.0):
        if how not in COMBINE:
            raise ValueError(f"combination: expected one of {', '.join(COMBINE)}, got {how!r}")
        self.members, self.how, self.joint, self.aci = list(members), how, joint, aci
        self.label = label or f"{how} of {len(self.members)}"

    def __call__(self, s, horizon):
        if not self.joint:
            return combine([f(s, horizon) for f in self.members], self.how)
        fitted = [m.fitted(s, horizon) for m in self.members]
        return combine_jointly([g.predict(s, calibrated=False) for g in fitted],
                               [g.calibration_windows(s) for g in fitted], self.how, self.aci)


def same_windows(windows):
    """Whether the members' calibration windows (``combine_jointly``'s) are the
    same origins, so that the combination can be calibrated on them as one."""
    return all(np.array_equal(w[0], windows[0][0]) for w in windows[1:])


def combine_jointly(qs, windows, how="median", aci=0.0):
    """The members' own quantiles qs (M, Hz, P), combined and calibrated as one
    forecaster on the members' calibration windows [(origins, q (N, Hz, P), y
    (N, Hz))] (``Forecaster.calibration_windows``): split-conformal factors of the
    combined window quantiles, allowed to narrow (floor 0)."""
    if not same_windows(windows):
        raise ValueError("joint calibration: the members calibrate on different "
                         "windows (their --valid or training ends differ)")
    _, _, y = windows[0]
    r = heads.scores(combine([w[1] for w in windows], how), y)               # (N, Hz, V)
    return heads.widen(combine(qs, how), heads.factors(r, gamma=aci, floor=0.0))


def run(series, forecasters, horizon, step, count, show=False):
    """Forecast from every origin with every forecaster; score each forecast."""
    m = series.period
    at = origins(len(series), horizon, step, count)
    actual = [series.values[o + 1:o + 1 + horizon] for o in at]
    hist = [series.values[:o + 1] for o in at]
    scales = [float(np.mean(np.abs(h[m:] - h[:-m]))) for h in hist]
    results = {}
    with progress(len(forecasters) * len(at), f"backtest {series.name}", enabled=show,
                  unit="forecast") as bar:
        for name, f in forecasters.items():
            r = ModelResult(name)
            for o, a, h in zip(at, actual, hist):
                q = np.asarray(f(series.head(o + 1), horizon), np.float64)
                if q.shape != (horizon, len(heads.QUANTILES)):
                    raise ValueError(f"forecaster {name} returned shape {q.shape}, expected "
                                     f"{(horizon, len(heads.QUANTILES))}")
                r.q.append(q)
                r.scores.append(metrics.score(a, q, h, m))
                bar.update(1)
            r.label = getattr(f, "label", name)
            results[name] = r
    return Backtest(series, horizon, at, actual, scales, results)
