"""Stacked, bidirectional recurrent layers with PyTorch's API, and their BPTT.

Shapes: T time, B batch, I input, H hidden, L layers, D directions (1 or 2).
Inside everything is time-major (T, B, ·); ``batch_first`` only flips the public
boundary. Parameters are a flat dict keyed as ``torch.nn.RNN/LSTM/GRU``'s
state_dict (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...) in PyTorch's layout,
so weights move between rnnlab and torch unchanged.

Pure functions ``forward(config, params, x, ...)`` and ``backward(config, params,
cache, ...)`` do the work; the ``RNN``/``LSTM``/``GRU`` classes hold parameters,
the last forward's cache, and gradients.
"""
from dataclasses import MISSING, asdict, dataclass
from typing import NamedTuple

import numpy as np

from rnnlab.engine import backend as _backend, dispatch, sequence, validate
from rnnlab.engine.cells import CELLS


@dataclass(frozen=True)
class RNNConfig:
    """Architecture of a recurrent stack (saved with every checkpoint)."""
    mode: str                     # "rnn" | "lstm" | "gru"
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False     # only the public boundary: (B, T, ·) in and out
    dropout: float = 0.0          # on outputs of every layer but the last, in training
    bidirectional: bool = False
    nonlinearity: str = "tanh"    # RNN only: "tanh" | "relu" | "sigmoid"
    reset_after: bool = True      # GRU only: True = PyTorch/cuDNN, False = Cho et al.

    def __post_init__(self):
        validate.check_config_args(self)     # types of the flags and of dropout
        if self.mode not in CELLS:
            raise ValueError(f"mode must be one of {sorted(CELLS)}, got {self.mode!r}")
        for name in ("input_size", "hidden_size", "num_layers"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.mode == "rnn" and self.nonlinearity not in CELLS["rnn"].NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {CELLS['rnn'].NONLINEARITIES}, "
                             f"got {self.nonlinearity!r}")
        _check_unread_options(self)

    @property
    def cell(self):
        return CELLS[self.mode]

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @property
    def cell_opts(self):
        """The options this cell reads (its ``OPTIONS``), as keyword arguments."""
        return {k: getattr(self, k) for k in getattr(self.cell, "OPTIONS", ())}

    def to_dict(self):
        return asdict(self)


def as_config(config, what="config"):
    """An RNNConfig, or one rebuilt from its dict (``to_dict()``); anything else,
    or a dict with unknown or missing keys, is a ValueError naming them."""
    if isinstance(config, RNNConfig):
        return config
    if not isinstance(config, dict):
        raise ValueError(f"{what} must be an RNNConfig (or its to_dict()), got "
                         f"{type(config).__name__}")
    fields = RNNConfig.__dataclass_fields__
    extra = [k for k in config if k not in fields]
    missing = [k for k, f in fields.items() if k not in config and f.default is MISSING]
    if extra or missing:
        wrong = "; ".join(([f"unknown keys {extra}"] if extra else [])
                          + ([f"missing {missing}"] if missing else []))
        raise ValueError(f"{what} dict: {wrong}; expected RNNConfig's fields {list(fields)}")
    return RNNConfig(**config)


def _check_unread_options(cfg):
    """An option the cell does not read (``OPTIONS``) stays at its default: an
    LSTM(nonlinearity="relu") or RNN(reset_after=False) is refused, not run as tanh
    (torch.nn.LSTM refuses nonlinearity= too)."""
    fields = RNNConfig.__dataclass_fields__
    for name in sorted({o for c in CELLS.values() for o in getattr(c, "OPTIONS", ())}):
        value, default = getattr(cfg, name), fields[name].default
        if name not in getattr(cfg.cell, "OPTIONS", ()) and value != default:
            readers = [m for m, c in CELLS.items() if name in getattr(c, "OPTIONS", ())]
            raise ValueError(f"{name}={value!r}: read by the {' and '.join(readers)} cell "
                             f"only; mode {cfg.mode!r} would ignore it (leave it at "
                             f"{default!r})")


def suffix(layer, direction):
    return f"_l{layer}" + ("_reverse" if direction == 1 else "")


