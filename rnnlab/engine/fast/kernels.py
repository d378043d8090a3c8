"""The NumPy fast path's machinery: BLAS found, buffers laid out for the CPU.

Everything NumPy-specific lives here and in ``fused`` (the per-cell drivers)
and ``loops`` (the compiled time loops): numba, direct BLAS calls, strides.
``available()`` says whether numba and NumPy's OpenBLAS were found (the
engine's dispatcher, ``rnnlab.engine.dispatch``, reads it and the cell's own
``fast_kernels()`` declaration to choose between this and the reference loop);
``blas()`` names the library that runs the per-step products.

What makes it fast, and why:

* The whole time loop of a layer-direction is one compiled call: no Python or
  NumPy call overhead per step. Each step runs the recurrent product on rnnlab's
  own kernel (``gemm``: W_hh packed once per call, a register tile per step;
  OpenBLAS re-packs W_hh at every call, and at B = 16-32 that costs as much as
  the arithmetic), then one fused pass over the gates. The LSTM's loop folds
  the input product into that per-step product ([W_ih | W_hh] times
  [x_t; h_{t-1}]), so no (4H, T*B) W_ih x is written before the loop and read
  back across rows a page apart; the RNN and GRU run W_ih x for all steps first.
* The batch runs in row slices on rnnlab's own threads (``own_workers``,
  ``row_slices``): rows of a layer never meet, so each slice runs the whole time
  loop, products and gate passes, on its own core, and the threads meet once per
  call, not at every step. OpenBLAS is held to one thread meanwhile (its idle
  workers spin after a call and took the core a slice needed), and the
  whole-sequence products are split by rows over the same threads.
  ``RNNLAB_LOOP_THREADS=n`` sets how many (default: OpenBLAS's thread count).
* A ragged batch, and a batch of 16 rows or fewer over 8 steps or more, split
  each step's hidden units over the threads instead (``unit_slices``,
  ``units``): a ragged batch's row slices would each pay a whole vector per
  step until their longest row ends, and a small batch is one slice, one
  thread; every thread of the unit split runs only the rows still going, on
  its share of the weights, and the threads meet at a spin barrier once per
  step (``sync``). A full batch of more rows keeps the row slices, which meet
  once per call (measured: the unit split's B = 32 1.03-1.16x slower, its
  barrier waits and operand hand-over per step), unless they are uneven
  enough that an even share of the columns saves more than that
  (``rows_fall_short``: B = 48 is 32 + 16 rows). ``RNNLAB_SPLIT=rows`` or
  ``units`` forces either.
* With ``RNNLAB_BLAS=mkl`` and the ``mkl`` extra (Intel's ``mkl`` wheel), the
  whole-sequence products run on sequential MKL's ?gemm instead of OpenBLAS
  where OpenBLAS runs on one thread (5-15% faster on Intel CPUs; slower on the
  AMD EPYC we measured). Opt-in, read at import.
* Feature-major histories. The per-step product's vectors run along the batch
  (``gemm``: 16 batch columns per vector; a step's last few columns on the
  units tile, whose vectors run along the weights' rows), so batch is
  the fast axis: ``hist`` is (H, (T+1)*B) and step s is the column block
  [s*B, (s+1)*B). Rows are padded off powers of two (see ``buffer``). The rest
  of the engine sees ordinary (T+1, B, H) views of these buffers.
* sigmoid(a) = (1 + tanh(a/2)) / 2, with the 1/2 folded into the input
  projection and a scaled copy of W_hh, so every gate needs one tanh; in
  float32 that tanh is a rational approximation (max error 3e-7, about 2.6 ulp;
  coefficients fitted for rnnlab) that the compiler vectorises, where libm's is
  a scalar call. float64 uses the exact tanh.
* The forward loops keep the state (h, c) in compact scratch from one step to the
  next, where the product reads it (see ``loops``).
* The backward's derivatives come from cached activations; the LSTM's
  tanh(c_t) alone is recomputed from c_t (one tanh costs less than writing and
  re-reading an (H, T*B) array). Input and weight gradients are one product
  each after the loop, over the tokens present (ragged batches are packed).
  The backward runs on its forward's packed weights, read transposed
  (``gemm.product_t``; a step's last columns on a transposed copy packed once
  per call, ``transposed_panels``); the LSTM's, on a full
  batch, has its step's product give dx_t along with dL/dh_{t-1}.
"""
import ctypes
import glob
import math
import os
import sys
import time
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

