"""The NumPy fast path of ``sequence``: the same loops, compiled, laid out for the CPU.

Everything NumPy-specific lives here: numba, direct BLAS calls, strides. When
numba or a BLAS ``cblas_?gemm`` symbol is missing, or the arrays are not NumPy,
``forward``/``backward`` return None and the generic loop in ``sequence`` runs.

What makes it fast, and why:

* The whole time loop of a layer-direction is one compiled call: no Python or
  NumPy call overhead per step. Each step calls ``?gemm`` on OpenBLAS (the one
  NumPy ships) for the recurrent product, then one fused pass over the gates.
* Feature-major histories. The per-step product is small (B columns); OpenBLAS
  runs it ~35% faster when batch is the fast axis of the result, so ``hist`` is
  (H, (T+1)*B) and step s is the column block [s*B, (s+1)*B). Rows are padded
  off powers of two (see ``_buffer``). The rest of the engine sees ordinary
  (T+1, B, H) views of these buffers.
* sigmoid(a) = (1 + tanh(a/2)) / 2, with the 1/2 folded into the input
  projection and a scaled copy of W_hh, so every gate needs one tanh; in
  float32 that tanh is a rational approximation (max error 3e-7, about 2.6 ulp;
  coefficients fitted for rnnlab) that the compiler vectorises, where libm's is
  a scalar call. float64 uses the exact tanh.
* The backward needs no transcendentals: derivatives come from cached
  activations. Input and weight gradients are one product each after the loop.
"""
import ctypes
import glob
import os
from typing import NamedTuple

import numpy as np

try:
    import numba
    from numba.extending import overload
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None


def _load_gemm():
    """(sgemm, dgemm) from the OpenBLAS that NumPy ships, as ctypes functions."""
    libdir = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for so in sorted(glob.glob(os.path.join(libdir, "*openblas*.so*"))):
        lib = ctypes.CDLL(so)
        for pre, suf, idx in (("scipy_cblas_", "64_", ctypes.c_int64),
                              ("cblas_", "64_", ctypes.c_int64), ("cblas_", "", ctypes.c_int)):
            try:
                s, d = getattr(lib, f"{pre}sgemm{suf}"), getattr(lib, f"{pre}dgemm{suf}")
            except AttributeError:
                continue
            ptr, e = ctypes.c_size_t, ctypes.c_int      # pointers travel as integers
            fns = []
            for fn, real in ((s, ctypes.c_float), (d, ctypes.c_double)):
                proto = ctypes.CFUNCTYPE(None, e, e, e, idx, idx, idx, real, ptr, idx,
                                         ptr, idx, real, ptr, idx)
                fns.append(proto(ctypes.cast(fn, ctypes.c_void_p).value))
            return tuple(fns)
    return None


# RNNLAB_PURE_NUMPY=1 forces the generic loop (to compare, or to debug).
_GEMM = (_load_gemm() if numba is not None and not os.environ.get("RNNLAB_PURE_NUMPY")
         else None)
ENABLED = _GEMM is not None


class FM(NamedTuple):
    """Feature-major buffers of one layer-direction (column = t*B + b).

    Each is a padded C-contiguous base array; ``[:, :cols]`` is the data.
    """
    xT: np.ndarray        # (I, T*B) the layer input
    hist: np.ndarray      # (H, (T+1)*B) hidden states; block 0 is the initial state
    chist: object         # (H, (T+1)*B) LSTM cell states, else None
    acts: np.ndarray      # (A, T*B) LSTM i,f,g,o | GRU r,z,n,gh_n | RNN none
    tanh_c: object        # (H, T*B) LSTM tanh(c_t), else None


def _name(cell):
    return cell.__name__.split(".")[-1]


def _usable(cell, opts, *arrays):
    if not ENABLED or _name(cell) not in ("rnn", "lstm", "gru"):
        return False
    if _name(cell) == "gru" and not opts.get("reset_after", True):
        return False
    arrays = [a for a in arrays if a is not None]
    return (all(isinstance(a, np.ndarray) for a in arrays)
            and len({a.dtype for a in arrays}) == 1 and arrays[0].dtype in (np.float32, np.float64))


