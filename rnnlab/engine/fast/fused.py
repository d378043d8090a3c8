"""The fused kernels of each built-in cell, and the drivers that run them.

A cell opts into the fast path by declaring ``fast_kernels()`` returning one of
the ``Fused`` entries below (``rnnlab/engine/cells/lstm.py`` does); a cell
without it runs on the reference loop of ``rnnlab.engine.sequence``. The
drivers here do what every cell shares: the one input product W_ih x for all
steps (or, for a cell whose loop folds it in, the packed [W_ih | W_hh]), the
feature-major buffers, and the weight gradients after the loop (the backward
reuses its forward's packed weights; the LSTM's, on a full batch, takes dx from
its loop; see ``kernels`` for why the buffers look as they do). The compiled time loops
are in ``loops`` (the batch in row slices, one per thread) and ``units`` (each
step's hidden units split over the threads: ragged batches).

Shapes: T time, B batch, I input, H hidden, G = gates * H, A act width,
N tokens present (T*B when every row is full); feature-major buffers are
(F, T*B) with column t*B + b, except the packed ones (the input, W_ih x and the
gradients dL/d(gx), dL/d(gh)): (F, N), step t's rows from column off[t] on.
A ragged batch thus costs its tokens in the products before and after the loop
(the loop itself only ever ran the rows still going, on every thread).
"""
from typing import Callable, NamedTuple

import numpy as np

from rnnlab.engine.fast import kernels as _k
from rnnlab.engine.threads import parallel


class Fused(NamedTuple):
    """What the fast path needs to know about one cell."""
    scale: Callable       # (G, H, opts) -> (G,): 1/2 on sigmoid rows (sigmoid = (1+tanh)/2), 1 else
    b_hh_rows: Callable   # H -> leading rows of b_hh folded into the input projection
    forward: Callable     # (Fwd) -> (chist or None, acts (A, T*B))
    backward: Callable    # (Bwd) -> (dGh buffer, extra dstate0 tuple)
    supports: Callable    # opts -> bool: can these cell options run fused?
    folds_input: bool = False   # the loop multiplies [W_ih | W_hh] by [x_t; h_{t-1}] itself


class Fwd(NamedTuple):
    """One forward call's operands, as the per-cell loops take them."""
    wp: np.ndarray        # W_hh, rows scaled, packed for the per-step products (gemm.pack);
                          # a folding cell's: [W_ih | W_hh] (G, I + H)
    p: object             # DirParams
    gx: np.ndarray        # (G, N) W_ih x, packed, unscaled and without bias (None: folded)
    x: tuple              # (source, feature-major?): the layer input as folded loops read it
    scale: np.ndarray     # (G,)
    bias: np.ndarray      # (G,) b_ih + the folded rows of b_hh
    hist: np.ndarray      # (H, (T+1)*B) padded; block 0 holds h_0
    state0: tuple         # each (B, H)
    bs: np.ndarray        # (T,) rows running at each step
    off: np.ndarray       # (T,) first packed column of each step
    tb: int               # T*B, the padded grid's columns
    half: object          # 0.5 in the dtype
    opts: dict
    slices: list          # kernels.row_slices: (k0, kB) of each loop thread
    full: bool            # every row runs every step (gx's columns are the padded grid's)
    units: object         # kernels.unit_slices: (u0, u1) of each thread of a
                          # unit-split loop (``units``), or None: row slices


class Bwd(NamedTuple):
    wp: np.ndarray        # the forward's panels (s * W_hh, a folding cell's s * [W_ih | W_hh]),
                          # read transposed by the per-step products (gemm.product_t)
    wt: np.ndarray        # gemm.pack_t of wp where a step's last columns run on the units
                          # tile (some step's rows not whole vectors), else gemm.no_pack_t
    dout: np.ndarray      # (H, T*B) feature-major, or (T*B, H) time-major rows
    fm: object            # kernels.FM of the forward
    dg: np.ndarray        # (G, N + pad) dL/d(gx), packed
    dh_mat: np.ndarray    # (H, B) dL/dh_{s-1} through W_hh, zeroed
    dhn: np.ndarray       # (H, B) dL/dh_n
    dstate_n: tuple       # each (B, H)
    bs: np.ndarray
    off: np.ndarray
    one: object           # 1.0 in the dtype
    opts: dict
    slices: list          # as the forward's
    dx: np.ndarray        # (I, T*B + pad) dL/dx feature-major, written by a folding
                          # cell's loop on a full batch, else None
    units: object         # as the forward's


