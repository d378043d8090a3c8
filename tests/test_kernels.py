"""The compiled fast path (rnnlab/engine/fast/kernels.py) against the generic loop it replaces.

The generic loop is itself checked against finite differences and torch, so
equality here (to rounding) carries those checks over to the fast path.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from rnnlab.engine.fast import kernels as _kernels
from rnnlab.engine import layers

pytestmark = pytest.mark.needs_numba       # skipped without numba; a failure in CI

CASES = [("rnn", "tanh"), ("rnn", "relu"), ("rnn", "sigmoid"), ("lstm", None), ("gru", None)]


def run(cfg, params, x, lengths, fast, seed=3):
    """Forward + backward with random upstream gradients; every result, flat."""
    impl = "fast" if fast else "reference"
    out, fin, cache = layers.forward(cfg, params, x, lengths=lengths, impl=impl)
    assert (cache.seq[0][0].fm is not None) == fast              # the intended path ran
    rng = np.random.default_rng(seed)
    dout = rng.standard_normal(out.shape).astype(x.dtype)
    dfin = tuple(rng.standard_normal(f.shape).astype(x.dtype) for f in fin)
    dx, dh0, grads = layers.backward(cfg, params, cache, dout, dfin, impl=impl)
    return [out, *fin, dx, *dh0, *[grads[k] for k in params]]


@pytest.mark.parametrize("mode,nl", CASES)
@pytest.mark.parametrize("layers_, bidir, lengths, bias", [
    (1, False, None, True), (2, True, [7, 3, 5, 1], True), (2, False, [2, 7, 7, 4], False)])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_fast_equals_generic(mode, nl, layers_, bidir, lengths, bias, dtype, tol):
    cfg = layers.RNNConfig(mode, 5, 6, layers_, bias, False, 0.0, bidir,
                           nonlinearity=nl or "tanh")
    params = layers.init_params(cfg, 1, dtype)
    x = np.random.default_rng(0).standard_normal((7, 4, 5)).astype(dtype)
    fast, slow = run(cfg, params, x, lengths, True), run(cfg, params, x, lengths, False)
    for a, b in zip(fast, slow):
        assert a.dtype == dtype and a.shape == b.shape
        assert np.abs(a - b).max() <= tol * max(1.0, np.abs(b).max())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("M,K,n", [(512, 128, 16), (500, 100, 13), (37, 5, 3), (800, 200, 20),
                                   (8, 1, 1), (24, 17, 33), (64, 32, 8), (64, 32, 40)])
def test_own_product_equals_numpy(dtype, M, K, n):
    """gemm.product: W packed once, X read at an offset with its rows ldx apart;
    rows of W not a multiple of the tile, columns not a multiple of the vector
    (the columns past n are computed on whatever X holds there and ignored),
    the last n % V columns (n = 3, 8, 13, 20, 33, 40 in float32) on the units tile."""
    from rnnlab.engine.fast import gemm
    rng = np.random.default_rng(M + n)
    w = rng.standard_normal((M, K)).astype(dtype)
    x = rng.standard_normal((K, 7 + n + 64)).astype(dtype)
    x[:, 7 + n:] = np.nan                                        # past n: never reaches C[:, :n]
    panels, cols = gemm.pack(w), gemm.width(n, dtype)
    assert panels.shape == (-(-M // gemm.ROWS), K, gemm.ROWS) and cols % (gemm.lanes(dtype) // 2) == 0
    size = panels.shape[0] * gemm.ROWS * cols
    c = np.zeros(size + 64, dtype)
    c[size:] = 7                                                 # past the last row: never written
    gemm.product(panels, x, 7, x.shape[1], c, n)
    assert (c[size:] == 7).all()
    got = c[:size].reshape(-1, cols)[:M, :n]
    want = w.astype(np.float64) @ x[:, 7:7 + n].astype(np.float64)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert np.abs(got - want).max() <= tol * max(1.0, np.abs(want).max())
    c[:] = 5
    gemm.product(panels, x, 7, x.shape[1], c, 0)                 # no rows running: nothing written
    assert (c == 5).all()


@pytest.mark.parametrize("mode,nl", CASES)
def test_no_buffer_column_is_read_before_written(monkeypatch, mode, nl):
    """The buffers the fast path does not zero (histories, activations of a full
    batch, gradients) filled with NaN before each call: a column read before the
    loops write it would carry the NaN into a result. Full, ragged, stacked and
    bidirectional, on two threads' row slices, equal the reference loop."""
    real = _kernels.aligned

    def poisoned(shape, dtype, zero=False):
        a = real(shape, dtype, zero)
        if not zero and np.dtype(dtype).kind == "f":
            a[...] = np.nan
        return a
    monkeypatch.setattr(_kernels, "aligned", poisoned)
    monkeypatch.setenv("RNNLAB_LOOP_THREADS", "2")
    for lengths, layers_, bidir in ((None, 1, False), ([9, 4, 9, 1] * 5, 2, True)):
        cfg = layers.RNNConfig(mode, 5, 200, layers_, True, False, 0.0, bidir,
                               nonlinearity=nl or "tanh")
        params = layers.init_params(cfg, 1, np.float64)
        x = np.random.default_rng(0).standard_normal((9, 20, 5))
        fast, slow = run(cfg, params, x, lengths, True), run(cfg, params, x, lengths, False)
        for a, b in zip(fast, slow):
            assert np.isfinite(a).all() and np.abs(a - b).max() <= 1e-12 * max(1.0, np.abs(b).max())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("M,K,n,k0", [(512, 256, 16, 0), (512, 256, 16, 128), (37, 5, 3, 0),
                                      (28, 20, 13, 8), (24, 17, 33, 16), (8, 1, 1, 0)])
