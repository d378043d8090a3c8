"""Optimisers as pure functions over flat parameter dicts (JAX optimizers style).

An optimiser is a pair ``init(params) -> state`` and
``update(params, grads, state, lr) -> (params, state)``. State is a flat dict of
arrays keyed ``"<slot>/<param>"`` plus a step counter, so checkpoints store it in
an ``.npz`` like the parameters. ``lr`` is passed at every step so schedules stay
plain functions of the step or epoch.

A gradient may be a ``rnnlab.nn.RowGrad`` (an embedding's touched rows): the
norm, clipping and plain SGD use its rows only; every rule with per-row state
(momentum, Adam, RMSprop, Adagrad) expands it to the dense gradient first, so
each rule is the same whichever form the gradient comes in.
"""
from typing import Callable, NamedTuple

import numpy as np

from rnnlab.nn.functional import RowGrad, dense


class Optimizer(NamedTuple):
    name: str
    init: Callable
    update: Callable


def global_norm(grads):
    """sqrt(sum of squares over every gradient), accumulated in float64."""
    vals = (g.values if isinstance(g, RowGrad) else g for g in grads.values())
    return float(np.sqrt(sum(float(np.vdot(v, v)) for v in vals)))


def clip_by_global_norm(grads, max_norm):
    """Scale all gradients by min(1, max_norm / norm) (Pascanu et al. 2013).

    Returns (grads, norm_before, clipped). A non-finite norm is returned as is,
    with the gradients untouched, so the caller can report it.
    """
    norm = global_norm(grads)
    if max_norm is None or not np.isfinite(norm) or norm <= max_norm:
        return grads, norm, False
    scale = max_norm / (norm + 1e-12)
    return {k: g * g.dtype.type(scale) for k, g in grads.items()}, norm, True


def _slots(params, *names):
    state = {"step": np.zeros((), np.int64)}
    for n in names:
        state.update({f"{n}/{k}": np.zeros_like(v) for k, v in params.items()})
    return state


def sgd(momentum=0.0):
    """Plain SGD, or heavy-ball momentum: v = mu v + g; p -= lr v (as torch.optim.SGD
    with dampening 0: the first step moves by lr g)."""
    def init(params):
        return _slots(params, "velocity") if momentum else _slots(params)

    def update(params, grads, state, lr):
        new, st = {}, dict(state)
        for k, p in params.items():
            g = grads[k]
            if isinstance(g, RowGrad) and not momentum:
                new[k] = _sgd_rows(p, g, lr)
                continue
            g = dense(g)
            if momentum:
                g = momentum * state[f"velocity/{k}"] + g
                st[f"velocity/{k}"] = g
            step = g * p.dtype.type(-lr)                          # one temporary, then in place
            step += p
            new[k] = step
        st["step"] = state["step"] + 1
        return new, st
    return Optimizer("sgd", init, update)


def _sgd_rows(p, g, lr):
    """p - lr g for a RowGrad g: a copy of p with the touched rows moved, computed
    as the dense update computes them (g * -lr, then + p), so bit for bit equal."""
    new = p.copy()
    step = g.values * p.dtype.type(-lr)                           # (K, E)
    step += p[g.rows]
    new[g.rows] = step
    return new


def adam(beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam (Kingma & Ba 2015) with bias correction, eps outside the square root
    as torch.optim.Adam: p -= (lr / c1) m / (sqrt(v / c2) + eps)."""
    def init(params):
        return _slots(params, "m", "v")

    def update(params, grads, state, lr):
        st = dict(state)
        t = int(state["step"]) + 1
        c1, c2 = 1.0 - beta1 ** t, 1.0 - beta2 ** t
        new = {}
        for k, p in params.items():
            g = dense(grads[k])
            m = beta1 * state[f"m/{k}"] + (1 - beta1) * g
            v = beta2 * state[f"v/{k}"] + (1 - beta2) * g * g
            st[f"m/{k}"], st[f"v/{k}"] = m, v
            new[k] = p - (lr / c1) * m / (np.sqrt(v / c2) + eps)
        st["step"] = np.asarray(t, np.int64)
        return {k: v.astype(params[k].dtype) for k, v in new.items()}, st
    return Optimizer("adam", init, update)


def rmsprop(decay=0.9, eps=1e-8):
    """RMSprop (Tieleman & Hinton 2012): ms = decay ms + (1 - decay) g^2;
    p -= lr g / (sqrt(ms) + eps). eps outside the root, as torch.optim.RMSprop
    (whose ``alpha`` is our ``decay``; torch's default is 0.99, ours 0.9)."""
    def init(params):
        return _slots(params, "ms")

    def update(params, grads, state, lr):
        st, new = dict(state), {}
        for k, p in params.items():
            g = dense(grads[k])
            ms = decay * state[f"ms/{k}"] + (1 - decay) * g ** 2
            st[f"ms/{k}"] = ms
            new[k] = (p - lr * g / (np.sqrt(ms) + eps)).astype(p.dtype)
        st["step"] = state["step"] + 1
        return new, st
    return Optimizer("rmsprop", init, update)


def adagrad(eps=1e-10):
    """Adagrad (Duchi et al. 2011): s += g^2; p -= lr g / (sqrt(s) + eps), as
    torch.optim.Adagrad (eps outside the root, 1e-10; no lr decay)."""
    def init(params):
        return _slots(params, "sum_sq")

    def update(params, grads, state, lr):
        st, new = dict(state), {}
        for k, p in params.items():
            g = dense(grads[k])
            s = state[f"sum_sq/{k}"] + g ** 2
            st[f"sum_sq/{k}"] = s
            new[k] = (p - lr * g / (np.sqrt(s) + eps)).astype(p.dtype)
        st["step"] = state["step"] + 1
        return new, st
    return Optimizer("adagrad", init, update)


OPTIMIZERS = {"sgd": sgd, "adam": adam, "rmsprop": rmsprop, "adagrad": adagrad}


def make(name, **kwargs):
    """An optimiser by name: sgd | adam | rmsprop | adagrad."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name](**kwargs)