# ---------------------------------------------------------------- per cell

def _rnn_kind(opts):
    return {"tanh": 0, "relu": 1, "sigmoid": 2}[opts.get("nonlinearity", "tanh")]


def _rnn_scale(G, H, opts):
    return np.full(G, 0.5 if opts.get("nonlinearity", "tanh") == "sigmoid" else 1.0)


def _shared(rows, B, dt):
    """Two zeroed (rows, w(B)) buffers the threads of a unit-split loop share:
    one step's operand or dz while the next is written."""
    return _k.aligned((2, rows * _k.gemm.width(B, dt)), dt, True)


def _shared_dz(b):
    """``_shared`` for a unit-split backward's dz: the panels' Mp rows."""
    return _shared(b.wp.shape[0] * _k.gemm.ROWS, b.dh_mat.shape[1], b.dg.dtype)


def _on_units(units, job):
    """``job(j, u0, u1, barrier state, threads)`` for each thread j of a unit-split
    loop, at once; then whether its threads waited off their cores
    (``kernels.split_waited``). A job's error aborts the barrier (the other
    threads finish instead of waiting for it) and is raised."""
    state, n = _k.sync.state(), len(units)

    def run(j):
        try:
            job(j, *units[j], state, n)
        except BaseException:
            _k.sync.abort(state)                                  # the others stop waiting for j
            raise
    parallel([lambda j=j: run(j) for j in range(n)])
    _k.split_waited(state)


def _dout_units(dout, H, u0, u1):
    """(units u0..u1 of the upstream gradient, feature-major?): a view of its rows
    (feature-major, ``kernels.dout_layout``) or columns (time-major rows)."""
    fm = bool(_k.loops.dout_feature_major(dout, H))
    return (dout[u0:u1] if fm else dout[:, u0:u1]), fm


def _rnn_forward(f):
    acts = _k.buffer(0, f.tb, f.gx.dtype)                        # none: h_t gives f'
    H, B = f.hist.shape[0], len(f.state0[0])
    args = (f.wp, f.gx, f.scale, f.bias, f.hist, f.bs, f.off, B, _rnn_kind(f.opts), f.half)
    if f.units is None:
        _k.run_sliced(_k.loops.rnn_fwd, args, f.slices)
    else:
        hh2 = _shared(H, B, f.gx.dtype)
        _on_units(f.units, lambda j, u0, u1, *sync: _k.units.rnn_fwd(*args, hh2, *sync, u0, u1))
    return None, acts


def _rnn_backward(b):
    H, B = b.dh_mat.shape
    if b.units is None:
        _k.run_sliced(_k.loops.rnn_bwd, (b.wp, b.wt, b.dout, b.fm.hist, b.dg, b.dh_mat, b.dhn,
                                         b.bs, b.off, B, _rnn_kind(b.opts), b.one), b.slices)
        return b.dg, ()
    args = (b.fm.hist, b.dg, b.dh_mat, b.dhn, b.bs, b.off, B, _rnn_kind(b.opts), b.one,
            _shared_dz(b))
    _on_units(b.units, lambda j, u0, u1, *sync: _k.units.rnn_bwd(
        b.wp, b.wt, *_dout_units(b.dout, H, u0, u1), *args, *sync, u0, u1))
    return b.dg, ()


def _lstm_scale(G, H, opts):
    s = np.full(G, 0.5)
    s[2 * H:3 * H] = 1.0                                          # g is a tanh gate
    return s


