"""A test-only cell: the minimal gated unit, to prove that a cell is one module.

Nothing in rnnlab knows this cell. ``tests/test_new_cell.py`` registers it in
``CELLS`` for the duration of a test, and it then runs through the gradient
checker, the layer API (stacked, bidirectional, lengths), truncation and the
gradient-flow lab on the reference loop (it declares no ``fast_kernels``).
torch has no such cell, so there is no torch check.

Gates f (keep) and n (new), rows [f; n] of weight_ih (2H, I), weight_hh (2H, H)::

    a   = gx + h_{t-1} W_hh^T + b_hh                              (B, 2H)
    f   = sigmoid(a_f);  n = tanh(a_n)
    h_t = f * h_{t-1} + (1 - f) * n

Backward, given dh_t::

    da_f = dh_t (h_{t-1} - n) f (1 - f);   da_n = dh_t (1 - f) (1 - n^2)
    dh_{t-1} = dh_t * f + da W_hh;         dgx = dgh = da         (B, 2H)
"""
import numpy as np

GATE_NAMES = ("f", "n")
GATES = len(GATE_NAMES)
KEEP_GATE = "f"
STATE = ("h",)


def act_width(hidden_size, **opts):
    return 2 * hidden_size


def _sigmoid(xp, a):
    return 1.0 / (1.0 + xp.exp(-a))


def step_forward(xp, p, gx, state, **_):
    (h,) = state
    H = h.shape[-1]
    a = gx + h @ p.w_hh.T                                         # (B, 2H)
    if p.b_hh is not None:
        a = a + p.b_hh
    f, n = _sigmoid(xp, a[..., :H]), xp.tanh(a[..., H:])
    return (f * h + (1.0 - f) * n,), xp.concat([f, n], axis=-1)


def step_backward(xp, p, dstate, acts, prev, new, **_):
    (dh,) = dstate
    (h,) = prev
    H = h.shape[-1]
    f, n = acts[..., :H], acts[..., H:]
    da = xp.concat([dh * (h - n) * f * (1.0 - f), dh * (1.0 - f) * (1.0 - n * n)], axis=-1)
    return da, da, (dh * f + da @ p.w_hh,)


def hh_grads(xp, dgh, h_prev, acts, **_):
    return dgh.T @ h_prev, xp.sum(dgh, axis=0)


def step_jacobian(w_hh, states, acts, **_):
    """diag(f) + diag((h - n) f (1 - f)) W_f + diag((1 - f)(1 - n^2)) W_n: (T, B, H, H)."""
    H = w_hh.shape[1]
    h = states[0][:-1]
    f, n = acts[..., :H], acts[..., H:]
    return (f[..., None] * np.eye(H) + ((h - n) * f * (1.0 - f))[..., None] * w_hh[:H]
            + ((1.0 - f) * (1.0 - n * n))[..., None] * w_hh[H:])
