"""Initialisers: the starting weights that decide whether gradients survive BPTT.

Pure functions ``(config, params, rng) -> params`` over the flat parameter dict
(torch state_dict names); each returns a new dict and leaves its input alone,
so schemes compose: ``forget_bias(cfg, orthogonal(cfg, default(cfg, rng), rng))``.

- ``default``: U(-1/sqrt(H), 1/sqrt(H)) for every tensor, as ``torch.nn`` does.
- ``orthogonal``: each H x H gate block of every ``weight_hh`` is a random
  orthogonal matrix (Saxe et al. 2014): all singular values are 1, so the linear
  part of the step Jacobian neither shrinks nor grows a gradient.
- ``identity``: the IRNN of Le, Jaitly & Hinton 2015 ("A simple way to initialize
  recurrent networks of rectified linear units"): ReLU RNN with W_hh = I, zero
  biases and small input weights N(0, 0.001^2); at start h_t = h_{t-1} + relu
  input, so the gradient passes unchanged through every step.
- ``forget_bias``: the bias of the gate that keeps the old state: the LSTM's
  forget gate f (Gers et al. 2000; Jozefowicz et al. 2015 recommend b = 1) and
  the GRU's update gate z (h_t = (1 - z) n + z h_{t-1}). Its block of bias_ih is
  set to b and that of bias_hh to 0, so the total is b: the gate starts at
  sigmoid(b) ~ 0.73 instead of 0.5, and the state path loses less per step.
  The cell module names that gate (``KEEP_GATE``) and its rows (``GATE_NAMES``).

Shapes: H hidden, G = gates * H; weight_hh (G, H), bias_* (G,).
"""
import numpy as np

from rnnlab.engine import layers
from rnnlab.engine.cells import gate_rows

SCHEMES = ("default", "orthogonal", "identity")


def default(cfg, rng=None, dtype=np.float32):
    """torch.nn's initialisation (fresh parameters)."""
    return layers.init_params(cfg, rng, dtype)


def _random_orthogonal(rng, n):
    """Haar-distributed orthogonal (n, n): QR of a Gaussian, signs fixed by R's diagonal."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def orthogonal(cfg, params, rng=None, gain=1.0):
    """Every H x H gate block of every weight_hh replaced by gain * an orthogonal matrix."""
    rng = np.random.default_rng(rng)
    H, out = cfg.hidden_size, dict(params)
    for k, w in params.items():
        if k.startswith("weight_hh"):
            blocks = [_random_orthogonal(rng, H) for _ in range(w.shape[0] // H)]
            out[k] = (gain * np.concatenate(blocks, axis=0)).astype(w.dtype)   # (G, H)
    return out


def identity(cfg, params, rng=None, input_std=1e-3):
    """IRNN: W_hh = I, biases 0, W_ih ~ N(0, input_std^2). Needs a ReLU RNN."""
    if cfg.mode != "rnn" or cfg.nonlinearity != "relu":
        raise ValueError("identity (IRNN) initialisation is for mode='rnn' with "
                         f"nonlinearity='relu', got mode={cfg.mode!r}, "
                         f"nonlinearity={cfg.nonlinearity!r}")
    rng = np.random.default_rng(rng)
    out = {}
    for k, w in params.items():
        if k.startswith("weight_hh"):
            out[k] = np.eye(cfg.hidden_size, dtype=w.dtype)                   # (H, H)
        elif k.startswith("weight_ih"):
            out[k] = rng.normal(0.0, input_std, size=w.shape).astype(w.dtype)
        else:
            out[k] = np.zeros_like(w)
    return out


def forget_bias(cfg, params, value=1.0):
    """Keep-gate block (the cell's ``KEEP_GATE``: LSTM f, GRU z) of bias_ih = value,
    of bias_hh = 0 (total = value)."""
    if cfg.cell.KEEP_GATE is None:
        raise ValueError(f"forget_bias applies to cells with a gate that keeps the old state "
                         f"(LSTM forget gate, GRU update gate), got mode={cfg.mode!r}")
    if not cfg.bias:
        raise ValueError("forget_bias needs bias=True")
    rows, out = gate_rows(cfg.cell, cfg.cell.KEEP_GATE, cfg.hidden_size), dict(params)
    for k, b in params.items():
        if k.startswith("bias_"):
            b = b.copy()
            b[rows] = value if k.startswith("bias_ih") else 0.0
            out[k] = b
    return out


def initialize(cfg, scheme="default", rng=None, forget=None, dtype=np.float32):
    """Fresh parameters by scheme name (``SCHEMES``), then the keep-gate bias if given."""
    if scheme not in SCHEMES:
        raise ValueError(f"init must be one of {SCHEMES}, got {scheme!r}")
    rng = np.random.default_rng(rng)
    params = default(cfg, rng, dtype)
    if scheme == "orthogonal":
        params = orthogonal(cfg, params, rng)
    elif scheme == "identity":
        params = identity(cfg, params, rng)
    if forget is not None:
        params = forget_bias(cfg, params, forget)
    return params
