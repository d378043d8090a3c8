"""Recurrent forecasters as pure functions, the backward right under the forward.

Shapes: L input window (lookback), B batch, F input features, C covariates of
the future steps, H hidden, Hz horizon, K outputs per horizon (see ``heads``).

``direct`` (many-to-one encoder, direct multi-horizon head):

    x (L, B, F) -> encoder RNN -> h_L (B, H) -> linear -> (B, Hz * K) -> (B, Hz, K)

``seq2seq`` (encoder-decoder rolling out the horizon): the decoder starts from
the encoder's final state and reads, at future step h, that step's calendar
covariates and h / Hz; a linear layer shared over the steps reads its output:

    x (L, B, F) -> encoder -> state -> decoder over xf (Hz, B, C + 1) -> (Hz, B, H)
                -> linear -> (Hz, B, K) -> (B, Hz, K)

The decoder's inputs are known in advance (no feedback of its own forecasts),
so training and forecasting run the same computation and intervals stay
calibrated along the horizon.

Optional linear highway (LSTNet, Lai et al. 2018): with ``ar = p > 0`` the last
p values of the first input feature (the differenced series) also reach every
output linearly, out += (x[:, -p:, 0] A^T) reshaped to (B, Hz, K), so the linear
(ARIMA-like) part of the forecast need not pass through the recurrent state.

Least-squares start (``fit_highway``): before training, the highway and the
head's bias are set to the least-squares fit of the targets on the highway's
inputs (ridge-regularised, one regression per horizon step), the quantile
outputs offset by the residuals' empirical quantiles and the Gaussian scale set
to their spread; the recurrent part's head weights start small as always. So
training starts at the linear (seasonal AR) forecast, which gradient descent on
the joint loss reaches only slowly and noisily, and the recurrent state learns
what the linear part misses.

Parameters: ``encoder.<torch name>``, ``decoder.<torch name>`` (seq2seq),
``head.weight``, ``head.bias``, ``ar.weight`` (Hz * K, p) when ar > 0.
"""
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from rnnlab import nn
from rnnlab.engine import layers
from rnnlab.forecast import heads


@dataclass(frozen=True)
class ForecastConfig:
    """Architecture of a forecaster (saved with every checkpoint)."""
    n_features: int                 # F, input features per step
    n_covariates: int = 0           # C, calendar covariates per future step
    horizon: int = 12               # Hz
    arch: str = "direct"            # "direct" | "seq2seq"
    mode: str = "gru"               # "rnn" | "lstm" | "gru"
    hidden_size: int = 32
    num_layers: int = 1
    head: str = "gaussian"          # "point" | "gaussian" | "quantile"
    ar: int = 0                     # p, inputs on the linear highway (0: none)

    def __post_init__(self):
        if self.arch not in ("direct", "seq2seq"):
            raise ValueError(f"--arch: expected direct or seq2seq, got {self.arch!r}")
        if self.head not in heads.HEADS:
            raise ValueError(f"--head: expected one of {', '.join(heads.HEADS)}, got {self.head!r}")
        self.encoder  # validates mode and sizes

    @property
    def K(self):
        return heads.HEADS[self.head]

    @property
    def encoder(self):
        return layers.RNNConfig(self.mode, self.n_features, self.hidden_size, self.num_layers)

    @property
    def decoder(self):
        return layers.RNNConfig(self.mode, self.n_covariates + 1, self.hidden_size,
                                self.num_layers)

    def to_dict(self):
        return asdict(self)


def param_shapes(cfg):
    shapes = {"encoder." + k: s for k, s in layers.param_shapes(cfg.encoder).items()}
    if cfg.arch == "seq2seq":
        shapes.update({"decoder." + k: s for k, s in layers.param_shapes(cfg.decoder).items()})
        shapes["head.weight"] = (cfg.K, cfg.hidden_size)
        shapes["head.bias"] = (cfg.K,)
    else:
        shapes["head.weight"] = (cfg.horizon * cfg.K, cfg.hidden_size)
        shapes["head.bias"] = (cfg.horizon * cfg.K,)
    if cfg.ar:
        shapes["ar.weight"] = (cfg.horizon * cfg.K, cfg.ar)
    return shapes


def init_params(cfg, rng=None):
    """torch.nn's U(-1/sqrt(H), 1/sqrt(H)) everywhere, float64; the head starts small
    so the first forecast is near the (seasonal) naive one (target 0)."""
    rng = np.random.default_rng(rng)
    k = 1.0 / np.sqrt(cfg.hidden_size)
    params = {n: rng.uniform(-k, k, s) for n, s in param_shapes(cfg).items()}
    params["head.weight"] *= 0.1
    params["head.bias"][:] = 0.0
    if cfg.ar:
        params["ar.weight"][:] = 0.0
    return params


RIDGE = 1e-3     # ridge penalty per window, relative to the inputs' mean square


