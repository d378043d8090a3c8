"""The compiled loops of the fast path (see ``_kernels`` for why they look so).

Each function is one layer-direction's whole forward or backward time loop,
compiled by numba: per step a BLAS ``?gemm`` (called through its address,
passed in as ``gemm``), then gate arithmetic in contiguous scratch, in flat
loops the compiler vectorises. Imported only when numba is installed.
"""
import numba
import numpy as np
from llvmlite import ir as llir
from numba.core import types as nbtypes
from numba.extending import intrinsic, overload


# error_model="numpy": float division without Python's ZeroDivisionError check,
# which would otherwise stop LLVM from vectorising the gate loops. Only FMA
# contraction is allowed beyond IEEE (NaN and Inf must still show up).
_JIT_OPTIONS = {"nogil": True, "error_model": "numpy", "fastmath": {"contract"}, "cache": True}


def _gemm(addr, m, n, k, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc):
    """C[m, n] = A[m, k] @ B[k, n] + beta C, row-major, offsets in elements,
    through the cblas ?gemm at address addr."""
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


@intrinsic
def _call_gemm(typingctx, addr, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """cblas_?gemm(RowMajor, NoTrans, NoTrans, ...) called through its address."""
    sig = nbtypes.void(addr, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

    def codegen(context, builder, signature, args):
        i32, i64 = llir.IntType(32), llir.IntType(64)
        ptr, real = llir.IntType(8).as_pointer(), context.get_value_type(signature.args[4])
        fnty = llir.FunctionType(llir.VoidType(), [i32, i32, i32, i64, i64, i64, real, ptr,
                                                   i64, ptr, i64, real, ptr, i64])
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        ints = [context.cast(builder, args[i], signature.args[i], nbtypes.int64)
                for i in (1, 2, 3, 6, 8, 11)]
        ptrs = [builder.inttoptr(args[i], ptr) for i in (5, 7, 10)]
        beta_ = context.cast(builder, args[9], signature.args[9], signature.args[4])
        builder.call(fn, [i32(101), i32(111), i32(111), ints[0], ints[1], ints[2], args[4],
                          ptrs[0], ints[3], ptrs[1], ints[4], beta_, ptrs[2], ints[5]])
        return context.get_dummy_value()
    return sig, codegen


@overload(_gemm, jit_options=_JIT_OPTIONS)
def _gemm_impl(addr, m, n, k, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc):
    real = np.float32 if a.dtype == numba.float32 else np.float64
    size = np.uintp(np.dtype(real).itemsize)

    def impl(addr, m, n, k, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc):
        _call_gemm(addr, m, n, k, real(1.0),
                   a.ctypes.data + size * np.uintp(a_off), lda,
                   b.ctypes.data + size * np.uintp(b_off), ldb, real(beta),
                   c.ctypes.data + size * np.uintp(c_off), ldc)
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
    return numba.njit(**_JIT_OPTIONS)(f)


# ---------------------------------------------------------------- compiled loops
# Index convention: buffers are padded (rows, cols + 16) bases; the data of time
# step s, batch row k is column s*B + k (hist: (s+1)*B + k after the step).
# bs[s] = rows still running at step s (a prefix of the length-sorted batch).
#
# Every inner loop runs from 0 over 1-D slice views: an index like lo + i could
# be negative as far as numba knows, and its wraparound branch would stop LLVM
# from vectorising. Each step works in contiguous (rows, B) scratch: gathered
# from the strided histories, flat loops over it, scattered back.

@_jit
def _gather(src, c0, b, dst):
    """dst[:, :b] = src[:, c0:c0+b]: a step's strided block into contiguous scratch."""
    for r in range(dst.shape[0]):
        s, d = src[r, c0:c0 + b], dst[r, :b]
        for k in range(b):
            d[k] = s[k]


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
def _rnn_fwd(gemm, w_s, gx, scale, bias, hist, tmp, bs, B, kind, half):
    G, H = w_s.shape
    sg = np.empty((G, B), gx.dtype)
    a, g = tmp.reshape(G * B), sg.reshape(G * B)
    for s in range(bs.shape[0]):
        b, c0, c1 = bs[s], s * B, (s + 1) * B
        _gemm(gemm, G, b, H, w_s, 0, H, hist, c0, hist.shape[1], 0.0, tmp, 0, B)
        _gather_affine(gx, c0, b, sg, scale, bias)
        _add(a, g)
        if kind == 0:
            _tanh_(a)
        elif kind == 1:
            for e in range(a.shape[0]):
                a[e] = max(a[e], half - half)
        else:
            _sig_tanh(a, half)                                    # a was pre-scaled by 1/2
        _scatter(tmp, hist, c1, b)
        if b < B:
            _carry(hist, c0, c1, b, B)


@_jit
def _lstm_fwd(gemm, w_s, acts, scale, bias, hist, chist, tanh_c, tmp, bs, B, half):
    """acts holds the input projection W_ih x on entry, i,f,g,o on exit."""
    G, H = w_s.shape
    HB = H * B
    gx = np.empty((G, B), acts.dtype)
    c = np.empty((H, B), acts.dtype)
    tc = np.empty((H, B), acts.dtype)
    h = np.empty((H, B), acts.dtype)
    a, cf, tf, hf = tmp.reshape(G * B), c.reshape(HB), tc.reshape(HB), h.reshape(HB)
    x = gx.reshape(G * B)
    ai, af, ag, ao = a[:HB], a[HB:2 * HB], a[2 * HB:3 * HB], a[3 * HB:]
    xi, xf, xg, xo = x[:HB], x[HB:2 * HB], x[2 * HB:3 * HB], x[3 * HB:]
    for s in range(bs.shape[0]):
        b, c0, c1 = bs[s], s * B, (s + 1) * B
        _gemm(gemm, G, b, H, w_s, 0, H, hist, c0, hist.shape[1], 0.0, tmp, 0, B)
        _gather_affine(acts, c0, b, gx, scale, bias)
        _gather(chist, c0, b, c)                                  # c_{t-1}
        for e in range(HB):                                       # one fused pass
            i = half * _tanh(ai[e] + xi[e]) + half
            f = half * _tanh(af[e] + xf[e]) + half
            g = _tanh(ag[e] + xg[e])
            o = half * _tanh(ao[e] + xo[e]) + half
            ce = f * cf[e] + i * g                                # c = f c + i g
            te = _tanh(ce)
            ai[e], af[e], ag[e], ao[e] = i, f, g, o
            cf[e], tf[e], hf[e] = ce, te, o * te                  # h = o tanh(c)
        _scatter(tmp, acts, c0, b)
        _scatter(c, chist, c1, b)
        _scatter(tc, tanh_c, c0, b)
        _scatter(h, hist, c1, b)
        if b < B:
            _carry(hist, c0, c1, b, B)
            _carry(chist, c0, c1, b, B)


@_jit
def _gru_fwd(gemm, w_s, gx, scale, bias, hist, acts, tmp, b_hn, bs, B, half):
    G, H = w_s.shape
    HB = H * B
    one = half + half
    sgx = np.empty((G, B), gx.dtype)
    sh = np.empty((H, B), gx.dtype)
    sn = np.empty((H, B), gx.dtype)
    bn = np.empty((H, B), gx.dtype)                               # b_hn, one per row
    for j in range(H):
        bn[j, :] = b_hn[j]
    a, x, h, n, bnf = (tmp.reshape(G * B), sgx.reshape(G * B), sh.reshape(HB),
                       sn.reshape(HB), bn.reshape(HB))
    ar, az, ahn = a[:HB], a[HB:2 * HB], a[2 * HB:]
    xr, xz, xn = x[:HB], x[HB:2 * HB], x[2 * HB:]
    for s in range(bs.shape[0]):
        b, c0, c1 = bs[s], s * B, (s + 1) * B
        _gemm(gemm, G, b, H, w_s, 0, H, hist, c0, hist.shape[1], 0.0, tmp, 0, B)
        _gather_affine(gx, c0, b, sgx, scale, bias)
        _gather(hist, c0, b, sh)                                  # h_{t-1}
        for e in range(HB):                                       # one fused pass
            r = half * _tanh(ar[e] + xr[e]) + half
            z = half * _tanh(az[e] + xz[e]) + half
            ghn = ahn[e] + bnf[e]                                 # gh_n = W_hn h + b_hn
            ne = _tanh(xn[e] + r * ghn)                           # n = tanh(gx_n + r gh_n)
            ar[e], az[e], ahn[e], n[e] = r, z, ghn, ne
            h[e] = (one - z) * ne + z * h[e]                      # h_t
        _scatter_rows(tmp, 0, acts, 0, 2 * H, c0, b)              # r, z
        _scatter_rows(sn, 0, acts, 2 * H, H, c0, b)               # n
        _scatter_rows(tmp, 2 * H, acts, 3 * H, H, c0, b)          # gh_n
        _scatter(sh, hist, c1, b)
        if b < B:
            _carry(hist, c0, c1, b, B)


@_jit
def _rnn_bwd(gemm, w_t, dout, hist, dg, dh_mat, dhn, bs, B, kind, one):
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
        _add(dh, d)
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
        _gemm(gemm, H, b, G, w_t, 0, G, sg, 0, B, 0.0, dh_mat, 0, B)


@_jit
def _lstm_bwd(gemm, w_t, dout, acts, tanh_c, chist, dg, dh_mat, dc, dhn, dcn, bs, B, one):
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
    ai, af, ag, ao = a[:HB], a[HB:2 * HB], a[2 * HB:3 * HB], a[3 * HB:]
    gi, gf, gg, go = g[:HB], g[HB:2 * HB], g[2 * HB:3 * HB], g[3 * HB:]
    for s in range(T - 1, -1, -1):
        b, c0 = bs[s], s * B
        lo = bs[s + 1] if s + 1 < T else 0
        _inject(dh_mat, dhn, lo, b)
        _inject(dc, dcn, lo, b)
        _gather(acts, c0, b, sa)
        _gather(tanh_c, c0, b, st)
        _gather(chist, c0, b, sc)
        _gather(dout, c0, b, sd)
        for e in range(HB):                                       # one fused pass
            dhe = dh[e] + d[e]                                    # dL/dh_t
            i, f, gv, o, te = ai[e], af[e], ag[e], ao[e], t[e]
            dct = dcf[e] + dhe * o * (one - te * te)              # dL/dc_t
            go[e] = dhe * te * o * (one - o)
            gi[e] = dct * gv * i * (one - i)
            gg[e] = dct * i * (one - gv * gv)
            gf[e] = dct * cp[e] * f * (one - f)
            dcf[e] = dct * f                                      # dL/dc_{t-1}
        _scatter(sg, dg, c0, b)
        _gemm(gemm, H, b, G, w_t, 0, G, sg, 0, B, 0.0, dh_mat, 0, B)


@_jit
def _gru_bwd(gemm, w_t, dout, acts, hist, dgx, dgh, dh_mat, dh_dir, dhn, bs, B, one):
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
    ar, az, an, ahn = a[:HB], a[HB:2 * HB], a[2 * HB:3 * HB], a[3 * HB:]
    xr, xz, xn = x[:HB], x[HB:2 * HB], x[2 * HB:]
    gr, gz, gn = g[:HB], g[HB:2 * HB], g[2 * HB:]
    for s in range(T - 1, -1, -1):
        b, c0 = bs[s], s * B
        _inject(dh_dir, dhn, bs[s + 1] if s + 1 < T else 0, b)
        _gather(acts, c0, b, sa)
        _gather(hist, c0, b, sh)
        _gather(dout, c0, b, sd)
        for e in range(HB):                                       # one fused pass
            dhe = dh[e] + dd[e] + d[e]                            # dL/dh_t
            r, z, ne = ar[e], az[e], an[e]
            dan = dhe * (one - z) * (one - ne * ne)
            daz = dhe * (h[e] - ne) * z * (one - z)
            dar = dan * ahn[e] * r * (one - r)
            xr[e], xz[e], xn[e] = dar, daz, dan
            gr[e], gz[e], gn[e] = dar, daz, dan * r               # dL/d(W_hh h + b_hh)
            dd[e] = dhe * z                                       # direct path dh * z
        _scatter(sx, dgx, c0, b)
        _scatter(sg, dgh, c0, b)
        _gemm(gemm, H, b, G, w_t, 0, G, sg, 0, B, 0.0, dh_mat, 0, B)


