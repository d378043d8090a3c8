"""rnnlab's own per-step product: W packed once per call, a register tile per step.

Each step of a time loop multiplies the same weights W (M, K) by a thin block of
columns X (K, n), n = the batch rows a loop runs (16 or 32). BLAS libraries are
built for large products: OpenBLAS re-packs W at every call, and at these shapes
that packing and its thread hand-offs cost about as much as the arithmetic
(measured on a 2-core AMD EPYC, one thread, (512, 128) x (128, 16): OpenBLAS
29.6 us, 71 GFLOP/s; this kernel 18.7 us, 112 GFLOP/s). Here W is packed once
per call (``pack``) into panels of R rows, k-major, and each step runs
``product``: for every panel and every W columns of X, R accumulators of one
vector width each stay in registers while k runs over K,

    C[r0 + r, j0:j0+V] = sum_k  P[k, r] * X[k, j0:j0+V]      r < R, one FMA per k and r

written out in LLVM IR (``_tile``) so that the compiler cannot spill them; the
vector type is generic (LLVM splits it where the CPU's registers are narrower).

Shapes: M rows of W (padded to Mp, a multiple of R, with zero rows), K its
columns, V = 64 bytes of the dtype (16 float32, 8 float64) the vector width,
n columns of X rounded up to a multiple of V (``width``): a step of fewer rows
computes a whole vector and ignores the columns past n, so X must be readable
V - 1 columns past n (the fast path's buffers are padded for that) and C is
scratch with row stride ``width(n)``.
"""
import numba
import numpy as np
from llvmlite import binding as llvm_binding, ir as llir
from numba.core import types as nbtypes
from numba.extending import intrinsic

from rnnlab.engine.threads import env_count

VECTOR_BYTES = 64
# R accumulators of 64 bytes, plus X's row and a broadcast, must fit the vector
# registers: 32 with AVX-512 (R = 8 ran 112 GFLOP/s, R = 4 81-111, R = 16 108-114
# on the AMD EPYC), 16 with AVX2 (64-byte vectors are two registers there: R = 4)
# RNNLAB_TILE_ROWS overrides it (the tests run the AVX2 choice on an AVX-512 CPU);
# numba's on-disk cache is keyed by the CPU, not by this, so an override needs its
# own NUMBA_CACHE_DIR
def _tile_rows():
    """(rows, error): the override, or the CPU's choice and why the override is
    not one (raised by ``pack``, at use, so the command line names it in one line)."""
    default = 8 if "+avx512f" in llvm_binding.get_host_cpu_features().flatten() else 4
    try:
        return env_count("RNNLAB_TILE_ROWS") or default, None
    except ValueError as e:
        return default, str(e)


ROWS, _ROWS_ERROR = _tile_rows()


def lanes(dtype):
    """V: elements of the dtype in one vector."""
    return VECTOR_BYTES // np.dtype(dtype).itemsize


@numba.njit(nogil=True, cache=True)
def columns(n, itemsize):
    """Columns a product of n columns computes: n rounded up to whole vectors
    (callable from compiled code, where the time loops size their scratch)."""
    v = VECTOR_BYTES // itemsize
    return (n + v - 1) // v * v


def width(n, dtype):
    """``columns`` for a NumPy dtype."""
    return int(columns(n, np.dtype(dtype).itemsize))


