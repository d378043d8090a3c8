"""The classical baselines from statsmodels (the ``forecast`` extra), in the same
harness as the networks: ETS (exponential smoothing, Holt-Winters) and
(S)ARIMA, each chosen by a stated AIC search.

ETS: statsmodels' ``ETSModel`` over error {add, mul}, trend {none, add, damped
add}, seasonal {none, add, mul} (seasonal ones only with m > 1 and at least two
full seasons; multiplicative parts only for positive series); the lowest AIC wins.
Intervals: quantiles of 1,000 simulated paths (seeded).

ARIMA (the procedure of Hyndman & Khandakar 2008's auto.arima, on a small grid):
on w = log y (``log``) or y, D = 1 when m > 1 and the STL seasonal strength
F_s = max(0, 1 - Var(R) / Var(S + R)) is at least 0.64; d = 1 when the KPSS test
(5%) rejects stationarity of the seasonally differenced series; then every
p, q in 0..2 and (with m > 1 and D = 1) P, Q in 0..1 by AIC, with a constant when
d + D <= 1 (a drift when one difference is taken). Gaussian intervals on w, mapped back by exp.

The search runs once, on the first origin's training part (``fit_spec``); later
origins refit the parameters of the chosen model on their own training part.
"""
import warnings
from contextlib import contextmanager

import numpy as np

from rnnlab.forecast import heads


def _statsmodels():
    try:
        import statsmodels  # noqa: F401
    except ImportError:
        raise ImportError("the ETS and ARIMA baselines need statsmodels: "
                          "pip install 'rnnlab[forecast]'") from None


@contextmanager
def _quiet():
    """statsmodels' convergence chatter and NumPy warnings off inside a fit."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------- ETS

def ets_candidates(y, m):
    positive = bool(np.all(y > 0))
    seasons = [None] + (["add"] + (["mul"] if positive else []) if m > 1 and len(y) >= 2 * m
                        else [])
    for error in ["add"] + (["mul"] if positive else []):
        for trend, damped in ((None, False), ("add", False), ("add", True)):
            for seasonal in seasons:
                yield {"error": error, "trend": trend, "damped_trend": damped,
                       "seasonal": seasonal}


def _ets_fit(y, m, spec):
    import pandas as pd         # statsmodels' ETS prediction needs an indexed series
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    kw = dict(spec, seasonal_periods=m if spec["seasonal"] else None)
    return ETSModel(pd.Series(np.asarray(y, np.float64)), **kw).fit(disp=False, maxiter=2000)


def ets_spec(y, m):
    """The ETS form with the lowest AIC on y."""
    _statsmodels()
    best = None
    with _quiet():
        for spec in ets_candidates(y, m):
            try:
                aic = _ets_fit(y, m, spec).aic
            except (ValueError, np.linalg.LinAlgError):
                continue
            if np.isfinite(aic) and (best is None or aic < best[0]):
                best = (aic, spec)
    return best[1]


def ets_forecast(y, horizon, m, spec, seed=0, paths=1000):
    """Point forecast from the fitted model; quantiles from ``paths`` simulated
    future paths (seeded, so the same numbers every run)."""
    with _quiet():
        res = _ets_fit(y, m, spec)
        mean = np.asarray(res.forecast(horizon), np.float64)                 # (Hz,)
        sims = np.asarray(res.simulate(horizon, anchor="end", repetitions=paths,
                                       rng=np.random.default_rng(seed)), np.float64)
    q = np.quantile(sims.reshape(horizon, -1), heads.QUANTILES, axis=1).T   # (Hz, P)
    q[:, heads.MEDIAN] = mean
    return np.sort(q, axis=1)


# ---------------------------------------------------------------- ARIMA

def seasonal_strength(w, m):
    from statsmodels.tsa.seasonal import STL
    r = STL(w, period=m).fit()
    return max(0.0, 1.0 - np.var(r.resid) / np.var(r.seasonal + r.resid))


def _kpss_rejects(w):
    from statsmodels.tsa.stattools import kpss
    with _quiet():
        return kpss(w, regression="c", nlags="auto")[1] < 0.05


def _arima_fit(w, spec):
    from statsmodels.tsa.statespace.sarimax import SARIMAX
    p, d, q, P, D, Q, m = (spec[k] for k in "p d q P D Q m".split())
    trend = "c" if d + D <= 1 else "n"          # with one difference the constant is a drift
    model = SARIMAX(w, order=(p, d, q), seasonal_order=(P, D, Q, m if m > 1 else 0),
                    trend=trend)
    return model.fit(disp=False, maxiter=200)


def arima_spec(y, m, log):
    """The stated search (module docstring): {p, d, q, P, D, Q, m, log}."""
    _statsmodels()
    w = np.log(y) if log else np.asarray(y, np.float64)
    D = int(m > 1 and len(w) >= 3 * m and seasonal_strength(w, m) >= 0.64)
    ws = w[m:] - w[:-m] if D else w
    d = int(_kpss_rejects(ws))
    seasonal = [(0, 0)] + ([(1, 0), (0, 1), (1, 1)] if D else [])
    best = None
    with _quiet():
        for p in range(3):
            for q in range(3):
                for P, Q in seasonal:
                    spec = dict(p=p, d=d, q=q, P=P, D=D, Q=Q, m=m if D else 1, log=log)
                    try:
                        aic = _arima_fit(w, spec).aic
                    except (ValueError, np.linalg.LinAlgError):
                        continue
                    if np.isfinite(aic) and (best is None or aic < best[0]):
                        best = (aic, spec)
    return best[1]


def arima_forecast(y, horizon, m, spec):
    w = np.log(y) if spec["log"] else np.asarray(y, np.float64)
    with _quiet():
        fc = _arima_fit(w, spec).get_forecast(horizon)
        mean, sd = np.asarray(fc.predicted_mean), np.sqrt(np.asarray(fc.var_pred_mean))
    q = mean[:, None] + sd[:, None] * heads.Z[None, :]
    return np.exp(q) if spec["log"] else q


def describe(name, spec):
    """A short label: ARIMA(1,1,0)(0,1,0)12 or ETS(M,Ad,M)."""
    if name == "arima":
        s = f"ARIMA({spec['p']},{spec['d']},{spec['q']})"
        if spec["D"]:
            s += f"({spec['P']},{spec['D']},{spec['Q']}){spec['m']}"
        return s + (" on log" if spec["log"] else "")
    letter = {None: "N", "add": "A", "mul": "M"}
    trend = letter[spec["trend"]] + ("d" if spec["damped_trend"] else "")
    return f"ETS({letter[spec['error']]},{trend},{letter[spec['seasonal']]})"


class Classical:
    """A forecaster ``(y, horizon, m) -> q (horizon, P)`` that runs its search on
    the first call and refits the chosen model on every later one."""

    def __init__(self, name, log=False, spec=None):
        self.name, self.log, self.spec = name, log, spec

    def __call__(self, y, horizon, m):
        if self.spec is None:
            self.spec = ets_spec(y, m) if self.name == "ets" else arima_spec(y, m, self.log)
        if self.name == "ets":
            return ets_forecast(y, horizon, m, self.spec)
        return arima_forecast(y, horizon, m, self.spec)

    @property
    def label(self):
        return describe(self.name, self.spec) if self.spec else self.name
