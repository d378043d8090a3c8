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
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None


def _load_gemm():
    """Addresses of cblas_sgemm and cblas_dgemm (64-bit integer interface) in the
    OpenBLAS that NumPy ships, or None. The compiled loops receive them as plain
    integers, which keeps them cacheable on disk (a ctypes object would not be)."""
    libdir = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for so in sorted(glob.glob(os.path.join(libdir, "*openblas*.so*"))):
        lib = ctypes.CDLL(so)
        for pre in ("scipy_cblas_", "cblas_"):
            try:
                fns = getattr(lib, f"{pre}sgemm64_"), getattr(lib, f"{pre}dgemm64_")
            except AttributeError:
                continue
            _LIBS.append(lib)                                     # keep it loaded
            return tuple(ctypes.cast(f, ctypes.c_void_p).value for f in fns)
    return None


_LIBS = []
# RNNLAB_PURE_NUMPY=1 forces the generic loop (to compare, or to debug).
_GEMM = (_load_gemm() if numba is not None and not os.environ.get("RNNLAB_PURE_NUMPY")
         else None)
ENABLED = _GEMM is not None
if ENABLED:
    from rnnlab.engine.fast.loops import (_gru_bwd, _gru_fwd, _lstm_bwd, _lstm_fwd, _rnn_bwd,  # noqa: E402
                         _rnn_fwd)


class FM(NamedTuple):
    """Feature-major buffers of one layer-direction (column = t*B + b).

    Each but xT is a padded C-contiguous base array; ``[:, :cols]`` is the data.
    """
    xT: np.ndarray        # (I, T*B) the layer input: a view of x, read only by BLAS
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
    """(T, B, F) array -> feature-major (F, T*B): a view when that is C-contiguous
    (the gradient a layer above hands down is), else a padded copy."""
    T, B, F = a.shape
    v = a.transpose(2, 0, 1).reshape(F, T * B)                    # a view where strides allow
    if v.flags.c_contiguous:
        return v
    out = _buffer(F, T * B, a.dtype)
    out[:, :T * B].reshape(F, T, B)[...] = a.transpose(2, 0, 1)
    return out


def _fm_view(a):
    """(T, B, F) -> (F, T*B) for BLAS only: any layout BLAS takes, copied only if not."""
    T, B, F = a.shape
    return a.transpose(2, 0, 1).reshape(F, T * B)


def _tm(base, T, B):
    """Padded (F, T*B + pad) base -> (T, B, F) view of its data."""
    return base[:, :T * B].reshape(base.shape[0], T, B).transpose(1, 2, 0)


# ---------------------------------------------------------------- drivers

def _batch_sizes(batch_sizes, T, B):
    return np.full(T, B, np.int64) if batch_sizes is None else np.asarray(batch_sizes, np.int64)


def _prologue(name, p, xT, TB, opts):
    """W_ih x for all steps, (G, T*B): the layer's one input product.

    Returns it with the per-row scale and bias the kernels apply as they read
    each step: rows of sigmoid gates are scaled by 1/2 (so sigmoid = (1 + tanh)
    / 2), and so are those rows of the returned W_hh copy. GRU: b_hh's n block
    stays out (the reset gate multiplies it); its r and z blocks are folded in.
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
    np.matmul(p.w_ih, xT[:, :TB], out=gx[:, :TB])                 # (G, T*B)
    rows = 2 * H if name == "gru" else G
    bias = np.zeros(G, xT.dtype)
    if p.b_ih is not None:
        bias += p.b_ih
    if p.b_hh is not None:
        bias[:rows] += p.b_hh[:rows]
    return gx, scale, bias, np.ascontiguousarray(p.w_hh * scale[:, None])


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
    gemm = _GEMM[0] if dt == np.float32 else _GEMM[1]
    xT = _fm_view(x)                          # (I, T*B); BLAS reads x's layout as is
    gx, scale, bias, w_s = _prologue(name, p, xT, TB, opts)
    bs = _batch_sizes(batch_sizes, T, B)
    hist = _buffer(H, (T + 1) * B, dt)
    hist[:, :B] = state0[0].T
    half = dt.type(0.5)
    chist = tanh_c = None
    if name == "lstm":
        chist, tanh_c, acts = _buffer(H, (T + 1) * B, dt), _buffer(H, TB, dt, True), gx
        chist[:, :B] = state0[1].T
        _lstm_fwd(gemm, w_s, acts, scale, bias, hist, chist, tanh_c, bs, B, half)
    elif name == "gru":
        acts = _buffer(cell.act_width(H), TB, dt, True)           # r, z, n, gh_n
        b_hn = p.b_hh[2 * H:].copy() if p.b_hh is not None else np.zeros(H, dt)
        _gru_fwd(gemm, w_s, gx, scale, bias, hist, acts, b_hn, bs, B, half)
    else:
        acts = _buffer(cell.act_width(H), TB, dt)                 # none: h_t gives f'
        _rnn_fwd(gemm, w_s, gx, scale, bias, hist, bs, B, _rnn_kind(opts), half)
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
    gemm = _GEMM[0] if dt == np.float32 else _GEMM[1]
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
        _lstm_bwd(gemm, w_t, doutT, fm.acts, fm.tanh_c, fm.chist, dg, dh_mat, dc, dhn, dcn, bs, B, one)
    elif name == "gru":
        dh_dir = np.zeros((H, B), dt)                             # dh * z, the direct path
        _gru_bwd(gemm, w_t, doutT, fm.acts, fm.hist, dg, dgh, dh_mat, dh_dir, dhn, bs, B, one)
        dh_mat += dh_dir
    else:
        _rnn_bwd(gemm, w_t, doutT, fm.hist, dg, dh_mat, dhn, bs, B, _rnn_kind(opts), one)
    dG, dGh = dg[:, :TB], dgh[:, :TB]
    dx = (p.w_ih.T @ dG).reshape(-1, T, B).transpose(1, 2, 0)     # (T, B, I), one product
    grads = (dG @ fm.xT[:, :TB].T,                                # dW_ih (G, I)
             dGh @ fm.hist[:, :TB].T,                             # dW_hh (G, H)
             dG.sum(axis=1) if p.b_ih is not None else None,
             dGh.sum(axis=1) if p.b_hh is not None else None)
    dstate0 = (dh_mat.T,) + ((dc.T,) if dc is not None else ())
    return dx, dstate0, grads
