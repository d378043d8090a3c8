"""Per-series scaling, (seasonal) differencing and calendar covariates, each with
an exact inverse.

The network never sees raw values. For a series y (N,) and an origin o (the last
observed index), with w = log y (when ``log``) or y, and lag s (the seasonal
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


def reference_index(origin, horizon, lag):
    """r(h) for h = 1..horizon (see the module docstring); (horizon,) ints."""
    h = np.arange(1, horizon + 1)
    if lag == 0:
        return np.full(horizon, origin)
    return origin + h - lag * np.ceil(h / lag).astype(np.int64)


@dataclass
class Scaling:
    """How one series is brought to the network's scale and back."""
    log: bool
    lag: int
    center: float
    spread: float
    scale: float

    @classmethod
    def fit(cls, y, log, lag):
        """Statistics of the training part y (N,) only."""
        if log and np.any(y <= 0):
            raise ValueError("log scaling needs positive values; found "
                             f"{int(np.sum(y <= 0))} value(s) <= 0 (use --no-log)")
        w = np.log(y) if log else np.asarray(y, np.float64)
        spread = float(np.std(w)) or 1.0
        scale = float(np.std(difference(w, lag))) if lag else spread
        return cls(log, lag, float(np.mean(w)), spread, scale or 1.0)

    def to_dict(self):
        return asdict(self)

    def warp(self, y):
        return np.log(y) if self.log else np.asarray(y, np.float64)

    def unwarp(self, w):
        return np.exp(w) if self.log else w

    def features(self, y, time, unit):
        """Inputs for every t (N, F): [dw, lv, calendar]; dw is 0 for t < lag."""
        w = self.warp(y)
        dw = np.zeros_like(w)
        if self.lag:
            dw[self.lag:] = difference(w, self.lag) / self.scale
        lv = (w - self.center) / self.spread
        return np.column_stack([dw, lv, calendar(time, unit)])

    def targets(self, y, origin, horizon):
        """z (horizon,) for the values y[origin+1 : origin+1+horizon]."""
        w = self.warp(y)
        future = w[origin + 1:origin + 1 + horizon]
        if self.lag == 0:
            return (future - self.center) / self.spread
        return (future - w[reference_index(origin, horizon, self.lag)]) / self.scale

    def invert(self, z, y_hist):
        """Values from targets: z (..., horizon) -> y (..., horizon), given the
        observed history y_hist (ending at the origin). Monotone in z."""
        horizon = z.shape[-1]
        if self.lag == 0:
            return self.unwarp(self.center + self.spread * z)
        w = self.warp(y_hist)
        ref = w[reference_index(len(w) - 1, horizon, self.lag)]
        return self.unwarp(ref + self.scale * z)