def _buffer(rows, cols, dtype, zero=False):
    """A (rows, cols + 16) C-contiguous base; the data is ``[:, :cols]``.

    A step's column block has one short row per feature; were rows 2^k bytes
    apart (T*B = 2048 floats, say) they would all map to the same cache sets
    and evict each other. 16 extra floats per row spread them out.
    """
    return (np.zeros if zero else np.empty)((rows, cols + 16), dtype)


def _fm(a):
    """(T, B, F) array -> padded feature-major base (F, T*B + 16)."""
    T, B, F = a.shape
    out = _buffer(F, T * B, a.dtype)
    out[:, :T * B].reshape(F, T, B)[...] = a.transpose(2, 0, 1)
    return out


def _tm(base, T, B):
    """Padded (F, T*B + pad) base -> (T, B, F) view of its data."""
    return base[:, :T * B].reshape(base.shape[0], T, B).transpose(1, 2, 0)


# ---------------------------------------------------------------- compiled helpers

# error_model="numpy": float division without Python's ZeroDivisionError check,
# which would otherwise stop LLVM from vectorising the gate loops. Only FMA
# contraction is allowed beyond IEEE (NaN and Inf must still show up).
_JIT_OPTIONS = {"nogil": True, "error_model": "numpy", "fastmath": {"contract"}}

def _gemm(m, n, k, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc):
    """C[m, n] = A[m, k] @ B[k, n] + beta C, row-major, offsets in elements."""
    raise NotImplementedError("only callable from compiled code")


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

if numba is not None:
    @overload(_gemm, jit_options=_JIT_OPTIONS)
    def _gemm_impl(m, n, k, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc):
        single = a.dtype == numba.float32
        fn, size = (_GEMM[0], 4) if single else (_GEMM[1], 8)

        def impl(m, n, k, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc):
            fn(101, 111, 111, m, n, k, 1.0,                       # row-major, no transposes
               a.ctypes.data + np.uintp(size * a_off), lda,
               b.ctypes.data + np.uintp(size * b_off), ldb, beta,
               c.ctypes.data + np.uintp(size * c_off), ldc)
        return impl

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
    return numba.njit(**_JIT_OPTIONS)(f) if numba is not None else f


# ---------------------------------------------------------------- compiled loops
# Index convention: buffers are padded (rows, cols + 16) bases; the data of time
# step s, batch row k is column s*B + k (hist: (s+1)*B + k after the step).
# bs[s] = rows still running at step s (a prefix of the length-sorted batch).

@_jit
def _rnn_fwd(w_s, gx, hist, tmp, bs, B, kind, half):
    G, H = w_s.shape
    for s in range(bs.shape[0]):
        b, c0, c1 = bs[s], s * B, (s + 1) * B
        _gemm(G, b, H, w_s, 0, H, hist, c0, hist.shape[1], 0.0, tmp, 0, B)
        for j in range(H):
            for k in range(b):
                a = gx[j, c0 + k] + tmp[j, k]
                if kind == 0:
                    hist[j, c1 + k] = _tanh(a)
                elif kind == 1:
                    hist[j, c1 + k] = max(a, half - half)
                else:
                    hist[j, c1 + k] = half * _tanh(a) + half      # a was pre-scaled by 1/2
            for k in range(b, B):
                hist[j, c1 + k] = hist[j, c0 + k]


@_jit
def _gather(src, c0, b, dst):
    """dst[:, :b] = src[:, c0:c0+b]: a step's strided block into contiguous scratch."""
    for r in range(dst.shape[0]):
        for k in range(b):
            dst[r, k] = src[r, c0 + k]


@_jit
def _scatter(src, dst, c0, b):
    """dst[:, c0:c0+b] = src[:, :b]."""
    for r in range(src.shape[0]):
        for k in range(b):
            dst[r, c0 + k] = src[r, k]


@_jit
def _carry(buf, c0, c1, b, B):
    """Rows that have finished keep their state: columns b..B of block c0 -> c1."""
    for r in range(buf.shape[0]):
        for k in range(b, B):
            buf[r, c1 + k] = buf[r, c0 + k]


