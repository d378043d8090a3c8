"""What every benchmark prints with its figures, and how it times them.

- ``describe()``: date, CPU model, cores, the BLAS that NumPy loaded and the
  kernel OpenBLAS chose (threadpoolctl), thread count, NumPy and torch versions.
- ``matmul_rate()``: this machine's float32 matrix-multiply rate, measured now.
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


def rounds(fs, repeats=7, number=3, clock="wall", warm=2):
    """{name: [seconds per call, one per round]}: the callables of the dict fs
    timed (number calls) in turn, round after round, each after ``settle()``
    and ``warm`` untimed calls (a training loop calls back to back; the first
    calls after a pause pay for threads and cores that slept: rnnlab's LSTM at
    H = 128 took 17 and 24 ms in its first two calls, 13-14 ms after)."""
    tick = CLOCKS[clock]
    times = {k: [] for k in fs}
    for _ in range(repeats):
        for k, f in fs.items():
            settle()
            for _ in range(warm):
                f()
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


def matmul_rate(torch=None, n=2048, clock="wall"):
    """float32 GFLOP/s of one large square product, best of NumPy and torch."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    rate = 2 * n ** 3 / timeit(lambda: a @ a, 5, 3, clock) / 1e9
    if torch is not None:
        settle()
        t = torch.from_numpy(a)
        rate = max(rate, 2 * n ** 3 / timeit(lambda: t @ t, 5, 3, clock) / 1e9)
    return rate
