"""Attention over a set of keys (encoder states, image regions), forward and backward.

Shapes: B batch, S keys per row (source positions, grid cells), Hq query size,
Hk key size, A attention size. ``mask`` (B, S) is True at real keys; padding gets
weight exactly 0 and no gradient.

Scores ``s_j`` for a query ``q`` (B, Hq) and keys ``k_j`` (B, S, Hk):

    additive (Bahdanau et al. 2015):  s_j = v . tanh(W_q q + W_k k_j)
    dot      (Luong et al. 2015):     s_j = q . k_j                  (Hq == Hk)
    general  (Luong et al. 2015):     s_j = q . (W_a k_j)

    a = softmax over the real j of s;   context c = sum_j a_j k_j    (B, Hk)

The key projection (``W_k k`` or ``W_a k``) does not depend on the query, so a
decoder computes it once per sequence with ``project_keys`` and passes it to
``forward`` at every step; the per-step backward returns its gradient ``dpk``,
which the decoder sums over steps and sends through ``project_keys_backward``
once. Backward, with dc the upstream gradient:

    da_j = dc . k_j;   ds_j = a_j (da_j - sum_i a_i da_i);   dk_j += a_j dc
    additive: e = tanh(W_q q + pk_j);  dv = sum ds_j e_j;  dz_j = ds_j v (1 - e_j^2)
              dpk_j = dz_j;  dW_q = (sum_j dz_j)^T q;  dq = (sum_j dz_j) W_q
    dot / general: dq = sum_j ds_j pk_j;  dpk_j = ds_j q

Parameter names (prefix ``attention.`` by default): additive ``query.weight``
(A, Hq), ``key.weight`` (A, Hk), ``energy.weight`` (A,); general ``key.weight``
(Hq, Hk); dot none.
"""
from typing import NamedTuple

import numpy as np

KINDS = ("additive", "dot", "general")


def init_params(kind, Hq, Hk, A=None, rng=None, dtype=np.float32, prefix="attention."):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights for ``kind``, as torch.nn.Linear."""
    rng = np.random.default_rng(rng)
    u = lambda shape, fan: rng.uniform(-fan ** -0.5, fan ** -0.5, shape).astype(dtype)
    if kind == "additive":
        A = A or Hq
        return {prefix + "query.weight": u((A, Hq), Hq), prefix + "key.weight": u((A, Hk), Hk),
                prefix + "energy.weight": u((A,), A)}
    if kind == "general":
        return {prefix + "key.weight": u((Hq, Hk), Hk)}
    if kind == "dot":
        if Hq != Hk:
            raise ValueError(f"dot attention needs query size == key size, got {Hq} and {Hk}")
        return {}
    raise ValueError(f"attention kind must be one of {KINDS}, got {kind!r}")


def project_keys(kind, params, keys, prefix="attention."):
    """pk: (B, S, A) additive, (B, S, Hq) general, the keys themselves for dot."""
    if kind == "dot":
        return keys
    B, S, Hk = keys.shape
    W = params[prefix + "key.weight"]                                  # (A or Hq, Hk)
    return (keys.reshape(B * S, Hk) @ W.T).reshape(B, S, W.shape[0])


def project_keys_backward(kind, params, keys, dpk, prefix="attention."):
    """(dkeys (B, S, Hk), grads) for the summed dpk of every step."""
    if kind == "dot":
        return dpk, {}
    B, S, Hk = keys.shape
    W = params[prefix + "key.weight"]
    d2 = dpk.reshape(B * S, W.shape[0])
    return (d2 @ W).reshape(B, S, Hk), {prefix + "key.weight": d2.T @ keys.reshape(B * S, Hk)}


class Cache(NamedTuple):
    q: np.ndarray          # (B, Hq) query
    keys: np.ndarray       # (B, S, Hk)
    pk: np.ndarray         # (B, S, ·) projected keys
    a: np.ndarray          # (B, S) weights
    e: object              # (B, S, A) tanh energies (additive) or None


def _masked_softmax(s, mask):
    if mask is not None:
        if not mask.any(axis=1).all():
            raise ValueError("attention mask: every row needs at least one real key")
        s = np.where(mask, s, -np.inf)
    s = s - s.max(axis=1, keepdims=True)
    a = np.exp(s)                                                      # exp(-inf) = 0 at padding
    return a / a.sum(axis=1, keepdims=True)


def forward(kind, params, q, keys, pk, mask=None, prefix="attention."):
    """(context (B, Hk), weights (B, S), cache) for queries q (B, Hq)."""
    e = None
    if kind == "additive":
        qp = q @ params[prefix + "query.weight"].T                    # (B, A)
        e = np.tanh(pk + qp[:, None, :])                               # (B, S, A)
        s = e @ params[prefix + "energy.weight"]                       # (B, S)
    else:
        s = np.einsum("bsh,bh->bs", pk, q)                             # (B, S)
    a = _masked_softmax(s, mask)
    ctx = np.einsum("bs,bsh->bh", a, keys)                             # (B, Hk)
    return ctx, a, Cache(q, keys, pk, a, e)


def backward(kind, params, cache, dctx, prefix="attention."):
    """(dq (B, Hq), dkeys (B, S, Hk) direct part, dpk, grads) for dctx (B, Hk)."""
    q, keys, pk, a, e = cache
    dkeys = a[:, :, None] * dctx[:, None, :]                           # (B, S, Hk)
    da = np.einsum("bsh,bh->bs", keys, dctx)                           # (B, S)
    ds = a * (da - (a * da).sum(axis=1, keepdims=True))                # (B, S); 0 at padding
    grads = {}
    if kind == "additive":
        v, Wq = params[prefix + "energy.weight"], params[prefix + "query.weight"]
        grads[prefix + "energy.weight"] = np.einsum("bs,bsa->a", ds, e)
        dz = ds[:, :, None] * v * (1.0 - e * e)                        # (B, S, A)
        dqp = dz.sum(axis=1)                                           # (B, A)
        grads[prefix + "query.weight"] = dqp.T @ q
        return dqp @ Wq, dkeys, dz, grads
    dq = np.einsum("bs,bsh->bh", ds, pk)                               # (B, Hq)
    return dq, dkeys, ds[:, :, None] * q[:, None, :], grads
