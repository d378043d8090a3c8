"""rnnlab's own worker threads: the one pool that runs independent jobs at once.

Used by the fast path's row slices, unit splits and split products
(``rnnlab.engine.fast.kernels``) and by the language model's softmax blocks
(``rnnlab.nn.linear_cross_entropy``). Each job is compiled code, a BLAS call or
NumPy ufuncs, all of which release the GIL, and writes its own part of an output.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

_POOL = [None, None, 0]                                           # (executor, pid, workers)
_LOCK = threading.Lock()


def env_count(name):
    """The positive integer an environment variable sets (a thread count, a tile
    size), None where it is unset or empty; anything else is a ValueError that
    names it, which the command line prints in one line (exit 2)."""
    given = os.environ.get(name, "")
    if not given:
        return None
    if not given.isdigit() or int(given) < 1:
        raise ValueError(f"{name} must be a positive integer, got {given!r}")
    return int(given)


def _pool(workers):
    """The pool of at least ``workers`` threads, made once per process (a forked
    child makes its own: the parent's threads are not in it)."""
    with _LOCK:
        pool, pid, have = _POOL
        if pool is None or pid != os.getpid() or have < workers:
            _POOL[:] = [ThreadPoolExecutor(workers, thread_name_prefix="rnnlab"), os.getpid(),
                        workers]
        return _POOL[0]


def parallel(jobs):
    """Run the callables: the first on this thread, the others on the pool; return
    when all are done (re-raising the first error)."""
    if not jobs:
        return
    if len(jobs) == 1:
        jobs[0]()
        return
    rest = [_pool(len(jobs) - 1).submit(job) for job in jobs[1:]]
    try:
        jobs[0]()
    finally:
        for f in rest:
            f.result()