def param_shapes(cfg):
    """{name: shape} in torch.nn's order."""
    G, H = cfg.cell.GATES * cfg.hidden_size, cfg.hidden_size
    shapes = {}
    for layer in range(cfg.num_layers):
        in_size = cfg.input_size if layer == 0 else H * cfg.num_directions
        for d in range(cfg.num_directions):
            sfx = suffix(layer, d)
            shapes["weight_ih" + sfx] = (G, in_size)
            shapes["weight_hh" + sfx] = (G, H)
            if cfg.bias:
                shapes["bias_ih" + sfx] = (G,)
                shapes["bias_hh" + sfx] = (G,)
    return shapes


def init_params(cfg, rng=None, dtype=np.float32):
    """U(-1/sqrt(H), 1/sqrt(H)) for every tensor, as torch.nn does."""
    rng, dtype = np.random.default_rng(rng), validate.check_dtype("dtype", dtype)
    k = 1.0 / np.sqrt(cfg.hidden_size)
    return {n: rng.uniform(-k, k, size=s).astype(dtype) for n, s in param_shapes(cfg).items()}


def dir_params(params, cfg, layer, d):
    sfx = suffix(layer, d)
    return sequence.DirParams(params["weight_ih" + sfx], params["weight_hh" + sfx],
                              params.get("bias_ih" + sfx), params.get("bias_hh" + sfx))


class StackCache(NamedTuple):
    """Per layer and direction: a SeqCache; plus the batch order and dropout masks."""
    seq: list                 # [layer][direction] -> sequence.SeqCache
    masks: list               # [layer] -> dropout mask (T, B, D*H) or None
    order: object             # row permutation applied (sorted by length) or None
    lengths: object           # sorted lengths (NumPy) or None
    reverse_index: object     # (T, B) time index that flips each row within its length
    unbatched: bool
    input_shape: tuple
    config: object = None     # the RNNConfig of the forward; backward must get the same


# ---------------------------------------------------------------- boundary

def _prepare(cfg, params, x, hx, lengths):
    """Validate and bring inputs to time-major, length-sorted (T, B, ·) form."""
    dtype = validate.check_params(cfg, params, finite=False)   # NaN weights propagate
    validate.check_array("input", x, (2, 3), dtype)
    validate.check_same_kind("input", x, params)
    x = validate.detach(x)               # the caller may edit x before backward
    unbatched = len(x.shape) == 2
    given = tuple(x.shape)                                        # as the caller sees it
    xp = _backend.namespace(x)
    if unbatched:
        x = xp.reshape(x, (x.shape[0], 1, x.shape[1]))            # (T, 1, I)
    elif cfg.batch_first:
        x = xp.permute_dims(x, (1, 0, 2))                         # (B, T, I) -> (T, B, I)
    T, B, I = x.shape
    what = ("seq, feature" if unbatched else
            "batch, seq, feature" if cfg.batch_first else "seq, batch, feature")
    if T == 0 or B == 0:
        raise ValueError(f"input is empty: shape {given} ({what}); "
                         "expected at least one time step and one batch row")
    if I != cfg.input_size:
        raise ValueError(f"input must have {cfg.input_size} features (input_size) in its "
                         f"last dimension, got {I} (input shape {given}, {what})")
    validate.check_finite("input", x)
    state0 = _initial_state(cfg, params, xp, x, hx, unbatched, dtype)
    order = rev = None
    lens = None
    if lengths is not None:
        lens = validate.check_lengths(lengths, B, T)
        order = np.argsort(-lens, kind="stable")
        lens = lens[order]
        idx = _backend.asarray(xp, order, x)
        x = xp.take(x, idx, axis=1)
        state0 = tuple(xp.take(s, idx, axis=1) for s in state0)
        t = np.arange(T)[:, None]
        rev = np.where(t < lens, lens - 1 - t, t) * B + np.arange(B)   # (T, B) flat index
    return x, state0, order, lens, rev, unbatched


def _initial_state(cfg, params, xp, x, hx, unbatched, dtype):
    names = cfg.cell.STATE
    LD, B, H = cfg.num_layers * cfg.num_directions, x.shape[1], cfg.hidden_size
    if hx is None:
        return tuple(_backend.zeros(xp, (LD, B, H), x) for _ in names)
    if not isinstance(hx, (tuple, list)):
        if len(names) == 2:
            raise ValueError(f"hx for an LSTM must be a tuple (h_0, c_0), got {type(hx).__name__}")
        hx = (hx,)                          # a bare h_0 is accepted for RNN and GRU
    if len(hx) != len(names):
        want = ", ".join(f"{n}_0" for n in names)
        raise ValueError(f"hx must be a tuple ({want}) of {len(names)} arrays, got {len(hx)}")
    out = []
    for name, s in zip(names, hx):
        arg = f"{name}_0"
        validate.check_array(arg, s, (2,) if unbatched else (3,), dtype)
        validate.check_same_kind(arg, s, params)
        if unbatched:
            validate.check_shape(arg, s, (LD, H), "num_layers * num_directions, hidden_size")
            s = xp.reshape(s, (LD, 1, H))
        else:
            validate.check_shape(arg, s, (LD, B, H),
                                 "num_layers * num_directions, batch, hidden_size")
        validate.check_finite(arg, s)
        out.append(s)
    return tuple(out)