@_jit
def _sig_tanh(a, lo, hi, half):
    """a[lo:hi] = sigmoid of pre-activations that were scaled by 1/2."""
    for e in range(lo, hi):
        a[e] = half * _tanh(a[e]) + half


@_jit
def _lstm_fwd(w_s, acts, hist, chist, tanh_c, tmp, bs, B, half):
    """acts holds the scaled input projection on entry, i,f,g,o on exit.

    Per step: gemm into contiguous scratch, then flat loops over it that each
    touch two or three arrays, so the compiler vectorises them; then scatter.
    """
    G, H = w_s.shape
    HB = H * B
    gx = np.empty((G, B), acts.dtype)
    c = np.empty((H, B), acts.dtype)
    tc = np.empty((H, B), acts.dtype)
    h = np.empty((H, B), acts.dtype)
    a, cf, tf, hf = tmp.reshape(G * B), c.reshape(HB), tc.reshape(HB), h.reshape(HB)
    gf = gx.reshape(G * B)
    for s in range(bs.shape[0]):
        b, c0, c1 = bs[s], s * B, (s + 1) * B
        _gemm(G, b, H, w_s, 0, H, hist, c0, hist.shape[1], 0.0, tmp, 0, B)
        _gather(acts, c0, b, gx)
        _gather(chist, c0, b, c)                                  # c_{t-1}
        for e in range(G * B):
            a[e] += gf[e]
        _sig_tanh(a, 0, 2 * HB, half)                             # i, f
        for e in range(2 * HB, 3 * HB):
            a[e] = _tanh(a[e])                                    # g
        _sig_tanh(a, 3 * HB, G * B, half)                         # o
        for e in range(HB):
            cf[e] = a[HB + e] * cf[e] + a[e] * a[2 * HB + e]      # c = f c + i g
        for e in range(HB):
            tf[e] = _tanh(cf[e])
        for e in range(HB):
            hf[e] = a[3 * HB + e] * tf[e]                         # h = o tanh(c)
        _scatter(tmp, acts, c0, b)
        _scatter(c, chist, c1, b)
        _scatter(tc, tanh_c, c0, b)
        _scatter(h, hist, c1, b)
        if b < B:
            _carry(hist, c0, c1, b, B)
            _carry(chist, c0, c1, b, B)


@_jit
def _scatter_rows(src, r0, dst, d0, rows, c0, b):
    """dst[d0:d0+rows, c0:c0+b] = src[r0:r0+rows, :b]."""
    for r in range(rows):
        for k in range(b):
            dst[d0 + r, c0 + k] = src[r0 + r, k]


@_jit
def _gru_fwd(w_s, gx, hist, acts, tmp, b_hn, bs, B, half):
    G, H = w_s.shape
    HB = H * B
    one = half + half
    sgx = np.empty((G, B), gx.dtype)
    sh = np.empty((H, B), gx.dtype)
    sn = np.empty((H, B), gx.dtype)
    a, g, h, n = tmp.reshape(G * B), sgx.reshape(G * B), sh.reshape(HB), sn.reshape(HB)
    for s in range(bs.shape[0]):
        b, c0, c1 = bs[s], s * B, (s + 1) * B
        _gemm(G, b, H, w_s, 0, H, hist, c0, hist.shape[1], 0.0, tmp, 0, B)
        _gather(gx, c0, b, sgx)
        _gather(hist, c0, b, sh)                                  # h_{t-1}
        for e in range(2 * HB):
            a[e] += g[e]
        _sig_tanh(a, 0, 2 * HB, half)                             # r, z
        for j in range(H):
            for k in range(B):
                tmp[2 * H + j, k] += b_hn[j]                      # gh_n
        for e in range(HB):
            n[e] = _tanh(g[2 * HB + e] + a[e] * a[2 * HB + e])    # n = tanh(gx_n + r gh_n)
        for e in range(HB):
            z = a[HB + e]
            h[e] = (one - z) * n[e] + z * h[e]                    # h_t
        _scatter_rows(tmp, 0, acts, 0, 2 * H, c0, b)              # r, z
        _scatter_rows(sn, 0, acts, 2 * H, H, c0, b)               # n
        _scatter_rows(tmp, 2 * H, acts, 3 * H, H, c0, b)          # gh_n
        _scatter(sh, hist, c1, b)
        if b < B:
            _carry(hist, c0, c1, b, B)


