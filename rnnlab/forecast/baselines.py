"""The simple baselines (NumPy only) with Gaussian prediction intervals from their
one-step residuals (Hyndman & Athanasopoulos, FPP3, section 5.5):

    naive           f_h = y_T                          sigma_h = sigma sqrt(h)
    seasonal naive  f_h = y_{T+h-m(k+1)}, k = (h-1)//m  sigma_h = sigma sqrt(k + 1)
    drift           f_h = y_T + h (y_T - y_1)/(T - 1)  sigma_h = sigma sqrt(h (1 + h/(T - 1)))

sigma is the root mean square of the in-sample one-step residuals. A forecaster
is a function ``(y (T,), horizon, m) -> q (horizon, P)``: quantiles at
``heads.QUANTILES``, column ``heads.MEDIAN`` the point forecast.
"""
import numpy as np

from rnnlab.forecast import heads


def _gaussian(mean, sd):
    return mean[:, None] + sd[:, None] * heads.Z[None, :]


def naive(y, horizon, m):
    h = np.arange(1, horizon + 1)
    sigma = np.sqrt(np.mean(np.diff(y) ** 2))
    return _gaussian(np.full(horizon, y[-1]), sigma * np.sqrt(h))


def seasonal_naive(y, horizon, m):
    h = np.arange(1, horizon + 1)
    k = (h - 1) // m
    sigma = np.sqrt(np.mean((y[m:] - y[:-m]) ** 2))
    return _gaussian(y[len(y) - 1 + h - m * (k + 1)], sigma * np.sqrt(k + 1))


def drift(y, horizon, m):
    T, h = len(y), np.arange(1, horizon + 1)
    slope = (y[-1] - y[0]) / (T - 1)
    resid = np.diff(y) - slope
    sigma = np.sqrt(np.sum(resid ** 2) / max(T - 2, 1))
    return _gaussian(y[-1] + h * slope, sigma * np.sqrt(h * (1 + h / (T - 1))))


BASELINES = {"naive": naive, "snaive": seasonal_naive, "drift": drift}
