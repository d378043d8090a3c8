"""Split-conformal calibration of the networks' prediction intervals (Romano,
Patterson & Candes 2019, conformalized quantile regression, in ratio form).

Shapes: N windows, Hz horizon, P = len(heads.QUANTILES), V = len(heads.LEVELS).

The network's quantiles q are widened (or narrowed) around its median:
q' = median + f (q - median), one factor f per horizon step and level. A value
y lies inside the widened central interval exactly when its score

    r = |y - median| / half,   half = upper - median if y >= median else median - lower

is at most f. So, given the scores r_1..r_n of n values the network was not
trained on, f = the ceil((n + 1) level)-th smallest of them gives the interval
coverage >= level on a new exchangeable value (and < level + 1 / (n + 1)).

Which values: the held-out training windows (the last ``valid`` origins before
the end of the training part, never trained on by the weights that scored them)
and, when the network forecasts from a later origin o without retraining, every
window whose origin lies at or after the end of the training part and whose
targets are all observed by o. Nothing after the forecast origin is ever used.

Never narrower than the network's own quantiles (f >= 1): those are fitted by
the pinball (or Gaussian) loss on the training windows, where errors are no
larger than on new data, so a factor below 1 can only come from the sampling
error of a small, serially dependent held-out set (12 overlapping windows span
two years of targets: one calm stretch would narrow every later interval).

Per horizon step: the error grows with the step, so each step gets its own
factor, from the scores of that step and its nearest neighbours: the band
grows by one step either side until it holds at least ``MIN_SCORES`` scores
(with 12 held-out windows: steps h-2..h+2).
"""
import math

import numpy as np

from rnnlab.forecast import heads

MIN_SCORES = 40
FLOOR = 1.0


def scores(q, y):
    """Conformity scores (N, Hz, V) of targets y (N, Hz) under quantiles q (N, Hz, P)."""
    med = q[..., heads.MEDIAN]
    out = []
    for lo, hi in heads.LEVELS.values():
        half = np.where(y >= med, q[..., hi] - med, med - q[..., lo])
        out.append(np.abs(y - med) / np.maximum(half, 1e-12))
    return np.stack(out, axis=-1)


def conformal_quantile(r, level):
    """The ceil((n + 1) level)-th smallest of the scores r (n,) (the largest when
    n is too small for the level)."""
    r = np.sort(np.ravel(r))
    return float(r[min(len(r) - 1, math.ceil((len(r) + 1) * level) - 1)])


def band(N, Hz, h, min_scores=MIN_SCORES):
    """The horizon steps (lo, hi) pooled for step h: the narrowest symmetric band
    (clipped at the ends) holding at least ``min_scores`` of N windows' scores."""
    b = 0
    while N * (min(Hz, h + b + 1) - max(0, h - b)) < min_scores and b < Hz:
        b += 1
    return max(0, h - b), min(Hz, h + b + 1)


def factors(s, min_scores=MIN_SCORES):
    """Widening factors (Hz, P) from scores s (N, Hz, V), at least FLOOR; ones
    where N = 0."""
    N, Hz, _ = s.shape
    f = np.ones((Hz, len(heads.QUANTILES)))
    if N == 0:
        return f
    for h in range(Hz):
        lo_h, hi_h = band(N, Hz, h, min_scores)
        for v, (level, (lo, hi)) in enumerate(heads.LEVELS.items()):
            f[h, [lo, hi]] = max(FLOOR, conformal_quantile(s[:, lo_h:hi_h, v], level))
    return f