@_jit
def _rnn_bwd(w_t, dout, hist, dg, dh_mat, dhn, bs, B, kind, one):
    H, G = w_t.shape
    HB, T = H * B, bs.shape[0]
    sd = np.zeros((H, B), dg.dtype)                               # zero: see _lstm_bwd
    sh = np.zeros((H, B), dg.dtype)
    sg = np.zeros((H, B), dg.dtype)
    d, h, g, dh = sd.reshape(HB), sh.reshape(HB), sg.reshape(HB), dh_mat.reshape(HB)
    for s in range(T - 1, -1, -1):
        b, c0 = bs[s], s * B
        _inject(dh_mat, dhn, bs[s + 1] if s + 1 < T else 0, b)
        _gather(dout, c0, b, sd)
        _gather(hist, c0 + B, b, sh)                              # h_t = f(a_t)
        for e in range(HB):
            dh[e] += d[e]
        if kind == 0:
            for e in range(HB):
                g[e] = dh[e] * (one - h[e] * h[e])
        elif kind == 1:
            for e in range(HB):
                g[e] = dh[e] if h[e] > 0 else (one - one) * dh[e]
        else:
            for e in range(HB):
                g[e] = dh[e] * h[e] * (one - h[e])
        _scatter(sg, dg, c0, b)
        _gemm(H, b, G, w_t, 0, G, sg, 0, B, 0.0, dh_mat, 0, B)


@_jit
def _inject(d, dn, lo, hi):
    """Gradients on final states enter at each row's own last step."""
    for r in range(d.shape[0]):
        for k in range(lo, hi):
            d[r, k] += dn[r, k]


@_jit
def _lstm_bwd(w_t, dout, acts, tanh_c, chist, dg, dh_mat, dc, dhn, dcn, bs, B, one):
    H, G = w_t.shape
    HB, T = H * B, bs.shape[0]
    # Zero-filled: a row not yet started (backward runs time in reverse) is
    # never gathered, so its columns stay 0 and leave dh_mat and dc at 0.
    sa = np.zeros((G, B), dg.dtype)                               # i, f, g, o
    st = np.zeros((H, B), dg.dtype)                               # tanh(c_t)
    sc = np.zeros((H, B), dg.dtype)                               # c_{t-1}
    sd = np.zeros((H, B), dg.dtype)                               # dout_t
    sg = np.zeros((G, B), dg.dtype)                               # dG_t
    a, t, cp, d = sa.reshape(G * B), st.reshape(HB), sc.reshape(HB), sd.reshape(HB)
    g, dh, dcf = sg.reshape(G * B), dh_mat.reshape(HB), dc.reshape(HB)
    for s in range(T - 1, -1, -1):
        b, c0 = bs[s], s * B
        lo = bs[s + 1] if s + 1 < T else 0
        _inject(dh_mat, dhn, lo, b)
        _inject(dc, dcn, lo, b)
        _gather(acts, c0, b, sa)
        _gather(tanh_c, c0, b, st)
        _gather(chist, c0, b, sc)
        _gather(dout, c0, b, sd)
        for e in range(HB):
            dh[e] += d[e]                                         # dL/dh_t
        for e in range(HB):
            o = a[3 * HB + e]
            g[3 * HB + e] = dh[e] * t[e] * o * (one - o)          # da_o
        for e in range(HB):
            dcf[e] += dh[e] * a[3 * HB + e] * (one - t[e] * t[e])  # dL/dc_t
        for e in range(HB):
            i, gg = a[e], a[2 * HB + e]
            g[e] = dcf[e] * gg * i * (one - i)                    # da_i
            g[2 * HB + e] = dcf[e] * i * (one - gg * gg)          # da_g
        for e in range(HB):
            f = a[HB + e]
            g[HB + e] = dcf[e] * cp[e] * f * (one - f)            # da_f
            dcf[e] *= f                                           # dL/dc_{t-1}
        _scatter(sg, dg, c0, b)
        _gemm(H, b, G, w_t, 0, G, sg, 0, B, 0.0, dh_mat, 0, B)


