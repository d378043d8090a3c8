"""Gradient checking, shipped with the package: is the hand-written BPTT right?

Three tools, from generic to specific:

- ``check_grads(f, inputs)``: elementwise central differences in float64 for
  any ``f(inputs) -> (loss, grads)``; exact per element, so for tiny sizes.
- ``check_directional(f, inputs)``: one random direction per tensor, the inner
  product <grad, v> against (L(x + eps v) - L(x - eps v)) / (2 eps); two loss
  evaluations per tensor, so cheap enough for large layers (as HIPS/autograd).
- ``check_layer(mode, ...)``: a float64 layer with fixed random weights and the
  "fake loss" L = sum(dout * output) + sum(dS_n * S_n) over every final state S,
  whose gradient is exactly what ``layers.backward(dout, dS_n)`` returns; every
  parameter, the input and the initial state(s) are checked.

Errors are normwise: rel = max|a - n| / max(max|a|, max|n|, tiny), so an element
that is tiny in both does not inflate the error, and an all-zero gradient
(e.g. the input past a row's length) checks as 0.

Truncated BPTT (``bptt_truncate=k``) is not the gradient of any function, so
finite differences cannot check it. ``truncated_reference`` is the brute force
instead: the classic tutorial's nested loop, which walks the loss at each step
t back on its own through steps t..t-k with the cells' step functions.

Shapes: T time, B batch, I input, H hidden, L layers, D directions, G gates*H.
"""
import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from rnnlab.engine import layers, validate
from rnnlab.engine.cells import CELLS
from rnnlab.engine.layers import as_hx

TINY = np.finfo(np.float64).tiny

__all__ = ["check_grads", "check_directional", "check_layer", "rel_error", "GradReport",
           "layer_case", "layer_loss", "case_reference", "truncated_reference",
           "variable_lengths", "variants"]


def rel_error(analytic, numeric):
    """Normwise relative error max|a - n| / max(max|a|, max|n|, tiny).

    >>> rel_error([1.0, 1e-12], [1.0, 2e-12])      # the tiny element barely counts
    1e-12
    >>> rel_error([0.0], [0.0])
    0.0
    """
    a, n = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    if a.shape != n.shape:          # broadcasting checked a (1,) gradient against (3,) as 0
        raise ValueError(f"analytic and numeric must have one shape, got {a.shape} and "
                         f"{n.shape}")
    if a.size == 0:
        return 0.0
    scale = max(np.max(np.abs(a)), np.max(np.abs(n)), TINY)
    return float(np.max(np.abs(a - n)) / scale)


# ---------------------------------------------------------------- generic checkers

def _as_float64(inputs):
    if not isinstance(inputs, dict):
        raise ValueError(f"inputs must be a dict of arrays, got {type(inputs).__name__}")
    return {k: np.array(v, dtype=np.float64) for k, v in inputs.items()}


def _analytic(f, inputs, eps):
    """f's gradients at inputs, one per input and of its shape (a ValueError
    naming the tensor otherwise, not a KeyError or a broadcast)."""
    validate.check_number("eps", eps, lo=0, lo_open=True)
    out = f(inputs)
    if not isinstance(out, (tuple, list)) or len(out) != 2 or not isinstance(out[1], dict):
        raise ValueError(f"f must return (loss, {{name: gradient}}), got {type(out).__name__}")
    grads = out[1]
    for k, x in inputs.items():
        if k not in grads:
            raise ValueError(f"f's gradients lack {k!r} (they hold {sorted(grads)})")
        if np.shape(grads[k]) != x.shape:
            raise ValueError(f"f's gradient for {k!r} has shape {np.shape(grads[k])}; "
                             f"expected {x.shape}, the input's")
    return grads


def _loss_at(f, inputs, name, value):
    """f's loss with inputs[name] replaced by value (the others untouched)."""
    return float(f({**inputs, name: value})[0])


def numeric_grad(f, inputs, name, eps=1e-6):
    """dL/d inputs[name] by central differences, one element at a time."""
    x = inputs[name]
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        grad[i] = (_loss_at(f, inputs, name, x + step)
                   - _loss_at(f, inputs, name, x - step)) / (2 * eps)
    return grad


def check_grads(f, inputs, eps=1e-6):
    """Elementwise check of ``f(inputs) -> (loss, grads)`` in float64.

    inputs: {name: array}; grads must hold the same names. Returns
    {name: relative error} (see ``rel_error``).
    """
    inputs = _as_float64(inputs)
    grads = _analytic(f, inputs, eps)
    return {k: rel_error(grads[k], numeric_grad(f, inputs, k, eps)) for k in inputs}


