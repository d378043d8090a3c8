"""Data parallelism on MPI: tokens/s of the PTB Zaremba-small model on 1 and 2
ranks (one BLAS thread each), the measured Allreduce of its step buffer, and
the communication model that says how far it scales.

    python benchmarks/dist_mpi.py                       # PTB from ../shared/data/ptb
    python benchmarks/dist_mpi.py --steps 30 --ranks 1,2 --reps 3 --out benchmarks/results/dist_mpi.md

Each run is ``mpiexec -n N python -m rnnlab train PTB --epochs 1 --max-steps S``
(the Zaremba-small defaults: 2 x 200 LSTM, vocabulary 10,000, batch 20, bptt 20)
and its tokens/s is the trainer's own (training only, validation excluded). The
rank counts are run in turn, ``--reps`` times, and the median is reported: on a
shared machine the load changes from run to run.
"""
import argparse
import datetime
import os
import statistics
import time
import subprocess
import sys
import tempfile

import machine
from rnnlab.io import metrics

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PTB = os.path.join(ROOT, "..", "shared", "data", "ptb")
# Zaremba small: 2 x 200 LSTM, embedding 200, vocabulary 10,000, batch 20, bptt 20
P = 10_000 * 200 + 2 * (4 * 200 * 200 * 2 + 2 * 4 * 200) + 10_000 * 200 + 10_000
CARRY = 2 * 2 * 20 * 200                 # (h, c) x layers x batch x hidden
TOKENS = 20 * 20                         # tokens per step (batch x bptt)
IDLE_STEP = 0.081                        # s/step, idle machine, results/lm.md (2026-11-27)

ALLREDUCE = """
import time, numpy as np
from mpi4py import MPI
c = MPI.COMM_WORLD
a = np.ones({n}, np.float32); b = np.empty_like(a)
for _ in range(2): c.Allreduce(a, b)
t = time.perf_counter()
for _ in range({reps}): c.Allreduce(a, b)
dt = (time.perf_counter() - t) / {reps}
if c.Get_rank() == 0: print(dt)
"""


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return env


def _mpiexec(n):
    exe = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return [exe if os.path.exists(exe) else "mpiexec", "-n", str(n)]


def tokens_per_s(data, n, steps, extra=()):
    out = tempfile.mkdtemp(prefix=f"dist-bench-{n}-")
    cmd = _mpiexec(n) + [sys.executable, "-m", "rnnlab", "train", data, "--epochs", "1",
                         "--max-steps", str(steps), "--samples", "0", "--no-progress",
                         "--checkpoint-every", "0", "--out", out, *extra]
    subprocess.run(cmd, env=_env(), check=True, capture_output=True, text=True)
    return metrics.read(os.path.join(out, "metrics.jsonl"))[0]["tokens_per_s"]


def allreduce_seconds(n, floats, reps=5):
    code = ALLREDUCE.format(n=floats, reps=reps)
    res = subprocess.run(_mpiexec(n) + [sys.executable, "-c", code], env=_env(), check=True,
                         capture_output=True, text=True)
    return float(res.stdout.strip())


