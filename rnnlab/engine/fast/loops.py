"""The compiled loops of the fast path (see ``kernels`` for why they look so).

Each function is one layer-direction's whole forward or backward time loop,
compiled by numba: per step the recurrent product on weights packed once per
call (``gemm.product``), then gate arithmetic in contiguous scratch, in flat
loops the compiler vectorises. Imported only when numba is installed.
"""
import numba
import numpy as np
from numba.extending import overload

from rnnlab.engine.fast.gemm import ROWS, columns, prefetch, product, product_t


# error_model="numpy": float division without Python's ZeroDivisionError check,
# which would otherwise stop LLVM from vectorising the gate loops. Only FMA
# contraction is allowed beyond IEEE (NaN and Inf must still show up).
_JIT_OPTIONS = {"nogil": True, "error_model": "numpy", "fastmath": {"contract"}, "cache": True}


def _tanh(x):
    raise NotImplementedError("only callable from compiled code")


# tanh(x) ~ x P(x^2) / Q(x^2) on |x| <= 9, fitted for rnnlab by iteratively
# reweighted least squares on the relative error: 6.7e-9 in exact arithmetic,
# 3.1e-7 (about 2.6 ulp) evaluated in float32. |tanh(x)| rounds to 1 beyond 9.
_P = [np.float32(v) for v in (9.99999993e-01, 1.30839552e-01, 3.10389586e-03,
                              1.11537058e-05, -2.02229532e-08, 5.27694335e-11,
                              -8.48634818e-14)]
_Q = [np.float32(v) for v in (1.0, 4.64172823e-01, 2.44949353e-02, 2.54605902e-04)]
_CLAMP = np.float32(9.0)


@overload(_tanh, inline="always", jit_options=_JIT_OPTIONS)
def _tanh_impl(x):
    if x != numba.float32:
        return lambda x: np.tanh(x)
    p0, p1, p2, p3, p4, p5, p6 = _P
    q0, q1, q2, q3 = _Q
    lim = _CLAMP

    def impl(x):
        x = min(max(x, -lim), lim)
        u = x * x
        p = ((((((p6 * u + p5) * u + p4) * u + p3) * u + p2) * u + p1) * u + p0)
        return x * p / (((q3 * u + q2) * u + q1) * u + q0)
    return impl


def _jit(f):
    return numba.njit(**_JIT_OPTIONS)(f)


# ---------------------------------------------------------------- compiled loops
# Index convention: buffers are padded (rows, cols + 16) bases; the data of time
# step s, batch row k is column s*B + k (hist: (s+1)*B + k after the step).
# bs[s] = rows still running at step s (a prefix of the length-sorted batch).
# Packed buffers (gx, and the gradients dg/dgx/dgh) hold only the tokens present:
# step s's rows start at column off[s] = bs[0] + ... + bs[s-1] (= s*B when every
# row is full), so the whole-sequence products before and after the loop run
# over the tokens of a ragged batch, not its padded grid.
#
# Every inner loop runs from 0 over 1-D slice views: an index like lo + i could
# be negative as far as numba knows, and its wraparound branch would stop LLVM
# from vectorising. Each step works in compact (rows, b) scratch, b = rows still
# running: gathered from the strided histories, flat loops over it, scattered back.
# The scratch rows are w = _cols(b) apart, b rounded up to whole vectors: the
# product computes whole vectors (see ``gemm``); columns b..w are never scattered.
# The forward loops keep the state (h, and the LSTM's c) in scratch from one step
# to the next, and the product reads h_{t-1} there: read from the history, whose
# rows lie a page or more apart, every step's product paid a TLB miss per row
# (LSTM H = 128, 64 steps of 16 rows: 2.40 ms against 1.63). Ragged rows end as
# a suffix, so the rows still running keep their columns; the state is gathered
# again only when the scratch width changes.
#
# Each loop runs the batch rows k0..k0+kB (kernels.row_slices): rows of a
# recurrent layer never meet, so slices of the batch run in separate threads,
# each with its own per-step products, and meet only when the loops return.