def _flip_rows(xp, a, rev):
    """Reverse each row in time within its own length ((T, B, ·) -> same)."""
    if rev is None:
        return xp.flip(a, axis=0)
    T, B, F = a.shape
    flat = xp.reshape(a, (T * B, F))
    return xp.reshape(xp.take(flat, _backend.asarray(xp, rev.reshape(-1), a), axis=0), (T, B, F))


def _valid_mask(xp, x, lens):
    """(T, B, 1) ones where a row is still running, zeros past its end."""
    T = x.shape[0]
    m = (np.arange(T)[:, None] < lens).astype(validate.dtype_name(x))[:, :, None]
    return _backend.asarray(xp, m, x)


def _masked(a, mask):
    """a * mask, C-ordered for NumPy: the fast path's outputs are views of
    feature-major buffers, and NumPy would keep that order, in which the batch
    axis's np.take (the unsort) took 3.4 ms for (64, 32, 256), 0.07 ms C-ordered."""
    if isinstance(a, np.ndarray):
        return np.multiply(a, mask, out=np.empty(a.shape, a.dtype))
    return a * mask


def _batch_sizes(lens, T):
    return None if lens is None else tuple(int(v) for v in (lens[None, :] > np.arange(T)[:, None]).sum(1))


def _finish(cfg, xp, a, order, unbatched, time_major_only=False):
    """Undo sorting, then back to the caller's layout."""
    if order is not None:
        inv = _backend.asarray(xp, np.argsort(order), a)
        a = xp.take(a, inv, axis=1)
    if unbatched:
        return a[:, 0]
    if cfg.batch_first and not time_major_only:
        return xp.permute_dims(a, (1, 0, 2))
    return a


# ---------------------------------------------------------------- forward / backward

def as_hx(states):
    """The ``hx`` argument of ``forward`` for a tuple of states: (h_0, c_0)
    for an LSTM, the bare h_0 for RNN and GRU (as their modules take it)."""
    return states[0] if len(states) == 1 else tuple(states)


def _dropout(cfg, xp, a, gen):
    """Inverted dropout mask for a (T, B, D*H) layer output, drawn from gen."""
    keep = gen.random(a.shape) >= cfg.dropout
    return _backend.asarray(xp, (keep / (1.0 - cfg.dropout)).astype(validate.dtype_name(a)), a)


def forward(cfg, params, x, hx=None, lengths=None, training=False, rng=None, impl="auto"):
    """Run the stack. x: (T, B, I) (or (B, T, I) with batch_first, or (T, I)).

    hx: tuple of initial states, each (L*D, B, H); None means zeros.
    lengths: B integers, each row's length; positions past it are ignored.
    rng: seed or Generator for the dropout masks (training only). One generator
    is made from it per call, so every layer draws its own mask; pass a
    Generator to get fresh masks on every call (chunks of a stream).
    impl: "auto" | "reference" | "fast", see ``rnnlab.engine.dispatch``.
    Returns output (T, B, D*H), final states (tuple of (L*D, B, H)), cache.
    """
    dispatch.check(impl)
    _check_cfg(cfg)
    gen = None
    if training and cfg.dropout > 0:
        gen = np.random.default_rng(validate.check_seed("rng", rng))
    x, state0, order, lens, rev, unbatched = _prepare(cfg, params, x, hx, lengths)
    xp = _backend.namespace(x)
    T, B, _ = x.shape
    bs = _batch_sizes(lens, T)
    mask = None if lens is None else _valid_mask(xp, x, lens)
    D, cell = cfg.num_directions, cfg.cell
    finals = [[None] * (cfg.num_layers * D) for _ in cell.STATE]
    seq, masks, layer_in = [], [], x
    for layer in range(cfg.num_layers):
        outs, caches = [], []
        for d in range(D):
            p = dir_params(params, cfg, layer, d)
            xin = layer_in if d == 0 else _flip_rows(xp, layer_in, rev)
            s0 = tuple(s[layer * D + d] for s in state0)
            states, cache = dispatch.forward(cell, p, xin, s0, bs, impl, **cfg.cell_opts)
            out = states[0][1:]                                   # (T, B, H)
            if mask is not None:
                out = _masked(out, mask)
            outs.append(out if d == 0 else _flip_rows(xp, out, rev))
            caches.append(cache)
            for k, st in enumerate(states):
                finals[k][layer * D + d] = st[T]
        layer_in = outs[0] if D == 1 else xp.concat(outs, axis=-1)   # (T, B, D*H)
        drop = None
        if gen is not None and layer < cfg.num_layers - 1:
            drop = _dropout(cfg, xp, layer_in, gen)                  # (T, B, D*H)
            layer_in = layer_in * drop
        seq.append(caches)
        masks.append(drop)
    h_n = tuple(_finish(cfg, xp, xp.stack(f, axis=0), order, unbatched, True) for f in finals)
    output = _finish(cfg, xp, layer_in, order, unbatched)
    if order is None:                  # else the unsort's take made it: already not the cache's
        output = validate.detach(output)
    cache = StackCache(seq, masks, order, lens, rev, unbatched, tuple(x.shape), cfg)
    return output, h_n, cache