def check_directional(f, inputs, eps=1e-6, seed=0):
    """Directional check: per tensor, <grad, v> against the central difference
    of L along a random unit direction v. Returns {name: relative error}."""
    inputs = _as_float64(inputs)
    grads = _analytic(f, inputs, eps)
    rng = np.random.default_rng(seed)
    out = {}
    for k, x in inputs.items():
        v = rng.standard_normal(x.shape)
        v /= max(np.linalg.norm(v), TINY)
        numeric = (_loss_at(f, inputs, k, x + eps * v)
                   - _loss_at(f, inputs, k, x - eps * v)) / (2 * eps)
        out[k] = rel_error(np.vdot(np.asarray(grads[k], np.float64), v), numeric)
    return out


# ---------------------------------------------------------------- a layer's fake loss

class LayerCase(NamedTuple):
    """A float64 layer to check: what is differentiated and what is held fixed."""
    cfg: object        # layers.RNNConfig
    inputs: dict       # params by name, "input" (T, B, I), "h_0" (and "c_0") (L*D, B, H)
    upstream: dict     # "output" (T, B, D*H), "h_n" (and "c_n") (L*D, B, H)


def layer_case(cfg, T=4, B=2, seed=0):
    """Random weights, input, initial states and upstream gradients for cfg."""
    rng = np.random.default_rng(seed)
    LD, H = cfg.num_layers * cfg.num_directions, cfg.hidden_size
    inputs = layers.init_params(cfg, rng, np.float64)
    inputs["input"] = rng.standard_normal((T, B, cfg.input_size))
    upstream = {"output": rng.standard_normal((T, B, cfg.num_directions * H))}
    for name in cfg.cell.STATE:
        inputs[f"{name}_0"] = 0.5 * rng.standard_normal((LD, B, H))
        upstream[f"{name}_n"] = rng.standard_normal((LD, B, H))
    return LayerCase(cfg, inputs, upstream)


def _split(cfg, inputs):
    """inputs -> (params, x, initial states), the pieces ``layers.forward`` takes."""
    params = {k: inputs[k] for k in layers.param_shapes(cfg)}
    return params, inputs["input"], tuple(inputs[f"{n}_0"] for n in cfg.cell.STATE)


def _final_grads(cfg, upstream):
    return tuple(upstream[f"{n}_n"] for n in cfg.cell.STATE)


def layer_loss(cfg, inputs, upstream, lengths=None, bptt_truncate=None, dropout_seed=None):
    """The fake loss and rnnlab's analytic gradients for every entry of inputs.

    dropout_seed: None runs in eval mode; an int trains with dropout masks drawn
    from it, the same masks on every call, so the loss stays one fixed function.
    """
    params, x, state0 = _split(cfg, inputs)
    out, fin, cache = layers.forward(cfg, params, x, as_hx(state0), lengths,
                                     training=dropout_seed is not None, rng=dropout_seed)
    dfin = _final_grads(cfg, upstream)
    loss = np.sum(upstream["output"] * out) + sum(np.sum(d * s) for d, s in zip(dfin, fin))
    dx, dstate0, grads = layers.backward(cfg, params, cache, upstream["output"], dfin,
                                         bptt_truncate)
    grads["input"] = dx
    grads.update({f"{n}_0": d for n, d in zip(cfg.cell.STATE, dstate0)})
    return float(loss), grads


@dataclass
class GradReport:
    """Worst relative error per tensor; truthy when every one is within tol."""
    errors: dict           # tensor name -> relative error
    reference: str         # what the analytic gradient was compared with
    tol: float = 1e-7

    @property
    def passed(self):
        return all(e <= self.tol for e in self.errors.values())

    def __bool__(self):
        return self.passed


def _config(layer, nonlinearity, num_layers, bidirectional, reset_after, I, H):
    """A float64-checkable config: from a mode name, or an RNNConfig's architecture."""
    if isinstance(layer, layers.RNNConfig):
        return layers.RNNConfig(layer.mode, layer.input_size, layer.hidden_size,
                                layer.num_layers, layer.bias, False, 0.0, layer.bidirectional,
                                layer.nonlinearity, layer.reset_after)
    return layers.RNNConfig(layer, I, H, num_layers, bidirectional=bidirectional,
                            nonlinearity=nonlinearity, reset_after=reset_after)


