"""The NumPy fast path's machinery: BLAS found, buffers laid out for the CPU.

Everything NumPy-specific lives here and in ``fused`` (the per-cell drivers)
and ``loops`` (the compiled time loops): numba, direct BLAS calls, strides.
``available()`` says whether numba and a BLAS ``cblas_?gemm`` were found (the
engine's dispatcher, ``rnnlab.engine.dispatch``, reads it and the cell's own
``fast_kernels()`` declaration to choose between this and the reference loop);
``blas()`` names the library that runs the per-step products.

What makes it fast, and why:

* The whole time loop of a layer-direction is one compiled call: no Python or
  NumPy call overhead per step. Each step calls ``?gemm`` on OpenBLAS (the one
  NumPy ships) for the recurrent product, then one fused pass over the gates.
* With ``RNNLAB_BLAS=mkl``, the ``mkl`` extra (Intel's ``mkl`` wheel) and the products on one
  thread (``--threads 1``, ``RNNLAB_LOOP_THREADS=1``, OMP_NUM_THREADS=1): W_hh
  is packed once per call and the steps of 16 columns or more run MKL's
  ``?gemm_compute`` on the packed copy (``recurrent_gemm``; OpenBLAS re-packs
  W_hh at every call, at B = 32 a third of the product), and the
  whole-sequence products run on MKL's ?gemm (``matmul``). MKL is sequential
  here. With two or more threads and a full batch of 32 rows or more, a layer call
  runs on rnnlab's own threads instead (``own_threads``): the batch in row
  slices, one time loop per slice on the packed W_hh, the whole-sequence
  products split by rows: at H = 512, 14-18% more tokens/s than on
  OpenBLAS's threads for the LSTM, GRU and RNN; at 256, 0-12% (runs vary);
  none at 128 (``bench_layers``, 2 threads, quiet machine). Opt-in,
  ``RNNLAB_BLAS=mkl`` (read at import): with it a run's last digits depend on
  the thread count; without it they do not.
* ``RNNLAB_LOOP_THREADS=1`` runs the per-step products on one BLAS thread
  (``loop_threads``; default 0: BLAS's own setting). On an idle machine BLAS's
  threads help (2 threads: GRU 1.10x torch instead of 0.79x at H = 256); on a
  machine that other jobs load, a descheduled BLAS thread stalls every step
  (64 steps of a (1024, 256) x (256, 32) product: 22 ms on one thread, 90-1,260
  ms on two), and one thread is the robust choice.
* Feature-major histories. The per-step product is small (B columns); OpenBLAS
  runs it ~35% faster when batch is the fast axis of the result, so ``hist`` is
  (H, (T+1)*B) and step s is the column block [s*B, (s+1)*B). Rows are padded
  off powers of two (see ``buffer``). The rest of the engine sees ordinary
  (T+1, B, H) views of these buffers.
* sigmoid(a) = (1 + tanh(a/2)) / 2, with the 1/2 folded into the input
  projection and a scaled copy of W_hh, so every gate needs one tanh; in
  float32 that tanh is a rational approximation (max error 3e-7, about 2.6 ulp;
  coefficients fitted for rnnlab) that the compiler vectorises, where libm's is
  a scalar call. float64 uses the exact tanh.
* The backward's derivatives come from cached activations; the LSTM's
  tanh(c_t) alone is recomputed from c_t (one tanh costs less than writing and
  re-reading an (H, T*B) array). Input and weight gradients are one product
  each after the loop, over the tokens present (ragged batches are packed).
"""
import ctypes
import glob
import os
import sys
import threading
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

from rnnlab.engine.threads import parallel

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


class MKL(NamedTuple):
    """MKL's packed GEMM (the ``mkl`` extra): W_hh is packed once per call, as
    torch's fused LSTM does, and each step's product reads the packed copy
    (?gemm_compute) instead of OpenBLAS re-packing W_hh at every step (per-step
    product 1.2-1.8x faster, B = 32, H = 128-512). ILP64 entry points."""
    lib: object
    compute: tuple        # (float32, float64) addresses of cblas_?gemm_compute_64
    gemm: tuple           # (float32, float64) cblas_?gemm_64 as ctypes functions