@_jit
def _gather(src, c0, b, dst):
    """dst[:, :b] = src[:, c0:c0+b]: a step's strided block into contiguous scratch."""
    for r in range(dst.shape[0]):
        s, d = src[r, c0:c0 + b], dst[r, :b]
        for k in range(b):
            d[k] = s[k]


@_jit
def _prefetch_block(src, c0, b):
    """Hint src[:, c0:c0+b], the block a later ``_gather`` reads, into cache: one
    line or two per row, each row a page or more from the last, which the
    hardware's prefetchers do not follow."""
    if b == 0:
        return
    size = src.itemsize
    start, last = src.ctypes.data + size * c0, size * (b - 1)
    for r in range(src.shape[0]):
        a = start + r * src.strides[0]
        prefetch(a)
        if a % 64 + last >= 64:
            prefetch(a + last)


@_jit
def _gather_either(src, fm, c0, b, dst):
    """dst[:, :b] = the rows c0..c0+b of a (T, B, F) array held either way:
    feature-major (F, T*B) (fm) like ``_gather``, or time-major (T*B, F) rows (a
    caller's own array), transposed here while it is in cache instead of in a
    whole-array copy before the loop."""
    if fm:
        _gather(src, c0, b, dst)
        return
    F = dst.shape[0]
    for k in range(b):
        row = src[c0 + k]
        for r in range(F):
            dst[r, k] = row[r]


@_jit
def dout_feature_major(src, H):
    """Whether the upstream gradient ``kernels.dout_layout`` gave is feature-major
    (H, T*B) rather than time-major (T*B, H) rows: its rows are H (where T*B == H
    would make that ambiguous, ``dout_layout`` gives feature-major)."""
    return src.shape[0] == H


@_jit
def _gather_dout(src, c0, b, dst):
    """A step's upstream gradient into (H, b) scratch, either layout."""
    _gather_either(src, dout_feature_major(src, dst.shape[0]), c0, b, dst)


@_jit
def _gather_affine(src, c0, b, dst, scale, bias):
    """dst[r, :b] = scale[r] * (src[r, c0:c0+b] + bias[r]): the input projection's
    biases and the 1/2 of sigmoid gates, applied as the step reads its block."""
    for r in range(dst.shape[0]):
        s, d, sc, bb = src[r, c0:c0 + b], dst[r, :b], scale[r], bias[r]
        for k in range(b):
            d[k] = sc * (s[k] + bb)


@_jit
def _scatter_rows(src, r0, dst, d0, rows, c0, b):
    """dst[d0:d0+rows, c0:c0+b] = src[r0:r0+rows, :b]."""
    for r in range(rows):
        s, d = src[r0 + r, :b], dst[d0 + r, c0:c0 + b]
        for k in range(b):
            d[k] = s[k]


@_jit
def _scatter(src, dst, c0, b):
    _scatter_rows(src, 0, dst, 0, src.shape[0], c0, b)


@_jit
def _carry(buf, c0, c1, b, B):
    """Rows that have finished keep their state: columns b..B of block c0 -> c1."""
    for r in range(buf.shape[0]):
        s, d = buf[r, c0 + b:c0 + B], buf[r, c1 + b:c1 + B]
        for k in range(B - b):
            d[k] = s[k]


@_jit
def _inject(d, dn, lo, hi):
    """Gradients on final states enter at each row's own last step: d[:, lo:hi] += dn."""
    for r in range(d.shape[0]):
        x, y = d[r, lo:hi], dn[r, lo:hi]
        for k in range(hi - lo):
            x[k] += y[k]


@_jit
def _inject_rows(d, dn, lo, hi, k0, kB):
    """_inject for the batch rows lo..hi that fall in this loop's slice k0..k0+kB."""
    lo, hi = max(lo, k0), min(hi, k0 + kB)
    if hi > lo:
        _inject(d, dn, lo, hi)


@_jit
def _rows(running, k0, kB):
    """Of the rows running at a step (a prefix of the length-sorted batch), how many
    fall in the slice k0..k0+kB that this loop runs."""
    return min(max(running - k0, 0), kB)


@_jit
def _cols(b, a):
    """Scratch columns for b rows of a's dtype (``gemm.columns``)."""
    return columns(b, a.itemsize)