def test_transposed_product_on_the_same_panels_equals_numpy(dtype, M, K, n, k0):
    """gemm.product_t: W^T X on W's own panels (every cell's backward reuses its
    forward's), from row block k0 on; W's rows not a multiple of the tile (X's
    rows past M hold finite junk, multiplied by the panels' zero rows), columns
    past n never reaching C[:, :n] (NaN there), K not a multiple of the tile;
    and only up to row k1 (the unit-split backward's row ranges)."""
    from rnnlab.engine.fast import gemm
    R = gemm.ROWS
    k0 = k0 // R * R
    rng = np.random.default_rng(M + n + k0)
    w = rng.standard_normal((M, K)).astype(dtype)
    panels, cols = gemm.pack(w), gemm.width(n, dtype)
    Mp, Kp = panels.shape[0] * R, -(-K // R) * R
    x = rng.standard_normal((Mp, cols + 64)).astype(dtype)
    x[:, n:] = np.nan
    want = (w.astype(np.float64).T @ x[:M, :n].astype(np.float64))[k0:]
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for wt in (gemm.pack_t(panels), gemm.no_pack_t(dtype)):     # units tile, half tile
        c = np.zeros((Kp - k0) * cols, dtype)
        gemm.product_t(panels, wt, x, x.shape[1], c, n, k0, K)
        got = c.reshape(-1, cols)[:K - k0, :n]
        assert np.abs(got - want).max() <= tol * max(1.0, np.abs(want).max())
        k1 = k0 + (K - k0) // 2 + 1                               # rows k0..k1 only
        c[:] = 5
        gemm.product_t(panels, wt, x, x.shape[1], c, n, k0, k1)
        blocks = -(-(k1 - k0) // R) * R                           # whole blocks written, no more
        assert np.abs(c.reshape(-1, cols)[:k1 - k0, :n] - want[:k1 - k0]).max() <= \
            tol * max(1.0, np.abs(want).max())
        assert (c[blocks * cols:] == 5).all()
        c[:] = 5
        gemm.product_t(panels, wt, x, x.shape[1], c, 0, k0, K)      # no rows running
        assert (c == 5).all()


@pytest.mark.parametrize("I,H", [(13, 7), (16, 8), (3, 10)])
@pytest.mark.parametrize("lengths", [None, [9, 9, 4, 1, 6]])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_lstm_backward_on_forward_panels_odd_sizes(I, H, lengths, dtype, tol):
    """The LSTM backward runs on its forward's packed s * [W_ih | W_hh]: gate rows
    4H and inputs I off the tile height (padded panels, the W_hh rows starting
    inside a row block), full (dx from the loop) and ragged (dx one product over
    the tokens), equal the reference loop."""
    cfg = layers.RNNConfig("lstm", I, H)
    params = layers.init_params(cfg, 2, dtype)
    x = np.random.default_rng(1).standard_normal((9, 5, I)).astype(dtype)
    fast, slow = run(cfg, params, x, lengths, True), run(cfg, params, x, lengths, False)
    for a, b in zip(fast, slow):
        assert np.abs(a - b).max() <= tol * max(1.0, np.abs(b).max())


@pytest.mark.parametrize("M", [8, 13, 40])
def test_pack_of_column_blocks_with_row_scale(M):
    """gemm.pack(W_ih, W_hh, scale=s) packs s * [W_ih | W_hh] without building it,
    from C-ordered blocks and from a transpose alike; rows past M are zero."""
    from rnnlab.engine.fast import gemm
    rng = np.random.default_rng(M)
    a, b = rng.standard_normal((M, 5)), rng.standard_normal((7, M)).T   # C and F order
    s = rng.standard_normal(M)
    got = gemm.pack(a, b, scale=s)
    want = np.zeros((got.shape[0] * gemm.ROWS, 12))
    want[:M] = np.concatenate([a, b], axis=1) * s[:, None]
    assert np.array_equal(got, want.reshape(-1, gemm.ROWS, 12).transpose(0, 2, 1))
    assert np.array_equal(gemm.pack(b), gemm.pack(np.ascontiguousarray(b)))
    with pytest.raises(ValueError, match="share rows and dtype"):
        gemm.pack(a, a[:-1])


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_batch_of_partial_vectors_equals_generic(monkeypatch, mode, dtype, tol):
    """B = 20 on one loop: each step's product computes two whole vectors of
    columns (32 float32, 24 float64), reading past the batch's columns into the
    next step's; a ragged tail computes one vector for 1-4 rows."""
    monkeypatch.setenv("RNNLAB_LOOP_THREADS", "1")
    cfg = layers.RNNConfig(mode, 5, 8, 2, bidirectional=True)
    params = layers.init_params(cfg, 1, dtype)
    x = np.random.default_rng(0).standard_normal((9, 20, 5)).astype(dtype)
    lengths = [9] * 6 + [8, 7] * 5 + [3, 2, 1, 1]                  # 20 rows, 16 run 7 steps
    for lens in (None, lengths):
        fast, slow = run(cfg, params, x, lens, True), run(cfg, params, x, lens, False)
        for a, b in zip(fast, slow):
            assert np.abs(a - b).max() <= tol * max(1.0, np.abs(b).max())


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_two_threads_of_row_slices_equal_generic(monkeypatch, mode, dtype, tol):
    """With two loop threads a full batch runs as two row slices on two threads,
    each step on the one packed W_hh; OpenBLAS is held at one thread inside."""
    if _kernels._SET_THREADS is None:
        pytest.skip("this OpenBLAS cannot hold a caller to one thread: never sliced")
    monkeypatch.setenv("RNNLAB_LOOP_THREADS", "2")
    lengths = [9] * 10 + [8, 7] * 10 + [3, 2, 1, 1, 1, 1]          # 36 rows
    monkeypatch.setattr(_kernels, "MIN_OWN_WEIGHTS", 1)            # H = 8 here
    assert _kernels.own_workers(32 * 8, 36) == 2
    assert len(_kernels.row_slices(36, 2)) == 2
    cfg = layers.RNNConfig(mode, 5, 8, 2, bidirectional=True)
    params = layers.init_params(cfg, 1, dtype)
    x = np.random.default_rng(0).standard_normal((9, 36, 5)).astype(dtype)
    before = _kernels._openblas_threads()
    for lens in (None, lengths):
        fast, slow = run(cfg, params, x, lens, True), run(cfg, params, x, lens, False)
        for a, b in zip(fast, slow):
            assert np.abs(a - b).max() <= tol * max(1.0, np.abs(b).max())
    assert _kernels._openblas_threads() == before                 # held at one inside, restored


@pytest.mark.parametrize("blas", ["openblas", pytest.param("mkl", marks=pytest.mark.needs_mkl)])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_products_split_over_own_threads_equal_numpy(monkeypatch, blas, ta, tb):
    """The whole-sequence products split by rows over two threads, each piece on
    one-thread OpenBLAS or sequential MKL, for row- and column-major operands
    (views of padded buffers)."""
    if _kernels._SET_THREADS is None:
        pytest.skip("this OpenBLAS cannot set its thread count: never its own threads")
    monkeypatch.setattr(_kernels, "_MKL", _kernels._load_mkl() if blas == "mkl" else None)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((70, 40) if not ta else (40, 70))
    b = rng.standard_normal((40, 33 + 16) if not tb else (33, 40))
    a, b = (a.T if ta else a), (b.T if tb else b[:, :33])         # (70, 40) @ (40, 33)
    with _kernels.own_threads(2):
        assert _kernels._openblas_threads() == 1
        got = _kernels.matmul(a, b, parts=2)
    assert np.abs(got - a @ b).max() <= 1e-12


def test_padded_positions_and_untouched_rows():
    """Past a row's end outputs are exactly zero and its input gradient too."""
    cfg = layers.RNNConfig("lstm", 3, 4)
    params = layers.init_params(cfg, 0, np.float32)
    x = np.random.default_rng(1).standard_normal((6, 3, 3)).astype(np.float32)
    out, _, cache = layers.forward(cfg, params, x, lengths=[6, 2, 4], impl="fast")
    assert not out[2:, 1].any() and not out[4:, 2].any()
    dx, _, _ = layers.backward(cfg, params, cache, np.ones_like(out), impl="fast")
    assert not dx[2:, 1].any() and not dx[4:, 2].any()


def test_float32_tanh_accuracy():
    """The vectorisable float32 tanh stays within 4e-7 of tanh everywhere."""
    import numba

    @numba.njit
    def apply(a):
        out = np.empty_like(a)
        for i in range(a.shape[0]):
            out[i] = _kernels.loops._tanh(a[i])
        return out
    x = np.concatenate([np.linspace(-20, 20, 400_001), [0.0, 1e-30, -1e-30]]).astype(np.float32)
    err = np.abs(apply(x).astype(np.float64) - np.tanh(x.astype(np.float64)))
    assert err.max() < 4e-7
    assert apply(np.array([np.nan], np.float32))[0] != apply(np.array([np.nan], np.float32))[0]


def test_nonfinite_values_propagate():
    """A NaN that reaches the kernels (say, from exploding weights) is not hidden."""
    cfg = layers.RNNConfig("gru", 2, 3)
    params = layers.init_params(cfg, 0, np.float32)
    params["weight_hh_l0"][0, 0] = np.inf
    x = np.ones((4, 2, 2), np.float32)
    out, _, _ = layers.forward(cfg, params, x, impl="fast")
    assert not np.isfinite(out).all()


@pytest.mark.parametrize("mode,nl", CASES)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 1e-6)])
def test_row_slices_on_threads_equal_one_loop(monkeypatch, mode, nl, dtype, tol):
    """The batch split into row slices, each loop on its own thread (what the
    drivers do for full batches on own threads), gives the numbers of one loop
    over the whole batch, to rounding (a product's last bits depend on its
    column count): full and ragged (the loops take any slice of a length-sorted
    batch), stacked and bidirectional, final-state gradients injected in every
    slice, odd cuts."""
    cfg = layers.RNNConfig(mode, 5, 16, 2, True, False, 0.0, True, nonlinearity=nl or "tanh")
    params = layers.init_params(cfg, 1, dtype)
    x = np.random.default_rng(0).standard_normal((9, 24, 5)).astype(dtype)
    lengths = [9] * 5 + [8, 7, 6] * 5 + [3, 2, 1, 1]
    for lens in (None, lengths):
        monkeypatch.setattr(_kernels, "row_slices", lambda B, n, dtype=None: [(0, B)])
        whole = run(cfg, params, x, lens, True)
        cuts = [(0, 5), (5, 6), (11, 2), (13, 11)]                # 4 threads; rows 13.. end early
        monkeypatch.setattr(_kernels, "row_slices", lambda B, n, dtype=None: cuts)
        sliced = run(cfg, params, x, lens, True)
        for a, b in zip(sliced, whole):
            assert np.abs(a - b).max() <= tol * max(1.0, np.abs(b).max())