def _load_mkl():
    """MKL's runtime library where the ``mkl`` wheel put it, or None."""
    for so in sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*"))):
        try:
            lib = ctypes.CDLL(so)
            fns = [getattr(lib, f"cblas_{t}gemm_compute_64") for t in "sd"]
        except (OSError, AttributeError):
            continue
        # sequential MKL: its OpenMP threads, spinning after each call, fought
        # OpenBLAS's and torch's (2 threads, quiet machine: the language model
        # step 2x slower, ragged batches 2.5x); the products it runs here are
        # per-step ones, or whole-sequence ones only where OpenBLAS is on one thread
        lib.MKL_Set_Threading_Layer(1)                            # MKL_THREADING_SEQUENTIAL
        for t in "sd":
            size = getattr(lib, f"cblas_{t}gemm_pack_get_size_64")
            size.argtypes, size.restype = [ctypes.c_int] + [ctypes.c_int64] * 3, ctypes.c_size_t
            getattr(lib, f"cblas_{t}gemm_pack_64").argtypes = (
                [ctypes.c_int] * 3 + [ctypes.c_int64] * 3
                + [ctypes.c_float if t == "s" else ctypes.c_double]
                + [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p])
        gemms = []
        for t, real in (("s", ctypes.c_float), ("d", ctypes.c_double)):
            f = getattr(lib, f"cblas_{t}gemm_64")
            f.argtypes = ([ctypes.c_int] * 3 + [ctypes.c_int64] * 3
                          + [real, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                             ctypes.c_int64, real, ctypes.c_void_p, ctypes.c_int64])
            gemms.append(f)
        return MKL(lib, tuple(ctypes.cast(f, ctypes.c_void_p).value for f in fns), tuple(gemms))
    return None


def _openblas_threads():
    """OpenBLAS's current thread count (1 where it cannot be asked)."""
    for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads"):
        f = getattr(_LIBS[0], name, None) if _LIBS else None
        if f is not None:
            return f()
    return 1


def _loop_blas_threads():
    """Threads OpenBLAS gives the time loops' per-step products (``loop_threads``).
    MKL runs sequential here, so it takes the steps only where OpenBLAS would run
    them on one thread too (2 threads, quiet: OpenBLAS's parallel per-step product
    won, ragged LSTM batches 31 ms against 35)."""
    n = int(os.environ.get("RNNLAB_LOOP_THREADS", "0"))
    return n if n > 0 and _SET_THREADS is not None else _openblas_threads()


def _thread_setter():
    """OpenBLAS's ``openblas_set_num_threads_local`` (this thread only; returns
    the previous count), or None where this OpenBLAS lacks it."""
    f = getattr(_LIBS[0], "openblas_set_num_threads_local", None) if _LIBS else None
    if f is not None:
        f.argtypes, f.restype = [ctypes.c_int], ctypes.c_int
    return f


_LIBS = []
_GEMM = _load_gemm() if numba is not None else None
# opt-in: MKL's products round differently from OpenBLAS's, and it runs only
# where the products are on one thread, so with it on, a run's last digits
# would depend on the thread count (a Ray trial, one thread, against the same
# run on two); without it they do not
_MKL = _load_mkl() if _GEMM is not None and os.environ.get("RNNLAB_BLAS") == "mkl" else None
_SET_THREADS = _thread_setter()
if _GEMM is not None:
    from rnnlab.engine.fast import loops                          # noqa: E402


def blas():
    """Which library runs the per-step products: 'openblas', or with RNNLAB_BLAS=mkl
    where, as ``recurrent_gemm`` and ``own_workers`` decide."""
    if _MKL is None:
        return "openblas"
    return ("mkl (packed) on one thread, and on rnnlab's own threads for full batches of "
            f"{2 * MIN_SLICE_ROWS}+ rows; openblas's threads otherwise")


# MKL's packed kernel computes 16 columns at a time: below that, a step (the tail
# of a ragged batch) is faster on OpenBLAS (measured, H = 128-512: n = 2 costs
# 3x more packed than on OpenBLAS; n >= 16 costs 1.3-1.7x less)
PACKED_MIN_COLS = 16


