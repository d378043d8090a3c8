"""Per-series scaling, (seasonal) differencing and calendar covariates, each with
an exact inverse.

The network never sees raw values. For a series y (N,) and an origin o (the last
observed index), with w = log y (when ``log``), sqrt y (when ``sqrt``: the
variance-stabilising transform of counts, whose spread grows with their level,
such as sunspots) or y, and lag s (the seasonal
period when differencing is seasonal, 1 for plain differencing, 0 for none):

    inputs at t <= o     dw_t = (w_t - w_{t-s}) / scale        the differenced series
                         lv_t = (w_t - center) / spread        the standardised level
                         sin, cos of the month                 calendar covariates
    target at o + h      z_h  = (w_{o+h} - w_{r(h)}) / scale   r(h) = o + h - s * ceil(h / s)

r(h) <= o for every h: the target is the deviation from the (seasonal) naive
forecast, so each horizon inverts on its own, exactly and monotonically:
w_{o+h} = w_{r(h)} + scale * z_h. A quantile of z is therefore a quantile of y,
and prediction intervals map through unchanged. With s = 0 the target is the
standardised level. center, spread and scale come from the training part only.

With ``drift`` (``--diff both``) the reference also carries the latest seasonal
change forward, w_{r(h)} + ceil(h / s) (w_o - w_{o-s}): the forecast of
ARIMA(0,1,0)(0,1,0)s, so the zero target keeps this year's growth rather than
last year's level plus the network's idea of a typical year's growth (on
airline, 1958 grew 0-8% after 9-14% in 1957). scale is then the standard
deviation of the first difference of the seasonal difference.

Per-window normalisation instead of differencing (``window`` = L > 0; in the
spirit of ES-RNN, Smyl 2020, which deseasonalises and level-normalises each
input window): the window w_{o-L+1..o} is decomposed by least squares into a
line a + b (t - tbar) and seasonal indices S_j (one per position j of the period
m), and

    inputs at t in the window   dw_t = (w_t - fit_o(t)) / scale
    target at o + h             z_h  = (w_{o+h} - fit_o(o + h)) / scale
    fit_o(t) = a + b (t - tbar) + S_{t mod m}

so the zero target is the window's own trend and seasonality carried forward
(additive in log space: multiplicative in y), each observation's noise enters the
reference only through an average over the window, not one-for-one as in a
(seasonal) difference, and the inverse is again exact and monotone per horizon.
With a half-life (``halflife`` > 0) the fit weights observation t by
0.5 ** ((o - t) / halflife): discounted least squares, whose line is Brown's
double exponential smoothing (Brown 1963), so the reference follows the recent
level and slope as ETS's trend does rather than the whole window's average.
"""
from dataclasses import asdict, dataclass

import numpy as np


def difference(x, lag):
    """d_t = x_t - x_{t-lag} for t >= lag: (N,) -> (N - lag,)."""
    return x[lag:] - x[:-lag]


def undifference(d, head):
    """Invert ``difference``: given the first ``lag`` values ``head`` (lag,) and
    d (M,), rebuild x (lag + M,) exactly (x_t = d_{t-lag} + x_{t-lag})."""
    lag = len(head)
    x = np.empty(lag + len(d))
    x[:lag] = head
    for t in range(lag, len(x)):
        x[t] = d[t - lag] + x[t - lag]
    return x


def calendar(time, unit):
    """Calendar covariates (N, C): sin and cos of the month for monthly series,
    none (N, 0) otherwise."""
    if unit != "M":
        return np.zeros((len(time), 0))
    month = (time.astype("datetime64[M]").astype(np.int64) % 12).astype(np.float64)
    angle = 2 * np.pi * month / 12
    return np.stack([np.sin(angle), np.cos(angle)], axis=1)


def future_time(time, horizon):
    """The ``horizon`` timestamps after the last one of ``time``."""
    step = time[-1] - time[-2]
    return time[-1] + step * np.arange(1, horizon + 1)


def warp(y, log=False, sqrt=False):
    """w: log y, sqrt y or y itself, in float64."""
    y = np.asarray(y, np.float64)
    return np.log(y) if log else np.sqrt(y) if sqrt else y


def reference_index(origin, horizon, lag):
    """r(h) for h = 1..horizon (see the module docstring); (horizon,) ints."""
    h = np.arange(1, horizon + 1)
    if lag == 0:
        return np.full(horizon, origin)
    return origin + h - lag * np.ceil(h / lag).astype(np.int64)


def window_fit(w, origin, length, period, horizon, halflife=0.0):
    """The per-window decomposition fit_o (see the module docstring) of
    w[origin-length+1 .. origin]: (its values there (length,), its values at
    origin+1 .. origin+horizon (horizon,)). Line and indices are fitted jointly
    (least squares on t - tbar and one indicator per position of the period,
    weighted by 0.5 ** (age / halflife) when ``halflife`` > 0), so a line plus any
    periodic pattern is recovered exactly."""
    t = np.arange(origin - length + 1, origin + 1 + horizon)
    tc = t - (2 * origin - length + 1) / 2.0
    design = np.column_stack([tc, np.mod(t, period)[:, None] == np.arange(period)])  # (., 1+m)
    root = 0.5 ** ((origin - t[:length]) / (2.0 * halflife)) if halflife > 0 else \
        np.ones(length)                            # square roots of the weights (length,)
    coef = np.linalg.lstsq(design[:length] * root[:, None], w[t[:length]] * root,
                           rcond=None)[0]
    fit = design @ coef
    return fit[:length], fit[length:]