from rnnlab.engine.threads import env_count, parallel

try:
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None


def _load_openblas():
    """The OpenBLAS that NumPy ships (the one with its 64-bit cblas ?gemm), kept
    loaded for its thread controls (``_openblas_threads``, ``_thread_setter``),
    or None. The fast path runs only where it is found, as it always has; the
    per-step products no longer call it (``gemm``)."""
    libdir = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for so in sorted(glob.glob(os.path.join(libdir, "*openblas*.so*"))):
        lib = ctypes.CDLL(so)
        if any(hasattr(lib, f"{pre}sgemm64_") for pre in ("scipy_cblas_", "cblas_")):
            _LIBS.append(lib)
            return lib
    return None


class MKL(NamedTuple):
    """Sequential MKL's ?gemm (the ``mkl`` extra), ILP64 entry points."""
    lib: object
    gemm: tuple           # (float32, float64) cblas_?gemm_64 as ctypes functions


def _load_mkl():
    """MKL's runtime library where the ``mkl`` wheel put it, or None."""
    for so in sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*"))):
        try:
            lib = ctypes.CDLL(so)
            lib.cblas_sgemm_64
        except (OSError, AttributeError):
            continue
        # sequential MKL: its OpenMP threads, spinning after each call, fought
        # OpenBLAS's and torch's (2 threads, quiet machine: the language model
        # step 2x slower, ragged batches 2.5x); it runs whole-sequence products
        # only where OpenBLAS is on one thread
        lib.MKL_Set_Threading_Layer(1)                            # MKL_THREADING_SEQUENTIAL
        gemms = []
        for t, real in (("s", ctypes.c_float), ("d", ctypes.c_double)):
            f = getattr(lib, f"cblas_{t}gemm_64")
            f.argtypes = ([ctypes.c_int] * 3 + [ctypes.c_int64] * 3
                          + [real, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                             ctypes.c_int64, real, ctypes.c_void_p, ctypes.c_int64])
            gemms.append(f)
        return MKL(lib, tuple(gemms))
    return None


def _openblas_threads():
    """OpenBLAS's current thread count (1 where it cannot be asked)."""
    for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads"):
        f = getattr(_LIBS[0], name, None) if _LIBS else None
        if f is not None:
            return f()
    return 1


def _loop_threads_wanted():
    """Threads the time loops may use: ``RNNLAB_LOOP_THREADS`` if set, else
    OpenBLAS's count (what the user set with OMP_NUM_THREADS or threadpoolctl)."""
    return env_count("RNNLAB_LOOP_THREADS") or _openblas_threads()


def _thread_setter():
    """OpenBLAS's ``openblas_set_num_threads_local`` (this thread only; returns
    the previous count), or None where this OpenBLAS lacks it."""
    f = getattr(_LIBS[0], "openblas_set_num_threads_local", None) if _LIBS else None
    if f is not None:
        f.argtypes, f.restype = [ctypes.c_int], ctypes.c_int
    return f


_LIBS = []
_OPENBLAS = _load_openblas() if numba is not None else None
# opt-in: MKL's products round differently from OpenBLAS's, and it runs only
# where OpenBLAS would run on one thread, so with it on, a run's last digits
# may depend on the thread count; without it they do not
_MKL = _load_mkl() if _OPENBLAS is not None and os.environ.get("RNNLAB_BLAS") == "mkl" else None
_SET_THREADS = _thread_setter()
if _OPENBLAS is not None:
    from rnnlab.engine.fast import gemm, loops, sync, units      # noqa: E402


def blas():
    """Which library runs the per-step products (rnnlab's own kernel) and the
    whole-sequence ones."""
    whole = "mkl where openblas runs on one thread, else openblas" if _MKL else "openblas"
    pair = f", {2 * gemm.ROWS} rows on a step's one whole vector" if gemm.PAIRS else ""
    return (f"per step: rnnlab (packed, {gemm.ROWS}-row tiles{pair}, a units tile for the last "
            f"columns); whole sequence: {whole}")


