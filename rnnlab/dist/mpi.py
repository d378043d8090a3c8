"""Data parallelism on MPI: one model trained by N processes, as Horovod does it.

Started with ``mpiexec -n N python -m rnnlab train ...`` (mpi4py on the MPI
that the ``mpich`` wheel brings: ``pip install "rnnlab[dist]"``), every rank
reads the same data, holds the same weights and takes its share of every step:

- the global batch (B parallel streams, or B items) is cut into K equal
  **parts** (K = N by default); rank r computes parts r*K/N .. (r+1)*K/N - 1;
- each part gives (mean loss, count, grads) and, for a language model, the
  recurrent state its streams carry to the next chunk;
- one row per part is packed into a flat buffer of the gradients' dtype
  ``[count * grads (P) | count * loss | count | carried state (C)]`` (the state
  written into zeros at its own columns), the rows are summed, and the global
  result is ``sum(count_k * grads_k) / sum(count_k)``: the mean over the whole
  batch, whatever its split. The sum across ranks is **one** collective per
  step: ``Allreduce`` (default), or with ``ordered=True`` a ``Gather`` of every
  part's row to rank 0, a sum in part order and a ``Bcast`` back (two), which
  makes the result independent of N: 2 ranks give bit for bit what 1 process
  gives with the same K (``--parts K``);
- the carried state comes back whole on every rank (a column holds one part's
  value plus zeros: exact), so every rank keeps the full run state and rank 0
  alone writes checkpoints (atomically, as always); ``--resume`` works unchanged;
- rank 0's initial weights are broadcast, and every collective waits at most
  ``timeout`` seconds: a rank that died or hangs takes the job down with a
  message (``MPI_Abort``) instead of leaving the others waiting forever.

Dropout: every rank holds the same generator; each part draws the whole
batch's masks and keeps its own columns (``Columns``), so the masks are the
ones one process draws, and the generator state stays the same on every rank.

The bound (u = 2**-24, float32; B items per step, K parts):

1. the reduction, in float32 like the gradients (a float64 buffer would make it
   exact up to one final rounding, but doubles the bytes sent and packed):
   count_k * g_k rounds once, the sum of K rows adds at most (K-1) u of the
   summed magnitudes, the division once more: within (K+1) u/2 + (K-1) u of the
   exact mean of the parts' gradients (for K = 2, a + b = b + a: Allreduce
   and ``ordered`` give the same bits, those of one process with ``--parts 2``);
2. the parts: each part's gradient sums B/K items where one process sums B,
   in another order; both are within gamma_B = B u / (1 - B u) of the exact
   gradient's summed magnitudes, so one step's gradients differ by at most
   2 gamma_B times those plus u/2: a few u relative where terms do not cancel
   (measured below 1e-6 in ``tests/test_dist_mpi.py``);
3. over k steps a difference e obeys e' <= (1 + lr L) e + lr delta (L: the
   Lipschitz constant of the gradient, delta: the bound of 2), so
   e_k <= delta ((1 + lr L)**k - 1) / L: linear in k while lr L is small,
   exponential when it is not. Measured after 50 steps of the test's small
   LSTM: 1.3e-7 relative at SGD lr 0.1, but 4e-6 at lr 1 with the loss summed
   over time, where two different splits differ from each other as much as
   from one process: float32 rounding amplified by the dynamics, not a bias.
"""
import contextlib
import os
import sys
import time

import numpy as np

# environment variables that MPI launchers set in every process they start
SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE")
DEFAULT_TIMEOUT = 300.0
ABORT_GRACE = 1.0            # seconds between the message on stderr and MPI_Abort


def launched_size():
    """How many processes the MPI launcher started (1 when not under mpiexec)."""
    for var in SIZE_VARS:
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 1


def world():
    """MPI.COMM_WORLD when started by mpiexec with N > 1, else None (one process)."""
    if launched_size() <= 1:
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        raise ValueError(f"mpiexec started {launched_size()} processes but mpi4py is not "
                         "installed: pip install \"rnnlab[dist]\"") from None
    return MPI.COMM_WORLD


def flatten(loss, count, grads, keys, out=None):
    """One part's row: [count * grads in key order (P) | count * loss | count] in the
    gradients' dtype (written into ``out`` when given)."""
    c = float(count)
    n = sum(grads[k].size for k in keys)
    out = np.empty(n + 2, wire_dtype(grads)) if out is None else out
    at = 0
    for k in keys:
        g = np.asarray(grads[k]).reshape(-1)
        seg = out[at:at + g.size]
        seg[...] = g
        seg *= c
        at += g.size
    out[n:n + 2] = c * float(loss), c
    return out


