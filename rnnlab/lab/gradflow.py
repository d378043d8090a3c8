"""Gradient flow through time, measured: how much of the loss at step t reaches
the hidden state d steps earlier, why (the step Jacobians), and a verdict.

Shapes: T time, B batch, H hidden, S state width (H; 2H for the LSTM's (h, c)),
D directions. Everything is measured in float64 so that tiny norms (1e-30) are
not rounded to zero; overflow becomes inf/nan and is *reported*, never raised.

The quantities (Pascanu, Mikolov & Bengio 2013, "On the difficulty of training
recurrent neural networks")::

    dL_t/dh_{t-d} = dL_t/dh_t . J_t J_{t-1} ... J_{t-d+1},   J_s = d state_s / d state_{s-1}

    RNN:  J_s = diag(f'(a_s)) W_hh,   ||J_s|| <= gamma * sigma_max(W_hh)
          gamma = max f' = 1 (tanh, relu), 1/4 (sigmoid); sigma_max < 1/gamma
          is sufficient for the gradient to vanish exponentially.
    LSTM: J_s is the 2H x 2H Jacobian of (h_s, c_s) w.r.t. (h_{s-1}, c_{s-1});
          its c -> c block is diag(f_s), the "constant error carousel".
    GRU:  J_s = diag(z) + diag(h - n) dz/dh + diag(1 - z) dn/dh  (H x H, gates included).

Measurements, pure functions of (config, params, batch):

- ``per_distance``: ||dL_t/dh_{t-d}|| for every t and d, one loss term per step,
  from a single backward pass with ``bptt_truncate = T-1``: the engine keeps
  each step's term in its own slot of a (T, B, H) ring and hands it to
  ``on_step``, so every dL_t/dh_s is seen separately (cost: T times one pass).
  Default upstream dL_t/dh_t: random unit vectors, so d = 0 has norm 1.
- ``per_distance_last``: the same for a loss at the last step only (sequence
  classification): one ordinary pass, d = T-1-s.
- ``step_jacobians`` / ``spectral_norms`` / ``product_norms``: J_s rebuilt from
  the forward cache (states and gate activations), their spectral norms, and
  ||J_{T-1} ... J_{T-d}|| for every d.
- ``verdict``: vanishing / exploding / healthy, from a log-linear fit of the
  mean curve (per-step rate) and the distance where it falls below 1e-6 of d = 0.

For a stacked model the curve of a lower layer is the gradient that entered
that layer's output at step t (from the layer above), carried d steps back.
"""
from typing import NamedTuple, Optional

import numpy as np

from rnnlab.engine import layers

QUANTILES = (0.1, 0.5, 0.9)
FACTOR = 1e-6          # "vanished": below this fraction of the d = 0 value


class Curve(NamedTuple):
    """Per-distance statistics of ||dL_t/dh_{t-d}|| over t and batch rows."""
    mean: np.ndarray            # (T,) indexed by distance d
    quantiles: np.ndarray       # (Q, T) at QUANTILES
    count: np.ndarray           # (T,) samples behind each distance
    nonfinite_step: Optional[int] = None   # time step where inf/nan first appeared


class Verdict(NamedTuple):
    kind: str                   # "vanishing" | "exploding" | "healthy"
    rate: float                 # fitted factor per step back (<1 shrinks, >1 grows)
    below_at: Optional[int]     # first d with mean[d] < FACTOR * mean[0], measured
    below_fit: float            # the same distance from the fitted rate (inf if rate >= 1)
    nonfinite_step: Optional[int]

    def describe(self):
        if not np.isfinite(self.rate):
            at = "" if self.nonfinite_step is None else f" at step {self.nonfinite_step}"
            return f"exploding: non-finite gradient appeared{at}"
        where = (f"below 1e-6 of d=0 at d={self.below_at}" if self.below_at is not None
                 else f"never below 1e-6 in the window (fit: d~{self.below_fit:.0f})")
        return f"{self.kind}: x{self.rate:.3f} per step, {where}"


# ---------------------------------------------------------------- per-distance norms

def _float64(params, x):
    return {k: np.asarray(v, np.float64) for k, v in params.items()}, np.asarray(x, np.float64)


def _unit_rows(rng, shape):
    """Random directions, unit norm along the last axis."""
    g = np.random.default_rng(rng).standard_normal(shape)
    return g / np.linalg.norm(g, axis=-1, keepdims=True)


def _time_major(cfg, a):
    return np.swapaxes(a, 0, 1) if cfg.batch_first else a


def _first_bad_time(out):
    """First time index t with a non-finite entry in out (T, ...), or None."""
    bad = ~np.isfinite(out.reshape(out.shape[0], -1)).all(axis=1)
    return int(np.argmax(bad)) if bad.any() else None


