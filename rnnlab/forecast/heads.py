"""Output heads of the forecasters: what the network's last K numbers per horizon
mean, the loss that trains them (forward and hand-written backward side by
side), the quantiles they predict and their split-conformal calibration.

Shapes: B batch, Hz horizon, K outputs per horizon, P = len(QUANTILES).

- ``point``    K = 1: the forecast, trained by mean squared error; no intervals.
- ``gaussian`` K = 2: mean mu and raw scale rho, sigma = softplus(rho) + SIGMA_MIN,
  trained by the Gaussian negative log-likelihood

      nll = log(2 pi) / 2 + log sigma + (y - mu)^2 / (2 sigma^2)
      d nll / d mu    = -(y - mu) / sigma^2
      d nll / d sigma = 1 / sigma - (y - mu)^2 / sigma^3
      d sigma / d rho = logistic(rho)

- ``quantile`` K = P: one output per level tau in QUANTILES, trained by the
  pinball loss rho_tau(u) = max(tau u, (tau - 1) u), u = y - q, whose derivative
  in q is -tau where u > 0 and 1 - tau where u < 0 (0 at the kink, a subgradient).

Every loss is the mean over all B * Hz (* P) terms.

Calibration (``scores``, ``factors``, ``widen``): split conformal
(Romano, Patterson & Candes 2019, conformalized quantile regression, in ratio
form), with N windows and V = len(LEVELS). The quantiles q are widened around
their median: q' = median + f (q - median), one factor f per horizon step and
level. A value y lies inside the widened central interval exactly when its score

    r = |y - median| / half,   half = upper - median if y >= median else median - lower

is at most f. So, given the scores r_1..r_n of n values the network was not
trained on, f = the ceil((n + 1) level)-th smallest of them gives the interval
coverage >= level on a new exchangeable value (and < level + 1 / (n + 1)).
Which values (``train.Forecaster``): the held-out training windows, scored by
weights that never trained on them, and, when the network forecasts from a later
origin without retraining, every target observed since the end of the training
part, from each window that forecast it, also from windows whose later targets
are not observed yet (NaN scores there): a forecast 6 months after training
already reads the misses of the last 6 months at steps 1..6, not only those of
windows 12 months old; nothing after the forecast origin.

Never narrower than the network's own quantiles (f >= FLOOR = 1): those are
fitted by the loss on the training windows, where errors are no larger than on
new data, so a factor below 1 can only come from the sampling error of a small,
serially dependent held-out set (12 overlapping windows span two years of
targets: one calm stretch would narrow every later interval).

Adaptive (``aci`` > 0, option ``--aci``): the level at which the scores are
read follows the misses of the calibration windows taken in time order
(adaptive conformal inference, ``aci``), so a stretch of misses just before the
origin widens the next interval beyond the split-conformal one, and calm narrows
it (never below FLOOR).

A combination of networks (``backtest.Combination`` with ``joint``) is
calibrated as one forecaster: the same factors, from the combination's own
quantiles on its members' calibration windows in the series' units, without
the floor (``floor=0``). Averaging members' quantiles keeps their widths while
the combined median errs less than each member's, so the combination's own
intervals are too wide by construction, and only a factor below 1 can
calibrate them.

Per horizon step: the error grows with the step, so each step gets its own
factor, from the scores of that step and its nearest neighbours: the band grows
by one step either side until it holds at least MIN_SCORES observed scores (with
12 held-out windows: steps h-2..h+2).
"""
import math

import numpy as np

# the 95% and 80% central intervals and the median
QUANTILES = (0.025, 0.1, 0.5, 0.9, 0.975)
# standard normal quantiles at QUANTILES (no SciPy in the core)
Z = np.array([-1.959963984540054, -1.2815515655446004, 0.0, 1.2815515655446004,
              1.959963984540054])
LEVELS = {0.8: (1, 3), 0.95: (0, 4)}          # interval -> (lower, upper) index in QUANTILES
MEDIAN = 2
SIGMA_MIN = 1e-3
HEADS = {"point": 1, "gaussian": 2, "quantile": len(QUANTILES)}


def softplus(x):
    return np.logaddexp(0.0, x)


def softplus_inv(s):
    """The rho with softplus(rho) = s > 0: s + log(1 - exp(-s))."""
    return s + np.log(-np.expm1(-s))


def logistic(x):
    return np.exp(-np.logaddexp(0.0, -x))


def gaussian_nll(out, y):
    """out (..., 2) = (mu, rho), y (...) -> (mean nll, dout (..., 2))."""
    mu, rho = out[..., 0], out[..., 1]
    sigma = softplus(rho) + SIGMA_MIN
    u = (y - mu) / sigma
    nll = 0.5 * np.log(2 * np.pi) + np.log(sigma) + 0.5 * u * u
    n = nll.size
    dout = np.empty_like(out)
    dout[..., 0] = -u / sigma / n
    dout[..., 1] = (1.0 / sigma - u * u / sigma) * logistic(rho) / n
    return float(nll.mean()), dout


def pinball(out, y, taus=QUANTILES):
    """out (..., P) quantile forecasts, y (...) -> (mean pinball loss, dout (..., P))."""
    tau = np.asarray(taus, dtype=out.dtype)
    u = y[..., None] - out                                    # (..., P)
    loss = np.maximum(tau * u, (tau - 1.0) * u)
    dout = np.where(u > 0, -tau, np.where(u < 0, 1.0 - tau, 0.0)) / loss.size
    return float(loss.mean()), dout


def squared_error(out, y):
    """out (..., 1), y (...) -> (mean squared error, dout (..., 1))."""
    diff = out[..., 0] - y
    return float(np.mean(diff * diff)), (2.0 / diff.size * diff)[..., None]


