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
``product_t`` multiplies by W^T on the same panels (``_tile_t``: R accumulators
for R columns of W, the sum running over W's rows panel by panel,

    C[k0 + kk, j0:j0+V] = sum_m  P[m // R, k0 + kk, m % R] * X[m, j0:j0+V]     kk < R

), so a backward's whole vectors need no second, transposed packing of the
forward's weights (its units tile's last columns do: ``pack_t``) (measured at
(512, 256) and (2048, 1024): 108-113 GFLOP/s, against 112-114 for ``product``
on a packed transpose).

Shapes: M rows of W (padded to Mp, a multiple of R, with zero rows), K its
columns, V = 64 bytes of the dtype (16 float32, 8 float64) the vector width,
n columns of X rounded up to a multiple of V/2 (``width``): C's row stride.
Whole vectors of columns run on the batch tiles; the last n % V columns, up to
UNIT_MAX of them, on the units tile (``_units_tile``), whose vectors run along
W's rows (V rows from V/R panels side by side) and broadcast X's columns, 4, 8
or 12 at a time: a step of 20 rows costs about 20 columns, not 32 (a half vector costs
a whole one's issue slot on Intel's AVX-512 cores). ``product_t``'s units tile
reads W^T packed the same way (``pack_t``, once per backward call). Without
it, or past UNIT_MAX, the last columns run on a half vector (``_tiles``) or a
whole one. A step of fewer rows may compute columns past n and ignore them, so
X must be readable V - 1 columns past n (the fast path's buffers are padded
for that) and C is scratch with row stride ``width(n)``.
"""
from types import SimpleNamespace

import numba
import numpy as np
from llvmlite import binding as llvm_binding, ir as llir
from numba.core import types as nbtypes
from numba.extending import intrinsic

from rnnlab.engine.threads import env_count

VECTOR_BYTES = 64
# Software prefetch, AHEAD_K rows of a panel ahead (``_tile``) and AHEAD_PANELS
# panels ahead (``_tile_t``, whose reads jump K*R elements from one panel to the
# next, a stride the hardware's prefetchers do not follow). Measured on the
# 2-core Intel Xeon (one thread, n = 16, medians of 5 alternating rounds, new
# time / old at (512, 256) / (1024, 512) / (2048, 1024)): product_t 0.88 / 0.91 /
# 0.55, product 0.92 / 0.84 / 0.83 (other distances: speed_intel_xeon.md).
# Only a hint: no result changes, and x86 never faults on one past the end.
AHEAD_K = 16
AHEAD_PANELS = 4
# R accumulators of 64 bytes, plus X's row and a broadcast, must fit the vector
# registers: 32 with AVX-512 (R = 8 ran 112 GFLOP/s, R = 4 81-111, R = 16 108-114
# on the AMD EPYC), 16 with AVX2 (64-byte vectors are two registers there: R = 4)
# RNNLAB_TILE_ROWS overrides it (the tests run the AVX2 choice on an AVX-512 CPU);
# numba's on-disk cache is keyed by the CPU, not by this, so an override needs its
# own NUMBA_CACHE_DIR
# 64-byte vectors the CPU's registers hold at once
REGISTERS = 32 if "+avx512f" in llvm_binding.get_host_cpu_features().flatten() else 8


def _tile_rows():
    """(rows, error): the override, or the CPU's choice and why the override is
    not one (raised by ``pack``, at use, so the command line names it in one line)."""
    default = 8 if REGISTERS == 32 else 4
    try:
        return env_count("RNNLAB_TILE_ROWS") or default, None
    except ValueError as e:
        return default, str(e)


ROWS, _ROWS_ERROR = _tile_rows()
# two-vector tiles (``_tiles(..., vecs=2)``): 2R accumulators, two of X's vectors
# and a broadcast must fit the registers (the AVX-512 choice R = 8 does; AVX2's,
# or a tall override, would spill)
PAIRS = 2 * ROWS + 3 <= REGISTERS


def lanes(dtype):
    """V: elements of the dtype in one vector."""
    return VECTOR_BYTES // np.dtype(dtype).itemsize


@numba.njit(nogil=True, cache=True)
def columns(n, itemsize):
    """Columns a product of n columns computes: n rounded up to whole half
    vectors (V/2: a last half vector runs on the half tile), callable from
    compiled code, where the time loops size their scratch."""
    v = VECTOR_BYTES // itemsize // 2
    return (n + v - 1) // v * v


def width(n, dtype):
    """``columns`` for a NumPy dtype."""
    return int(columns(n, np.dtype(dtype).itemsize))


# What a block of the units tile costs, in columns of a whole vector's time (16
# float32 columns cost 16): 4, 8 and 12 columns measured at 0.28-0.55, 0.45-0.73
# and 0.62-1.0 of 16 (one thread, W (800, 400), (512, 256), (1024, 512), the
# 2-core Xeon). Only the AVX-512 blocks; row_slices balances its cuts by it
UNIT_COST = (6.0, 9.5, 13.0)


def cost(n, dtype):
    """A step's product over n columns in columns' worth of whole-vector time:
    whole vectors, then the units tile's block (``UNIT_COST``) or the last
    (half) vector, as ``product`` runs them."""
    v, size = lanes(dtype), np.dtype(dtype).itemsize
    r = n % v
    if r == 0 or REGISTERS != 32 or not units_ok(size, n):
        return float(width(n, dtype))
    block = 0 if r <= UNIT_COLS[0] else (1 if r <= UNIT_COLS[1] else 2)
    return n - r + UNIT_COST[block] * v / 16


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
    nq = -(-M // ROWS)
    # R * R zeros past the last panel: ``product_t``'s last row block reads up to
    # there (rows past K, computed and ignored)
    flat = np.empty(nq * K * ROWS + ROWS * ROWS, dt)
    flat[nq * K * ROWS:] = 0
    out = flat[:nq * K * ROWS].reshape(nq, K, ROWS)
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


def _hint(builder, address):
    """Emit a prefetch of the cache line at ``address`` (an i8*) into every cache
    level, for reading: only a hint, no fault even past an array's end."""
    i8p, i32 = llir.IntType(8).as_pointer(), llir.IntType(32)
    fn = builder.module.globals.get("llvm.prefetch.p0") or llir.Function(
        builder.module, llir.FunctionType(llir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0")
    builder.call(fn, [address, i32(0), i32(3), i32(1)])


def _tile_ir(context, builder, sig, args, n_arg, c_arg, step, lanes, nacc, vecs=1):
    """The IR the tiles share: ``nacc`` vector accumulators, zero at first, carried
    through a loop of args[n_arg] iterations whose body is ``step(ir, i, acc)
    -> new acc`` (i the iteration, an i64), then stored to C's rows (args[c_arg]
    C's address, the next its row stride). The vector type is the dtype's (the
    last argument's) V lanes (``lanes`` "full") or V/2 ("half"); with ``vecs``
    vectors side by side, accumulator j is C's row j // vecs, vector j % vecs."""
    real = context.get_value_type(sig.args[-1])
    V = VECTOR_BYTES // (4 if real == llir.FloatType() else 8) // (1 if lanes == "full" else 2)
    vec, i32, i64 = llir.VectorType(real, V), llir.IntType(32), llir.IntType(64)
    name = f"llvm.fma.v{V}{'f32' if real == llir.FloatType() else 'f64'}"
    fma = builder.module.globals.get(name) or llir.Function(
        builder.module, llir.FunctionType(vec, [vec] * 3), name)
    undef, zeros = llir.Constant(vec, llir.Undefined), llir.Constant(llir.VectorType(i32, V), [0] * V)

    def broadcast(ptr, at):                                       # ptr[at] in every lane
        s = builder.load(builder.gep(ptr, [at]))
        return builder.shuffle_vector(builder.insert_element(undef, s, i32(0)), undef, zeros)

    def prefetch(ptr, at):                                        # ptr[at]'s line
        _hint(builder, builder.bitcast(builder.gep(ptr, [at]), llir.IntType(8).as_pointer()))

    def prefetch_panel(ptr, at, stride, elements):
        """The lines of ``elements`` values from ptr[at + AHEAD_PANELS * stride]:
        the block a transposed tile reads AHEAD_PANELS panels on."""
        ahead = builder.add(at, builder.mul(i64(AHEAD_PANELS), stride))
        for e in range(0, elements, 64 // (4 if real == llir.FloatType() else 8)):
            prefetch(ptr, builder.add(ahead, i64(e)))
    IR = SimpleNamespace(
        i64=i64, real=real, prefetch=prefetch, prefetch_panel=prefetch_panel,
        broadcast=broadcast, V=V,
        fma=lambda b, xv, acc: builder.call(fma, [b, xv, acc]),
        ptr=lambda i: builder.inttoptr(args[i], real.as_pointer()),   # args[i] as a pointer
        int=lambda i: context.cast(builder, args[i], sig.args[i], nbtypes.int64),
        load=lambda ptr, at: builder.load(builder.bitcast(builder.gep(ptr, [at]),  # a vector
                                                          vec.as_pointer()), align=4))
    entry = builder.block
    loop, done = builder.append_basic_block("tile.loop"), builder.append_basic_block("tile.done")
    builder.branch(loop)
    builder.position_at_end(loop)
    i = builder.phi(i64)
    acc = [builder.phi(vec) for _ in range(nacc)]
    i.add_incoming(i64(0), entry)
    for a in acc:
        a.add_incoming(llir.Constant(vec, None), entry)
    new = step(IR, i, acc)
    i1, tail = builder.add(i, i64(1)), builder.block
    i.add_incoming(i1, tail)
    for a, v in zip(acc, new):
        a.add_incoming(v, tail)
    builder.cbranch(builder.icmp_signed("<", i1, IR.int(n_arg)), loop, done)
    builder.position_at_end(done)
    c_, ldc_ = IR.ptr(c_arg), IR.int(c_arg + 1)
    for j, v in enumerate(new):
        at = builder.add(builder.mul(i64(j // vecs), ldc_), i64(j % vecs * V))
        builder.store(v, builder.bitcast(builder.gep(c_, [at]), vec.as_pointer()), align=4)
    return context.get_dummy_value()


# A half tile keeps 2R accumulators: R chains of 256-bit FMAs (4 cycles each,
# two issued per cycle) leave Zen 4's FMA units half idle (measured: R = 8 half
# tiles ran 62-71 GFLOP/s, the full tiles 100-112). So it runs two panels at once
# (``_tile``: 2R rows of W) or two row blocks (``_tile_t``: 2R rows of W^T), a last
# odd one on its own. So does a step's one whole vector of columns (a row slice
# of 16, ``_tile_pair``): R accumulators are just enough chains to keep two FMA
# units busy, and any stall idles them; 2R ran 1.09-1.28x faster on the Xeon
# (``benchmarks/step_columns.py``, table 4). Each accumulator sums in the full
# tile's order: a column's result does not depend on the tile that computed it
# (a ragged batch's row and unit splits give the same bits).
def _tiles(lanes, sets, vecs=1):
    """The register tiles ``_tile`` (W X) and ``_tile_t`` (W^T X) on vectors of V
    lanes ("full") or V/2 ("half": a step's last 8 float32 columns, which Zen 4
    runs as fast per column as whole vectors, one 256-bit FMA being half of a
    512-bit one), with R (sets 1) or 2R (sets 2) rows of accumulators, each row
    ``vecs`` vectors wide (2: each broadcast of P feeds two FMAs, and a step of
    32 float32 columns reads W once instead of twice). Accumulator j * vecs + v
    is row j, vector v; each column sums in the same order whatever the tile."""
    @intrinsic
    def _tile(typingctx, p, x, ldx, c, ldc, k, zero):
        """C[s*R + r, 0:v] = sum_k P[s*K*R + k*R + r] X[k, 0:v] for r < R, s < sets:
        ``sets`` panels at raw addresses (elements: X's rows ldx apart, C's rows
        ldc apart); zero's type is the dtype."""
        def codegen(context, builder, sig, args):
            def step(ir, k, acc):
                p_, x_, ldx_ = ir.ptr(0), ir.ptr(1), ir.int(2)
                xk = builder.mul(k, ldx_)
                xv = [ir.load(x_, builder.add(xk, ir.i64(v * ir.V))) for v in range(vecs)]  # X[k]
                row = builder.mul(k, ir.i64(ROWS))
                panel = builder.mul(ir.int(5), ir.i64(ROWS))          # K*R: the next panel
                at = [builder.add(row, builder.mul(panel, ir.i64(s))) for s in range(sets)]
                for a in at:                                          # P_s[k + AHEAD_K]
                    ir.prefetch(p_, builder.add(a, ir.i64(AHEAD_K * ROWS)))
                out = []
                for j in range(sets * ROWS):                          # + P_s[k, r] X[k]
                    b = ir.broadcast(p_, builder.add(at[j // ROWS], ir.i64(j % ROWS)))
                    out += [ir.fma(b, xv[v], acc[j * vecs + v]) for v in range(vecs)]
                return out
            return _tile_ir(context, builder, sig, args, 5, 3, step, lanes, sets * ROWS * vecs, vecs)
        return nbtypes.void(p, x, ldx, c, ldc, k, zero), codegen

    @intrinsic
    def _tile_t(typingctx, p, x, ldx, pstride, c, ldc, nq, zero):
        """C[s*R + kk, 0:v] = sum over q < nq, r < R of P[q*pstride + (s*R + kk)*R + r]
        X[q*R + r, 0:v] for kk < R, s < sets: the transposed product on W's panels
        for ``sets`` row blocks (p at row block k0 of panel 0, pstride = K*R the
        panel size; X's rows ldx apart, C's rows ldc apart)."""
        def codegen(context, builder, sig, args):
            def step(ir, q, acc):
                p_, x_, ldx_ = ir.ptr(0), ir.ptr(1), ir.int(2)
                pq = builder.mul(q, ir.int(3))                        # panel q, row block k0
                ir.prefetch_panel(p_, pq, ir.int(3), sets * ROWS * ROWS)
                xq = builder.mul(builder.mul(q, ir.i64(ROWS)), ldx_)  # X row q*R
                for r in range(ROWS):
                    xr = builder.add(xq, builder.mul(ir.i64(r), ldx_))
                    xv = [ir.load(x_, builder.add(xr, ir.i64(v * ir.V))) for v in range(vecs)]
                    new = []
                    for j in range(sets * ROWS):                      # + P[.., j, r] X[q*R + r]
                        b = ir.broadcast(p_, builder.add(pq, ir.i64(j * ROWS + r)))
                        new += [ir.fma(b, xv[v], acc[j * vecs + v]) for v in range(vecs)]
                    acc = new
                return acc
            return _tile_ir(context, builder, sig, args, 6, 4, step, lanes, sets * ROWS * vecs, vecs)
        return nbtypes.void(p, x, ldx, pstride, c, ldc, nq, zero), codegen
    return _tile, _tile_t


# The units tile: a step's last few columns (n % V of them, up to UNIT_MAX) with
# the vector along W's rows instead of X's columns. A half vector of columns costs
# a whole one's issue slot on Intel's AVX-512 cores (measured on the 2-core Xeon:
# 4 or 8 columns 0.69-0.99 of 16), so a step of 20 rows paid for 32 columns; here
# the last 4 columns cost 4 FMAs per 16 rows and k, not 16. Each output still sums
# over k in order, by FMA from zero, as on the batch tiles: same bits.
# (C, U) of the units tiles: a block of C of X's columns, up to U row vectors
# (CU accumulators, U row vectors and a broadcast in the registers). With
# AVX-512: a step's last 1-4 columns on 4 (and up to 4 row vectors), 5-8 on 8,
# 9-12 on 12 (2 row vectors), each in one pass over W; with AVX2's 16 registers
# (a 64-byte vector is two), 2 columns at a time on up to 2 row vectors
UNIT_COLS = (4, 8, 12) if REGISTERS == 32 else (2, 2, 2)
UNIT_VECS = (4, 2, 2) if REGISTERS == 32 else (2, 2, 2)
UNIT_MAX = 12                                    # more left over: a whole vector of columns
# accumulators of the largest units tile: the size of ``_units_rest``'s scratch
UNIT_ACC = max(c * u for c, u in zip(UNIT_COLS, UNIT_VECS))


def _units_tile(vecs, cols):
    """The units tile of ``vecs`` row vectors (U) and ``cols`` columns (C):

        C[u*C + c, 0:V] = sum_k  W[rows of vector u, k] * X[k, c]       u < U, c < C

    W's rows of vector u are V/R consecutive panels (``pack``), R rows each, read
    side by side; panels past ``npan`` read the last one (computed, ignored). p:
    the first panel's address, pstride = K*R its size; X's rows ldx apart; C's
    rows ldc apart (the caller's small contiguous scratch)."""
    @intrinsic
    def tile(typingctx, p, pstride, npan, x, ldx, c, ldc, k, zero):
        def codegen(context, builder, sig, args):
            def step(ir, i, acc):
                p_, x_, real = ir.ptr(0), ir.ptr(3), ir.real
                per = ir.V // ROWS                                    # panels per row vector
                part = llir.VectorType(real, ROWS)
                last = builder.sub(ir.int(2), ir.i64(1))
                wv = []
                for u in range(vecs):
                    parts = []
                    for t in range(per):                              # panel u*per + t, row k
                        g = ir.i64(u * per + t)
                        g = builder.select(builder.icmp_signed("<", g, ir.int(2)), g, last)
                        at = builder.add(builder.mul(g, ir.int(1)), builder.mul(i, ir.i64(ROWS)))
                        parts.append(builder.load(builder.bitcast(builder.gep(p_, [at]),
                                                                  part.as_pointer()), align=4))
                    wv.append(_concat(builder, parts))
                xi = builder.mul(i, ir.int(4))
                out = [None] * (vecs * cols)
                for c in range(cols):                                 # + W[.., k] X[k, c]
                    b = ir.broadcast(x_, builder.add(xi, ir.i64(c)))
                    for u in range(vecs):
                        out[u * cols + c] = ir.fma(wv[u], b, acc[u * cols + c])
                return out
            return _tile_ir(context, builder, sig, args, 7, 5, step, "full", vecs * cols)
        return nbtypes.void(p, pstride, npan, x, ldx, c, ldc, k, zero), codegen
    return tile


def _concat(builder, parts):
    """One vector of the parts' lanes side by side (pairwise shuffles)."""
    while len(parts) > 1:
        n = parts[0].type.count
        lanes = llir.Constant(llir.VectorType(llir.IntType(32), 2 * n), list(range(2 * n)))
        parts = [builder.shuffle_vector(a, b, lanes)
                 for a, b in zip(parts[::2], parts[1::2])]
    return parts[0]


@intrinsic
def prefetch(typingctx, address):
    """Hint the cache line at a raw address (an integer) in, for reading: the
    time loops' strided blocks of the step to come (``loops._prefetch_block``)."""
    def codegen(context, builder, sig, args):
        _hint(builder, builder.inttoptr(args[0], llir.IntType(8).as_pointer()))
        return context.get_dummy_value()
    return nbtypes.void(address), codegen


_tile, _tile_t = _tiles("full", 1)
_tile2, _tile2_t = _tiles("full", 1, vecs=2)                     # two vectors: 32 float32 columns
_tile_pair, _tile_pair_t = _tiles("full", 2)                     # one vector, 2R rows
_half_tile, _half_tile_t = _tiles("half", 1)                     # a last odd panel or block
_half_tile2, _half_tile2_t = _tiles("half", 2)


@numba.njit(nogil=True, cache=True)
def pack_t(panels):
    """W^T packed as ``pack`` packs a matrix, from W's own panels (no scale applied
    again): (Kp/R, Mp, R), Kp = K rounded up to whole R-row blocks (rows past K
    zero), Mp = W's padded rows. The units tile of ``product_t`` reads it: its
    vectors run along W^T's rows, which W's panels hold R apart."""
    nq, K = panels.shape[0], panels.shape[1]
    out = np.zeros(((K + ROWS - 1) // ROWS, nq * ROWS, ROWS), panels.dtype)
    for q in range(nq):
        for k in range(K):
            src, dst = panels[q, k], out[k // ROWS, q * ROWS:(q + 1) * ROWS]
            for r in range(ROWS):
                dst[r, k % ROWS] = src[r]
    return out


def no_pack_t(dtype):
    """The empty stand-in for ``pack_t`` where no step has columns for the units
    tile (``product_t`` then runs its half tile, as without one)."""
    return np.zeros((0, 0, ROWS), dtype)


@numba.njit(nogil=True, cache=True)
def product_t(panels, wt, x, ldx, c, n, k0, k1):
    """c[:(Kp - k0) * w] as (Kp - k0, w) = (W^T @ X[:, :n])[k0:k1], the whole
    vectors of columns on W's own panels (``pack``), read transposed: W (M, K),
    X (Mp, ·) with rows ldx apart, its rows past M zero (or any finite value:
    W's padded rows are zero); k0 a multiple of R, k1 <= K; Kp = k1 rounded up to whole R-row blocks,
    the rows past k1 scratch (past K: zero). The last n % V columns run on the
    units tile over wt (``pack_t`` of the panels; empty: the half tile). Nothing
    for n = 0."""
    if n == 0:
        return
    nq, K = panels.shape[0], panels.shape[1]
    size = np.uintp(panels.itemsize)
    w, v = columns(n, panels.itemsize), VECTOR_BYTES // panels.itemsize
    zero = panels.dtype.type(0)
    units = wt.shape[0] > 0 and units_ok(panels.itemsize, n)
    jh = n - n % v if units else w - w % v                        # past the whole vectors
    jv = jh - jh % (2 * v) if PAIRS else 0                        # past the pairs of vectors
    nb, xa = (k1 - k0 + ROWS - 1) // ROWS, x.ctypes.data
    for bi in range(0, nb, 2):                                    # row blocks two by two
        two = PAIRS and bi + 1 < nb
        for bb in range(bi, min(bi + 2, nb)):
            pk = panels.ctypes.data + size * np.uintp((k0 + bb * ROWS) * ROWS)
            ck = c.ctypes.data + size * np.uintp(bb * ROWS * w)
            for j in range(0, jv, 2 * v):                         # two vectors at once
                _tile2_t(pk, xa + size * np.uintp(j), ldx, K * ROWS, ck + size * np.uintp(j),
                         w, nq, zero)
            if not two:                                           # a lone block's last vector
                for j in range(jv, jh, v):
                    _tile_t(pk, xa + size * np.uintp(j), ldx, K * ROWS,
                            ck + size * np.uintp(j), w, nq, zero)
        if two:                                                   # the last vector: both blocks
            pk = panels.ctypes.data + size * np.uintp((k0 + bi * ROWS) * ROWS)
            ck = c.ctypes.data + size * np.uintp(bi * ROWS * w)
            for j in range(jv, jh, v):
                _tile_pair_t(pk, xa + size * np.uintp(j), ldx, K * ROWS,
                             ck + size * np.uintp(j), w, nq, zero)
    if units:                                                     # the last n % V columns
        _units_rest(wt, k0 // ROWS, (k1 + ROWS - 1) // ROWS, x.ctypes.data, ldx, c, w, jh, n)
    elif jh < w:                                                  # the last half vector
        nb, xh = (k1 - k0 + ROWS - 1) // ROWS, x.ctypes.data + size * np.uintp(jh)
        for bi in range(0, nb, 2):                                # row blocks two by two
            pk = panels.ctypes.data + size * np.uintp((k0 + bi * ROWS) * ROWS)
            ck = c.ctypes.data + size * np.uintp(bi * ROWS * w + jh)
            if bi + 1 < nb:
                _half_tile2_t(pk, xh, ldx, K * ROWS, ck, w, nq, zero)   # both blocks: 2R rows
            else:
                _half_tile_t(pk, xh, ldx, K * ROWS, ck, w, nq, zero)


_unit_a1, _unit_a2, _unit_a4 = (_units_tile(u, UNIT_COLS[0]) for u in (1, 2, 4))
_unit_b1, _unit_b2 = _units_tile(1, UNIT_COLS[1]), _units_tile(2, UNIT_COLS[1])
_unit_c1, _unit_c2 = _units_tile(1, UNIT_COLS[2]), _units_tile(2, UNIT_COLS[2])


@numba.njit(nogil=True, cache=True)
def _unit_tile(which, nv, p, pstride, npan, x, ldx, c, ldc, k, zero):
    """The units tile of block ``which`` (UNIT_COLS[which] columns) and nv row vectors."""
    if which == 2:
        if nv == 2:
            _unit_c2(p, pstride, npan, x, ldx, c, ldc, k, zero)
        else:
            _unit_c1(p, pstride, npan, x, ldx, c, ldc, k, zero)
    elif which == 1:
        if nv == 2:
            _unit_b2(p, pstride, npan, x, ldx, c, ldc, k, zero)
        else:
            _unit_b1(p, pstride, npan, x, ldx, c, ldc, k, zero)
    elif nv == 4:
        _unit_a4(p, pstride, npan, x, ldx, c, ldc, k, zero)
    elif nv == 2:
        _unit_a2(p, pstride, npan, x, ldx, c, ldc, k, zero)
    else:
        _unit_a1(p, pstride, npan, x, ldx, c, ldc, k, zero)


@numba.njit(nogil=True, cache=True)
def units_ok(itemsize, n):
    """Whether a product of n columns runs its last n % V on the units tile: up
    to UNIT_MAX of them, and R rows dividing the vector (an override of the
    tile height may not)."""
    v = VECTOR_BYTES // itemsize
    return 0 < n % v <= UNIT_MAX and v % ROWS == 0


@numba.njit(nogil=True, cache=True)
def _units_rest(panels, g0, g1, x, ldx, c, w, j0, n):
    """Rows of panels g0..g1 of c (as (·, w), from row 0) = W @ X[:, j0:n] on the
    units tiles (``_units_tile``; x: X's address at column 0, rows ldx apart).
    Each block of columns the smallest of UNIT_COLS that holds what is left (or
    the largest), computed whole past n (X is readable there) and only its
    columns < n copied; each block runs over all of W's rows, in groups of up to
    its UNIT_VECS row vectors."""
    size = np.uintp(panels.itemsize)
    v = VECTOR_BYTES // panels.itemsize
    per, pstride, L = v // ROWS, panels.shape[1] * ROWS, panels.shape[1]
    zero = panels.dtype.type(0)
    buf = np.empty(UNIT_ACC * v, panels.dtype)
    j = j0
    while j < n:
        which = 0
        while which < 2 and UNIT_COLS[which] < n - j:
            which += 1
        cols, most = UNIT_COLS[which], UNIT_VECS[which]
        g = g0
        while g < g1:
            left = (g1 - g + per - 1) // per                      # row vectors left
            nv = 4 if left >= 4 and most >= 4 else (2 if left >= 2 and most >= 2 else 1)
            npan = min(nv * per, g1 - g)
            _unit_tile(which, nv, panels.ctypes.data + size * np.uintp(g * pstride), pstride,
                       npan, x + size * np.uintp(j), ldx, buf.ctypes.data, v, L, zero)
            rows = npan * ROWS
            for u in range(nv):
                for cc in range(min(cols, n - j)):
                    src = buf[(u * cols + cc) * v:(u * cols + cc + 1) * v]
                    at = ((g - g0) * ROWS + u * v) * w + j + cc
                    for lane in range(min(v, rows - u * v)):
                        c[at + lane * w] = src[lane]
            g += npan
        j += cols
    # the columns past n up to w zero: the gate passes and the next products run
    # over them, and left as they were (np.empty's bytes) a ragged RNN's unit-split
    # steps ran 3-5x slower (measured; subnormal operands, which cost an Intel
    # core a microcode assist each, are the likely cause)
    for m in range((g1 - g0) * ROWS):
        row = c[m * w + n:(m + 1) * w]
        for e in range(row.shape[0]):
            row[e] = zero


@numba.njit(nogil=True, cache=True)
def product(panels, x, x_off, ldx, c, n):
    """c[:Mp * w] as (Mp, w) = W @ X[:, x_off : x_off + n] (w = ``width(n)``): W
    packed by ``pack``, X a 2-D array read at element offset x_off with rows ldx
    apart. Nothing is written for n = 0 (a ragged batch's step past every row)."""
    if n == 0:
        return
    K = panels.shape[1]
    size = np.uintp(panels.itemsize)
    w, v = columns(n, panels.itemsize), VECTOR_BYTES // panels.itemsize
    zero = panels.dtype.type(0)
    units = units_ok(panels.itemsize, n)
    nq = panels.shape[0]
    jh = n - n % v if units else w - w % v                        # past the whole vectors
    jv = jh - jh % (2 * v) if PAIRS else 0                        # past the pairs of vectors
    xa = x.ctypes.data + size * np.uintp(x_off)
    for q0 in range(0, nq, 2):                                    # panels two by two
        two = PAIRS and q0 + 1 < nq
        for q in range(q0, min(q0 + 2, nq)):
            pq = panels.ctypes.data + size * np.uintp(q * K * ROWS)
            cq = c.ctypes.data + size * np.uintp(q * ROWS * w)
            for j in range(0, jv, 2 * v):                         # two vectors at once
                _tile2(pq, xa + size * np.uintp(j), ldx, cq + size * np.uintp(j), w, K, zero)
            if not two:                                           # a lone panel's last vector
                for j in range(jv, jh, v):
                    _tile(pq, xa + size * np.uintp(j), ldx, cq + size * np.uintp(j), w, K, zero)
        if two:                                                   # the last vector: both panels
            pq = panels.ctypes.data + size * np.uintp(q0 * K * ROWS)
            cq = c.ctypes.data + size * np.uintp(q0 * ROWS * w)
            for j in range(jv, jh, v):
                _tile_pair(pq, xa + size * np.uintp(j), ldx, cq + size * np.uintp(j), w, K, zero)
    if units:                                                     # the last n % V columns
        _units_rest(panels, 0, nq, x.ctypes.data + size * np.uintp(x_off), ldx, c, w, jh, n)
    elif jh < w:                                                  # the last half vector
        xh = x.ctypes.data + size * (np.uintp(x_off) + np.uintp(jh))
        for q in range(0, nq, 2):                                 # panels two by two
            pq = panels.ctypes.data + size * np.uintp(q * K * ROWS)
            cq = c.ctypes.data + size * np.uintp(q * ROWS * w + jh)
            if q + 1 < nq:
                _half_tile2(pq, xh, ldx, cq, w, K, zero)          # both panels: 2R rows
            else:
                _half_tile(pq, xh, ldx, cq, w, K, zero)