def per_distance(cfg, params, x, dout=None, rng=0):
    """{(layer, direction): Curve} with one loss term per step.

    x: (T, B, I) (batch_first: (B, T, I)); dout: like the output (T, B, D*H),
    dout[t] = dL_t/dh_t; None = random unit vectors per step and row.
    """
    p, x = _float64(params, x)
    with np.errstate(all="ignore"):
        out, _, cache = layers.forward(cfg, p, x)
        T, B, _ = cache.input_shape
        dout = _unit_rows(rng, out.shape) if dout is None else np.asarray(dout, np.float64)
        grid = {}          # (layer, dir) -> (T loss step t, T state step s, B)
        bad = {}

        def hook(layer, d, s, ds):
            n = np.linalg.norm(ds[0], axis=-1)                    # (T, b): slot t = loss at t
            n[:s] = np.nan                                        # terms not started yet
            grid.setdefault((layer, d), np.full((T, T, B), np.nan))[:, s, :n.shape[1]] = n
            if not np.isfinite(n[s:]).all():
                bad[(layer, d)] = s                               # latest s = first seen
        layers.backward(cfg, p, cache, dout, bptt_truncate=T - 1, on_step=hook)
    fwd_bad = _first_bad_time(_time_major(cfg, out))
    return {k: _curve([np.diagonal(g, offset=-d, axis1=0, axis2=1).ravel() for d in range(T)],
                      fwd_bad if fwd_bad is not None else bad.get(k))
            for k, g in grid.items()}


def per_distance_last(cfg, params, x, dh_last=None, rng=0):
    """{(layer, 0): Curve} for a loss at the last step only: one backward pass.

    dh_last: (B, D*H) = dL/d(output at the last step); None = random unit rows.
    Reverse directions are left out: the last step is where they start.
    """
    p, x = _float64(params, x)
    with np.errstate(all="ignore"):
        out, _, cache = layers.forward(cfg, p, x)
        T, B, _ = cache.input_shape
        dout = np.zeros_like(out)
        last = _unit_rows(rng, (B, out.shape[-1])) if dh_last is None else dh_last
        if cfg.batch_first:
            dout[:, -1] = last
        else:
            dout[-1] = last
        norms, bad = {}, {}

        def hook(layer, d, s, ds):
            if d == 0:
                n = np.linalg.norm(ds[0], axis=-1)                # (b,)
                norms.setdefault(layer, np.full((T, B), np.nan))[T - 1 - s, :n.shape[0]] = n
                if not np.isfinite(n).all():
                    bad.setdefault(layer, s)
        layers.backward(cfg, p, cache, dout, on_step=hook)
    fwd_bad = _first_bad_time(_time_major(cfg, out))
    return {(k, 0): _curve(list(g), fwd_bad if fwd_bad is not None else bad.get(k))
            for k, g in norms.items()}


def _curve(samples, nonfinite_step=None):
    """samples[d]: 1-D array of norms at distance d (nan = no sample)."""
    T = len(samples)
    mean, count = np.full(T, np.nan), np.zeros(T, int)
    qs = np.full((len(QUANTILES), T), np.nan)
    for d, v in enumerate(samples):
        v = v[~np.isnan(v)]
        count[d] = v.size
        if v.size and np.isfinite(v).all():
            mean[d] = v.mean()
            qs[:, d] = np.quantile(v, QUANTILES)
        elif v.size:
            mean[d] = np.inf                                      # inf or nan: unusable
    return Curve(mean, qs, count, nonfinite_step)


# ---------------------------------------------------------------- verdict

def decay_per_step(values):
    """The gradient's factor per step back: exp(slope) of a least-squares line
    through log(values[d]) over the usable d (finite, positive).

    The one decay metric of rnnlab: verdicts, the demo's table and the reports
    all print this number. Scale-free: values and values / values[0] agree.
    """
    d = np.arange(len(values))
    ok = np.isfinite(values) & (values > 0)
    if ok.sum() < 2:                  # all but d = 0 exactly zero: the gradient dies at once
        return 0.0 if np.isfinite(values).all() and len(values) > 1 else float("nan")
    slope = np.polyfit(d[ok], np.log(values[ok]), 1)[0]
    return float(np.exp(slope))


def verdict(curve, factor=FACTOR):
    """Vanishing, exploding or healthy over the measured window (d = 0 .. T-1)."""
    m = curve.mean
    span = len(m) - 1
    if curve.nonfinite_step is not None or not np.isfinite(m).all():
        return Verdict("exploding", float("inf"), None, float("nan"), curve.nonfinite_step)
    rel = m / m[0] if m[0] > 0 else m
    rate = decay_per_step(rel)
    below = np.nonzero(rel < factor)[0]
    below_at = int(below[0]) if below.size else None
    below_fit = float(np.log(factor) / np.log(rate)) if 0 < rate < 1 else float("inf")
    if below_at is not None or rate ** span < factor:
        kind = "vanishing"
    elif rel.max() > 1 / factor or rate ** span > 1 / factor:
        kind = "exploding"
    else:
        kind = "healthy"
    return Verdict(kind, rate, below_at, below_fit, None)


