"""The unit-split loops (rnnlab/engine/fast/units.py) and their barrier (sync.py).

Each thread runs its own hidden units of every step, and the threads meet at a
spin barrier once per step; the results must equal the reference loop's (which
is checked against finite differences and torch) on any split, size and layout.
"""
import numpy as np
import pytest

from rnnlab.engine import layers
from rnnlab.engine.fast import kernels as _kernels

pytestmark = pytest.mark.needs_numba

from tests.test_kernels import CASES, run, train_error_line       # noqa: E402


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    """Each test starts with no back-off from an earlier test's waits
    (``kernels.split_waited``: 3 threads on 2 cores wait off their cores)."""
    monkeypatch.setattr(_kernels, "_BACKOFF", [0.0, 1.0])


@pytest.mark.parametrize("n", [2, 3])
def test_barrier_lets_no_thread_pass_early(n):
    """n threads (3 on this 2-core machine: the waiter must yield its core) each
    write their slot of step s, meet, and read every slot: all must hold s."""
    import numba
    from rnnlab.engine.fast import sync
    from rnnlab.engine.threads import parallel

    @numba.njit(nogil=True)
    def work(state, slots, j, n, steps):
        wrong = 0
        for s in range(steps):
            slots[s % 2, j] = s
            sync.barrier(state, n)
            for k in range(n):
                wrong += slots[s % 2, k] != s
        return wrong
    state, slots, wrong = sync.state(), np.full((2, n), -1, np.int64), [None] * n
    steps = 20000 if n == 2 else 200

    def job(j):
        wrong[j] = work(state, slots, j, n, steps)
    parallel([lambda j=j: job(j) for j in range(n)])
    assert wrong == [0] * n


def test_an_aborted_barrier_lets_its_waiters_go():
    """A thread waiting for a partner that never arrives returns once the
    barrier is aborted (``sync.abort``: what the drivers do when a job fails)."""
    import threading
    import time
    from rnnlab.engine.fast import sync
    state = sync.state()
    sync.barrier(state, 1)                                        # compiled before the clock runs
    t = threading.Thread(target=sync.barrier, args=(state, 2), daemon=True)
    t.start()
    time.sleep(0.2)
    assert t.is_alive()                                           # waiting for a second thread
    sync.abort(state)
    t.join(10)
    assert not t.is_alive()


def test_a_failing_unit_job_raises_instead_of_hanging(tmp_path):
    """One thread's job of a unit-split loop fails before it reaches the loop
    (planted): the other, already in the loop, must not wait for it forever at
    the barrier; the call raises the error. In a child process with a time
    limit: a hang fails the test instead of stopping the suite."""
    import subprocess
    import sys
    code = """
import numpy as np
from rnnlab.engine import layers
from rnnlab.engine.fast import kernels, units
cfg = layers.RNNConfig("rnn", 8, 192, 1, True, False, 0.0, False)
p = layers.init_params(cfg, 1, np.float64)
if kernels.own_workers(p["weight_hh_l0"].size, 16, 9) < 2:
    print("skip"); raise SystemExit
real = units.rnn_fwd
def planted(*a):
    if a[-2] > 0:                                                 # the second thread's units
        raise RuntimeError("planted")
    return real(*a)
units.rnn_fwd = planted
x = np.random.default_rng(0).standard_normal((9, 16, 8))
try:
    layers.forward(cfg, p, x, lengths=[9] * 8 + [4] * 8, impl="fast")
except RuntimeError as e:
    print(e)
"""
    env = dict(__import__("os").environ, RNNLAB_SPLIT="units", RNNLAB_LOOP_THREADS="2")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=300)
    if r.stdout.strip() == "skip":
        pytest.skip("this OpenBLAS cannot set its thread count: no own threads")
    assert r.returncode == 0 and r.stdout.strip() == "planted", r.stderr[-2000:]


def _spy(monkeypatch):
    """Count the unit-split loops' calls."""
    calls = []
    real = _kernels.units

    class Spy:
        pass
    for name in ("rnn_fwd", "rnn_bwd", "lstm_fwd", "lstm_bwd", "gru_fwd", "gru_bwd"):
        def loop(*a, name=name):
            calls.append(name.split("_")[1])
            getattr(real, name)(*a)
        setattr(Spy, name, staticmethod(loop))
    monkeypatch.setattr(_kernels, "units", Spy)
    return calls