def check_layer(layer="rnn", nonlinearity="tanh", num_layers=1, bidirectional=False,
                bptt_truncate=None, lengths=None, reset_after=True, T=4, B=2, I=3, H=3,
                seed=0, eps=1e-6, tol=1e-7, directional=False):
    """Check a layer's BPTT: every parameter, "input" and "h_0" (and "c_0").

    layer: "rnn" | "lstm" | "gru", or an RNNConfig (its architecture is used;
    I, H, nonlinearity, ... are then ignored). lengths: None or B integers.
    Full BPTT is compared with finite differences (elementwise, or one random
    direction per tensor with directional=True); bptt_truncate=k with
    ``truncated_reference``. Returns a GradReport.
    """
    validate.check_number("tol", tol, lo=0, lo_open=True)      # <= 0: every tensor fails
    validate.check_seed("seed", seed)
    cfg = _config(layer, nonlinearity, num_layers, bidirectional, reset_after, I, H)
    case = layer_case(cfg, T, B, seed)
    f = functools.partial(layer_loss, cfg, upstream=case.upstream, lengths=lengths,
                          bptt_truncate=bptt_truncate)
    if bptt_truncate is None:
        check = check_directional if directional else check_grads
        errors = check(f, case.inputs, eps)
        return GradReport(errors, "directional" if directional else "finite differences", tol)
    _, analytic = f(case.inputs)
    ref = case_reference(case, bptt_truncate, lengths)
    return GradReport({k: rel_error(analytic[k], ref[k]) for k in case.inputs},
                      "per-term reference", tol)


def case_reference(case, k, lengths=None):
    """``truncated_reference`` of a LayerCase: what check_layer compares with."""
    params, x, state0 = _split(case.cfg, case.inputs)
    return truncated_reference(case.cfg, params, x, state0, case.upstream["output"],
                               _final_grads(case.cfg, case.upstream), k, lengths)


def variants():
    """Every cell variant the engine offers, {label: RNNConfig keyword arguments}.

    Walks the cell registry, so a new cell module is enrolled in every test
    parametrised over this.
    """
    out = {}
    for mode, cell in CELLS.items():
        for label, opts in getattr(cell, "VARIANTS", {mode: {}}).items():
            out[label] = {"mode": mode, "nonlinearity": "tanh", "reset_after": True, **opts}
    return out


def variable_lengths(T, B, seed=0):
    """B lengths in 1..T, spread out and shuffled (the longest is T)."""
    lens = T - np.arange(B) % T                                     # T, T-1, ..., 1, T, ...
    return np.random.default_rng(seed).permutation(lens)


# ---------------------------------------------------------------- truncated BPTT, brute force

class _Run(NamedTuple):
    """One layer-direction's forward over one batch row, kept step by step."""
    p: object          # sequence.DirParams
    x: np.ndarray      # (n, 1, I_layer) its input, in processing order
    states: list       # n + 1 tuples of (1, H); [0] is the initial state
    acts: list         # n arrays (1, A): each step's cached activations


def _run_forward(cfg, p, x, state0):
    gx = x @ p.w_ih.T + (0.0 if p.b_ih is None else p.b_ih)      # (n, 1, G)
    states, acts = [state0], []
    for t in range(x.shape[0]):
        new, a = cfg.cell.step_forward(np, p, gx[t], states[-1], **cfg.cell_opts)
        states.append(new)
        acts.append(a)
    return _Run(p, x, states, acts)


def _step_grads(cfg, run, j, dgx, dgh, acc):
    """Add step j's share of dx and of the four parameter gradients into acc."""
    acc["input"][j] += dgx @ run.p.w_ih                          # (1, I_layer)
    acc["weight_ih"] += dgx.T @ run.x[j]                         # (G, I_layer)
    acc["bias_ih"] += dgx.sum(axis=0)                            # (G,)
    dw, db = cfg.cell.hh_grads(np, dgh, run.states[j][0], run.acts[j], **cfg.cell_opts)
    acc["weight_hh"] += dw                                       # (G, H)
    acc["bias_hh"] += db