def pack(w, *more, scale=None):
    """W (M, K) -> panels (Mp/R, K, R): panel p, row k holds W[p*R:(p+1)*R, k];
    rows past M are zero. W may be any 2-D view (a transpose, say). ``more``:
    further column blocks of W, packed as if concatenated ([W_ih | W_hh] without
    building it); ``scale`` (M,): each row multiplied by its factor on the way.
    One pass over W, in the order that reads each of its layouts forwards."""
    if _ROWS_ERROR:
        raise ValueError(_ROWS_ERROR)
    blocks = (w,) + more
    M, dt = w.shape[0], w.dtype
    K = sum(b.shape[1] for b in blocks)
    out = np.empty((-(-M // ROWS), K, ROWS), dt)
    s = np.ones(M, dt) if scale is None else np.asarray(scale, dt)
    k0 = 0
    for b in blocks:
        if b.shape[0] != M or b.dtype != dt:
            raise ValueError(f"pack: column blocks must share rows and dtype, got {b.shape} "
                             f"{b.dtype} after {w.shape} {dt}")
        _pack(b, s, out, k0)
        k0 += b.shape[1]
    return out


@numba.njit(nogil=True, cache=True)
def _pack(w, s, out, k0):
    """out[q, k0 + k, r] = s[m] * w[m, k], m = q*R + r (zero past M): R rows read
    side by side (a C-ordered W: R forward streams; a transpose: R neighbours)."""
    M, K = w.shape
    for q in range(out.shape[0]):
        m0 = q * ROWS
        if m0 + ROWS <= M:       # a whole panel: a loop of constant length R (20% faster
                                 # than one loop with the tail's test inside, H = 512)
            for k in range(K):
                o = out[q, k0 + k]
                for r in range(ROWS):
                    o[r] = s[m0 + r] * w[m0 + r, k]
        else:
            for k in range(K):
                o = out[q, k0 + k]
                for r in range(ROWS):
                    o[r] = s[m0 + r] * w[m0 + r, k] if m0 + r < M else 0


@intrinsic
def _tile(typingctx, p, x, ldx, c, ldc, k, zero):
    """C[r, 0:V] = sum_k P[k, r] X[k, 0:V] for r < R, at raw addresses (elements:
    X's rows ldx apart, C's rows ldc apart); zero's type is the dtype."""
    sig = nbtypes.void(p, x, ldx, c, ldc, k, zero)

    def codegen(context, builder, signature, args):
        real = context.get_value_type(signature.args[6])
        V = VECTOR_BYTES // (4 if real == llir.FloatType() else 8)
        vec, i32, i64 = llir.VectorType(real, V), llir.IntType(32), llir.IntType(64)
        p_, x_, c_ = (builder.inttoptr(args[i], real.as_pointer()) for i in (0, 1, 3))
        ldx_, ldc_, k_ = (context.cast(builder, args[i], signature.args[i], nbtypes.int64)
                          for i in (2, 4, 5))
        name = f"llvm.fma.v{V}{'f32' if V == 16 else 'f64'}"
        fma = builder.module.globals.get(name) or llir.Function(
            builder.module, llir.FunctionType(vec, [vec] * 3), name)
        entry = builder.block
        loop, done = builder.append_basic_block("tile.k"), builder.append_basic_block("tile.done")
        builder.branch(loop)
        builder.position_at_end(loop)
        kk = builder.phi(i64)
        acc = [builder.phi(vec) for _ in range(ROWS)]
        kk.add_incoming(i64(0), entry)
        for a in acc:
            a.add_incoming(llir.Constant(vec, None), entry)
        xv = builder.load(builder.bitcast(builder.gep(x_, [builder.mul(kk, ldx_)]),
                                          vec.as_pointer()), align=4)     # X[k, 0:V]
        row, splat = builder.mul(kk, i64(ROWS)), llir.Constant(llir.VectorType(i32, V), [0] * V)
        undef = llir.Constant(vec, llir.Undefined)
        new = []
        for r, a in enumerate(acc):
            s = builder.load(builder.gep(p_, [builder.add(row, i64(r))]))  # P[k, r]
            b = builder.shuffle_vector(builder.insert_element(undef, s, i32(0)), undef, splat)
            new.append(builder.call(fma, [b, xv, a]))
        k1, tail = builder.add(kk, i64(1)), builder.block
        kk.add_incoming(k1, tail)
        for a, v in zip(acc, new):
            a.add_incoming(v, tail)
        builder.cbranch(builder.icmp_signed("<", k1, k_), loop, done)
        builder.position_at_end(done)
        for r, v in enumerate(new):
            builder.store(v, builder.bitcast(builder.gep(c_, [builder.mul(i64(r), ldc_)]),
                                             vec.as_pointer()), align=4)
        return context.get_dummy_value()
    return sig, codegen


@numba.njit(nogil=True, cache=True)
def product(panels, x, x_off, ldx, c, n):
    """c[:Mp * w] as (Mp, w) = W @ X[:, x_off : x_off + n] (w = ``width(n)``): W
    packed by ``pack``, X a 2-D array read at element offset x_off with rows ldx
    apart. Nothing is written for n = 0 (a ragged batch's step past every row)."""
    if n == 0:
        return
    K = panels.shape[1]
    size = np.uintp(panels.itemsize)
    w = columns(n, panels.itemsize)
    zero = panels.dtype.type(0)
    for q in range(panels.shape[0]):
        pq = panels.ctypes.data + size * np.uintp(q * K * ROWS)
        cq = c.ctypes.data + size * np.uintp(q * ROWS * w)
        for j in range(0, w, VECTOR_BYTES // panels.itemsize):
            _tile(pq, x.ctypes.data + size * (np.uintp(x_off) + np.uintp(j)), ldx,
                  cq + size * np.uintp(j), w, K, zero)
