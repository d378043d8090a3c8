"""LSTM cell (Hochreiter & Schmidhuber 1997, with forget gate; PyTorch layout).

Gate order i, f, g, o (input, forget, cell candidate, output), stacked along the
rows of weight_ih (4H, I) and weight_hh (4H, H), as in ``torch.nn.LSTM``.

Forward::

    a   = gx + h_{t-1} W_hh^T + b_hh,  gx = x_t W_ih^T + b_ih     (B, 4H)
    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
    c_t = f * c_{t-1} + i * g                                     (B, H)
    h_t = o * tanh(c_t)                                           (B, H)

Backward, given dh_t and dc_t (from step t+1)::

    dc   = dc_t + dh_t * o * (1 - tanh(c_t)^2)
    da_i = dc * g * i (1 - i)        da_f = dc * c_{t-1} * f (1 - f)
    da_g = dc * i * (1 - g^2)        da_o = dh_t * tanh(c_t) * o (1 - o)
    dc_{t-1} = dc * f                dh_{t-1} = da W_hh           (B, H)
    dgx = dgh = da                                                (B, 4H)

The cell path c_{t-1} -> c_t is scaled only by f: with f near 1 the gradient
travels far, which is why the LSTM remembers (and why a forget-gate bias helps).

Activations cached per step: (i, f, g, o) as one (B, 4H) record; c_t is state.
"""

import numpy as np

GATE_NAMES = ("i", "f", "g", "o")   # row blocks of weight_ih / weight_hh, each H rows
GATES = len(GATE_NAMES)
KEEP_GATE = "f"                     # the forget gate scales the cell path c_{t-1} -> c_t
STATE = ("h", "c")


def fast_kernels():
    """The fused kernels of the fast path (``rnnlab.engine.fast.fused``)."""
    from rnnlab.engine.fast import fused
    return fused.LSTM


def act_width(hidden_size, **opts):
    return 4 * hidden_size


def _sigmoid(xp, a):
    return 1.0 / (1.0 + xp.exp(-a))


def step_forward(xp, p, gx, state, **_):
    """One step. gx (B, 4H); state (h, c), each (B, H)."""
    h, c = state
    H = h.shape[-1]
    a = gx + h @ p.w_hh.T                                         # (B, 4H)
    if p.b_hh is not None:
        a = a + p.b_hh
    i = _sigmoid(xp, a[..., :H])
    f = _sigmoid(xp, a[..., H:2 * H])
    g = xp.tanh(a[..., 2 * H:3 * H])
    o = _sigmoid(xp, a[..., 3 * H:])
    c_new = f * c + i * g                                         # (B, H)
    h_new = o * xp.tanh(c_new)                                    # (B, H)
    return (h_new, c_new), xp.concat([i, f, g, o], axis=-1)       # (B, 4H)


def step_backward(xp, p, dstate, acts, prev, new, **_):
    """Backprop one step; dstate (dh, dc) may carry leading dims (K, B, H)."""
    dh, dc = dstate
    _, c_prev = prev
    _, c_new = new
    H = c_new.shape[-1]
    i, f, g, o = (acts[..., k * H:(k + 1) * H] for k in range(4))
    tc = xp.tanh(c_new)
    dc = dc + dh * o * (1.0 - tc * tc)
    da = xp.concat([dc * g * i * (1.0 - i),                       # (..., B, 4H)
                    dc * c_prev * f * (1.0 - f),
                    dc * i * (1.0 - g * g),
                    dh * tc * o * (1.0 - o)], axis=-1)
    return da, da, (da @ p.w_hh, dc * f)


def hh_grads(xp, dgh, h_prev, acts, **_):
    """dW_hh (4H, H) and db_hh (4H,), one product over all N = T*B rows."""
    return dgh.T @ h_prev, xp.sum(dgh, axis=0)


def _sig_d(s):
    return s * (1.0 - s)


def step_jacobian(w_hh, states, acts, **_):
    """d(h_s, c_s)/d(h_{s-1}, c_{s-1}) as (T, B, 2H, 2H), blocks [[hh, hc], [ch, cc]].

    The c -> c block is diag(f_s): the "constant error carousel". float64.
    """
    H = w_hh.shape[1]
    c_prev, c = states[1][:-1], states[1][1:]                     # (T, B, H)
    i, f, g, o = (acts[..., k * H:(k + 1) * H] for k in range(4))
    wi, wf, wg, wo = (w_hh[k * H:(k + 1) * H] for k in range(4))
    tc = np.tanh(c)
    dc_dh = ((g * _sig_d(i))[..., None] * wi + (c_prev * _sig_d(f))[..., None] * wf
             + (i * (1.0 - g * g))[..., None] * wg)               # (T, B, H, H)
    k = o * (1.0 - tc * tc)                                       # dh_s/dc_s, diagonal
    dh_dh = (tc * _sig_d(o))[..., None] * wo + k[..., None] * dc_dh
    eye = np.eye(H)
    top = np.concatenate([dh_dh, (k * f)[..., None] * eye], axis=-1)
    bottom = np.concatenate([dc_dh, f[..., None] * eye], axis=-1)
    return np.concatenate([top, bottom], axis=-2)                 # (T, B, 2H, 2H)