def _lstm_forward(f):
    """The input product folded into the steps' (``loops.lstm_fwd``): no (G, T*B)
    W_ih x written before the loop and read back, step by step, across rows a
    page apart."""
    (H, B), dt = (f.hist.shape[0], len(f.state0[0])), f.hist.dtype
    chist = _k.buffer(H, f.hist.shape[1] - 16, dt)
    chist[:, :B] = f.state0[1].T
    acts = _k.buffer(len(f.scale), f.tb, dt, not f.full)
    if f.units is None:
        _k.run_sliced(_k.loops.lstm_fwd, (f.wp, *f.x, acts, f.scale * f.bias, f.hist, chist,
                                          f.bs, B, f.half), f.slices)
        return chist, acts
    (x, x_fm), n, I = f.x, len(f.units), f.wp.shape[1] - H
    args = (acts, f.scale * f.bias, f.hist, chist, f.bs, B, f.half, _shared(I + H, B, dt))

    def job(j, u0, u1, *sync):
        rows = _k.cut(I, j, n)                                    # this thread's input rows
        _k.units.lstm_fwd(f.wp, x[rows] if x_fm else x[:, rows], x_fm, *args, *sync, u0, u1,
                          rows.start)
    _on_units(f.units, job)
    return chist, acts


def _lstm_backward(b):
    H, B = b.dh_mat.shape
    dc, dcn = _k.aligned((H, B), b.dg.dtype, True), np.ascontiguousarray(b.dstate_n[1].T)
    dx = np.empty((0, 0), b.dg.dtype) if b.dx is None else b.dx
    if b.units is None:
        _k.run_sliced(_k.loops.lstm_bwd, (b.wp, b.wt, b.dout, b.fm.acts, b.fm.chist, b.dg,
                                          b.dh_mat, dc, b.dhn, dcn, dx, b.bs, b.off, B, b.one),
                      b.slices)
        return b.dg, (dc.T,)
    n, I = len(b.units), b.wp.shape[1] - H
    args = (b.fm.acts, b.fm.chist, b.dg, b.dh_mat, dc, b.dhn, dcn, dx, b.bs, b.off, B, b.one,
            _shared_dz(b))

    def job(j, u0, u1, *sync):
        rows = _k.cut(I, j, n)                                    # this thread's dx rows
        _k.units.lstm_bwd(b.wp, b.wt, *_dout_units(b.dout, H, u0, u1), *args, *sync, u0, u1,
                          rows.start, rows.stop)
    _on_units(b.units, job)
    return b.dg, (dc.T,)


def _gru_scale(G, H, opts):
    s = np.full(G, 0.5)
    s[2 * H:] = 1.0                                               # n is a tanh gate
    return s


def _gru_forward(f):
    H, B = f.hist.shape[0], len(f.state0[0])
    acts = _k.buffer(4 * H, f.tb, f.gx.dtype, not f.full)        # r, z, n, gh_n (full: all written)
    b_hh = f.p.b_hh
    b_hn = b_hh[2 * H:].copy() if b_hh is not None else np.zeros(H, f.gx.dtype)
    args = (f.wp, f.gx, f.scale, f.bias, f.hist, acts, b_hn, f.bs, f.off, B, f.half)
    if f.units is None:
        _k.run_sliced(_k.loops.gru_fwd, args, f.slices)
    else:
        hh2 = _shared(H, B, f.gx.dtype)
        _on_units(f.units, lambda j, u0, u1, *sync: _k.units.gru_fwd(*args, hh2, *sync, u0, u1))
    return None, acts


def _gru_backward(b):
    H, B = b.dh_mat.shape
    dgh = _k.buffer(b.dg.shape[0], b.dg.shape[1] - 16, b.dg.dtype)   # every column written
    dh_dir = _k.aligned((H, B), b.dg.dtype, True)                # dh * z, the direct path
    if b.units is None:
        _k.run_sliced(_k.loops.gru_bwd, (b.wp, b.wt, b.dout, b.fm.acts, b.fm.hist, b.dg, dgh,
                                         b.dh_mat, dh_dir, b.dhn, b.bs, b.off, B, b.one),
                      b.slices)
    else:
        args = (b.fm.acts, b.fm.hist, b.dg, dgh, b.dh_mat, dh_dir, b.dhn, b.bs, b.off, B, b.one,
                _shared_dz(b))
        _on_units(b.units, lambda j, u0, u1, *sync: _k.units.gru_bwd(
            b.wp, b.wt, *_dout_units(b.dout, H, u0, u1), *args, *sync, u0, u1))
    b.dh_mat[...] += dh_dir
    return dgh, ()