def unflatten(total, like, keys):
    """(mean loss, count, grads shaped and typed like ``like``) from a summed row."""
    n = sum(like[k].size for k in keys)
    count, grads, at = total[n + 1], {}, 0
    for k in keys:
        size = like[k].size
        g = np.empty(size, like[k].dtype)
        np.divide(total[at:at + size], count, out=g, casting="same_kind")
        grads[k] = g.reshape(like[k].shape)
        at += size
    return float(total[n] / count), int(round(count)), grads


def wire_dtype(grads):
    """The buffer's dtype: the gradients' (float32 for float32 models)."""
    return np.result_type(*grads.values())


def sum_rows(rows):
    """Sum of the rows in their order, left to right (the deterministic reduction)."""
    total = np.array(rows[0])
    for row in rows[1:]:
        total += row
    return total


def _views(row, at, shapes):
    """Consecutive views of ``row[at:]`` with the given shapes."""
    views = []
    for shape in shapes:
        size = int(np.prod(shape))
        views.append(row[at:at + size].reshape(shape))
        at += size
    return views


class Columns(np.random.Generator):
    """A view of ``rng`` (same bit generator) whose ``random(shape)`` draws the
    whole batch's array (axis 1 of size n) and keeps the columns ``cols``."""

    def __init__(self, rng, n, cols):
        super().__init__(rng.bit_generator)
        self.n, self.cols = n, cols

    def random(self, size=None, dtype=np.float64, out=None):
        shape = (size,) if np.isscalar(size) else tuple(size or ())
        if out is not None or len(shape) < 2:
            return super().random(size, dtype, out)
        whole = (size[0], self.n) + tuple(size[2:])               # (T, n, ...)
        return super().random(whole, dtype)[:, self.cols]


