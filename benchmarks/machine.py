"""What every benchmark prints with its figures, and how it times them.

- ``describe()``: date, CPU model, cores, the BLAS that NumPy loaded and the
  kernel OpenBLAS chose (threadpoolctl), thread count, NumPy and torch versions.
- ``matmul_rate()``: this machine's float32 matrix-multiply rate, measured now.
- ``two_at_once()``: what two threads running at once cost each other now
  (the time loops' row slices run so).
- ``timeit(f)``: median time of repeated calls, after a warm-up.
- ``rounds(fs)``: several callables timed in turns, round after round (a pause
  before each), so a stretch when the machine is slower (other virtual
  machines on the host: a 2-core cloud machine showed 200 ms stretches at 1.5x
  its usual step time) falls on every peer alike; ``ratio()`` is then the
  median over rounds of one's time over the other's in the same round.
- ``freeze_gc()``: after the imports, every object so far moved out of the cyclic
  collector's reach (``gc.freeze``): with torch, numba and rnnlab in one process
  (~196k objects) a full collection takes ~100 ms, and the collections that a
  step's allocations set off charged that to whichever library was running
  (LSTM H = 128: every few steps one of 24 ms instead of 13).
- ``settle()``: a short pause between peers, so BLAS/OpenMP worker threads that
  are still spinning after one library's call do not slow the other's.
"""
import os
import platform
import statistics
import time

import numpy as np


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas():
    """'openblas 0.3.x (Haswell kernel, 2 threads)' or what threadpoolctl can tell."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (pip install threadpoolctl to see the BLAS kernel)"
    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')} "
                     f"kernel, {i.get('num_threads')} threads)" for i in libs) or "none found"


def step_blas():
    """What runs rnnlab's per-step products (its own kernel) and whole-sequence ones."""
    try:
        from rnnlab.engine.fast import kernels
    except ImportError:
        return "none (numba missing)"
    return kernels.blas() if kernels.available() else "none (numba or NumPy's OpenBLAS missing)"


def describe(torch=None):
    names = ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "RNNLAB_BLAS", "RNNLAB_THREADS")
    env = {k: os.environ[k] for k in names if k in os.environ}
    tv = f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ""
    step = step_blas()                              # imports the kernels (and MKL if asked)
    return (f"{time.strftime('%Y-%m-%d %H:%M')}; {cpu_model()}, {os.cpu_count()} cores; "
            f"numpy {np.__version__}{tv}; BLAS {blas()}; rnnlab per-step products: {step}"
            + (f"; env {env}" if env else ""))


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def timeit(f, repeats=5, number=1, clock="wall"):
    """Median seconds per call. clock="cpu" counts this process's CPU time
    instead of wall time: with one thread it is what the call costs even on a
    machine that other jobs load (wall time then counts their turns too)."""
    tick = CLOCKS[clock]
    f()                                                           # warm up (and compile)
    times = []
    for _ in range(repeats):
        t0 = tick()
        for _ in range(number):
            f()
        times.append((tick() - t0) / number)
    return statistics.median(times)


WARM_SECONDS = 0.15     # untimed work after a pause: past the slow phase (see rounds)


def rounds(fs, repeats=7, number=3, clock="wall", warm=2, warm_seconds=WARM_SECONDS):
    """{name: [seconds per call, one per round]}: the callables of the dict fs
    timed (number calls) in turn, round after round, each after ``settle()``
    and untimed calls, ``warm`` of them and at least ``warm_seconds`` of them
    (a training loop calls back to back; the calls after a pause pay for
    threads and cores that slept: rnnlab's LSTM at H = 128 took 17 and 24 ms in
    its first two calls, 13-14 ms after; its decoder alone, 3 ms a call back to
    back, took 5-17 ms a call for the first 20-60 ms after the pause, OpenBLAS's
    workers told to sleep at once (``rnnlab/__init__.py``), 4-8 ms letting them
    spin)."""
    tick = CLOCKS[clock]
    times = {k: [] for k in fs}
    for _ in range(repeats):
        for k, f in fs.items():
            settle()
            start, n = time.perf_counter(), 0
            while n < warm or (warm and time.perf_counter() - start < warm_seconds):
                f()
                n += 1
            t0 = tick()
            for _ in range(number):
                f()
            times[k].append((tick() - t0) / number)
    return times


def ratio(times, a, b):
    """Median over rounds of times[a] / times[b] (round by round)."""
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def freeze_gc():
    import gc
    gc.collect()
    gc.freeze()


def settle(seconds=0.3):
    time.sleep(seconds)


def two_at_once(M, K, rounds, steps=64):
    """{"alone": [...], "both": [...]} seconds of a time loop's per-step products
    (``steps`` products of one vector of columns, rnnlab's kernel, float32, a row
    slice of B = 32) on a packed (M, K) W: one thread alone, and two threads at
    once (``threads.parallel``; the slower of the two), each on its own copy of
    W and its own operand, in turns. The row slices of a layer run so and never
    meet, so what the second thread costs the first can only be what the cores
    share (cache, memory bandwidth, clock), not waiting (the 2-core Intel Xeon,
    2026-12-04: 1.02-1.96x the time alone in three runs within an hour). None
    without the fast path."""
    try:
        import numba
        from rnnlab.engine.fast import gemm, kernels
    except ImportError:
        return None
    if not kernels.available():
        return None
    from rnnlab.engine.threads import parallel
    V = gemm.lanes(np.float32)
    w = np.random.default_rng(0).standard_normal((M, K)).astype(np.float32)
    panels = [gemm.pack(w), gemm.pack(w.copy())]
    ops = [(np.ones((K, V), np.float32), np.empty(panels[0].shape[0] * gemm.ROWS * V, np.float32))
           for _ in panels]

    @numba.njit(nogil=True)
    def loop(panels, x, c, steps):
        for _ in range(steps):
            gemm.product(panels, x, 0, V, c, V)
    one = lambda j: loop(panels[j], *ops[j], steps)               # noqa: E731
    one(0)                                                        # compiled and warm
    times = {"alone": [], "both": []}
    for _ in range(rounds):
        for case in times:
            t0 = time.perf_counter()
            one(0) if case == "alone" else parallel([lambda j=j: one(j) for j in (0, 1)])
            times[case].append(time.perf_counter() - t0)
    return times


def two_at_once_line(M=1024, K=512, rounds=15):
    """One line for a benchmark's header: what two threads at once cost each
    other now (``two_at_once``), with W of the LSTM's folded step at H = 256."""
    t = two_at_once(M, K, rounds)
    if t is None:
        return "two threads at once: not measured (no fast path)"
    return (f"two threads at once: a time loop's per-step products (64 steps of 16 columns, "
            f"W ({M}, {K}) each, rnnlab's kernel) took {ratio(t, 'both', 'alone'):.2f}x their "
            f"time alone (median of {rounds} rounds in turns; the state of this machine now)")


def matmul_rate(torch=None, n=2048, clock="wall"):
    """float32 GFLOP/s of one large square product, best of NumPy and torch."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    rate = 2 * n ** 3 / timeit(lambda: a @ a, 5, 3, clock) / 1e9
    if torch is not None:
        settle()
        t = torch.from_numpy(a)
        rate = max(rate, 2 * n ** 3 / timeit(lambda: t @ t, 5, 3, clock) / 1e9)
    return rate