def _walk_back(cfg, run, dout, dstate_n, k):
    """The tutorial's nested loop: the loss term of each step t on its own,
    back through steps t, t-1, ..., t-k (all the way with k=None).

    dout (n, 1, H); dstate_n: tuple of (1, H), joining the last step's term.
    Returns (acc of gradients, dstate0 tuple).
    """
    n, G = run.x.shape[0], run.p.w_hh.shape[0]
    acc = {"input": np.zeros_like(run.x), "weight_ih": np.zeros_like(run.p.w_ih),
           "weight_hh": np.zeros_like(run.p.w_hh), "bias_ih": np.zeros(G), "bias_hh": np.zeros(G)}
    dstate0 = [np.zeros_like(s) for s in run.states[0]]
    for t in reversed(range(n)):
        d = tuple(ds if t == n - 1 else np.zeros_like(ds) for ds in dstate_n)
        d = (d[0] + dout[t],) + d[1:]                             # dL_t/d(state_t)
        lo = 0 if k is None else max(0, t - k)
        for j in range(t, lo - 1, -1):
            dgx, dgh, d = cfg.cell.step_backward(np, run.p, d, run.acts[j], run.states[j],
                                                 run.states[j + 1], **cfg.cell_opts)
            _step_grads(cfg, run, j, dgx, dgh, acc)
        if lo == 0:                       # this term walked all the way to the initial state
            dstate0 = [a + b for a, b in zip(dstate0, d)]
    return acc, tuple(dstate0)


def _row_forward(cfg, params, x, state0):
    """Forward one row (every step valid) through the stack: {(layer, d): _Run}."""
    D, runs, layer_in = cfg.num_directions, {}, x
    for layer in range(cfg.num_layers):
        outs = []
        for d in range(D):
            p = layers.dir_params(params, cfg, layer, d)
            xin = layer_in[::-1] if d else layer_in              # reverse reads time backwards
            run = runs[layer, d] = _run_forward(cfg, p, xin, tuple(s[layer * D + d] for s in state0))
            h = np.stack([s[0] for s in run.states[1:]])          # (n, 1, H)
            outs.append(h[::-1] if d else h)
        layer_in = np.concatenate(outs, axis=-1)                  # (n, 1, D*H)
    return runs


def _row_backward(cfg, runs, dout, dstate_n, k):
    """Truncated backward of one row: (grads by name, dx (n, 1, I), dstate0 tuple)."""
    D, H = cfg.num_directions, cfg.hidden_size
    grads, ds0, dy = {}, {}, dout
    for layer in reversed(range(cfg.num_layers)):
        dx = 0.0
        for d in range(D):
            g = dy[..., d * H:(d + 1) * H]                        # (n, 1, H)
            acc, ds0[layer * D + d] = _walk_back(cfg, runs[layer, d], g[::-1] if d else g,
                                                 tuple(s[layer * D + d] for s in dstate_n), k)
            dx = dx + (acc.pop("input")[::-1] if d else acc.pop("input"))
            sfx = layers.suffix(layer, d)
            grads.update({name + sfx: v for name, v in acc.items()})
        dy = dx
    dstate0 = tuple(np.stack([ds0[i][s] for i in range(len(ds0))]) for s in range(len(dstate_n)))
    return grads, dy, dstate0


def truncated_reference(cfg, params, x, hx, doutput, dh_n, k, lengths=None):
    """Brute-force per-term truncated BPTT (k=None: full BPTT), one row at a time.

    Each layer sees the gradient arriving at its output, and the loss term of
    step t reaches steps t-k..t of that layer only; a term reaches the initial
    state only if it walked back to step 0. Time-major, no dropout.
    x (T, B, I); hx and dh_n: tuples of (L*D, B, H); doutput (T, B, D*H);
    lengths: None or B integers. Returns {parameter names, "input", "h_0"[, "c_0"]}.
    """
    T, B, _ = x.shape
    out = {name: np.zeros_like(v) for name, v in params.items()}
    out["input"] = np.zeros_like(x)
    names = [f"{n}_0" for n in cfg.cell.STATE]
    out.update({name: np.zeros_like(s) for name, s in zip(names, hx)})
    for b, n in enumerate([T] * B if lengths is None else [int(v) for v in lengths]):
        runs = _row_forward(cfg, params, x[:n, b:b + 1], tuple(s[:, b:b + 1] for s in hx))
        grads, dx, ds0 = _row_backward(cfg, runs, doutput[:n, b:b + 1],
                                       tuple(d[:, b:b + 1] for d in dh_n), k)
        for name in params:
            out[name] += grads[name]
        out["input"][:n, b:b + 1] = dx
        for name, s in zip(names, ds0):
            out[name][:, b:b + 1] = s
    return out