def fit_highway(cfg, params, x, y):
    """Params with ``ar.weight`` and ``head.bias`` at the least-squares fit of the
    targets y (N, Hz) on the highway's inputs x[:, -p:, 0] and a constant, one
    regression per horizon step (seq2seq: one bias shared by the steps, so their
    mean intercept); the other params unchanged."""
    if not cfg.ar:
        return params
    N, Hz, p = len(y), cfg.horizon, cfg.ar
    X = np.concatenate([x[:, -p:, 0], np.ones((N, 1))], axis=1)            # (N, p+1)
    lam = RIDGE * N * max(float(np.mean(X[:, :p] ** 2)), 1e-12)
    reg = lam * np.eye(p + 1)
    reg[p, p] = 0.0                                                       # no penalty on the mean
    coef = np.linalg.solve(X.T @ X + reg, X.T @ y)                       # (p+1, Hz)
    resid = y - X @ coef                                                  # (N, Hz)
    slope, icpt = coef[:p].T, coef[p]                                     # (Hz, p), (Hz,)
    mean = 1 if cfg.head == "gaussian" else cfg.K     # outputs that carry the level
    bias = np.zeros((Hz, cfg.K))
    bias[:, :mean] = icpt[:, None]
    if cfg.head == "gaussian":
        spread = np.maximum(resid.std(axis=0), 2 * heads.SIGMA_MIN)
        bias[:, 1] = heads.softplus_inv(spread - heads.SIGMA_MIN)
    elif cfg.head == "quantile":
        bias += np.quantile(resid, heads.QUANTILES, axis=0).T            # (Hz, P)
    w = np.zeros((Hz, cfg.K, p))
    w[:, :mean] = slope[:, None, :]
    out = dict(params)
    out["ar.weight"] = w.reshape(Hz * cfg.K, p)
    out["head.bias"] = bias.reshape(-1) if cfg.arch == "direct" else bias.mean(axis=0)
    return out


def _sub(params, prefix):
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


def decoder_inputs(cov, horizon):
    """xf (Hz, B, C + 1): the future steps' covariates cov (B, Hz, C) and h / Hz."""
    B = cov.shape[0]
    step = np.broadcast_to((np.arange(1, horizon + 1) / horizon)[None, :, None], (B, horizon, 1))
    return np.concatenate([cov, step], axis=-1).transpose(1, 0, 2)


class Cache(NamedTuple):
    enc: object                # the encoder's layers cache
    dec: object                # the decoder's layers cache (seq2seq) or None
    h: np.ndarray              # what the head read: (B, H) direct, (Hz, B, H) seq2seq
    L: int
    x_ar: object = None        # (B, p) the highway's inputs, or None


def forward(cfg, params, x, cov):
    """x (B, L, F) past features, cov (B, Hz, C) future covariates ->
    out (B, Hz, K) and the cache for ``backward``."""
    out, cache = _recurrent_forward(cfg, params, x, cov)
    if cfg.ar:
        B = x.shape[0]
        out = out + (x[:, -cfg.ar:, 0] @ params["ar.weight"].T).reshape(B, cfg.horizon, cfg.K)
    return out, cache._replace(x_ar=x[:, -cfg.ar:, 0] if cfg.ar else None)


def _recurrent_forward(cfg, params, x, cov):
    xt = x.transpose(1, 0, 2)                                        # (L, B, F)
    out, h_n, enc = layers.forward(cfg.encoder, _sub(params, "encoder."), xt)
    B = x.shape[0]
    if cfg.arch == "direct":
        h = out[-1]                                                  # (B, H)
        y = nn.linear_forward(h, params["head.weight"], params["head.bias"])   # (B, Hz*K)
        return y.reshape(B, cfg.horizon, cfg.K), Cache(enc, None, h, xt.shape[0])
    hx = h_n[0] if len(h_n) == 1 else h_n
    xf = decoder_inputs(cov, cfg.horizon)                            # (Hz, B, C+1)
    h, _, dec = layers.forward(cfg.decoder, _sub(params, "decoder."), xf, hx)   # (Hz, B, H)
    y = nn.linear_forward(h, params["head.weight"], params["head.bias"])        # (Hz, B, K)
    return y.transpose(1, 0, 2), Cache(enc, dec, h, xt.shape[0])


def backward(cfg, params, cache, dout):
    """dout (B, Hz, K) = dL/d out -> grads with the params' keys."""
    grads = {}
    if cfg.ar:
        grads["ar.weight"] = dout.reshape(dout.shape[0], -1).T @ cache.x_ar     # (Hz*K, p)
    if cfg.arch == "direct":
        B = dout.shape[0]
        dh, grads["head.weight"], grads["head.bias"] = nn.linear_backward(
            dout.reshape(B, -1), cache.h, params["head.weight"])     # dh (B, H)
        denc_out = np.zeros((cache.L,) + dh.shape)                   # (L, B, H)
        denc_out[-1] = dh                                            # only h_L was read
        _, _, g = layers.backward(cfg.encoder, _sub(params, "encoder."), cache.enc, denc_out)
    else:
        dy = dout.transpose(1, 0, 2)                                 # (Hz, B, K)
        dh, grads["head.weight"], grads["head.bias"] = nn.linear_backward(
            dy, cache.h, params["head.weight"])                      # dh (Hz, B, H)
        _, dhx, gd = layers.backward(cfg.decoder, _sub(params, "decoder."), cache.dec, dh)
        grads.update({"decoder." + k: v for k, v in gd.items()})
        # the decoder's initial state is the encoder's final state
        _, _, g = layers.backward(cfg.encoder, _sub(params, "encoder."), cache.enc,
                                  None, dhx)
    grads.update({"encoder." + k: v for k, v in g.items()})
    return {k: grads[k] for k in params}


def loss_and_grads(cfg, params, x, cov, y):
    """The head's mean loss on targets y (B, Hz) and its gradient."""
    out, cache = forward(cfg, params, x, cov)
    value, dout = heads.loss(cfg.head, out, y)
    return value, backward(cfg, params, cache, dout)


def check_params(cfg, params):
    """Clear error when weights do not fit the architecture."""
    want = param_shapes(cfg)
    if set(want) != set(params) or any(tuple(params[k].shape) != s for k, s in want.items()):
        raise ValueError(f"weights do not match the architecture {cfg.to_dict()}")