def test_row_slices_on_cache_lines():
    """Cut on whole vectors of 16 rows; two slices of a batch that is not whole
    vectors where the costlier one's step costs least (``gemm.cost``)."""
    from rnnlab.engine.fast import gemm
    assert _kernels.row_slices(32, 2) == [(0, 16), (16, 16)]
    if gemm.REGISTERS == 32:                                      # the AVX-512 units tile
        assert _kernels.row_slices(40, 2) == [(0, 20), (20, 20)]  # 16 + 6 columns' worth each
        assert _kernels.row_slices(20, 2) == [(0, 12), (12, 8)]   # 13 and 9.5, not 16 and 6
    else:
        assert _kernels.row_slices(40, 2) == [(0, 32), (32, 8)]
        assert _kernels.row_slices(20, 2) == [(0, 16), (16, 4)]
    assert _kernels.row_slices(64, 4) == [(0, 16), (16, 16), (32, 16), (48, 16)]
    assert _kernels.row_slices(64, 3) == [(0, 16), (16, 32), (48, 16)]
    assert _kernels.row_slices(31, 2) == [(0, 16), (16, 15)]       # one 16-column vector each
    assert _kernels.row_slices(16, 2) == [(0, 16)]
    assert _kernels.row_slices(48, 2) in ([(0, 16), (16, 32)], [(0, 32), (32, 16)])
    assert _kernels.row_slices(32, 1) == [(0, 32)]


