"""Where the threads of one time loop meet at every step: a spin barrier.

The unit-split loops (``units``) give each thread a share of every step's hidden
units; a step's product needs the whole h_{t-1}, so the threads wait for each
other once per step. A step takes tens of microseconds, so the wait must cost
well under one: a sleeping lock's wake-up takes longer than that. The barrier
spins on two counters in one int64 array (``state()``; each on its own cache
line), updated by atomic instructions written in LLVM IR (numba has none for
the CPU):

    arrive: gen = generation;  if fetch_add(count, 1) == n - 1: count = 0; generation += 1
            else: spin while generation == gen

Each thread reads the generation before it arrives, and the generation moves
only once every thread has arrived, so no thread can pass a barrier early or
miss one. The atomics are sequentially consistent: what a thread wrote before
the barrier is visible to every thread after it. After SPIN_LIMIT polls (about
0.3 ms) the waiter yields its core at every poll (``sched_yield``): a machine
with more runnable threads than cores may have descheduled the thread it waits
for. A thread whose job fails before it reaches the loop would leave the others
waiting forever: its driver then sets the barrier's abort flag (``abort``),
which every wait polls too. Waits that yielded are counted (``yielded``,
``off_core``): a loop that meets at every step runs at the pace of its slowest
thread, and the drivers then go back to the row split for a while
(``kernels.unit_slices``), whose threads never wait for each other inside the
loop.
"""
import platform
import sys

import numba
import numpy as np
from llvmlite import ir as llir
from numba.core import types as nbtypes
from numba.extending import intrinsic

SPIN_LIMIT = 1 << 14
_YIELD = sys.platform != "win32"
_PAUSE = platform.machine().lower() in ("x86_64", "amd64", "i686")
_COUNT, _GEN, _YIELDED, _ABORT = 0, 8, 16, 24     # int64 slots 64 bytes apart


def state():
    """A fresh barrier's counters (one per call of a unit-split loop)."""
    return np.zeros(32, np.int64)


def abort(sync):
    """Let every wait at this barrier pass from now on: a thread of the loop has
    failed and will never arrive. The others run their remaining steps unsynchronised
    (their results are discarded with the error) instead of waiting forever."""
    sync[_ABORT] = 1


def yielded(sync):
    """How many waits at this barrier went past SPIN_LIMIT polls and yielded: a
    thread of the loop was off its core (more runnable threads than cores)."""
    return int(sync[_YIELDED])


def off_core(sync):
    """Whether two or more, and more than 1 in 8, of this barrier's meetings had
    a wait that yielded (a thread's first call, loading its compiled loop, makes
    one; so may a page fault in a short loop)."""
    return yielded(sync) >= 2 and 8 * yielded(sync) > sync[_GEN]


def _ptr(builder, addr):
    return builder.inttoptr(addr, llir.IntType(64).as_pointer())


@intrinsic
def _fetch_add(typingctx, addr, v):
    """*addr += v atomically; returns the old value (addr: uintp, v: int64)."""
    def codegen(context, builder, sig, args):
        return builder.atomic_rmw("add", _ptr(builder, args[0]), args[1], "seq_cst")
    return nbtypes.int64(addr, v), codegen


@intrinsic
def _load(typingctx, addr):
    def codegen(context, builder, sig, args):
        return builder.load_atomic(_ptr(builder, args[0]), "seq_cst", 8)
    return nbtypes.int64(addr), codegen


@intrinsic
def _store(typingctx, addr, v):
    def codegen(context, builder, sig, args):
        builder.store_atomic(args[1], _ptr(builder, args[0]), "seq_cst", 8)
        return context.get_dummy_value()
    return nbtypes.void(addr, v), codegen


@intrinsic
def _relax(typingctx, hard):
    """One poll's pause: the x86 spin hint, or (hard) libc's sched_yield (POSIX:
    an external symbol the JIT resolves in the process)."""
    def codegen(context, builder, sig, args):
        module = builder.module

        def declared(name, ret):
            return module.globals.get(name) or llir.Function(module, llir.FunctionType(ret, []), name)
        hard = builder.icmp_unsigned("!=", args[0], llir.Constant(args[0].type, 0))
        with builder.if_else(hard) as (yes, no):
            with yes:
                if _YIELD:
                    builder.call(declared("sched_yield", llir.IntType(32)), [])
            with no:
                if _PAUSE:
                    builder.call(declared("llvm.x86.sse2.pause", llir.VoidType()), [])
        return context.get_dummy_value()
    return nbtypes.void(hard), codegen


@numba.njit(nogil=True, cache=True)
def barrier(sync, n):
    """Wait until all n threads of the loop have called this (see the module)."""
    base = sync.ctypes.data
    count, gen_at = base + np.uintp(8 * _COUNT), base + np.uintp(8 * _GEN)
    gen = _load(gen_at)
    if _fetch_add(count, np.int64(1)) == n - 1:
        _store(count, np.int64(0))
        _fetch_add(gen_at, np.int64(1))
        return
    polls, abort_at = 0, base + np.uintp(8 * _ABORT)
    while _load(gen_at) == gen and _load(abort_at) == 0:
        polls += 1
        if polls == SPIN_LIMIT + 1:
            _fetch_add(base + np.uintp(8 * _YIELDED), np.int64(1))
        _relax(polls > SPIN_LIMIT)