def _to_internal(cfg, xp, a, cache, what, internal_shape):
    """A gradient from the caller's layout to time-major, sorted order.

    Checked against the shape the caller saw (batch_first, unbatched) first.
    """
    T, B, F = internal_shape
    if cache.unbatched:
        shape, axes = (T, F), "seq, features" if what == "doutput" else "layers*directions, hidden"
    elif cfg.batch_first and what == "doutput":
        shape, axes = (B, T, F), "batch, seq, features"
    else:
        shape, axes = (T, B, F), ("seq, batch, features" if what == "doutput"
                                  else "layers*directions, batch, hidden")
    validate.check_array(what, a, (len(shape),), validate.dtype_name(cache.seq[0][0].x))
    validate.check_shape(what, a, shape, f"{axes}, as the forward produced")
    validate.check_finite(what, a)
    if cache.unbatched:
        a = xp.reshape(a, (a.shape[0], 1, a.shape[1]))
    elif cfg.batch_first and what == "doutput":
        a = xp.permute_dims(a, (1, 0, 2))
    if cache.order is not None:
        a = xp.take(a, _backend.asarray(xp, cache.order, a), axis=1)
    return a


def _check_cfg(cfg):
    if not isinstance(cfg, RNNConfig):
        raise ValueError(f"cfg must be an RNNConfig, got {type(cfg).__name__}")


def _check_cache(cfg, cache):
    """``cache`` is what ``forward`` returned for this same config (a cache of
    another stack failed with an IndexError deep inside, or read its gradients
    in the other layout where batch_first differed)."""
    _check_cfg(cfg)
    if not isinstance(cache, StackCache):
        raise ValueError("cache must be the third value forward() returned, got "
                         f"{type(cache).__name__}")
    if cache.config != cfg:
        diff = [f"{k} {getattr(cache.config, k, None)!r} there, {v!r} here"
                for k, v in cfg.to_dict().items() if getattr(cache.config, k, None) != v]
        raise ValueError(f"cache comes from a forward of another configuration ("
                         f"{'; '.join(diff)}); pass backward the forward's own config")