@dataclass
class Scaling:
    """How one series is brought to the network's scale and back."""
    log: bool
    lag: int
    center: float
    spread: float
    scale: float
    window: int = 0                 # L > 0: per-window normalisation (lag is then 0)
    period: int = 1                 # m, the seasonal period of the window's indices
    drift: bool = False             # the reference adds the latest lag-s change (lag > 0)
    halflife: float = 0.0           # > 0: the window's fit discounts older observations
    sqrt: bool = False              # w = sqrt y (absent from files of older rnnlab: False)

    @classmethod
    def fit(cls, y, log, lag, window=0, period=1, drift=False, halflife=0.0, sqrt=False):
        """Statistics of the training part y (N,) only."""
        if log and sqrt:
            raise ValueError("--log and --sqrt: expected at most one of the two transforms, "
                             "got both")
        if log and np.any(y <= 0):
            raise ValueError("log scaling needs positive values; found "
                             f"{int(np.sum(y <= 0))} value(s) <= 0 (use --no-log)")
        if sqrt and np.any(y < 0):
            raise ValueError("square-root scaling needs values >= 0; found "
                             f"{int(np.sum(y < 0))} negative value(s) (use --no-sqrt)")
        if window and window < period + 2:
            raise ValueError(f"--input-len: per-window normalisation needs a window of at "
                             f"least the period {period} + 2 observations, got {window}")
        w = warp(y, log, sqrt)
        spread = float(np.std(w)) or 1.0
        at = period if window else lag                     # the noise scale of a difference
        noise = difference(w, at) if at else None
        if noise is not None and drift:
            noise = difference(noise, 1)                   # what the drift leaves
        scale = float(np.std(noise)) if at else spread
        return cls(log, 0 if window else lag, float(np.mean(w)), spread, scale or 1.0,
                   window, period, bool(drift and lag and not window),
                   float(halflife) if window else 0.0, bool(sqrt))

    def to_dict(self):
        return asdict(self)

    def warp(self, y):
        return warp(y, self.log, self.sqrt)

    def unwarp(self, w):
        """The inverse of ``warp``; monotone, so quantiles of w are quantiles of y. A
        square root below 0 (a quantile of the network's) is a value of 0, the
        least a count can be."""
        if self.log:
            return np.exp(w)
        return np.square(np.maximum(w, 0.0)) if self.sqrt else w

    def features(self, y, time, unit):
        """Inputs for every t (N, F): [dw, lv, calendar]; dw is 0 for t < lag."""
        w = self.warp(y)
        dw = np.zeros_like(w)
        if self.lag:
            dw[self.lag:] = difference(w, self.lag) / self.scale
        lv = (w - self.center) / self.spread
        return np.column_stack([dw, lv, calendar(time, unit)])

    def inputs(self, feats, y, origin, L):
        """The input window (L, F) ending at ``origin`` from ``features`` (N, F) of y;
        with per-window normalisation (L = window) its first column is the residual."""
        x = feats[origin - L + 1:origin + 1]
        if self.window:
            w, x = self.warp(y), x.copy()
            past = window_fit(w, origin, self.window, self.period, 0, self.halflife)[0]
            x[:, 0] = (w[origin - L + 1:origin + 1] - past) / self.scale
        return x

    def targets(self, y, origin, horizon):
        """z (horizon,) for the values y[origin+1 : origin+1+horizon]."""
        w = self.warp(y)
        future = w[origin + 1:origin + 1 + horizon]
        if self.lag == 0 and not self.window:
            return (future - self.center) / self.spread
        return (future - self.reference(w, origin, horizon)) / self.scale

    def reference(self, w, origin, horizon):
        """The zero target's values at origin+1 .. origin+horizon (horizon,), from w
        up to the origin: the window's own fit carried forward (``window``), or the
        (seasonal) naive forecast, plus the drift."""
        if self.window:
            return window_fit(w, origin, self.window, self.period, horizon, self.halflife)[1]
        ref = w[reference_index(origin, horizon, self.lag)]
        if self.drift:
            cycles = np.ceil(np.arange(1, horizon + 1) / self.lag)
            ref = ref + cycles * (w[origin] - w[origin - self.lag])
        return ref

    def invert(self, z, y_hist):
        """Values from targets: z (..., horizon) -> y (..., horizon), given the
        observed history y_hist (ending at the origin). Monotone in z."""
        horizon = z.shape[-1]
        w = self.warp(y_hist)
        if self.lag == 0 and not self.window:
            return self.unwarp(self.center + self.spread * z)
        return self.unwarp(self.reference(w, len(w) - 1, horizon) + self.scale * z)