class DataParallel:
    """This process's place in a data-parallel job and its collectives.

    comm: an mpi4py communicator, or None for one process (which can still
    compute ``parts`` > 1 parts in turn: the reference for ``ordered``).
    """

    def __init__(self, comm=None, parts=0, ordered=False, timeout=DEFAULT_TIMEOUT):
        self.comm = comm
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1
        self.parts = int(parts) or self.size
        if self.parts % self.size:
            raise ValueError(f"--parts {self.parts}: must be a multiple of the number of "
                             f"ranks ({self.size})")
        if not timeout > 0:
            raise ValueError(f"--mpi-timeout: must be positive, got {timeout!r}")
        self.ordered, self.timeout = bool(ordered), float(timeout)

    @property
    def writer(self):
        """Only rank 0 writes checkpoints, metrics and logs."""
        return self.rank == 0

    @property
    def trivial(self):
        return self.size == 1 and self.parts == 1

    def slices(self, n, what="batch size"):
        """This rank's parts of n items (or streams): a list of slices."""
        if n % self.parts:
            raise ValueError(f"{what} {n} does not split into {self.parts} equal parts "
                             f"({self.size} rank(s)); use a multiple of {self.parts}")
        w, per = n // self.parts, self.parts // self.size
        return [slice(k * w, (k + 1) * w) for k in range(self.rank * per, (self.rank + 1) * per)]

    def step(self, compute, n, what="batch size", rng=None):
        """Global (mean loss, count, grads, carried state) of one step.

        compute(cols, rng) -> (mean loss, count, grads, carry) for the items
        ``cols`` (a slice of the n); carry is a tuple of arrays with the items on
        axis 1 (the recurrent state, (L, n_part, H)) or (). Each part gets a
        ``Columns`` view of ``rng`` (shared by every rank): its random draws are
        those of the whole batch, cut to its columns, so dropout masks are the
        ones one process draws. One process with one part calls
        ``compute(slice(None), rng)`` and returns what it gives, untouched.
        """
        if self.trivial:
            return compute(slice(None), rng)
        parts, rows = self.slices(n, what), None
        start = None if rng is None else rng.bit_generator.state
        for i, cols in enumerate(parts):
            if rng is not None:                  # every part draws from the same state
                rng.bit_generator.state = start
            loss, count, grads, carry = compute(cols, None if rng is None else Columns(rng, n, cols))
            keys = sorted(grads)
            m = sum(grads[k].size for k in keys) + 2
            wholes = [c.shape[:1] + (n,) + c.shape[2:] for c in carry]     # (L, n, H)
            if rows is None:                     # (local parts, P + 2 + C)
                rows = np.zeros((len(parts), m + sum(int(np.prod(w)) for w in wholes)),
                                wire_dtype(grads))
            flatten(loss, count, grads, keys, rows[i, :m])
            for view, c in zip(_views(rows[i], m, wholes), carry):
                view[:, cols] = c                # zeros elsewhere: the sum is exact
        total = self.reduce_rows(rows)
        loss, count, means = unflatten(total[:m], grads, keys)
        states = tuple(v.astype(c.dtype) for v, c in zip(_views(total, m, wholes), carry))
        return loss, count, means, states

    def reduce_grads(self, loss, count, grads):
        """The shared trainer's hook (``fit(..., reduce_grads=dp.reduce_grads)``) for
        tasks that already computed this rank's share: the global mean."""
        if self.comm is None:
            return loss, count, grads
        keys = sorted(grads)
        total = self.reduce_rows(flatten(loss, count, grads, keys)[None])
        return unflatten(total, grads, keys)

    def fit_hooks(self, reduced=False):
        """Keyword arguments for the shared trainer's ``fit``: the reduction and
        who writes. The task computes this rank's part of each batch
        (``dp.slices(batch)[0]``) and rank 0's weights go in (``broadcast``).
        ``reduced``: the task sums its steps itself (``step``: several parts per
        rank, a carried state, dropout masks), so the trainer only learns who
        writes."""
        return {"reduce_grads": None if self.comm is None or reduced else self.reduce_grads,
                "writer": self.writer}

    def reduce_rows(self, rows):
        """Sum of every rank's rows (local parts, M): one Allreduce, or ordered."""
        if self.comm is None:
            return sum_rows(rows)
        from mpi4py import MPI
        rows = np.ascontiguousarray(rows)
        total = np.empty(rows.shape[1], rows.dtype)
        if not self.ordered:
            mine = rows[0] if len(rows) == 1 else sum_rows(rows)
            self._wait(self.comm.Iallreduce(mine, total, op=MPI.SUM), "Allreduce")
            return total
        every = np.empty((self.parts, rows.shape[1]), rows.dtype) if self.writer else None
        self._wait(self.comm.Igather(rows, every, root=0), "Gather")
        if self.writer:
            total = sum_rows(every)
        self._wait(self.comm.Ibcast(total, root=0), "Bcast")
        return total

    def broadcast(self, arrays):
        """Rank 0's arrays (a dict or a tuple) on every rank, in place."""
        if self.comm is None:
            return arrays
        items = arrays.values() if isinstance(arrays, dict) else arrays
        for a in items:
            if not a.flags.c_contiguous:
                raise ValueError("broadcast needs contiguous arrays")
            self._wait(self.comm.Ibcast(a, root=0), "Bcast of the initial weights")
        return arrays

    def _wait(self, request, what):
        """Wait for a non-blocking collective; abort the whole job after the timeout."""
        deadline, pause = time.monotonic() + self.timeout, 2e-5
        while not request.Test():
            if time.monotonic() > deadline:
                self.abort(f"no answer from the other ranks for {self.timeout:g} s in "
                           f"{what}: a rank died or hangs (raise --mpi-timeout for slow steps)")
            time.sleep(pause)
            pause = min(2 * pause, 1e-3)

    def abort(self, why):
        """Print why on stderr and take every rank down (MPI_Abort; never returns)."""
        print(f"rnnlab: rank {self.rank} of {self.size}: {why}; aborting the job",
              file=sys.stderr, flush=True)
        # MPI_Abort makes the launcher kill every rank at once, and it may drop what
        # it has not yet forwarded from our stderr: give it a moment to pass the why on
        time.sleep(ABORT_GRACE)
        self.comm.Abort(1)
        os._exit(1)                  # MPI_Abort may return before the launcher kills us

    @contextlib.contextmanager
    def fail_together(self):
        """An error on one rank ends every rank at once (instead of a timeout)."""
        try:
            yield self
        except (Exception, KeyboardInterrupt) as e:
            if self.comm is None:
                raise
            self.abort(f"{type(e).__name__}: {e}")


def from_options(parts=0, ordered=False, timeout=DEFAULT_TIMEOUT):
    """The DataParallel of this process: MPI's world under mpiexec, else one process."""
    return DataParallel(world(), parts, ordered, timeout)