RNN = Fused(_rnn_scale, lambda H: H, _rnn_forward, _rnn_backward, lambda opts: True)
LSTM = Fused(_lstm_scale, lambda H: 4 * H, _lstm_forward, _lstm_backward, lambda opts: True,
             folds_input=True)
# GRU: b_hh's n block stays out (the reset gate multiplies it); only reset_after is fused
GRU = Fused(_gru_scale, lambda H: 2 * H, _gru_forward, _gru_backward,
            lambda opts: opts.get("reset_after", True))


# ---------------------------------------------------------------- drivers

def _prologue(fused, p, xT, TB, opts, own):
    """W_ih x for all steps (G, T*B) (None where the cell's loop folds it in), the
    row scale, the folded bias, and W_hh with its rows scaled, packed for the
    steps (folded: [W_ih | W_hh], packed from the two without concatenating)."""
    G, H = p.w_hh.shape
    scale = fused.scale(G, H, opts).astype(xT.dtype)
    if fused.folds_input:
        gx, blocks = None, (p.w_ih, p.w_hh)                       # (G, I + H)
    else:
        gx, blocks = _k.buffer(G, TB, xT.dtype), (p.w_hh,)
        _k.matmul(p.w_ih, xT[:, :TB], out=gx[:, :TB], parts=own)  # (G, T*B)
    bias = np.zeros(G, xT.dtype)
    if p.b_ih is not None:
        bias += p.b_ih
    if p.b_hh is not None:
        rows = fused.b_hh_rows(H)
        bias[:rows] += p.b_hh[:rows]
    return gx, scale, bias, _k.gemm.pack(*blocks, scale=scale)


def forward(fused, p, x, state0, batch_sizes, **opts):
    """Fused forward of one layer-direction: (states, acts (T, B, A), FM)."""
    T, B, _ = x.shape
    H = p.w_hh.shape[1]
    dt = x.dtype
    bs = _k.batch_sizes(batch_sizes, T, B)
    idx = _k.packed_index(bs, B)                 # (N,) t*B + b of each token, None if full
    # (I, N): BLAS reads x's layout as is; a ragged batch's tokens are gathered first
    xT = _k.fm_view(x) if idx is None else x.reshape(T * B, -1)[idx].T
    N = xT.shape[1]
    own = _k.own_workers(p.w_hh.size, B, T)
    with _k.own_threads(own):
        gx, scale, bias, wp = _prologue(fused, p, xT, N, opts, own)
        hist = _k.buffer(H, (T + 1) * B, dt)                     # every column written before read
        hist[:, :B] = state0[0].T
        f = Fwd(wp, p, gx, _k.input_rows(x) if gx is None else None, scale,
                bias, hist, state0, bs, _k.offsets(bs), T * B,
                dt.type(0.5), opts, _k.row_slices(B, own, dt), idx is None,
                _k.unit_slices(H, own, _k.rows_fall_short(wp.size, B, T, own, idx is not None, dt)))
        chist, acts = fused.forward(f)
    states = (_k.time_major(hist, T + 1, B),) + ((_k.time_major(chist, T + 1, B),) if chist is not None else ())
    return states, _k.time_major(acts, T, B), _k.FM(xT, hist, chist, acts, idx, wp)


def backward(fused, p, cache, dout, dstate_n, **opts):
    """Fused backward from a fused forward's cache: dx, dstate0, (dW_ih, dW_hh, db_ih, db_hh).

    The loops run on the forward's packed panels, read transposed (nothing is
    packed again); their recurrent gradients (dg, or the GRU's dgh) hold dL/dz, z
    = s * (the pre-activations) the forward's product computed, and the gradients
    from them get the row scale s after the products. A folding cell's loop gives dx
    itself, zero where a ragged batch has no token (its steps' products cover
    the rows still running; the one product over the tokens it replaced, with
    its scatter, cost about as much when the steps' last columns ran on half
    vectors). The steps' last columns read W^T packed once per call where any
    step has them (``kernels.transposed_panels``)."""
    fm = cache.fm
    T, B, I = cache.x.shape
    G, H = p.w_hh.shape
    dt, N = fm.hist.dtype, fm.xT.shape[1]
    bs = _k.batch_sizes(cache.batch_sizes, T, B)
    own = _k.own_workers(p.w_hh.size, B, T)
    with _k.own_threads(own):
        units = _k.unit_slices(H, own, _k.rows_fall_short(fm.wp.size, B, T, own, fm.idx is not None,
                                                           dt))
        b = Bwd(fm.wp, _k.transposed_panels(fm.wp, bs), _k.dout_layout(dout), fm,
                _k.buffer(G, N, dt), _k.aligned((H, B), dt, True),
                np.ascontiguousarray(dstate_n[0].T), dstate_n, bs, _k.offsets(bs),
                dt.type(1.0), opts, _k.row_slices(B, own, dt),
                _k.buffer(I, T * B, dt, fm.idx is not None) if fused.folds_input else None,
                units)
        dgh, extra = fused.backward(b)
        dx, grads = _gradients(p, fm, b.dg[:, :N], dgh[:, :N], dgh is b.dg, T, B, I, own,
                               None if b.dx is None else _k.time_major(b.dx, T, B),
                               fused.scale(G, H, opts).astype(dt))
    return dx, (b.dh_mat.T,) + extra, grads