# ---------------------------------------------------------------- step Jacobians

def step_jacobians(cfg, params, x, layer=0, direction=0, rows=4):
    """J_s = d state_s / d state_{s-1} for s = 0..T-1 (processing order), float64,
    from the cell's own ``step_jacobian``.

    Returns (T, b, S, S) for the first ``rows`` batch rows (b = min(rows, B)).
    """
    p, x = _float64(params, x)
    with np.errstate(all="ignore"):
        _, _, cache = layers.forward(cfg, p, x)
    seq = cache.seq[layer][direction]
    states = tuple(st[:, :rows] for st in seq.states)
    w_hh = p["weight_hh" + layers.suffix(layer, direction)]
    with np.errstate(all="ignore"):
        return cfg.cell.step_jacobian(w_hh, states, seq.acts[:, :rows], **cfg.cell_opts)


def spectral_norms(jac):
    """Largest singular value of each (S, S) matrix: (...,) ; non-finite -> inf."""
    ok = np.isfinite(jac).all(axis=(-2, -1))
    safe = np.where(ok[..., None, None], jac, 0.0)
    return np.where(ok, np.linalg.norm(safe, ord=2, axis=(-2, -1)), np.inf)


def product_norms(jac):
    """||J_{T-1} J_{T-2} ... J_{T-d}|| for d = 0..T-1 per row: (T, b); d = 0 gives 1.

    The running product is renormalised each step (its scale kept as a log), so a
    product of 1e-300 or 1e300 is still measured, not under- or overflowed.
    """
    T, b, S, _ = jac.shape
    log_norm = np.zeros((T, b))
    q = np.broadcast_to(np.eye(S), (b, S, S))
    for d in range(1, T):
        m = q @ jac[T - d]                                        # (b, S, S)
        n = spectral_norms(m)                                     # (b,)
        log_norm[d] = log_norm[d - 1] + np.log(np.where(n > 0, n, 1e-300))
        q = m / np.where((n > 0) & np.isfinite(n), n, 1.0)[:, None, None]
    with np.errstate(over="ignore"):
        return np.exp(log_norm)


def theory_bound(cfg, params, layer=0, direction=0):
    """{"sigma_max", "gamma", "bound"}: ||diag(f') W_hh|| <= gamma sigma_max(W_hh).

    gamma (the cell's ``max_slope``) and bound are None for cells whose Jacobian
    is not of that form (LSTM, GRU: they declare no ``max_slope``).
    """
    w = np.asarray(params["weight_hh" + layers.suffix(layer, direction)], np.float64)
    sigma = float(np.linalg.norm(w, 2))
    slope = getattr(cfg.cell, "max_slope", None)
    gamma = None if slope is None else slope(**cfg.cell_opts)
    return {"sigma_max": sigma, "gamma": gamma,
            "bound": None if gamma is None else gamma * sigma}


# ---------------------------------------------------------------- everything, per layer

class LayerFlow(NamedTuple):
    """All measurements of one layer and direction."""
    curve: Curve
    verdict: Verdict
    jac_norms: np.ndarray       # (T, b) spectral norm of each step Jacobian
    products: np.ndarray        # (T,) geometric mean over rows of ||J_{T-1}..J_{T-d}||
    bound: dict                 # theory_bound()


def measure(cfg, params, x, last_only=False, dout=None, rng=0, rows=4, jacobians=True):
    """{(layer, direction): LayerFlow} for one batch x.

    last_only: a loss at the last step only (one pass, ``per_distance_last``);
    otherwise one loss term per step (``per_distance``). dout: the upstream
    gradients as those functions take them (None = random unit vectors).
    jacobians=False skips the step Jacobians (their SVDs dominate the cost):
    jac_norms and products are then empty.
    """
    curves = (per_distance_last(cfg, params, x, dout, rng) if last_only
              else per_distance(cfg, params, x, dout, rng))
    out = {}
    for (layer, d), curve in sorted(curves.items()):
        norms, prods = np.zeros((0, 0)), np.zeros(0)
        if jacobians:
            jac = step_jacobians(cfg, params, x, layer, d, rows)
            norms = spectral_norms(jac)
            with np.errstate(all="ignore"):
                prods = np.exp(np.log(product_norms(jac)).mean(axis=1))     # (T,)
        out[(layer, d)] = LayerFlow(curve, verdict(curve), norms, prods,
                                    theory_bound(cfg, params, layer, d))
    return out
