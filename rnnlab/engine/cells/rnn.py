"""Elman RNN cell: the simplest recurrence, and the one whose gradient vanishes.

Shapes: B batch, H hidden, I input. ``gx`` is the input projection of one step,
already computed for all steps at once by the sequence engine.

Forward (f = tanh | relu | sigmoid)::

    gx  = x_t W_ih^T + b_ih                                   (B, H)
    h_t = f(gx + h_{t-1} W_hh^T + b_hh)                       (B, H)

Backward, given dh_t = dL/dh_t (from the output at t and from step t+1)::

    da        = dh_t * f'(a)    with f' read off the output:  (B, H)
                tanh: 1 - h_t^2,  sigmoid: h_t (1 - h_t),  relu: [h_t > 0]
    dgx = dgh = da                                          (B, H)
    dh_{t-1}  = da W_hh                                       (B, H)
    dW_hh    += da^T h_{t-1};  dW_ih += da^T x_t;  db_ih = db_hh += sum_B da

The Jacobian of one step, dh_t/dh_{t-1} = diag(f'(a)) W_hh, is what shrinks or
grows the gradient as it travels back in time (Pascanu et al. 2013).

Parameters as ``torch.nn.RNN``: weight_ih (H, I), weight_hh (H, H), bias_ih (H,),
bias_hh (H,). Activations cached: none (h_t itself gives f').
"""

import numpy as np

GATE_NAMES = ("a",)         # row blocks of weight_ih / weight_hh, each H rows
GATES = len(GATE_NAMES)     # rows in units of H
KEEP_GATE = None            # no gate keeps the old state
STATE = ("h",)              # names of the recurrent state tensors
NONLINEARITIES = ("tanh", "relu", "sigmoid")
OPTIONS = ("nonlinearity",)  # RNNConfig fields the step functions take
VARIANTS = {f"rnn-{nl}": {"nonlinearity": nl} for nl in NONLINEARITIES}  # each its own backward
MAX_SLOPE = {"tanh": 1.0, "relu": 1.0, "sigmoid": 0.25}   # gamma = max f', for the bound


def fast_kernels():
    """The fused kernels of the fast path (``rnnlab.engine.fast.fused``)."""
    from rnnlab.engine.fast import fused
    return fused.RNN


def max_slope(nonlinearity="tanh", **_):
    """gamma = max f': ||J_s|| <= gamma sigma_max(W_hh) (Pascanu et al. 2013)."""
    return MAX_SLOPE[nonlinearity]


def act_width(hidden_size, **opts):
    """Width of the per-step activation record (nothing beyond h for RNN)."""
    return 0


def _f(xp, a, nonlinearity):
    if nonlinearity == "tanh":
        return xp.tanh(a)
    if nonlinearity == "relu":
        return xp.maximum(a, xp.zeros_like(a))
    return 1.0 / (1.0 + xp.exp(-a))                              # sigmoid


def _df(xp, h, nonlinearity):
    """f'(a) from the output h = f(a)."""
    if nonlinearity == "tanh":
        return 1.0 - h * h
    if nonlinearity == "relu":
        return xp.astype(h > 0, h.dtype)
    return h * (1.0 - h)


def step_forward(xp, p, gx, state, nonlinearity="tanh", **_):
    """One step. p: w_hh (H, H), b_hh (H,) or None; gx (B, H); state (h,)."""
    (h,) = state
    a = gx + h @ p.w_hh.T                                         # (B, H)
    if p.b_hh is not None:
        a = a + p.b_hh
    h_new = _f(xp, a, nonlinearity)
    return (h_new,), h_new[..., :0]                               # no extra acts


def step_backward(xp, p, dstate, acts, prev, new, nonlinearity="tanh", **_):
    """Backprop one step. dstate (dh_t,) may carry leading dims (K, B, H)."""
    (dh,) = dstate
    (h_new,) = new
    da = dh * _df(xp, h_new, nonlinearity)                        # (..., B, H)
    dh_prev = da @ p.w_hh                                         # (..., B, H)
    return da, da, (dh_prev,)


def hh_grads(xp, dgh, h_prev, acts, **_):
    """dW_hh, db_hh as one product over all steps: dgh (N, H), h_prev (N, H)."""
    return dgh.T @ h_prev, xp.sum(dgh, axis=0)


def step_jacobian(w_hh, states, acts, nonlinearity="tanh", **_):
    """dh_s/dh_{s-1} = diag(f'(a_s)) W_hh for every step, float64: (T, B, H, H)."""
    h = states[0][1:]                                             # (T, B, H)
    fp = _df(np, h, nonlinearity)                                 # (T, B, H)
    return fp[..., :, None] * w_hh                                # (T, B, H, H)