def recurrent_gemm(w, n, sliced=False):
    """How the time loops multiply by w (m, k) at every step, n columns at most:
    ``(spec, keep)``. spec = (plain, compute, packed, min_cols) goes to the loops:
    a step of at least min_cols columns calls MKL's ?gemm_compute at address
    compute on w packed at address packed; any other, cblas ?gemm at plain on w
    itself (packed = 0: always; MKL packs only where the steps run on one
    thread, as they do in each of several row slices: ``sliced``). keep holds
    the packed copy alive (one copy, which every slice's thread reads)."""
    m, k = w.shape
    real = w.dtype == np.float64
    if _MKL is None or n < PACKED_MIN_COLS or not (sliced or _loop_blas_threads() == 1):
        return (_GEMM[real], 0, 0, 0), None
    t = "d" if real else "s"
    size = getattr(_MKL.lib, f"cblas_{t}gemm_pack_get_size_64")(161, m, n, k)  # CblasAMatrix
    keep = _pack_buffer(size)
    getattr(_MKL.lib, f"cblas_{t}gemm_pack_64")(101, 161, 111, m, n, k, 1.0,  # RowMajor, A, NoTrans
                                                 w.ctypes.data, k, keep.ctypes.data)
    return (_GEMM[real], _MKL.compute[real], keep.ctypes.data, PACKED_MIN_COLS), keep