def test_own_threads_for_two_slices_of_a_big_enough_layer(monkeypatch):
    if _kernels._SET_THREADS is None:
        pytest.skip("this OpenBLAS cannot set its thread count: never its own threads")
    monkeypatch.setenv("RNNLAB_LOOP_THREADS", "2")
    big = _kernels.MIN_OWN_WEIGHTS
    assert _kernels.own_workers(big, 32) == 2
    assert _kernels.own_workers(big - 1, 32) == 1                 # hand-offs would cost more
    assert _kernels.own_workers(big, 17) == 2                     # 16 + 1 rows
    assert _kernels.own_workers(big, 16) == 1                     # one slice, one step: one loop
    assert _kernels.own_workers(big, 16, _kernels.MIN_UNIT_STEPS) == 2   # the unit split
    assert _kernels.own_workers(big, 1, _kernels.MIN_UNIT_STEPS - 1) == 1
    monkeypatch.setenv("RNNLAB_LOOP_THREADS", "1")
    assert _kernels.own_workers(big, 32) == 1
    for bad in ("two", "0", "-2", " 2"):                         # named, not int()'s traceback
        monkeypatch.setenv("RNNLAB_LOOP_THREADS", bad)
        with pytest.raises(ValueError, match=f"RNNLAB_LOOP_THREADS must be a positive integer, "
                                             f"got '{bad}'"):
            _kernels.own_workers(big, 32)


