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

``update(..., donate=True)`` is JAX's buffer donation: the caller gives up
params, grads and state, and plain SGD (with or without momentum) writes the
new values into their arrays instead of new ones (without momentum the
gradient itself is scaled into the step): the same numbers bit for bit,
without a copy of every weight (and of a whole embedding for its few touched
rows) per step. The trainer donates; a caller that keeps a reference
to the old params (to compare, to restore) must not. The other rules accept
the flag and return new arrays. ``clip_by_global_norm(..., donate=True)``
likewise scales the gradients in place.

Every ``update`` checks its arguments first (``_check_step``): ``lr`` a finite
number > 0, ``grads`` and ``state`` with exactly the params' names and shapes
(a gradient of another shape would broadcast: Adam turned a (16,) bias into
(16, 16)), the state made by this optimiser's ``init``. Dictionary work per
parameter, no pass over the arrays.
"""
from collections import Counter
from typing import Callable, NamedTuple

import numpy as np

from rnnlab.engine import validate
from rnnlab.nn.functional import RowGrad, dense


class Optimizer(NamedTuple):
    name: str
    init: Callable
    update: Callable


def _shapes(params):
    validate.check_dict("params", params)
    for k, v in params.items():
        if not hasattr(v, "shape"):
            raise ValueError(f"params[{k!r}] must be an array, got {type(v).__name__}")
    return {k: tuple(v.shape) for k, v in params.items()}


def _check_grads(grads, shapes=None):
    """A dict of float arrays (or RowGrads); with ``shapes``, exactly those names
    and shapes (the params')."""
    if shapes is not None:
        validate.check_names_shapes(shapes, grads, "grads", against="params")
    else:
        validate.check_dict("grads", grads)
    for k, g in grads.items():
        if not hasattr(g, "dtype"):
            raise ValueError(f"grads[{k!r}] must be an array, got {type(g).__name__}")
        if np.dtype(g.dtype).kind != "f":
            raise ValueError(f"grads[{k!r}] must be floats, got {g.dtype}")


def _check_step(name, slots, params, grads, state, lr, donate):
    """``update``'s arguments: see the module's docstring."""
    validate.check_number("lr", lr, lo=0, lo_open=True)
    validate.check_flag("donate", donate)
    shapes = _shapes(params)
    _check_grads(grads, shapes)
    want = {"step": (), **{f"{n}/{k}": s for n in slots for k, s in shapes.items()}}
    validate.check_names_shapes(want, state, "state",
                                against=f"what {name}'s init(params) makes for these params")


def global_norm(grads):
    """sqrt(sum of squares over every gradient), accumulated in float64."""
    vals = (g.values if isinstance(g, RowGrad) else g for g in grads.values())
    return float(np.sqrt(sum(float(np.vdot(v, v)) for v in vals)))


def clip_by_global_norm(grads, max_norm, donate=False):
    """Scale all gradients by min(1, max_norm / norm) (Pascanu et al. 2013).

    Returns (grads, norm_before, clipped). A non-finite norm is returned as is,
    with the gradients untouched, so the caller can report it. donate=True:
    the gradients are scaled in place (the caller gives them up).
    """
    validate.check_flag("donate", donate)
    if max_norm is not None:        # 0 zeroed every gradient, -1 reversed them, NaN made NaN
        validate.check_number("max_norm", max_norm, lo=0, lo_open=True,
                              note=", or None for no clipping")
    _check_grads(grads)             # integers: the scale was truncated to 0
    norm = global_norm(grads)
    if max_norm is None or not np.isfinite(norm) or norm <= max_norm:
        return grads, norm, False
    scale = max_norm / (norm + 1e-12)
    vals = [g.values if isinstance(g, RowGrad) else g for g in grads.values()]
    if donate and len(_writable(vals)) == len(vals):
        for v in vals:
            v *= v.dtype.type(scale)
        return grads, norm, True
    return {k: g * g.dtype.type(scale) for k, g in grads.items()}, norm, True


def _writable(arrays):
    """ids of the arrays that may be written in place: writable NumPy arrays that
    own their memory and appear once (a view, or an array under two names,
    may share memory with another entry, which would be written twice)."""
    arrays = list(arrays)
    count = Counter(map(id, arrays))
    return {id(a) for a in arrays if count[id(a)] == 1 and isinstance(a, np.ndarray)
            and a.flags.writeable and a.base is None}


def _slots(params, *names):
    state = {"step": np.zeros((), np.int64)}
    for n in names:
        state.update({f"{n}/{k}": np.zeros_like(v) for k, v in params.items()})
    return state


def sgd(momentum=0.0):
    """Plain SGD, or heavy-ball momentum: v = mu v + g; p -= lr v (as torch.optim.SGD
    with dampening 0: the first step moves by lr g)."""
    validate.check_number("momentum", momentum, lo=0, hi=1, hi_open=True)
    slots = ("velocity",) if momentum else ()

    def init(params):
        return _slots(params, *slots)

    def update(params, grads, state, lr, donate=False):
        _check_step("sgd" + (f"(momentum={momentum})" if momentum else ""), slots, params,
                    grads, state, lr, donate)
        new, st = {}, dict(state)
        mine = (_writable([*params.values(), *state.values(), *grads.values()]) if donate
                else set())
        for k, p in params.items():
            g = grads[k]
            own = id(p) in mine and g.dtype == p.dtype       # else the sum's dtype is g's
            if isinstance(g, RowGrad) and not momentum:
                new[k] = _sgd_rows(p, g, lr, own)
                continue
            g = dense(g)
            if momentum:
                v = state[f"velocity/{k}"]
                if own and id(v) in mine:                         # v = mu v + g, in place
                    v *= v.dtype.type(momentum)
                    v += g
                    g = v
                else:
                    g = momentum * v + g
                st[f"velocity/{k}"] = g
            if own and not momentum and id(g) in mine:            # the gradient is given up
                g *= p.dtype.type(-lr)                            # too: no temporary at all
                step = g
            else:
                step = g * p.dtype.type(-lr)                      # one temporary, then in place
            if own:
                p += step                                         # p + step: the same sum
                new[k] = p
            else:
                step += p
                new[k] = step
        st["step"] = state["step"] + 1
        return new, st
    return Optimizer("sgd", init, update)


def _sgd_rows(p, g, lr, in_place=False):
    """p - lr g for a RowGrad g: p (in place) or a copy of it with the touched rows
    moved, computed as the dense update computes them (g * -lr, then + p), so bit
    for bit equal."""
    new = p if in_place else p.copy()
    step = g.values * p.dtype.type(-lr)                           # (K, E)
    step += p[g.rows]
    new[g.rows] = step
    return new


def adam(beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam (Kingma & Ba 2015) with bias correction, eps outside the square root
    as torch.optim.Adam: p -= (lr / c1) m / (sqrt(v / c2) + eps)."""
    validate.check_number("beta1", beta1, lo=0, hi=1, hi_open=True)
    validate.check_number("beta2", beta2, lo=0, hi=1, hi_open=True)
    validate.check_number("eps", eps, lo=0)

    def init(params):
        return _slots(params, "m", "v")

    def update(params, grads, state, lr, donate=False):                # new arrays always
        _check_step("adam", ("m", "v"), params, grads, state, lr, donate)
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
    validate.check_number("decay", decay, lo=0, hi=1, hi_open=True)
    validate.check_number("eps", eps, lo=0)

    def init(params):
        return _slots(params, "ms")

    def update(params, grads, state, lr, donate=False):                # new arrays always
        _check_step("rmsprop", ("ms",), params, grads, state, lr, donate)
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
    validate.check_number("eps", eps, lo=0)

    def init(params):
        return _slots(params, "sum_sq")

    def update(params, grads, state, lr, donate=False):                # new arrays always
        _check_step("adagrad", ("sum_sq",), params, grads, state, lr, donate)
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