def matmul(a, b, out=None, parts=1):
    """a @ b for the whole-sequence products (input projection, weight and input
    gradients): MKL's ?gemm where the mkl extra is there and NumPy's OpenBLAS runs
    on one thread (5-15% faster than OpenBLAS on these shapes; MKL runs
    sequential here), split by rows over ``parts`` of rnnlab's own threads (see
    ``own_threads``); else NumPy's. 2-D, one float dtype; each operand row- or
    column-major with any leading dimension (views of the padded buffers)."""
    M, K = a.shape
    N = b.shape[1]
    out = np.empty((M, N), a.dtype) if out is None else out
    oa, ob, oc = _order(a), _order(b), _order(out)
    if (_MKL is None or _openblas_threads() != 1 or a.dtype != b.dtype
            or a.dtype != out.dtype or a.dtype not in (np.float32, np.float64)
            or oc != 111 or None in (oa, ob) or 0 in (M, N, K)):
        return np.matmul(a, b, out=out)
    cuts = np.linspace(0, M, min(parts, max(1, M // 16)) + 1).astype(int)
    parallel([lambda r0=r0, r1=r1: _mkl_gemm(a[r0:r1], b, out[r0:r1])
              for r0, r1 in zip(cuts, cuts[1:])])
    return out


def _mkl_gemm(a, b, out):
    ld = lambda x, o: (x.strides[0] if o == 111 else x.strides[1]) // x.itemsize  # noqa: E731
    (M, K), N = a.shape, b.shape[1]
    oa, ob = _order(a), _order(b)
    _MKL.gemm[a.dtype == np.float64](101, oa, ob, M, N, K, 1.0, a.ctypes.data, ld(a, oa),
                                      b.ctypes.data, ld(b, ob), 0.0, out.ctypes.data,
                                      ld(out, 111))


def _order(x):
    """CblasNoTrans (111) for a row-major matrix, CblasTrans (112) for a column-major
    one (read as the transpose of a row-major one), None for neither."""
    if any(st % x.itemsize for st in x.strides):
        return None
    if x.strides[1] == x.itemsize and x.strides[0] >= x.shape[1] * x.itemsize:
        return 111
    if x.strides[0] == x.itemsize and x.strides[1] >= x.shape[0] * x.itemsize:
        return 112
    return None


_SCRATCH = threading.local()


def _pack_buffer(size):
    """size bytes (64-byte aligned) for a packed W_hh, reused by this thread's calls.
    MKL asks for ~10 MB whatever the matrix (9.2 MB for a 512 x 128 one): a fresh
    buffer per call cost more in page faults (~4 ms) than the 64 products it
    serves. One per thread, since a time loop's packed copy is in use until the
    loop returns, and a thread runs one loop at a time."""
    buf = getattr(_SCRATCH, "pack", None)
    if buf is None or buf.nbytes < size + 64:
        buf = _SCRATCH.pack = np.empty(size + 64, np.uint8)
    skip = -buf.ctypes.data % 64
    return buf[skip:skip + size]


@contextmanager
def _openblas_held(n):
    """Inside: OpenBLAS on n threads (n <= 0 or no setter: unchanged). Its thread
    setter, though named ``_local``, sets the count every thread sees here
    (measured), so it is only ever called from the calling thread."""
    if _SET_THREADS is None or n <= 0:
        yield
        return
    prev = _SET_THREADS(n)
    try:
        yield
    finally:
        _SET_THREADS(prev)


def loop_threads(own=1):
    """Inside: BLAS calls run on ``RNNLAB_LOOP_THREADS`` threads (default 0 =
    unchanged), for the compiled time loops' per-step products; nothing where
    ``own_threads(own)`` holds OpenBLAS at one thread already."""
    return _openblas_held(int(os.environ.get("RNNLAB_LOOP_THREADS", "0")) if own <= 1 else 0)


# ---------------------------------------------------------------- own threads
# With the mkl extra (RNNLAB_BLAS=mkl) and two or more threads, a layer call
# runs on rnnlab's own threads: the batch in row slices, one whole time loop
# per slice (rows of a layer never meet, so the threads meet once per call,
# not at every step; the gate passes run on every core), each step on the one
# packed W_hh, and the whole-sequence products split by rows, each piece on
# sequential MKL. OpenBLAS is held to one thread meanwhile: its idle workers
# spin after a call and took the core a slice needed (traced, LSTM H = 256:
# the second slice started 3 ms late and ran 1.5x longer, and the step was no
# faster). Without MKL a slice's product on OpenBLAS re-packs W_hh at every
# step, and two slices were no faster than OpenBLAS's own threads.
MIN_SLICE_ROWS = PACKED_MIN_COLS
# below this many weights in W_hh (G x H) the threads' hand-offs cost more than
# they save (measured, tanh RNN at H = 128: 483k tokens/s on own threads, 552k
# on OpenBLAS's; a GRU at H = 128, 49k weights, gained: 221k against 188k)
MIN_OWN_WEIGHTS = 1 << 15


def own_workers(weights, B):
    """How many of its own threads a layer call uses (weights: W_hh's G x H; B
    batch rows): the loop threads (``RNNLAB_LOOP_THREADS``, else OpenBLAS's
    count) with MKL's products, a W_hh of MIN_OWN_WEIGHTS or more and at least
    two slices of rows, else 1 (one time loop on OpenBLAS's threads: the
    language model's B = 20 step took 43.0 ms on own threads, 39.8 without).
    The fused drivers keep ragged batches on OpenBLAS's threads too (an LSTM
    batch of 49% of its tokens: 28.9 ms on own threads, 26.8 without)."""
    if (_MKL is None or _SET_THREADS is None or weights < MIN_OWN_WEIGHTS
            or B < 2 * MIN_SLICE_ROWS):
        return 1
    return _loop_blas_threads()


def own_threads(n):
    """Inside, for n > 1 (``own_workers``): OpenBLAS held at one thread."""
    return _openblas_held(1 if n > 1 else 0)


def row_slices(B, n):
    """The batch rows 0..B as contiguous slices ``[(k0, kB), ...]`` for n threads,
    about equal, MIN_SLICE_ROWS rows or more each, cut on multiples of 16 rows
    (whole cache lines of the histories: no line holds two threads' columns)."""
    n = min(n, B // MIN_SLICE_ROWS)
    cuts = [0] + sorted({16 * round(B * j / n / 16) for j in range(1, n)} - {0, B}) + [B]
    return [(a, b - a) for a, b in zip(cuts, cuts[1:])]


def run_sliced(loop, args, slices):
    """``loop(*args, k0, kB)`` for every row slice, at once (``threads.parallel``)."""
    parallel([lambda k0=k0, kB=kB: loop(*args, k0, kB) for k0, kB in slices])


def available():
    """True when the fused kernels can run here: numba and a cblas ?gemm found."""
    return _GEMM is not None


class FM(NamedTuple):
    """Feature-major buffers of one layer-direction (column = t*B + b).

    Each but xT is a padded C-contiguous base array; ``[:, :cols]`` is the data.
    """
    xT: np.ndarray        # (I, T*B) the layer input: a view of x, read only by BLAS
    hist: np.ndarray      # (H, (T+1)*B) hidden states; block 0 is the initial state
    chist: object         # (H, (T+1)*B) LSTM cell states, else None
    acts: np.ndarray      # (A, T*B) LSTM i,f,g,o | GRU r,z,n,gh_n | RNN none
    idx: object = None    # (N,) column t*B + b of each token of a ragged batch; None if full


def usable(*arrays):
    """The kernels take NumPy arrays of one dtype, float32 or float64."""
    arrays = [a for a in arrays if a is not None]
    return (available() and all(isinstance(a, np.ndarray) for a in arrays)
            and len({a.dtype for a in arrays}) == 1
            and arrays[0].dtype in (np.float32, np.float64))


def buffer(rows, cols, dtype, zero=False):
    """A (rows, cols + 16) C-contiguous base; the data is ``[:, :cols]``.

    A step's column block has one short row per feature; were rows 2^k bytes
    apart (T*B = 2048 floats, say) they would all map to the same cache sets
    and evict each other. 16 extra floats per row spread them out.
    """
    return aligned((rows, cols + 16), dtype, zero)


def aligned(shape, dtype, zero=False):
    """A C-contiguous array that starts on a 64-byte cache line (NumPy's start on
    16 bytes). Row slices on two threads write neighbouring columns of the same
    rows; with lines and slice borders (``row_slices``) aligned, no cache line
    holds both threads' columns, so none moves back and forth between cores."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    raw = (np.zeros if zero else np.empty)(size + 64, np.uint8)
    skip = -raw.ctypes.data % 64
    return raw[skip:skip + size].view(dtype).reshape(shape)


def feature_major(a):
    """(T, B, F) array -> feature-major (F, T*B): a view when that is C-contiguous
    (the gradient a layer above hands down is), else a padded copy."""
    T, B, F = a.shape
    v = a.transpose(2, 0, 1).reshape(F, T * B)                    # a view where strides allow
    if v.flags.c_contiguous:
        return v
    out = buffer(F, T * B, a.dtype)
    out[:, :T * B].reshape(F, T, B)[...] = a.transpose(2, 0, 1)
    return out


def dout_layout(a):
    """The upstream gradient (T, B, H) as the backward loops read it: its
    time-major rows (T*B, H) when C-contiguous (the caller's array, as is), else
    ``feature_major`` (a view of a layer above's feature-major gradient, or a copy).
    Ambiguous only when T*B == H; then feature-major."""
    T, B, F = a.shape
    if a.flags.c_contiguous and T * B != F:
        return a.reshape(T * B, F)
    return feature_major(a)


def fm_view(a):
    """(T, B, F) -> (F, T*B) for BLAS only: any layout BLAS takes, copied only if not."""
    T, B, F = a.shape
    return a.transpose(2, 0, 1).reshape(F, T * B)


def time_major(base, T, B):
    """Padded (F, T*B + pad) base -> (T, B, F) view of its data."""
    return base[:, :T * B].reshape(base.shape[0], T, B).transpose(1, 2, 0)


def batch_sizes(bs, T, B):
    return np.full(T, B, np.int64) if bs is None else np.asarray(bs, np.int64)


def offsets(bs):
    """(T,) first packed column of each step: bs[0] + ... + bs[t-1]."""
    return np.concatenate(([0], np.cumsum(bs)[:-1])).astype(np.int64)


def packed_index(bs, B):
    """(N,) padded column t*B + b of each token present (b < bs[t]), in packed
    order; None when every row runs every step (packed = padded)."""
    if (bs == B).all():
        return None
    T = len(bs)
    return (np.arange(T)[:, None] * B + np.arange(B))[np.arange(B) < bs[:, None]]