def pack_seconds(reps=5):
    """flatten + unflatten of the Zaremba-small step buffer in this process."""
    import numpy as np
    from rnnlab.dist import mpi
    r = np.random.default_rng(0)
    shapes = {"encoder.weight": (10_000, 200), "decoder.weight": (10_000, 200),
              "decoder.bias": (10_000,)}
    shapes.update({f"w{i}": (800, 200) for i in range(4)})
    shapes.update({f"b{i}": (800,) for i in range(4)})
    grads = {k: r.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    keys, row = sorted(grads), np.empty(P + 2, np.float32)
    t = time.perf_counter()
    for _ in range(reps):
        mpi.unflatten(mpi.flatten(1.0, TOKENS, grads, keys, row), grads, keys)
    return (time.perf_counter() - t) / reps


def model(steps, ranks=(1, 2, 4, 8, 16, 20), gbits=(10, 100), word=4):
    """Rows (N, compute ms for each one-rank step time in ``steps``, allreduce ms
    at each bandwidth): compute is 1/N of one rank's step (the batch of 20
    streams caps N at 20); a ring allreduce moves 2 (N-1)/N of the buffer
    through every rank's link."""
    nbytes = word * (P + 2 + CARRY)
    rows = []
    for n in ranks:
        comm = [2 * (n - 1) / n * nbytes / (g * 1e9 / 8) * 1e3 for g in gbits]
        rows.append((n, *(t * 1e3 / n for t in steps), *comm))
    return nbytes, rows


def report(a, runs, seconds, pack):
    rates = {n: statistics.median(v) for n, v in runs.items()}
    step1 = TOKENS / rates[1]
    lines = ["# Data parallelism on MPI: PTB Zaremba-small (issue 13)", "",
             f"Measured {datetime.date.today()}, {machine.cpu_model()}, {os.cpu_count()} cores "
             f"(shared with other work: load average {os.getloadavg()[0]:.1f} at the end), "
             f"one BLAS thread per rank, MPICH from the mpich wheel.", "",
             f"    python benchmarks/dist_mpi.py --steps {a.steps} --ranks {a.ranks} "
             f"--reps {a.reps}", "",
             "## Training throughput (`mpiexec -n N python -m rnnlab train PTB`)", "",
             "| ranks | tokens/s (median) | speed-up | every run |", "|---|---|---|---|"]
    lines += [f"| {n} | {r:,.0f} | {r / rates[1]:.2f} | "
              f"{', '.join(f'{x:,.0f}' for x in runs[n])} |" for n, r in rates.items()]
    nbytes, rows = model((step1, IDLE_STEP))
    lines += ["", "## Allreduce of the step buffer, measured on this machine (shared memory)", "",
              f"{P + 2 + CARRY:,} float32 values = {nbytes / 1e6:.1f} MB "
              f"({P:,} gradients, loss and count, {CARRY:,} carried-state values)", ""]
    lines += [f"- {n} ranks: {s * 1e3:.1f} ms per Allreduce" for n, s in seconds.items()]
    lines += [f"- packing the gradients into it and the means out of it: {pack * 1e3:.0f} ms "
              "per step"]
    lines += ["", "## Communication model", "",
              f"One step of one rank: {step1 * 1e3:.0f} ms for {TOKENS} tokens here (the "
              f"measured 1-rank median), {IDLE_STEP * 1e3:.0f} ms on the idle machine "
              "(benchmarks/results/lm.md, two BLAS threads). With N ranks each computes "
              "1/N of it; a ring allreduce moves 2(N-1)/N of the buffer over each rank's "
              "link (bandwidth term only; latency adds ~2 log2(N) x a few us).", "",
              "| ranks | compute ms/step (here) | compute ms/step (idle) "
              "| allreduce ms at 10 Gbit/s | at 100 Gbit/s |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {c:.0f} | {ci:.0f} | {t10:.1f} | {t100:.1f} |"
              for n, c, ci, t10, t100 in rows]
    lines += ["", "## Reading", "", _reading(rows, rates)]
    return "\n".join(lines) + "\n"


def _reading(rows, rates):
    """Where communication overtakes computation (idle compute), in words."""
    def last(col):
        ok = [r[0] for r in rows if r[col] <= r[2]]
        return max(ok) if ok else 1
    return (f"With the idle machine's step time, the allreduce costs less than the compute up "
            f"to N = {last(3)} ranks at 10 Gbit/s and N = {last(4)} at 100 Gbit/s (of the "
            "20 the batch of 20 streams allows); beyond that communication dominates unless it "
            "overlaps the backward pass (not done: one Allreduce after the backward). A further "
            "saving: the embedding's gradient is sparse (at most 400 of its 10,000 rows "
            "per step) but is sent dense, 43% of the buffer. Here, on 2 cores that other work "
            "kept loaded (load average above 10), 2 ranks ran at "
            f"{rates[2] / rates[1]:.2f}x the speed of 1: each rank got a fraction of a core "
            "and waited for the other every step, so this run measures the overhead, not the "
            "scaling; the shared-memory Allreduce and the packing above are that overhead.")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("RNNLAB_PTB", PTB), help="PTB folder")
    p.add_argument("--steps", type=int, default=40, help="training steps per run")
    p.add_argument("--ranks", default="1,2", help="rank counts to measure")
    p.add_argument("--reps", type=int, default=3, help="runs of each rank count")
    p.add_argument("--out", default=os.path.join(HERE, "results", "dist_mpi.md"))
    a = p.parse_args(argv)
    if not os.path.isdir(a.data):
        sys.exit(f"{a.data}: PTB folder not found (the shared data file ptb/ is missing); "
                 "give --data or RNNLAB_PTB")
    ranks = [int(n) for n in a.ranks.split(",")]
    runs = {n: [] for n in ranks}
    for _ in range(a.reps):                         # interleaved: the load drifts
        for n in ranks:
            runs[n].append(tokens_per_s(a.data, n, a.steps))
    seconds = {n: allreduce_seconds(n, P + 2 + CARRY) for n in ranks if n > 1}
    text = report(a, runs, seconds, pack_seconds())
    from rnnlab.io.atomic import atomic_write
    with atomic_write(a.out) as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