@pytest.mark.parametrize("mode,nl", CASES)
@pytest.mark.parametrize("threads", ["2", "3"])
@pytest.mark.parametrize("I,H,T,B,lengths", [
    (5, 24, 6, 20, None), (13, 48, 5, 18, [5, 5, 4, 4, 3, 3, 2, 2, 1] * 2),
    (16, 40, 4, 17, [4] * 10 + [2] * 7), (1, 32, 1, 16, None), (3, 32, 2, 16, None)])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_unit_split_equals_reference(monkeypatch, mode, nl, threads, I, H, T, B, lengths, dtype, tol):
    """RNNLAB_SPLIT=units on any layer of every cell: stacked and bidirectional (the upper
    layer and the reverse direction read their input feature-major and
    time-major), full and ragged, input sizes that are not a multiple of the tile
    (the threads' dx row blocks overlap) or smaller than the thread count
    (I = 1: an LSTM thread with no input rows), T*B equal to a thread's unit count
    (T = 1, B = 16, H = 32: the upstream gradient's layout must not be guessed
    from a slice) or to H (T = 2, B = 16: (T*B, H) and (H, T*B) have one shape),
    3 threads on 2 cores."""
    monkeypatch.setenv("RNNLAB_SPLIT", "units")
    monkeypatch.setenv("RNNLAB_LOOP_THREADS", threads)
    monkeypatch.setattr(_kernels, "own_workers", lambda weights, B, T=1: int(threads))
    calls = _spy(monkeypatch)
    cfg = layers.RNNConfig(mode, I, H, 2, True, False, 0.0, True, nonlinearity=nl or "tanh")
    params = layers.init_params(cfg, 1, dtype)
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(dtype)
    fast, slow = run(cfg, params, x, lengths, True), run(cfg, params, x, lengths, False)
    assert calls.count("fwd") == 4 * int(threads) and calls.count("bwd") == 4 * int(threads)
    for a, b in zip(fast, slow):
        assert np.abs(a - b).max() <= tol * max(1.0, np.abs(b).max())


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_ragged_batches_run_the_unit_split_by_default(monkeypatch, mode):
    """Unset, RNNLAB_SPLIT gives the unit split to ragged batches and to batches
    of one slice of rows over MIN_UNIT_STEPS steps or more (a full batch's row
    slices finish together and meet once). The back-off after waits off core
    (tested below) is off here: a loaded machine may cause one."""
    monkeypatch.delenv("RNNLAB_SPLIT", raising=False)
    monkeypatch.setattr(_kernels, "split_waited", lambda state: None)
    monkeypatch.setenv("RNNLAB_LOOP_THREADS", "2")
    calls = _spy(monkeypatch)
    cfg = layers.RNNConfig(mode, 8, 192, 1, True, False, 0.0, False)
    params = layers.init_params(cfg, 1, np.float64)
    x = np.random.default_rng(0).standard_normal((6, 32, 8))
    if _kernels.own_workers(params["weight_hh_l0"].size, 32) < 2:
        pytest.skip("this OpenBLAS cannot set its thread count: no own threads")
    run(cfg, params, x, None, True)
    assert calls == []
    fast = run(cfg, params, x, [6] * 16 + [3] * 16, True)
    assert calls == ["fwd", "fwd", "bwd", "bwd"]
    slow = run(cfg, params, x, [6] * 16 + [3] * 16, False)
    assert max(np.abs(a - b).max() for a, b in zip(fast, slow)) < 1e-12
    calls.clear()                                                 # one slice of rows:
    small = np.random.default_rng(1).standard_normal((_kernels.MIN_UNIT_STEPS, 4, 8))
    run(cfg, params, small, None, True)                           # enough steps: every thread
    assert calls == ["fwd", "fwd", "bwd", "bwd"]
    calls.clear()
    run(cfg, params, small[:-1], None, True)                      # too few: one loop thread
    assert calls == []


def test_unit_slices_cut_whole_panels(monkeypatch):
    from rnnlab.engine.fast import gemm
    R = gemm.ROWS
    monkeypatch.setenv("RNNLAB_SPLIT", "units")
    assert _kernels.unit_slices(32 * R, 2, False) == [(0, 16 * R), (16 * R, 32 * R)]
    assert _kernels.unit_slices(3 * R, 2, True) == [(0, R), (R, 3 * R)]
    assert _kernels.unit_slices(3 * R, 3, True) == [(0, R), (R, 2 * R), (2 * R, 3 * R)]
    assert _kernels.unit_slices(R, 2, True) is None               # one panel of units
    assert _kernels.unit_slices(3 * R + 1, 2, True) is None       # gates would share panels
    assert _kernels.unit_slices(32 * R, 1, True) is None
    monkeypatch.setenv("RNNLAB_SPLIT", "rows")
    assert _kernels.unit_slices(32 * R, 2, True) is None
    monkeypatch.delenv("RNNLAB_SPLIT")
    assert _kernels.unit_slices(32 * R, 2, True) == [(0, 16 * R), (16 * R, 32 * R)]
    assert _kernels.unit_slices(32 * R, 2, False) is None
    monkeypatch.setenv("RNNLAB_SPLIT", "unit")
    with pytest.raises(ValueError, match="RNNLAB_SPLIT must be 'rows' or 'units', got 'unit'"):
        _kernels.unit_slices(32 * R, 2, True)