@_jit
def _gru_bwd(w_t, dout, acts, hist, dgx, dgh, dh_mat, dh_dir, dhn, bs, B, one):
    H, G = w_t.shape
    HB, T = H * B, bs.shape[0]
    sa = np.zeros((4 * H, B), dgx.dtype)                          # r, z, n, gh_n; zero: see _lstm_bwd
    sh = np.zeros((H, B), dgx.dtype)                              # h_{t-1}
    sd = np.zeros((H, B), dgx.dtype)                              # dout_t
    sx = np.zeros((G, B), dgx.dtype)                              # dGx_t
    sg = np.zeros((G, B), dgx.dtype)                              # dGh_t
    a, h, d = sa.reshape(4 * HB), sh.reshape(HB), sd.reshape(HB)
    x, g = sx.reshape(G * B), sg.reshape(G * B)
    dh, dd = dh_mat.reshape(HB), dh_dir.reshape(HB)
    for s in range(T - 1, -1, -1):
        b, c0 = bs[s], s * B
        _inject(dh_dir, dhn, bs[s + 1] if s + 1 < T else 0, b)
        _gather(acts, c0, b, sa)
        _gather(hist, c0, b, sh)
        _gather(dout, c0, b, sd)
        for e in range(HB):
            dh[e] += dd[e] + d[e]                                 # dL/dh_t
        for e in range(HB):
            z, n = a[HB + e], a[2 * HB + e]
            x[2 * HB + e] = dh[e] * (one - z) * (one - n * n)     # da_n
            x[HB + e] = dh[e] * (h[e] - n) * z * (one - z)        # da_z
        for e in range(HB):
            r = a[e]
            x[e] = x[2 * HB + e] * a[3 * HB + e] * r * (one - r)  # da_r
            g[2 * HB + e] = x[2 * HB + e] * r                     # dL/d(gh_n)
        for e in range(2 * HB):
            g[e] = x[e]
        for e in range(HB):
            dd[e] = dh[e] * a[HB + e]                             # direct path dh * z
        _scatter(sx, dgx, c0, b)
        _scatter(sg, dgh, c0, b)
        _gemm(H, b, G, w_t, 0, G, sg, 0, B, 0.0, dh_mat, 0, B)


# ---------------------------------------------------------------- drivers

def _batch_sizes(batch_sizes, T, B):
    return np.full(T, B, np.int64) if batch_sizes is None else np.asarray(batch_sizes, np.int64)


def _prologue(name, p, xT, TB, opts):
    """gx = scaled (W_ih x + biases), (G, T*B): the layer's one input product.

    Rows of sigmoid gates are scaled by 1/2 (so sigmoid = (1 + tanh) / 2), and
    so are those rows of the returned W_hh copy. GRU: b_hh's n block stays out
    (the reset gate multiplies it), the r and z blocks are folded in.
    """
    G, H = p.w_hh.shape
    scale = np.full(G, 0.5, xT.dtype)
    if name == "lstm":
        scale[2 * H:3 * H] = 1.0                                  # g is a tanh gate
    elif name == "gru":
        scale[2 * H:] = 1.0
    elif opts.get("nonlinearity", "tanh") != "sigmoid":
        scale[:] = 1.0
    gx = _buffer(G, TB, xT.dtype)
    data = gx[:, :TB]
    np.matmul(p.w_ih, xT[:, :TB], out=data)                       # (G, T*B)
    rows = 2 * H if name == "gru" else G
    bias = np.zeros(G, xT.dtype)
    if p.b_ih is not None:
        bias += p.b_ih
    if p.b_hh is not None:
        bias[:rows] += p.b_hh[:rows]
    data += bias[:, None]
    if np.any(scale != 1):
        data *= scale[:, None]
    return gx, np.ascontiguousarray(p.w_hh * scale[:, None])


def _rnn_kind(opts):
    return {"tanh": 0, "relu": 1, "sigmoid": 2}[opts.get("nonlinearity", "tanh")]


