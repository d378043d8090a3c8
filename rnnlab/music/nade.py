"""NADE output: the 88 notes of a frame modelled jointly, one after another.

RNN-NADE (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012): at every time
step a NADE (Larochelle & Murray 2011) gives the frame's exact probability as a
product over the pitches in ascending order,

    p(v) = prod_i p(v_i | v_<i),   p(v_i = 1 | v_<i) = s(b_i + V_i . h_i),
    h_i = s(a_i),   a_i = c + sum_{j<i} W[:, j] v_j,

with s the logistic sigmoid. The biases b (D,) and c (Hn,) come from the
recurrent state (``model.py``); W (Hn, D) and V (D, Hn) are shared by every
frame. Rows: N frames, D = 88 pitches, Hn NADE hidden units.

Backward, from dL/d(nll_n) = g_n (the loss is sum_n g_n nll_n):

    dlogit_ni = g_n (s(logit_ni) - v_ni)              db = dlogit
    dV_i      = sum_n dlogit_ni h_ni                  dh_ni = dlogit_ni V_i
    da_ni     = dh_ni * h_ni * (1 - h_ni)             dc_n = sum_i da_ni
    dW[:, j]  = sum_n v_nj sum_{i>j} da_ni            (a reverse cumulative sum over i)
"""
from typing import NamedTuple

import numpy as np

from rnnlab.nn import sigmoid


class NadeCache(NamedTuple):
    v: np.ndarray          # (D, N) the frames' notes, pitch-major
    h: np.ndarray          # (D, N, Hn) hidden activations, one per pitch
    logits: np.ndarray     # (N, D)


def _sigmoid_inplace(a):
    """s(a) = (1 + tanh(a / 2)) / 2, in place: one transcendental, never overflows."""
    a *= 0.5
    np.tanh(a, out=a)
    a += 1.0
    a *= 0.5
    return a


def nade_forward(b, c, W, V, v):
    """Per-row NLL (N,) of frames v (N, D) given biases b (N, D), c (N, Hn).

    Pitch-major inside, (D, N, Hn), so the running sum over pitches adds whole
    contiguous (N, Hn) slabs and the per-pitch products are batched matmuls.
    """
    vt = np.ascontiguousarray(v.T, dtype=b.dtype)                 # (D, N)
    contrib = vt[:, :, None] * W.T[:, None, :]                    # (D, N, Hn): W[:, j] v_j
    h = np.empty_like(contrib)
    h[0] = c
    for i in range(1, len(h)):                                    # a_i = a_{i-1} + W[:, i-1] v_{i-1}
        np.add(h[i - 1], contrib[i - 1], out=h[i])                # (numpy's cumsum: 20x slower)
    _sigmoid_inplace(h)                                           # (D, N, Hn)
    logits = b + np.matmul(h, V[:, :, None])[..., 0].T            # (N, D)
    y = vt.T
    nll = (np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))).sum(1)
    return nll, NadeCache(vt, h, logits)


def nade_backward(cache, W, V, g):
    """Gradients (db (N, D), dc (N, Hn), dW (Hn, D), dV (D, Hn)) of sum_n g_n nll_n."""
    vt, h = cache.v, cache.h
    dlogits = (sigmoid(cache.logits) - vt.T) * g[:, None]        # (N, D)
    dlt = np.ascontiguousarray(dlogits.T)                         # (D, N)
    dV = np.matmul(dlt[:, None, :], h)[:, 0]                      # (D, Hn)
    da = dlt[:, :, None] * V[:, None, :]                          # (D, N, Hn): dh
    da *= h
    da -= da * h                                                  # dh * h * (1 - h)
    dc = da.sum(axis=0)                                           # (N, Hn)
    after = np.empty_like(da)                                     # sum over i > j
    after[-1] = 0
    for j in range(len(da) - 2, -1, -1):
        np.add(after[j + 1], da[j + 1], out=after[j])
    dW = np.matmul(vt[:, None, :], after)[:, 0].T                 # (Hn, D)
    return dlogits, dc, dW, dV


def nade_sample(b, c, W, V, rng=None, temperature=1.0, greedy=False):
    """Frames (N, D) bool drawn pitch by pitch (or the 0.5-threshold greedy pass)."""
    N, D = b.shape
    a = c.copy()                                                  # (N, Hn)
    v = np.zeros((N, D), dtype=bool)
    for i in range(D):
        logit = b[:, i] + sigmoid(a) @ V[i]                       # (N,)
        p = sigmoid(logit / temperature)
        v[:, i] = p >= 0.5 if greedy else rng.random(N) < p
        a += np.outer(v[:, i], W[:, i])
    return v