def _gradients(p, fm, dG, dGh, shared, T, B, I, own, dx, scale):
    """dx (T, B, I) (unless the loop gave it) and (dW_ih, dW_hh, db_ih, db_hh),
    one product each, over the tokens present. dG, dGh (G, N): dL/d(gx), dL/d(gh)
    (the same array for LSTM and RNN: ``shared``); dGh is dL/dz of the scaled
    recurrent pre-activations, so what comes from it gets the rows' factor
    ``scale`` (G,) (dG too where it is dGh; the GRU's dG is dL/da). One
    hand-off to the threads for all of it: each takes its share of the rows of
    every product and the bias sums of its rows of dG while they are in cache."""
    (G, N), dt = dG.shape, dG.dtype
    hprev = fm.hist[:, :N] if fm.idx is None else fm.hist[:, fm.idx]   # h_{t-1} of each token
    w_ih = p.w_ih * scale[:, None] if shared and dx is None else p.w_ih   # dG is dL/dz
    dw_ih, dw_hh = np.empty((G, I), dt), np.empty((G, hprev.shape[0]), dt)
    db_ih = np.empty(G, dt) if p.b_ih is not None else None
    db_hh = np.empty(G, dt) if p.b_hh is not None else None
    sums = [(a, g) for a, g in ((dG, db_ih), (dGh, db_hh if not shared else None)) if g is not None]
    # what comes from dL/dz gets the rows' factor, by each thread on its rows while
    # they are in cache (the shared db_hh is db_ih's copy, made after)
    scaled = [g for g in (dw_ih, db_ih, dw_hh, db_hh if not shared else None)[0 if shared else 2:]
              if g is not None]
    full = fm.idx is None
    if dx is None:              # full: (I, T*B) feature-major; ragged: (T*B, I), 0 where no token
        dxm = np.empty((I, N), dt) if full else np.zeros((T * B, I), dt)
    parts = _k.pieces(G, own)

    def job(j):
        rows = _k.cut(G, j, parts)
        _k.product_into(dG[rows], fm.xT[:, :N].T, dw_ih[rows])                  # (G, I)
        _k.product_into(dGh[rows], hprev.T, dw_hh[rows])                        # (G, H)
        for a, g in sums:
            np.sum(a[rows], axis=1, out=g[rows])
        for g in scaled:
            g[rows] *= scale[rows].reshape((-1,) + (1,) * (g.ndim - 1))
        if dx is None and full:
            r = _k.cut(I, j, parts)
            _k.product_into(w_ih.T[r], dG, dxm[r])                                # W_ih^T dG
        elif dx is None:
            r = _k.cut(N, j, parts)
            tokens = np.empty((r.stop - r.start, I), dt)
            _k.product_into(dG[:, r].T, w_ih, tokens)                            # dG^T W_ih
            dxm[fm.idx[r]] = tokens
    parallel([lambda j=j: job(j) for j in range(parts)])
    if shared and db_hh is not None:
        db_hh[...] = db_ih                                        # LSTM, RNN: dGh is dG
    if dx is None:
        dx = dxm.reshape(-1, T, B).transpose(1, 2, 0) if full else dxm.reshape(T, B, I)
    return dx, (dw_ih, dw_hh, db_ih, db_hh)