def backward(cfg, params, cache, doutput=None, dh_n=None, bptt_truncate=None, on_step=None,
             impl="auto"):
    """Gradients of a scalar loss, given dL/d(output) and dL/d(final states).

    doutput: like the forward's output (None = zeros). dh_n: tuple like the
    forward's final states (None entries = zeros). bptt_truncate: None for full
    BPTT, or k: the loss at step t reaches steps t-k..t only (per layer).
    on_step: optional ``f(layer, direction, s, ds)``, see ``sequence.backward``
    (s counts processing steps: the reverse direction runs time backwards).
    impl: as ``forward``'s; the fused backward needs a fused forward's cache.
    Returns dx (like the input), dhx (tuple like hx), grads (params' keys).
    """
    if bptt_truncate is not None and (not isinstance(bptt_truncate, (int, np.integer))
                                      or isinstance(bptt_truncate, bool) or bptt_truncate < 0):
        raise ValueError(f"bptt_truncate must be None or an integer >= 0, got {bptt_truncate!r}")
    dispatch.check(impl)
    _check_cache(cfg, cache)
    T, B, _ = cache.input_shape
    D, H, L = cfg.num_directions, cfg.hidden_size, cfg.num_layers
    like = cache.seq[0][0].x
    validate.check_params(cfg, params, validate.dtype_name(like), finite=False)
    dh_n = validate.check_state_grads(cfg.cell.STATE, dh_n)
    given = [("the forward's input", like), ("doutput", doutput)] + [
        (f"d{n}_n", g) for n, g in zip(cfg.cell.STATE, dh_n or ()) if g is not None]
    for what, a in given:
        if hasattr(a, "shape"):             # not an array: _to_internal's check names it
            validate.check_same_kind(what, a, params)
    xp = _backend.namespace(like)
    dy = (_backend.zeros(xp, (T, B, D * H), like) if doutput is None
          else _to_internal(cfg, xp, doutput, cache, "doutput", (T, B, D * H)))
    dfin = []
    for k, name in enumerate(cfg.cell.STATE):
        g = None if dh_n is None else dh_n[k]
        dfin.append(_backend.zeros(xp, (L * D, B, H), like) if g is None
                    else _to_internal(cfg, xp, g, cache, f"d{name}_n", (L * D, B, H)))
    mask = None if cache.lengths is None else _valid_mask(xp, like, cache.lengths)
    grads, dstate0 = {}, [[None] * (L * D) for _ in cfg.cell.STATE]
    for layer in reversed(range(L)):
        dx = None
        for d in range(D):
            p = dir_params(params, cfg, layer, d)
            g = dy[..., d * H:(d + 1) * H]
            if mask is not None:               # outputs past a row's end are constants; dy
                g *= mask                      # is the sort's own copy (or zeros) here
            if d == 1:
                g = _flip_rows(xp, g, cache.reverse_index)
            ds_n = tuple(s[layer * D + d] for s in dfin)
            hook = None if on_step is None else (
                lambda s, ds, _l=layer, _d=d: on_step(_l, _d, s, ds))
            dxd, ds0, gp = dispatch.backward(cfg.cell, p, cache.seq[layer][d], g, ds_n,
                                             bptt_truncate, hook, impl, **cfg.cell_opts)
            if d == 1:
                dxd = _flip_rows(xp, dxd, cache.reverse_index)
            dx = dxd if dx is None else dx + dxd
            for k, s in enumerate(ds0):
                dstate0[k][layer * D + d] = s
            sfx = suffix(layer, d)
            grads.update({"weight_ih" + sfx: gp.w_ih, "weight_hh" + sfx: gp.w_hh})
            if cfg.bias:
                grads.update({"bias_ih" + sfx: gp.b_ih, "bias_hh" + sfx: gp.b_hh})
        if layer > 0 and cache.masks[layer - 1] is not None:
            dx = dx * cache.masks[layer - 1]
        dy = dx
    dhx = tuple(_finish(cfg, xp, xp.stack(s, axis=0), cache.order, cache.unbatched, True)
                for s in dstate0)
    grads = {k: grads[k] for k in params}
    return _finish(cfg, xp, dy, cache.order, cache.unbatched), dhx, grads


def step(cfg, params, x, states):
    """One time step of a unidirectional stack, for generation: no cache, no checks.

    x (B, I); states: tuple of (L, B, H) (``h`` or ``h, c``). Returns the top
    layer's output (B, H) and the new states. The same function as ``forward``
    on a one-step input (the cells' own step, in evaluation mode), without the
    per-call work a training step needs (validation, sorting, histories), which
    is what a token-by-token sampling loop pays for at every token.
    """
    if cfg.bidirectional:
        raise ValueError("step needs a unidirectional stack: a bidirectional layer "
                         "reads the whole sequence")
    xp = _backend.namespace(x)
    new = [[None] * cfg.num_layers for _ in states]
    for layer in range(cfg.num_layers):
        p = dir_params(params, cfg, layer, 0)
        gx = x @ p.w_ih.T                                         # (B, G)
        if p.b_ih is not None:
            gx = gx + p.b_ih
        out, _ = cfg.cell.step_forward(xp, p, gx, tuple(s[layer] for s in states),
                                       **cfg.cell_opts)
        for k, s in enumerate(out):
            new[k][layer] = s
        x = out[0]                                                # (B, H)
    return x, tuple(xp.stack(s, axis=0) for s in new)