LOSSES = {"point": squared_error, "gaussian": gaussian_nll, "quantile": pinball}


def loss(head, out, y):
    """The head's training loss and its gradient: out (B, Hz, K), y (B, Hz)."""
    return LOSSES[head](out, y)


def quantiles(head, out, calibration=1.0):
    """Predicted quantiles at QUANTILES: out (..., K) -> (..., P), sorted along P.

    ``calibration`` (a number, one factor per level in QUANTILES (P,), or one per
    horizon step and level (Hz, P)) widens (> 1) or narrows the spread around the
    median (``widen``); for the point head every quantile is the forecast itself.
    """
    if head == "point":
        return np.repeat(out[..., :1], len(QUANTILES), axis=-1)
    if head == "gaussian":
        sigma = softplus(out[..., 1]) + SIGMA_MIN
        return widen(out[..., :1] + sigma[..., None] * Z, calibration)
    return widen(np.sort(out, axis=-1), calibration)          # no crossing quantiles


def widen(q, calibration):
    """q (..., P) sorted quantiles -> median + calibration * (q - median), the
    intervals then nested: each outer quantile at least as far from the median as
    every inner one. Factors are chosen per level, so a level's factor well above
    the next wider level's could put its end outside that level's (a network whose
    lower quantiles bunch up, as square roots clipped at zero do, crossed at 3 of
    288 steps of a sunspots backtest); the wider interval is then widened to it,
    which keeps every level's interval as calibrated or wider."""
    med = q[..., MEDIAN:MEDIAN + 1]
    w = med + np.asarray(calibration, dtype=np.float64) * (q - med)           # (..., P)
    lower = np.minimum.accumulate(w[..., MEDIAN::-1], axis=-1)[..., ::-1]      # median outwards
    upper = np.maximum.accumulate(w[..., MEDIAN:], axis=-1)
    return np.concatenate([lower, upper[..., 1:]], axis=-1)


# ---------------------------------------------------------------- calibration

MIN_SCORES = 40
FLOOR = 1.0


def scores(q, y):
    """Conformity scores (N, Hz, V) of targets y (N, Hz) under quantiles q (N, Hz, P)."""
    med = q[..., MEDIAN]
    out = []
    for lo, hi in LEVELS.values():
        half = np.where(y >= med, q[..., hi] - med, med - q[..., lo])
        out.append(np.abs(y - med) / np.maximum(half, 1e-12))
    return np.stack(out, axis=-1)


def conformal_quantile(r, level):
    """The ceil((n + 1) level)-th smallest of the n observed (not NaN) scores in r
    (the largest when n is too small for the level; 0 when there are none)."""
    r = np.sort(np.ravel(r)[~np.isnan(np.ravel(r))])
    if len(r) == 0:
        return 0.0
    return float(r[min(len(r) - 1, math.ceil((len(r) + 1) * level) - 1)])


def band(counts, h, min_scores=MIN_SCORES):
    """The horizon steps (lo, hi) pooled for step h: the narrowest symmetric band
    (clipped at the ends) holding at least ``min_scores`` scores, ``counts`` (Hz,)
    of them observed per step."""
    Hz, b = len(counts), 0
    while np.sum(counts[max(0, h - b):min(Hz, h + b + 1)]) < min_scores and b < Hz:
        b += 1
    return max(0, h - b), min(Hz, h + b + 1)


def factors(s, min_scores=MIN_SCORES, gamma=0.0, floor=FLOOR):
    """Widening factors (Hz, P) from scores s (N, Hz, V) of windows in time order
    (NaN: a target not observed yet), at least ``floor``; ones where N = 0.
    ``gamma`` > 0: the level is adapted (``aci``)."""
    N, Hz, _ = s.shape
    f = np.ones((Hz, len(QUANTILES)))
    if N == 0:
        return f
    counts = np.sum(~np.isnan(s[..., 0]), axis=0)                          # (Hz,)
    for h in range(Hz):
        lo_h, hi_h = band(counts, h, min_scores)
        for v, (level, (lo, hi)) in enumerate(LEVELS.items()):
            at = aci(s[:, lo_h:hi_h, v], s[:, h, v], level, gamma, min_scores)[0] \
                if gamma else level
            f[h, [lo, hi]] = max(floor, conformal_quantile(s[:, lo_h:hi_h, v], at))
    return f


def aci(pooled, own, level, gamma, min_scores=MIN_SCORES):
    """Adaptive conformal inference (Gibbs & Candes 2021) over the windows in time
    order: the miss rate alpha_t in use moves by gamma (alpha - err_t) after each
    window t whose own score is observed (not NaN), err_t = 1 when its own score
    ``own[t]`` exceeds the conformal quantile at level 1 - alpha_t of the ``pooled``
    (N, k) scores before it (never when alpha_t <= 0: the whole line; always when
    alpha_t >= 1: the empty set), so a run of misses raises the level and a calm
    stretch lowers it; over T updates the
    miss rate is within (max(alpha, 1 - alpha) + gamma) / (gamma T) of alpha, for
    any sequence. Starts once the windows before hold ``min_scores`` scores. Returns
    (the level for the next forecast, 1 - alpha_N clipped to [0, 1] (1: the
    largest score, not the whole line), err (T,))."""
    alpha = target = 1.0 - level
    err = []
    for t in range(max(1, -(-min_scores // pooled.shape[1])), len(own)):
        if np.isnan(own[t]):
            continue
        err.append(alpha >= 1.0 or (alpha > 0.0 and
                                    own[t] > conformal_quantile(pooled[:t], 1.0 - alpha)))
        alpha += gamma * (target - err[-1])
    return min(1.0, max(0.0, 1.0 - alpha)), np.array(err, dtype=bool)
