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
    v: np.ndarray          # (N, D) the frame's notes
    h: np.ndarray          # (N, D, Hn) hidden activations, one per pitch
    logits: np.ndarray     # (N, D)


def nade_forward(b, c, W, V, v):
    """Per-row NLL (N,) of frames v (N, D) given biases b (N, D), c (N, Hn)."""
    v = v.astype(b.dtype)
    N, D = v.shape
    contrib = v[:, :, None] * W.T[None]                           # (N, D, Hn): W[:, j] v_j
    a = np.empty_like(contrib)
    a[:, 0] = c
    np.cumsum(contrib[:, :-1], axis=1, out=a[:, 1:])              # sum over j < i
    a[:, 1:] += c[:, None, :]
    h = sigmoid(a)                                                # (N, D, Hn)
    logits = b + np.einsum("ndh,dh->nd", h, V)                    # (N, D)
    nll = (np.maximum(logits, 0) - logits * v + np.log1p(np.exp(-np.abs(logits)))).sum(1)
    return nll, NadeCache(v, h, logits)


def nade_backward(cache, W, V, g):
    """Gradients (db (N, D), dc (N, Hn), dW (Hn, D), dV (D, Hn)) of sum_n g_n nll_n."""
    v, h = cache.v, cache.h
    dlogits = (sigmoid(cache.logits) - v) * g[:, None]            # (N, D)
    dV = np.matmul(dlogits.T[:, None, :], h.transpose(1, 0, 2))[:, 0]   # (D, Hn)
    da = dlogits[:, :, None] * V[None]                            # (N, D, Hn): dh
    da *= h * (1 - h)                                             # through the sigmoid
    dc = da.sum(axis=1)                                           # (N, Hn)
    after = np.zeros_like(da)                                     # sum over i > j
    np.cumsum(da[:, :0:-1], axis=1, out=after[:, -2::-1])
    dW = np.einsum("nd,ndh->hd", v, after)                        # (Hn, D)
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
