"""GRU cell (Cho et al. 2014), in PyTorch/cuDNN form by default.

Gate order r, z, n (reset, update, new) along the rows of weight_ih (3H, I) and
weight_hh (3H, H), as in ``torch.nn.GRU``.

Forward, ``reset_after=True`` (PyTorch, cuDNN, Keras' default): the reset gate
multiplies the recurrent product *after* it is taken::

    gx = x_t W_ih^T + b_ih,  gh = h_{t-1} W_hh^T + b_hh           (B, 3H)
    r = sigmoid(gx_r + gh_r);  z = sigmoid(gx_z + gh_z)
    n = tanh(gx_n + r * gh_n)
    h_t = (1 - z) * n + z * h_{t-1}

``reset_after=False`` (Cho et al. 2014 and the classic tutorial's GRU): the reset
gate multiplies h before the product, n = tanh(gx_n + (r * h_{t-1}) W_hn^T + b_hn).
Not expressible in torch.nn.GRU; the converters refuse it.

Backward, given dh_t::

    dn = dh_t (1 - z);  dz = dh_t (h_{t-1} - n);  da_n = dn (1 - n^2)
    reset_after:   dr = da_n * gh_n;   dgh = [da_r, da_z, r * da_n]
    reset_before:  d(rh) = da_n W_hn;  dr = d(rh) * h_{t-1};  dgh_n = da_n
    da_r = dr r (1 - r);  da_z = dz z (1 - z);  dgx = [da_r, da_z, da_n]
    dh_{t-1} = dh_t * z + dgh_rz W_h{r,z} + (r * da_n W_hn  |  r * d(rh))

The blend h_t = (1-z) n + z h_{t-1} passes the gradient straight through with
gain z: an update gate near 1 is the GRU's long-memory path.

Activations cached per step as one (B, 4H) record: r, z, n and, last, gh_n
(reset_after) or r * h_{t-1} (reset_before), which the weight gradient needs.
"""

import numpy as np

GATE_NAMES = ("r", "z", "n")  # row blocks of weight_ih / weight_hh, each H rows
GATES = len(GATE_NAMES)
KEEP_GATE = "z"               # the update gate: h_t = (1 - z) n + z h_{t-1}
STATE = ("h",)
OPTIONS = ("reset_after",)    # RNNConfig fields the step functions take
VARIANTS = {"gru": {"reset_after": True}, "gru-reset-before": {"reset_after": False}}


def fast_kernels():
    """The fused kernels of the fast path (reset_after=True only; see its ``supports``)."""
    from rnnlab.engine.fast import fused
    return fused.GRU


def act_width(hidden_size, **opts):
    return 4 * hidden_size


def _sigmoid(xp, a):
    return 1.0 / (1.0 + xp.exp(-a))


def step_forward(xp, p, gx, state, reset_after=True, **_):
    (h,) = state
    H = h.shape[-1]
    w_rz, w_n = p.w_hh[:2 * H], p.w_hh[2 * H:]
    b = p.b_hh
    ghrz = h @ w_rz.T + (b[:2 * H] if b is not None else 0.0)     # (B, 2H)
    r = _sigmoid(xp, gx[..., :H] + ghrz[..., :H])
    z = _sigmoid(xp, gx[..., H:2 * H] + ghrz[..., H:])
    rec = h if reset_after else r * h                             # what W_hn multiplies
    ghn = rec @ w_n.T + (b[2 * H:] if b is not None else 0.0)     # (B, H)
    n = xp.tanh(gx[..., 2 * H:] + (r * ghn if reset_after else ghn))
    h_new = (1.0 - z) * n + z * h
    last = ghn if reset_after else rec
    return (h_new,), xp.concat([r, z, n, last], axis=-1)          # (B, 4H)


def step_backward(xp, p, dstate, acts, prev, new, reset_after=True, **_):
    (dh,) = dstate
    (h,) = prev
    H = h.shape[-1]
    r, z, n, last = (acts[..., k * H:(k + 1) * H] for k in range(4))
    w_rz, w_n = p.w_hh[:2 * H], p.w_hh[2 * H:]
    dan = dh * (1.0 - z) * (1.0 - n * n)                          # (..., B, H)
    daz = dh * (h - n) * z * (1.0 - z)
    if reset_after:
        dghn = dan * r
        dr = dan * last                                           # last = gh_n
        dh_prev = dh * z + dghn @ w_n
    else:
        drh = dan @ w_n                                           # d(r * h)
        dghn = dan
        dr = drh * h
        dh_prev = dh * z + drh * r
    dar = dr * r * (1.0 - r)
    dgrz = xp.concat([dar, daz], axis=-1)                         # (..., B, 2H)
    dh_prev = dh_prev + dgrz @ w_rz
    return (xp.concat([dgrz, dan], axis=-1),                      # dgx (..., B, 3H)
            xp.concat([dgrz, dghn], axis=-1),                     # dgh (..., B, 3H)
            (dh_prev,))


def hh_grads(xp, dgh, h_prev, acts, reset_after=True, **_):
    """dW_hh (3H, H), db_hh (3H,) over N = T*B rows: one product per block.

    With reset_after the whole of W_hh multiplies h_{t-1}: one product. Without,
    W_hn multiplies r * h_{t-1} (cached as the last act block): a second one.
    """
    if reset_after:
        return dgh.T @ h_prev, xp.sum(dgh, axis=0)
    H = h_prev.shape[-1]
    rh = acts[:, 3 * H:]
    dw = xp.concat([dgh[:, :2 * H].T @ h_prev, dgh[:, 2 * H:].T @ rh], axis=0)
    return dw, xp.sum(dgh, axis=0)


def step_jacobian(w_hh, states, acts, reset_after=True, **_):
    """dh_s/dh_{s-1} with the gates' dependence on h included: (T, B, H, H), float64."""
    H = w_hh.shape[1]
    h = states[0][:-1]                                            # (T, B, H)
    r, z, n, last = (acts[..., k * H:(k + 1) * H] for k in range(4))
    wr, wz, wn = (w_hh[k * H:(k + 1) * H] for k in range(3))
    eye = np.eye(H)
    dr = (r * (1.0 - r))[..., None] * wr                          # (T, B, H, H)
    dz = (z * (1.0 - z))[..., None] * wz
    if reset_after:                                               # n = tanh(gx + r * (W_n h + b))
        da = last[..., None] * dr + r[..., None] * wn
    else:                                                         # n = tanh(gx + W_n (r * h) + b)
        da = wn @ (r[..., None] * eye + h[..., None] * dr)
    dn = (1.0 - n * n)[..., None] * da
    return z[..., None] * eye + (h - n)[..., None] * dz + (1.0 - z)[..., None] * dn