def forward(cell, p, x, state0, batch_sizes, **opts):
    """Fast forward; returns (states, acts view, FM) or None when it does not apply."""
    if not _usable(cell, opts, x, p.w_ih, p.w_hh, p.b_ih, p.b_hh, *state0):
        return None
    name = _name(cell)
    T, B, _ = x.shape
    G, H = p.w_hh.shape
    dt, TB = x.dtype, T * B
    xT = _fm(x)                                                   # (I, T*B)
    gx, w_s = _prologue(name, p, xT, TB, opts)
    bs = _batch_sizes(batch_sizes, T, B)
    hist = _buffer(H, (T + 1) * B, dt)
    hist[:, :B] = state0[0].T
    tmp, half = np.empty((G, B), dt), dt.type(0.5)
    chist = tanh_c = None
    if name == "lstm":
        chist, tanh_c, acts = _buffer(H, (T + 1) * B, dt), _buffer(H, TB, dt, True), gx
        chist[:, :B] = state0[1].T
        _lstm_fwd(w_s, acts, hist, chist, tanh_c, tmp, bs, B, half)
    elif name == "gru":
        acts = _buffer(4 * H, TB, dt, True)
        b_hn = p.b_hh[2 * H:].copy() if p.b_hh is not None else np.zeros(H, dt)
        _gru_fwd(w_s, gx, hist, acts, tmp, b_hn, bs, B, half)
    else:
        acts = _buffer(0, TB, dt)
        _rnn_fwd(w_s, gx, hist, tmp, bs, B, _rnn_kind(opts), half)
    states = (_tm(hist, T + 1, B),) + ((_tm(chist, T + 1, B),) if chist is not None else ())
    return states, _tm(acts, T, B), FM(xT, hist, chist, acts, tanh_c)


def backward(cell, p, cache, dout, dstate_n, **opts):
    """Fast backward from a fast forward's cache; None when it does not apply."""
    fm = getattr(cache, "fm", None)
    if fm is None or not _usable(cell, opts, dout, p.w_ih, p.w_hh, *dstate_n):
        return None
    name = _name(cell)
    T, B, _ = cache.x.shape
    G, H = p.w_hh.shape
    dt, TB = fm.hist.dtype, T * B
    bs = _batch_sizes(cache.batch_sizes, T, B)
    doutT = _fm(dout)                                             # (H, T*B)
    dg = _buffer(G, TB, dt, True)                                 # dL/d(gx), every step
    dgh = _buffer(G, TB, dt, True) if name == "gru" else dg       # dL/d(W_hh h + b_hh)
    dh_mat = np.zeros((H, B), dt)                                 # W_hh^T dG of step s+1
    dhn = np.ascontiguousarray(dstate_n[0].T)                     # (H, B)
    w_t, one = np.ascontiguousarray(p.w_hh.T), dt.type(1.0)       # (H, G)
    dc = None
    if name == "lstm":
        dc, dcn = np.zeros((H, B), dt), np.ascontiguousarray(dstate_n[1].T)
        _lstm_bwd(w_t, doutT, fm.acts, fm.tanh_c, fm.chist, dg, dh_mat, dc, dhn, dcn, bs, B, one)
    elif name == "gru":
        dh_dir = np.zeros((H, B), dt)                             # dh * z, the direct path
        _gru_bwd(w_t, doutT, fm.acts, fm.hist, dg, dgh, dh_mat, dh_dir, dhn, bs, B, one)
        dh_mat += dh_dir
    else:
        _rnn_bwd(w_t, doutT, fm.hist, dg, dh_mat, dhn, bs, B, _rnn_kind(opts), one)
    dG, dGh = dg[:, :TB], dgh[:, :TB]
    dx = (p.w_ih.T @ dG).reshape(-1, T, B).transpose(1, 2, 0)     # (T, B, I), one product
    grads = (dG @ fm.xT[:, :TB].T,                                # dW_ih (G, I)
             dGh @ fm.hist[:, :TB].T,                             # dW_hh (G, H)
             dG.sum(axis=1) if p.b_ih is not None else None,
             dGh.sum(axis=1) if p.b_hh is not None else None)
    dstate0 = (dh_mat.T,) + ((dc.T,) if dc is not None else ())
    return dx, dstate0, grads