def train_error_line(tmp_path, setting, hidden, batch):
    """What a terminal shows last when ``rnnlab train`` (fast path, one step of a
    layer of ``hidden`` units on ``batch`` rows) runs with the environment
    ``setting`` added: asserted to be exit code 2 and no traceback."""
    env = dict(os.environ, OMP_NUM_THREADS="2", **setting)
    env.pop("RNNLAB_IMPL", None)                                  # CI's reference pass sets it
    r = subprocess.run([sys.executable, "-m", "rnnlab", "train", "--out", str(tmp_path / "r"),
                        "--hidden-size", str(hidden), "--batch-size", str(batch),
                        "--epochs", "1", "--max-steps", "1"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 2, (r.stdout[-500:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    return r.stderr.rstrip("\n").splitlines()[-1].split("\r")[-1]


def test_bad_thread_count_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    """A layer big enough for the loop threads reads RNNLAB_LOOP_THREADS when it
    runs: a bad value is the command's one-line error, exit code 2."""
    if _kernels._SET_THREADS is None:
        pytest.skip("this OpenBLAS cannot set its thread count: never its own threads")
    shown = train_error_line(tmp_path, {"RNNLAB_LOOP_THREADS": "lots"}, 128, 32)
    assert shown == ("rnnlab train: error: RNNLAB_LOOP_THREADS must be a positive integer, "
                     "got 'lots'")


def test_input_rows_reads_either_layout():
    """The folded LSTM loop reads each step's input itself: a layer below's
    feature-major history as is, a caller's (T, B, I) as time-major rows, and
    anything else (a flipped reverse direction) from a copy in either layout."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 4))
    src, fm = _kernels.input_rows(x)
    assert not fm and np.shares_memory(src, x) and (src == x.reshape(15, 4)).all()
    base = _kernels.buffer(4, 6 * 3, x.dtype)                    # a history: (H, (T+1)*B)
    base[:, :18] = rng.standard_normal((4, 18))
    view = _kernels.time_major(base, 6, 3)[1:]                    # outputs h_1..h_5, (T, B, H)
    src, fm = _kernels.input_rows(view)
    assert fm and np.shares_memory(src, base) and (src[:, :15] == base[:, 3:18]).all()
    src, fm = _kernels.input_rows(x[::-1])
    flat = x[::-1].reshape(15, 4)
    assert not np.shares_memory(src, x) and (src[:, :15] == flat.T if fm else src == flat).all()


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_stacked_lstm_reads_the_layer_below_in_place(dtype, tol):
    """A unidirectional stack: layer 1's folded loop reads layer 0's history
    (feature-major), layer 0's the caller's time-major input; both equal the
    reference loop, full and ragged, B = 36 on two row slices."""
    cfg = layers.RNNConfig("lstm", 5, 16, 3)
    params = layers.init_params(cfg, 2, dtype)
    x = np.random.default_rng(1).standard_normal((8, 36, 5)).astype(dtype)
    for lens in (None, [8] * 20 + [5] * 10 + [1] * 6):
        fast, slow = run(cfg, params, x, lens, True), run(cfg, params, x, lens, False)
        for a, b in zip(fast, slow):
            assert np.abs(a - b).max() <= tol * max(1.0, np.abs(b).max())


def test_four_row_tiles_as_on_avx2(tmp_path):
    """The tile height an AVX2 CPU gets (4 rows; 8 with AVX-512), forced in a fresh
    process with its own numba cache: the product and a ragged bidirectional LSTM
    and GRU equal NumPy and the reference loop."""
    import os
    import subprocess
    import sys
    code = """
import numpy as np
from rnnlab.engine.fast import gemm
from rnnlab.engine import layers
assert gemm.ROWS == 4
rng = np.random.default_rng(0)
w, x = rng.standard_normal((37, 9)), rng.standard_normal((9, 40))
for n in (20, 24):                                              # 2 vectors and a half, 3 vectors
    c = np.zeros(gemm.pack(w).shape[0] * 4 * gemm.width(n, np.float64))
    gemm.product(gemm.pack(w), x, 3, 40, c, n)
    assert np.abs(c.reshape(-1, gemm.width(n, np.float64))[:37, :n] - w @ x[:, 3:3 + n]).max() < 1e-12
for mode in ("lstm", "gru"):
    cfg = layers.RNNConfig(mode, 5, 6, 2, bidirectional=True)
    p = layers.init_params(cfg, 1, np.float64)
    xs = rng.standard_normal((7, 20, 5))
    lens = [7] * 10 + [4] * 6 + [1] * 4
    res = []
    for impl in ("fast", "reference"):
        out, fin, cache = layers.forward(cfg, p, xs, lengths=lens, impl=impl)
        dx, _, g = layers.backward(cfg, p, cache, np.cos(out), impl=impl)
        res.append([out, dx] + [g[k] for k in p])
    assert max(np.abs(a - b).max() for a, b in zip(*res)) < 1e-12, mode
xt = rng.standard_normal((40, 40))                               # rows past 37: finite junk
c = np.zeros((12 - 4) * 20)
gemm.product_t(gemm.pack(w), gemm.pack_t(gemm.pack(w)), xt, 40, c, 20, 4, w.shape[1])  # from row 4
assert np.abs(c.reshape(-1, 20)[:5, :20] - (w.T @ xt[:37, :20])[4:]).max() < 1e-12
print("ok")
"""
    env = dict(os.environ, RNNLAB_TILE_ROWS="4", NUMBA_CACHE_DIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_bad_tile_rows_override_is_a_clear_error_at_use(monkeypatch):
    """RNNLAB_TILE_ROWS is read at import; a bad value leaves the CPU's choice in
    place and is raised, naming the variable, when the fast path is used."""
    from rnnlab.engine.fast import gemm
    for bad in ("x", "0", "-4", "2.5"):
        monkeypatch.setenv("RNNLAB_TILE_ROWS", bad)
        rows, err = gemm._tile_rows()
        assert rows in (4, 8) and err == f"RNNLAB_TILE_ROWS must be a positive integer, got {bad!r}"
    monkeypatch.setenv("RNNLAB_TILE_ROWS", "4")
    assert gemm._tile_rows() == (4, None)
    monkeypatch.setattr(gemm, "_ROWS_ERROR", "RNNLAB_TILE_ROWS must be a positive integer, got 'x'")
    with pytest.raises(ValueError, match="RNNLAB_TILE_ROWS must be a positive integer"):
        gemm.pack(np.ones((3, 2)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_last_columns_give_the_full_tiles_bits(dtype):
    """A step's last n % V columns run on the units tile (vectors along W's rows,
    in groups of 4, 2 and 1 row vectors; ``product_t``'s on ``pack_t``), or on the
    half tile (``product_t`` without ``pack_t``): each column sums in the same
    order as on a full tile, so its bits do not depend on how many columns the
    step computed (a ragged batch's row and unit splits cut the columns
    differently and must agree bit for bit). Panel and block counts odd and even,
    from row block 0 and from a later one."""
    from rnnlab.engine.fast import gemm
    R, V = gemm.ROWS, gemm.lanes(dtype)
    rng = np.random.default_rng(7)
    for M, K in ((5 * R, 3 * R + 1), (6 * R, 4 * R), (19 * R + 3, 2 * R + 1)):
        w = rng.standard_normal((M, K)).astype(dtype)
        panels = gemm.pack(w)
        x = rng.standard_normal((max(M, K) + R, 4 * V)).astype(dtype)
        for n in (1, V // 4, V // 2, V - 1, V + V // 2, V + 3, 2 * V + gemm.UNIT_MAX, 3 * V):
            full = -(-n // V) * V                                  # the same columns on full tiles only
            Mp = panels.shape[0] * R
            got, ref = np.full(Mp * gemm.width(n, dtype), np.nan, dtype), np.zeros(Mp * full, dtype)
            gemm.product(panels, x, 0, x.shape[1], got, n)
            gemm.product(panels, x, 0, x.shape[1], ref, full)
            assert np.array_equal(got.reshape(Mp, -1)[:M, :n], ref.reshape(Mp, -1)[:M, :n])
            if gemm.units_ok(np.dtype(dtype).itemsize, n):        # the scratch past n: zero,
                assert (got.reshape(Mp, -1)[:, n:] == 0).all()    # not the bytes left there
            for k0 in (0, R):
                Kp = -(-K // R) * R
                got = np.zeros((Kp - k0) * gemm.width(n, dtype), dtype)
                ref = np.zeros((Kp - k0) * full, dtype)
                gemm.product_t(panels, gemm.no_pack_t(dtype), x, x.shape[1], ref, full, k0, K)
                for wt in (gemm.pack_t(panels), gemm.no_pack_t(dtype)):
                    got[:] = np.nan
                    gemm.product_t(panels, wt, x, x.shape[1], got, n, k0, K)
                    assert np.array_equal(got.reshape(Kp - k0, -1)[:K - k0, :n],
                                          ref.reshape(Kp - k0, -1)[:K - k0, :n])
                    if wt.shape[0] and gemm.units_ok(np.dtype(dtype).itemsize, n):
                        assert (got.reshape(Kp - k0, -1)[:, n:] == 0).all()


def test_pack_t_is_the_transpose_packed():
    """``pack_t`` of W's panels is ``pack`` of W^T padded with W's zero rows:
    what the backward's units tile reads."""
    from rnnlab.engine.fast import gemm
    R = gemm.ROWS
    w = np.random.default_rng(3).standard_normal((3 * R + 2, 2 * R + 3))
    got, Mp = gemm.pack_t(gemm.pack(w)), 4 * R
    wt = np.zeros((2 * R + 3, Mp))
    wt[:, :w.shape[0]] = w.T
    assert np.array_equal(got, gemm.pack(wt))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pair_tiles_give_the_single_tiles_bits(dtype):
    """With the AVX-512 tile height, two vectors of columns run on one tile
    (``gemm._tiles(..., vecs=2)``): each column sums in the one-vector tile's order, so a
    step of 2V or 3V columns gives, bit for bit, what V columns at a time give
    (two threads' row slices of 16 and one thread's 32 rows must agree)."""
    from rnnlab.engine.fast import gemm
    if not gemm.PAIRS:
        pytest.skip("the pair tiles run only with the AVX-512 tile height")
    R, V = gemm.ROWS, gemm.lanes(dtype)
    rng = np.random.default_rng(11)
    for M, K in ((5 * R, 3 * R + 1), (6 * R, 4 * R)):
        w = rng.standard_normal((M, K)).astype(dtype)
        panels = gemm.pack(w)
        x = rng.standard_normal((max(M, K) + R, 4 * V)).astype(dtype)
        for n in (2 * V, 3 * V):
            got = np.zeros(M * n, dtype)
            gemm.product(panels, x, 0, x.shape[1], got, n)
            Kp = -(-K // R) * R
            got_t = np.zeros(Kp * n, dtype)
            gemm.product_t(panels, gemm.no_pack_t(dtype), x, x.shape[1], got_t, n, 0, K)
            for j in range(0, n, V):                               # one vector at a time
                one = np.zeros(M * V, dtype)
                gemm.product(panels, x, j, x.shape[1], one, V)
                assert np.array_equal(got.reshape(M, n)[:, j:j + V], one.reshape(M, V))
                one_t = np.zeros(Kp * V, dtype)
                xj = np.ascontiguousarray(x[:, j:j + V + V])
                gemm.product_t(panels, gemm.no_pack_t(dtype), xj, 2 * V, one_t, V, 0, K)
                assert np.array_equal(got_t.reshape(Kp, n)[:K, j:j + V], one_t.reshape(Kp, V)[:K])