def test_bad_split_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    """Every layer on the fast path reads RNNLAB_SPLIT when it runs: a bad value
    is the command's one-line error, exit code 2."""
    shown = train_error_line(tmp_path, {"RNNLAB_SPLIT": "both"}, 16, 4)
    assert shown == "rnnlab train: error: RNNLAB_SPLIT must be 'rows' or 'units', got 'both'"


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_both_splits_give_the_same_numbers_bit_for_bit(monkeypatch, mode):
    """Each output element sums the same products in the same order on either
    split, so which one runs (it may change between calls: ``split_waited``)
    never changes a result."""
    monkeypatch.setattr(_kernels, "own_workers", lambda weights, B, T=1: 2)
    cfg = layers.RNNConfig(mode, 13, 48, 2, True, False, 0.0, True)
    params = layers.init_params(cfg, 1, np.float32)
    x = np.random.default_rng(0).standard_normal((7, 20, 13)).astype(np.float32)
    for lengths in ([7, 7, 6, 5, 5, 3, 2, 2, 1, 1] * 2, None):    # ragged; full (16 + 4 rows)
        got = {}
        for split in ("rows", "units"):
            monkeypatch.setenv("RNNLAB_SPLIT", split)
            got[split] = run(cfg, params, x, lengths, True)
        assert all(np.array_equal(a, b) for a, b in zip(got["rows"], got["units"]))


def test_full_batches_split_their_units_where_the_row_slices_are_uneven():
    """A full batch of several row slices runs the unit split where the widest
    slice computes MIN_UNIT_SAVING multiply-adds per step more than an even
    share: B = 48 on 2 threads is 32 + 16 rows (32 columns against 24 each). B =
    24 is 12 + 12 rows with the AVX-512 units tile (13 columns' worth each,
    against 12.75), 16 + 8 without (16 columns against 12)."""
    from rnnlab.engine.fast import gemm
    f32, short = np.float32, _kernels.rows_fall_short
    lstm256, rnn512, gru256, lstm128 = 1024 * 512, 512 * 512, 768 * 256, 512 * 256
    assert short(lstm256, 48, 64, 2, False, f32)
    assert short(lstm256, 24, 64, 2, False, f32) == (gemm.REGISTERS != 32)
    assert not short(rnn512, 24, 64, 2, False, f32)               # 1.0M saved: too little
    assert not short(gru256, 20, 64, 2, False, f32)
    assert not short(800 * 400, 20, 20, 2, False, f32)           # the language model's LSTM
    assert not short(lstm128, 20, 64, 2, False, f32)
    assert not short(lstm256, 32, 64, 2, False, f32)              # 16 columns either way
    assert not short(lstm256, 64, 64, 2, False, f32)
    assert not short(lstm256, 24, _kernels.MIN_UNIT_STEPS - 1, 2, False, f32)
    assert not short(lstm256, 24, 64, 1, False, f32)
    assert short(lstm128, 40, 64, 2, True, f32)                   # ragged: always
    assert short(lstm128, 16, 64, 2, False, f32)                  # one slice of rows


def test_a_wait_off_core_is_counted():
    """A thread that reaches the barrier 20 ms late makes the other wait past
    SPIN_LIMIT polls: counted once, at that barrier (one meeting: on a loaded
    machine further meetings may yield too)."""
    import time
    import numba
    from rnnlab.engine.fast import sync
    from rnnlab.engine.threads import parallel

    @numba.njit(nogil=True)
    def meet(state, times):
        for _ in range(times):
            sync.barrier(state, 2)
    state = sync.state()
    meet(sync.state(), 0)                                         # compiled before timing

    def late():
        time.sleep(0.02)
        meet(state, 1)
    parallel([lambda: meet(state, 1), late])
    assert sync.yielded(state) == 1 and state[sync._GEN] == 1