@_jit
def _scratch(rows, kB, a):
    """Zeroed flat scratch for (rows, up to kB) blocks (zero: the columns past b,
    computed on but never kept, hold finite values)."""
    return np.zeros(rows * _cols(kB, a), a.dtype)


@_jit
def _add(x, y):
    for e in range(x.shape[0]):
        x[e] += y[e]


@_jit
def _sig_tanh(v, half):
    """v = sigmoid of pre-activations that were scaled by 1/2."""
    for e in range(v.shape[0]):
        v[e] = half * _tanh(v[e]) + half


@_jit
def _tanh_(v):
    for e in range(v.shape[0]):
        v[e] = _tanh(v[e])


@_jit
def _block(flat, rows, b):
    """A compact (rows, b) view at the front of a flat scratch buffer."""
    return flat[:rows * b].reshape(rows, b)


@_jit
def _bwd_scratch(wp, kB, a):
    """(g_buf, o_buf): scratch for a backward step's dL/dz (the panels' Mp rows,
    zero past the gate rows) and for its product (I + H rows, whole R-row blocks)."""
    return (_scratch(wp.shape[0] * ROWS, kB, a),
            _scratch(-(-wp.shape[1] // ROWS) * ROWS, kB, a))


@_jit
def _backprop(wp, wt, g_buf, o_buf, dh_mat, dx, c0, k0, b):
    """The step's product on the forward's own panels wp, read transposed
    (``gemm.product_t``): s * [W_ih | W_hh] (LSTM), or s * W_hh (RNN, GRU: their
    input product ran before the loop; I = 0), times dL/dz_t in g_buf (G, w), z
    the scaled pre-activations the forward's product computed. Rows 0..I are dx_t
    (to dx's columns c0..c0+b; dx with no rows: not wanted, and the product
    starts at the row block holding row I), rows I..I+H dL/dh_{t-1} (to dh_mat's
    columns k0..k0+b; past b are other rows')."""
    H = dh_mat.shape[0]
    I, w = wp.shape[1] - H, _cols(b, g_buf)
    k0r = 0 if dx.shape[0] else I // ROWS * ROWS                  # first product row
    product_t(wp, wt, _block(g_buf, wp.shape[0] * ROWS, w), w, o_buf, b, k0r, I + H)
    o = _block(o_buf, -(-(I + H) // ROWS) * ROWS - k0r, w)
    if dx.shape[0]:
        _scatter_rows(o, 0, dx, 0, I, c0, b)                      # dx_t
    _scatter_rows(o, I - k0r, dh_mat, 0, H, k0, b)                # dL/dh_{t-1} via W_hh


# ---------------------------------------------------------------- gate passes
# One fused pass over a step's compact (rows, w) blocks, flat, per cell and
# direction: the one home of each cell's arithmetic on the fast path (the row
# slices here and the unit split of ``units`` both call them).

@_jit
def rnn_act(a, kind, half):
    """a = f(a) in place: tanh (kind 0), relu (1), sigmoid of a pre-scaled by 1/2 (2)."""
    if kind == 0:
        _tanh_(a)
    elif kind == 1:
        for e in range(a.shape[0]):
            a[e] = max(a[e], half - half)
    else:
        _sig_tanh(a, half)


@_jit
def rnn_act_back(g, dh, h, kind, one):
    """g = dL/dz from dL/dh_t and h_t = f(z) (the sigmoid's z pre-scaled by 1/2:
    twice dL/da)."""
    if kind == 0:
        for e in range(g.shape[0]):
            g[e] = dh[e] * (one - h[e] * h[e])
    elif kind == 1:
        for e in range(g.shape[0]):
            g[e] = dh[e] if h[e] > 0 else (one - one) * dh[e]
    else:
        for e in range(g.shape[0]):
            g[e] = dh[e] * (one + one) * h[e] * (one - h[e])     # h = (1 + tanh z) / 2


@_jit
def lstm_gates(a, z, c, h, n, half):
    """a (4n: i, f, g, o blocks) = the step's product, z its bias: a becomes the
    gates, c (n) c_{t-1} -> c_t, h (n) gets h_t."""
    ai, af, ag, ao = a[:n], a[n:2 * n], a[2 * n:3 * n], a[3 * n:4 * n]
    zi, zf, zg, zo = z[:n], z[n:2 * n], z[2 * n:3 * n], z[3 * n:4 * n]
    for e in range(n):
        i = half * _tanh(ai[e] + zi[e]) + half
        f = half * _tanh(af[e] + zf[e]) + half
        g = _tanh(ag[e] + zg[e])
        o = half * _tanh(ao[e] + zo[e]) + half
        ce = f * c[e] + i * g                                     # c = f c + i g
        ai[e], af[e], ag[e], ao[e] = i, f, g, o
        c[e], h[e] = ce, o * _tanh(ce)                            # h = o tanh(c)


@_jit
def lstm_gates_back(a, t, cp, d, dh, dc, g, n, one):
    """From the gates a (4n), c_t (t), c_{t-1} (cp), the output's gradient d and
    dL/dh_t, dL/dc_t from step t+1 (dh, dc): g (4n) = dL/dz of the scaled
    pre-activations (twice dL/da on sigmoid rows), dc -> dL/dc_{t-1}. tanh(c_t)
    is recomputed from c_t rather than stored by the forward: one tanh per
    element costs less than writing and re-reading an (H, T*B) array."""
    two = one + one
    ai, af, ag, ao = a[:n], a[n:2 * n], a[2 * n:3 * n], a[3 * n:4 * n]
    gi, gf, gg, go = g[:n], g[n:2 * n], g[2 * n:3 * n], g[3 * n:4 * n]
    for e in range(n):
        dhe = dh[e] + d[e]                                        # dL/dh_t
        i, f, gv, o, te = ai[e], af[e], ag[e], ao[e], _tanh(t[e])
        dct = dc[e] + dhe * o * (one - te * te)                   # dL/dc_t
        go[e] = dhe * te * two * o * (one - o)                    # o = (1 + tanh z) / 2: do/dz = 2 o (1 - o)
        gi[e] = dct * gv * two * i * (one - i)
        gg[e] = dct * i * (one - gv * gv)
        gf[e] = dct * cp[e] * two * f * (one - f)
        dc[e] = dct * f                                           # dL/dc_{t-1}


@_jit
def gru_gates(a, x, h, nn_, n, half):
    """a (3n: r, z, gh_n with b_hn added) the step's recurrent product, x (3n) the
    input projection: a's r, z blocks become the gates (gh_n stays), nn_ (n) gets
    n, h (n) h_{t-1} -> h_t."""
    one = half + half
    ar, az, ahn = a[:n], a[n:2 * n], a[2 * n:3 * n]
    xr, xz, xn = x[:n], x[n:2 * n], x[2 * n:3 * n]
    for e in range(n):
        r = half * _tanh(ar[e] + xr[e]) + half
        z = half * _tanh(az[e] + xz[e]) + half
        ne = _tanh(xn[e] + r * ahn[e])                            # n = tanh(gx_n + r gh_n)
        ar[e], az[e], nn_[e] = r, z, ne
        h[e] = (one - z) * ne + z * h[e]                          # h_t


@_jit
def gru_gates_back(a, h, d, dh, dd, x, g, n, one):
    """From r, z, n, gh_n (a, 4n), h_{t-1}, the output's gradient d, dL/dh_t
    through W_hh (dh) and the direct path (dd) from step t+1: x (3n) = dL/da of
    the input pre-activations, g (3n) = dL/dz of the scaled recurrent ones
    (twice on r, z), dd -> dh_t * z, the direct path to step t-1."""
    two = one + one
    ar, az, an, ahn = a[:n], a[n:2 * n], a[2 * n:3 * n], a[3 * n:4 * n]
    xr, xz, xn = x[:n], x[n:2 * n], x[2 * n:3 * n]
    gr, gz, gn = g[:n], g[n:2 * n], g[2 * n:3 * n]
    for e in range(n):
        dhe = dh[e] + dd[e] + d[e]                                # dL/dh_t
        r, z, ne = ar[e], az[e], an[e]
        dan = dhe * (one - z) * (one - ne * ne)
        daz = dhe * (h[e] - ne) * z * (one - z)
        dar = dan * ahn[e] * r * (one - r)
        xr[e], xz[e], xn[e] = dar, daz, dan
        gr[e], gz[e], gn[e] = two * dar, two * daz, dan * r       # dL/dz, z = s (W_hh h + b_hh)
        dd[e] = dhe * z                                           # direct path dh * z


@_jit
def add_rows(blk, v, r0):
    """blk[j, :] += v[r0 + j]: a per-row constant (the GRU's b_hn) added in place."""
    for j in range(blk.shape[0]):
        blk[j, :] += v[r0 + j]


# ---------------------------------------------------------------- time loops

@_jit
def rnn_fwd(wp, gx, scale, bias, hist, bs, off, B, kind, half, k0, kB):
    G = H = hist.shape[0]
    a_buf, g_buf = _scratch(wp.shape[0] * ROWS, kB, gx), _scratch(G, kB, gx)
    h_buf = _scratch(H, kB, gx)
    w0 = 0
    for s in range(bs.shape[0]):
        b, c0, c1 = _rows(bs[s], k0, kB), s * B + k0, (s + 1) * B + k0
        w = _cols(b, gx)
        if w != w0:                                               # h_{t-1} into scratch
            _gather(hist, c0, b, _block(h_buf, H, w))
        w0 = w
        product(wp, h_buf, 0, w, a_buf, b)                        # W_hh h_{t-1}, (G, w)
        _gather_affine(gx, off[s] + k0, b, _block(g_buf, G, w), scale, bias)
        a, g, h = a_buf[:G * w], g_buf[:G * w], h_buf[:H * w]
        _add(a, g)
        rnn_act(a, kind, half)
        h[:] = a                                                  # h_t, the next step's operand
        _scatter(_block(h_buf, H, w), hist, c1, b)
        if b < kB:
            _carry(hist, c0, c1, b, kB)


@_jit
def lstm_fwd(wp, x, x_fm, acts, bias, hist, chist, bs, B, half, k0, kB):
    """The LSTM forward with the input product folded into each step's product:
    wp packs [W_ih | W_hh] (G, I + H), rows scaled, and multiplies the (I + H, w)
    scratch [x_t; h_{t-1}], whose lower H rows are the h the step before wrote.
    x: the layer input, feature-major (I, T*B) (x_fm) or time-major (T*B, I);
    bias: (G,) scaled; acts gets i,f,g,o."""
    G, H = acts.shape[0], hist.shape[0]
    I = wp.shape[1] - H
    a_buf, z_buf = _scratch(wp.shape[0] * ROWS, kB, acts), _scratch(G, kB, acts)
    xh_buf, c_buf = _scratch(I + H, kB, acts), _scratch(H, kB, acts)
    w0 = 0
    for s in range(bs.shape[0]):
        b, c0, c1 = _rows(bs[s], k0, kB), s * B + k0, (s + 1) * B + k0   # b rows still running
        w = _cols(b, acts)
        n = H * w
        xh = _block(xh_buf, I + H, w)
        if w != w0:                                               # c_{t-1}, h_{t-1}, bias
            _gather(chist, c0, b, _block(c_buf, H, w))
            _gather(hist, c0, b, xh[I:])
            zb = _block(z_buf, G, w)
            for j in range(G):
                zb[j, :] = bias[j]
        w0 = w
        _gather_either(x, x_fm, c0, b, xh[:I])                    # x_t
        product(wp, xh_buf, 0, w, a_buf, b)                       # W_ih x_t + W_hh h_{t-1}
        lstm_gates(a_buf, z_buf, c_buf, xh_buf[I * w:I * w + n], n, half)   # h_t into the operand
        _scatter(_block(a_buf, G, w), acts, c0, b)
        _scatter(_block(c_buf, H, w), chist, c1, b)
        _scatter(xh[I:], hist, c1, b)
        if b < kB:
            _carry(hist, c0, c1, b, kB)
            _carry(chist, c0, c1, b, kB)


@_jit
def gru_fwd(wp, gx, scale, bias, hist, acts, b_hn, bs, off, B, half, k0, kB):
    G, H = gx.shape[0], hist.shape[0]
    a_buf, x_buf = _scratch(wp.shape[0] * ROWS, kB, gx), _scratch(G, kB, gx)
    h_buf, n_buf = _scratch(H, kB, gx), _scratch(H, kB, gx)
    w0 = 0
    for s in range(bs.shape[0]):
        b, c0, c1 = _rows(bs[s], k0, kB), s * B + k0, (s + 1) * B + k0
        w = _cols(b, gx)
        n = H * w
        if w != w0:                                               # h_{t-1} into scratch
            _gather(hist, c0, b, _block(h_buf, H, w))
        w0 = w
        product(wp, h_buf, 0, w, a_buf, b)                        # W_hh h_{t-1}, (G, w)
        _gather_affine(gx, off[s] + k0, b, _block(x_buf, G, w), scale, bias)
        a2 = _block(a_buf, G, w)
        add_rows(a2[2 * H:], b_hn, 0)                             # gh_n = W_hn h + b_hn
        gru_gates(a_buf, x_buf, h_buf, n_buf, n, half)
        _scatter_rows(a2, 0, acts, 0, 2 * H, c0, b)               # r, z
        _scatter_rows(_block(n_buf, H, w), 0, acts, 2 * H, H, c0, b)   # n
        _scatter_rows(a2, 2 * H, acts, 3 * H, H, c0, b)           # gh_n
        _scatter(_block(h_buf, H, w), hist, c1, b)
        if b < kB:
            _carry(hist, c0, c1, b, kB)


@_jit
def rnn_bwd(wp, wt, dout, hist, dg, dh_mat, dhn, bs, off, B, kind, one, k0, kB):
    """On the forward's panels (``_backprop``): dg gets dL/dz (twice dL/da for the
    sigmoid, whose pre-activation the forward scaled by 1/2)."""
    H, T = dh_mat.shape[0], bs.shape[0]
    d_buf, h_buf, dh_buf = _scratch(H, kB, dg), _scratch(H, kB, dg), _scratch(H, kB, dg)
    g_buf, o_buf = _bwd_scratch(wp, kB, dg)
    no_dx = np.empty((0, 0), dg.dtype)
    for s in range(T - 1, -1, -1):
        b, c0 = _rows(bs[s], k0, kB), s * B + k0
        w = _cols(b, dg)
        n = H * w
        _inject_rows(dh_mat, dhn, bs[s + 1] if s + 1 < T else 0, bs[s], k0, kB)
        _gather_dout(dout, c0, b, _block(d_buf, H, w))
        _gather(hist, c0 + B, b, _block(h_buf, H, w))             # h_t = f(a_t)
        _gather(dh_mat, k0, b, _block(dh_buf, H, w))              # dL/dh_t from step t+1
        if s > 0:
            _prefetch_block(hist, c0, _rows(bs[s - 1], k0, kB))   # step s-1's h_t, read next
        dh = dh_buf[:n]
        _add(dh, d_buf[:n])
        rnn_act_back(g_buf[:n], dh, h_buf[:n], kind, one)
        _scatter(_block(g_buf, H, w), dg, off[s] + k0, b)
        _backprop(wp, wt, g_buf, o_buf, dh_mat, no_dx, c0, k0, b)


@_jit
def lstm_bwd(wp, wt, dout, acts, chist, dg, dh_mat, dc, dhn, dcn, dx, bs, off, B, one, k0, kB):
    """The backward runs on the forward's own panels wp, s * [W_ih | W_hh] (the
    row scale s is 1/2 on sigmoid rows), transposed in the product (wt: the same
    transposed, ``gemm.pack_t``, for a step's last columns, or empty): dg gets
    dL/dz, z = s * (W_ih x + W_hh h + b) what the forward's
    product computed (twice dL/da on sigmoid rows), and the step's product,
    [W_ih | W_hh]^T s dL/dz, gives dx_t (to dx) and dL/dh_{t-1} together; with
    no rows in dx (a ragged batch: the input gradient is one product over the
    tokens after the loop), only the W_hh rows, from the block holding row I
    (``lstm_gates_back``: tanh(c_t) recomputed)."""
    H, G, T = dh_mat.shape[0], dg.shape[0], bs.shape[0]
    a_buf = _scratch(G, kB, dg)                                   # i,f,g,o
    g_buf, o_buf = _bwd_scratch(wp, kB, dg)                       # dL/dz_t; the product
    t_buf, c_buf, d_buf = _scratch(H, kB, dg), _scratch(H, kB, dg), _scratch(H, kB, dg)
    dh_buf, dc_buf = _scratch(H, kB, dg), _scratch(H, kB, dg)
    for s in range(T - 1, -1, -1):
        b, c0 = _rows(bs[s], k0, kB), s * B + k0                  # b rows running at step s
        w = _cols(b, dg)
        n = H * w
        lo = bs[s + 1] if s + 1 < T else 0
        _inject_rows(dh_mat, dhn, lo, bs[s], k0, kB)              # rows whose last step is s
        _inject_rows(dc, dcn, lo, bs[s], k0, kB)
        _gather(acts, c0, b, _block(a_buf, G, w))
        _gather(chist, c0 + B, b, _block(t_buf, H, w))            # c_t
        _gather(chist, c0, b, _block(c_buf, H, w))                # c_{t-1}
        _gather_dout(dout, c0, b, _block(d_buf, H, w))
        _gather(dh_mat, k0, b, _block(dh_buf, H, w))              # from step t+1
        _gather(dc, k0, b, _block(dc_buf, H, w))
        if s > 0:                                                 # step s-1's, read next
            bp = _rows(bs[s - 1], k0, kB)
            _prefetch_block(acts, c0 - B, bp)
            _prefetch_block(chist, c0 - B, bp)
        lstm_gates_back(a_buf, t_buf, c_buf, d_buf, dh_buf, dc_buf, g_buf, n, one)
        _scatter(_block(dc_buf, H, w), dc, k0, b)
        _scatter(_block(g_buf, G, w), dg, off[s] + k0, b)
        _backprop(wp, wt, g_buf, o_buf, dh_mat, dx, c0, k0, b)


@_jit
def gru_bwd(wp, wt, dout, acts, hist, dgx, dgh, dh_mat, dh_dir, dhn, bs, off, B, one, k0, kB):
    """On the forward's panels of s * W_hh (``_backprop``): dgh gets dL/dz of the
    recurrent pre-activations, twice dL/da on the r and z rows (scaled by 1/2);
    dgx, for the input weights (unscaled, multiplied before the loop), dL/da."""
    H, G, T = dh_mat.shape[0], dgx.shape[0], bs.shape[0]
    a_buf, x_buf = _scratch(4 * H, kB, dgx), _scratch(G, kB, dgx)
    g_buf, o_buf = _bwd_scratch(wp, kB, dgx)
    h_buf, d_buf = _scratch(H, kB, dgx), _scratch(H, kB, dgx)
    dh_buf, dd_buf = _scratch(H, kB, dgx), _scratch(H, kB, dgx)
    no_dx = np.empty((0, 0), dgx.dtype)
    for s in range(T - 1, -1, -1):
        b, c0 = _rows(bs[s], k0, kB), s * B + k0
        w = _cols(b, dgx)
        n = H * w
        _inject_rows(dh_dir, dhn, bs[s + 1] if s + 1 < T else 0, bs[s], k0, kB)
        _gather(acts, c0, b, _block(a_buf, 4 * H, w))             # r, z, n, gh_n
        _gather(hist, c0, b, _block(h_buf, H, w))                 # h_{t-1}
        _gather_dout(dout, c0, b, _block(d_buf, H, w))
        _gather(dh_mat, k0, b, _block(dh_buf, H, w))              # W_hh^T dGh from step t+1
        _gather(dh_dir, k0, b, _block(dd_buf, H, w))              # dh * z from step t+1
        if s > 0:                                                 # step s-1's, read next
            bp = _rows(bs[s - 1], k0, kB)
            _prefetch_block(acts, c0 - B, bp)
            _prefetch_block(hist, c0 - B, bp)
        gru_gates_back(a_buf, h_buf, d_buf, dh_buf, dd_buf, x_buf, g_buf, n, one)
        _scatter(_block(dd_buf, H, w), dh_dir, k0, b)
        _scatter(_block(x_buf, G, w), dgx, off[s] + k0, b)
        _scatter(_block(g_buf, G, w), dgh, off[s] + k0, b)
        _backprop(wp, wt, g_buf, o_buf, dh_mat, no_dx, c0, k0, b)