def matmul(a, b, out=None, parts=1):
    """a @ b for the whole-sequence products (input projection, weight and input
    gradients), split by rows over ``parts`` of rnnlab's own threads (see
    ``own_threads``: OpenBLAS is on one thread there), each piece by
    ``product_into``. 2-D, one float dtype; each operand row- or column-major with
    any leading dimension (views of the padded buffers)."""
    out = np.empty((a.shape[0], b.shape[1]), a.dtype) if out is None else out
    split_rows(lambda rows: product_into(a[rows], b, out[rows]), a.shape[0], parts)
    return out


def split_rows(job, M, parts):
    """``job(rows)`` for slices ``rows`` that cut 0..M into up to ``parts`` pieces
    of at least 16 rows, at once on rnnlab's threads (``threads.parallel``)."""
    n = pieces(M, parts)
    parallel([lambda j=j: job(cut(M, j, n)) for j in range(n)])


def pieces(M, parts):
    """How many pieces of at least 16 rows (one at least) M rows make, up to ``parts``."""
    return min(parts, max(1, M // 16))


def cut(M, j, n):
    """Piece j of 0..M cut into n nearly equal contiguous pieces, as a slice."""
    return slice(M * j // n, M * (j + 1) // n)


def product_into(a, b, out):
    """out = a @ b on this thread: MKL's ?gemm where the mkl extra is on and NumPy's
    OpenBLAS runs on one thread, else NumPy's."""
    mkl = not (_MKL is None or _openblas_threads() != 1 or a.dtype != b.dtype
               or a.dtype != out.dtype or a.dtype not in (np.float32, np.float64)
               or _order(out) != 111 or None in (_order(a), _order(b)) or 0 in out.shape
               or a.shape[1] == 0)
    if mkl:
        _mkl_gemm(a, b, out)
    else:
        np.matmul(a, b, out=out)


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


# ---------------------------------------------------------------- own threads
# A layer call with two or more threads runs on rnnlab's own: the batch in row
# slices, one whole time loop per slice (rows of a layer never meet, so the
# threads meet once per call, not at every step; the gate passes run on every
# core), each step on the one packed W_hh (``gemm``), and the whole-sequence
# products split by rows. OpenBLAS is held to one thread meanwhile: its idle
# workers spin after a call and took the core a slice needed (traced, LSTM
# H = 256: the second slice started 3 ms late and ran 1.5x longer).
MIN_SLICE_ROWS = 16
# below this many weights in W_hh (G x H) the threads' hand-offs cost more than
# they save (measured with MKL's per-step product, tanh RNN at H = 128: 483k
# tokens/s on own threads, 552k on OpenBLAS's; a GRU at H = 128, 49k weights,
# gained: 221k against 188k)
MIN_OWN_WEIGHTS = 1 << 15
# a batch of one slice of rows splits its units over the threads only over this
# many steps: one hand-off to a thread costs 20-35 us, a step's product a few
MIN_UNIT_STEPS = 8
# a full batch of several row slices splits its units where that saves each
# thread this many multiply-adds per step (about 20 us of the tile): the row
# slices' widest against an even share of the batch's columns. Measured in
# turns in one process, T = 64, unit split / row slices: LSTM H = 256 B = 48
# 0.83-0.87 (4.2M saved), B = 24 0.92-0.97 (2.1M), GRU H = 512 B = 24 0.93-0.96
# (3.1M); below it RNN H = 512 B = 24 0.89-0.96 (1.0M), GRU H = 256 B = 20
# 1.00-1.03 (0.8M), LSTM H = 128 B = 20 1.07-1.09 (0.5M), and the language
# model's LSTM H = 200 B = 20 T = 20, two layers, 1.02-1.10 (1.3M). B = 32
# saves nothing (16 columns either way) and ran 1.04-1.05
MIN_UNIT_SAVING = 1 << 21


def own_workers(weights, B, T=1):
    """How many of its own threads a layer call uses (weights: W_hh's G x H; B
    batch rows, T steps): the loop threads (``RNNLAB_LOOP_THREADS``, else
    OpenBLAS's count) for a W_hh of MIN_OWN_WEIGHTS or more and either more than
    one slice of rows or MIN_UNIT_STEPS steps or more (one slice of rows: the
    unit split, ``unit_slices``, runs the loop on every thread), else 1 (one
    time loop; the whole-sequence products on OpenBLAS's threads)."""
    if (_SET_THREADS is None or weights < MIN_OWN_WEIGHTS
            or (B <= MIN_SLICE_ROWS and T < MIN_UNIT_STEPS)):
        return 1
    return _loop_threads_wanted()


def own_threads(n):
    """Inside, for n > 1 (``own_workers``): OpenBLAS held at one thread."""
    return _openblas_held(1 if n > 1 else 0)


def vector_slices(B, n, dtype=np.float32):
    """The batch rows 0..B as contiguous slices ``[(k0, kB), ...]`` for up to n
    threads, cut on multiples of 16 rows (whole cache lines of the histories: no
    line holds two threads' columns) with about as many 16-row groups each."""
    groups = -(-B // MIN_SLICE_ROWS)
    n = max(1, min(n, groups))
    cuts = [0] + sorted({min(B, 16 * round(groups * j / n)) for j in range(1, n)} - {0, B}) + [B]
    return [(a, b - a) for a, b in zip(cuts, cuts[1:])]


def row_slices(B, n, dtype=np.float32):
    """The row slices the loops run: ``vector_slices``, except that two slices
    of a batch that is not whole vectors are cut, on a multiple of 4 rows, where
    the costlier slice's step costs least (``gemm.cost``: the units tile runs a
    step's last columns for about their count). B = 20 runs as 12 + 8 rows (13
    and 9.5 columns' worth a step, where 16 + 4 cost 16 and 6). Measured in turns
    in one process (``benchmarks/step_columns.py``, shared border cache lines
    included): the LSTM layer at H = 200, T = 20 0.87-1.02 of the 16 + 4 time,
    the language model's step 0.94-1.01."""
    slices = vector_slices(B, n, dtype)
    cuts = [k0 for k0, _ in slices] + [B]
    if len(cuts) == 3 and B % gemm.lanes(dtype):
        worst = lambda c: max(gemm.cost(c, dtype), gemm.cost(B - c, dtype))  # noqa: E731
        cuts[1] = min(range(4, B - 3, 4), key=lambda c: (worst(c), c != cuts[1], -c))
    return [(a, b - a) for a, b in zip(cuts, cuts[1:])]


def rows_fall_short(weights, B, T, n, ragged, dtype):
    """Whether the row slices fall short of the unit split (``unit_slices``) for
    a call of n threads on B rows, T steps, packed weights (G x K, K = H, or
    I + H where the input product is in the steps): a ragged batch (each slice
    pays a vector per step until its longest row ends), one slice of rows (one
    loop thread), or a full batch whose widest slice computes at least
    MIN_UNIT_SAVING more per step than an even share of the batch's columns
    (B = 20: 16 columns against 12 on each thread)."""
    if ragged or B <= MIN_SLICE_ROWS:
        return True
    if T < MIN_UNIT_STEPS or n < 2:
        return False
    widest = max(gemm.cost(kB, dtype) for _, kB in row_slices(B, n, dtype))
    return weights * (widest - gemm.cost(B, dtype) / n) >= MIN_UNIT_SAVING


def unit_slices(H, n, short):
    """The hidden units 0..H as contiguous slices ``[(u0, u1), ...]`` for n
    threads of a unit-split loop (``units``), cut on multiples of the tile's R
    rows (each gate's rows of a slice are whole panels), or None where the row
    split runs instead: one thread, H not a multiple of R, fewer R-row blocks
    than threads, or ``RNNLAB_SPLIT=rows``. ``RNNLAB_SPLIT=units`` forces the
    unit split where it can run; unset, it runs where the row slices fall short
    (``short``: what ``rows_fall_short`` said), unless a recent unit
    split found its threads off their cores (``split_waited``). Both splits
    give the same numbers, bit for bit."""
    how = os.environ.get("RNNLAB_SPLIT", "")
    if how not in ("", "rows", "units"):
        raise ValueError(f"RNNLAB_SPLIT must be 'rows' or 'units', got {how!r}")
    blocks = H // gemm.ROWS
    if (n < 2 or H % gemm.ROWS or blocks < n or how == "rows"
            or (how == "" and (not short or time.monotonic() < _BACKOFF[0]))):
        return None
    cuts = [gemm.ROWS * (blocks * j // n) for j in range(n + 1)]
    return list(zip(cuts, cuts[1:]))


# (until, next wait): no unit split by default until then (time.monotonic())
_BACKOFF = [0.0, 1.0]
MAX_BACKOFF_S = 64.0


def split_waited(state):
    """After a unit-split call: if its threads often waited at their barrier long
    enough to yield (``sync.off_core``: more runnable threads than cores,
    OpenBLAS's idle workers spinning after a product, say, which made such calls
    1.8-4.4x slower: ``benchmarks/split_interference.py``), ragged batches run on
    row slices for a while, 1 s, then twice as long after each call that finds
    the same, up to MAX_BACKOFF_S; a clean call resets the wait."""
    if sync.off_core(state):
        _BACKOFF[:] = [time.monotonic() + _BACKOFF[1], min(2 * _BACKOFF[1], MAX_BACKOFF_S)]
    else:
        _BACKOFF[1] = 1.0


def run_sliced(loop, args, slices):
    """``loop(*args, k0, kB)`` for every row slice, at once (``threads.parallel``)."""
    parallel([lambda k0=k0, kB=kB: loop(*args, k0, kB) for k0, kB in slices])


def transposed_panels(wp, bs):
    """``gemm.pack_t(wp)`` for a backward with a step whose rows are not whole
    vectors (bs (T,) rows per step; the row slices cut on whole vectors, so each
    slice's last columns are the step's), else the empty stand-in: the one pass
    over the weights is paid only where the units tile runs."""
    if any(gemm.units_ok(wp.itemsize, int(n)) for n in np.unique(bs)):
        return gemm.pack_t(wp)
    return gemm.no_pack_t(wp.dtype)


def available():
    """True when the fused kernels can run here: numba and NumPy's OpenBLAS found."""
    return _OPENBLAS is not None


class FM(NamedTuple):
    """Feature-major buffers of one layer-direction (column = t*B + b).

    Each but xT is a padded C-contiguous base array; ``[:, :cols]`` is the data.
    """
    xT: np.ndarray        # (I, T*B) the layer input: a view of x, read only by BLAS
    hist: np.ndarray      # (H, (T+1)*B) hidden states; block 0 is the initial state
    chist: object         # (H, (T+1)*B) LSTM cell states, else None
    acts: np.ndarray      # (A, T*B) LSTM i,f,g,o | GRU r,z,n,gh_n | RNN none
    idx: object = None    # (N,) column t*B + b of each token of a ragged batch; None if full
    wp: object = None     # the forward's packed s * W_hh (a folding cell's s * [W_ih | W_hh]),
                          # which its backward reads transposed


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
    holds both threads' columns, so none moves back and forth between cores (a
    batch that is not whole vectors may be cut off a line, B = 20 as 12 + 8:
    measured even with 16 + 4 or up to a few percent faster, ``row_slices``)."""
    dtype = np.dtype(dtype)
    size = math.prod(int(n) for n in shape) * dtype.itemsize    # np.prod: ~4 us a call
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


def input_rows(a):
    """(T, B, I) layer input -> (2-D source, feature-major?) for loops that read
    each step's rows themselves: the feature-major (I, T*B) rows of a layer
    below's history (a view), else time-major (T*B, I) rows (a copy only when a
    is not C-contiguous, a flipped reverse direction say)."""
    T, B, F = a.shape
    v = fm_view(a)
    if v.strides[1] == a.itemsize and v.strides[0] >= T * B * a.itemsize:
        return v, True
    return np.ascontiguousarray(a).reshape(T * B, F), False


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