def test_waits_off_core_send_ragged_batches_to_row_slices_for_a_while(monkeypatch):
    """After a unit-split call whose threads waited off their cores, ragged
    batches run on row slices for 1 s, then 2 s, 4 s ... after each such call
    (up to MAX_BACKOFF_S); a clean call resets the wait; RNNLAB_SPLIT=units
    still forces the unit split."""
    from rnnlab.engine.fast import sync
    now = [100.0]
    monkeypatch.setattr(_kernels.time, "monotonic", lambda: now[0])
    monkeypatch.delenv("RNNLAB_SPLIT", raising=False)
    waited, clean = sync.state(), sync.state()
    waited[sync._GEN], waited[sync._YIELDED] = 65, 9              # 9 of 65 meetings yielded
    clean[sync._GEN], clean[sync._YIELDED] = 65, 8                # 8: not more than 1 in 8
    short = sync.state()
    short[sync._GEN], short[sync._YIELDED] = 7, 1                 # one yield: not enough
    assert sync.off_core(waited) and not sync.off_core(clean) and not sync.off_core(short)
    short[sync._YIELDED] = 2
    assert sync.off_core(short)
    H = 8 * _kernels.gemm.ROWS
    assert _kernels.unit_slices(H, 2, True) is not None
    _kernels.split_waited(waited)
    assert _kernels.unit_slices(H, 2, True) is None
    monkeypatch.setenv("RNNLAB_SPLIT", "units")
    assert _kernels.unit_slices(H, 2, True) is not None
    monkeypatch.delenv("RNNLAB_SPLIT")
    now[0] = 101.01
    assert _kernels.unit_slices(H, 2, True) is not None
    _kernels.split_waited(waited)                                 # again: 2 s
    now[0] = 102.5
    assert _kernels.unit_slices(H, 2, True) is None
    now[0] = 103.02
    assert _kernels.unit_slices(H, 2, True) is not None
    for _ in range(12):
        _kernels.split_waited(waited)
    assert _kernels._BACKOFF[1] == _kernels.MAX_BACKOFF_S
    _kernels.split_waited(clean)
    assert _kernels._BACKOFF[1] == 1.0


def test_numba_cache_is_emptied_when_any_fast_path_source_changes(tmp_path):
    """numba keys a cached function by its own file only; a change to any file
    of the fast path (a callee's) must empty the cache, and nothing else may."""
    from rnnlab.engine.fast import fresh_cache
    (tmp_path / "loops.py").write_text("a = 1\n")
    (tmp_path / "sync.py").write_text("b = 1\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()

    def compiled():
        for name in ("loops.f-1.py311.nbi", "loops.f-1.py311.1.nbc"):
            (cache / name).write_bytes(b"x")
    compiled()
    assert fresh_cache(str(tmp_path)) is True                     # no stamp yet
    assert sorted(p.name for p in cache.iterdir()) == ["numba-sources.sha256"]
    compiled()
    assert fresh_cache(str(tmp_path)) is False                    # unchanged: kept
    assert len(list(cache.iterdir())) == 3
    (tmp_path / "sync.py").write_text("b = 2\n")                  # a callee changed
    assert fresh_cache(str(tmp_path)) is True
    assert sorted(p.name for p in cache.iterdir()) == ["numba-sources.sha256"]


@pytest.mark.parametrize("name", ["rnn-tanh", "rnn-relu", "lstm", "gru"])
def test_unit_split_gradients_equal_finite_differences(monkeypatch, name):
    """The unit-split backward checked directly, float64, against central
    differences (``lab.gradcheck``, one random direction per tensor): every
    parameter, input and initial state,
    two layers both ways, a ragged batch, 2 threads on 8-unit slices."""
    from rnnlab.lab.gradcheck import check_layer, variants
    monkeypatch.delenv("RNNLAB_IMPL", raising=False)              # "auto": the fast path
    monkeypatch.setenv("RNNLAB_SPLIT", "units")
    monkeypatch.setattr(_kernels, "own_workers", lambda weights, B, T=1: 2)
    calls = _spy(monkeypatch)
    cfg = layers.RNNConfig(input_size=3, hidden_size=16, num_layers=2, bidirectional=True,
                           **variants()[name])
    report = check_layer(cfg, lengths=[4, 2, 3], T=4, B=3, directional=True)
    assert "bwd" in calls and report, report.errors


@pytest.mark.needs_torch
@pytest.mark.parametrize("name", ["rnn-tanh", "lstm", "gru"])
def test_unit_split_equals_torch(monkeypatch, torch_twin, case, run, close, name):
    """The unit split against torch.nn with the same state_dict, float64:
    outputs, final states and every gradient, packed sequences (ragged)."""
    import torch
    from rnnlab.lab.gradcheck import variants
    from tests.test_torch_equivalence import run_torch
    monkeypatch.setenv("RNNLAB_SPLIT", "units")
    monkeypatch.setattr(_kernels, "own_workers", lambda weights, B, T=1: 2)
    calls = _spy(monkeypatch)
    cfg = layers.RNNConfig(input_size=16, hidden_size=64, num_layers=2, bidirectional=True,
                           **variants()[name])
    params, x, state0, dout, dstate_n = case(cfg, 12, 8, seed=5, dtype=np.float64)
    lengths = [12, 11, 7, 12, 1, 9, 5, 10]
    ours = run(cfg, params, x, state0, dout, dstate_n, lengths, impl="fast")
    theirs = run_torch(torch_twin(cfg, params, torch.float64), cfg, x, state0, dout, dstate_n,
                       lengths)
    assert "fwd" in calls and "bwd" in calls
    close(ours, theirs, 1e-10, name)
