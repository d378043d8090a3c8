"""The unit split of ragged batches when another library's threads hold a core.

A ragged batch's time loops split each step's hidden units over rnnlab's threads,
which meet once per step (``rnnlab/engine/fast/units.py``); such a loop runs at the
pace of its slowest thread. Here a 1024^2 float32 product on NumPy's OpenBLAS (two
threads) runs before each ragged call, and NumPy is imported before rnnlab, as most
scripts do, so OpenBLAS's idle worker keeps spinning for ~0.1 s afterwards (rnnlab
shortens that only when imported first). Timed in turns: the default (the unit
split, backing off to row slices after a call whose threads waited off their
cores, ``kernels.split_waited``) against ``RNNLAB_SPLIT=rows`` and against
``RNNLAB_SPLIT=units`` (forced: no back-off); and how many of the default's
unit-split calls found their threads off their cores.

    python benchmarks/split_interference.py [--sizes 128 256] [--rounds 9]
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np                                            # first, on purpose (see above)

import machine
from rnnlab.engine import layers
from rnnlab.engine.fast import kernels, sync


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="hidden sizes H")
    ap.add_argument("--rounds", type=int, default=9, help="rounds in turns (the median is kept)")
    opt = ap.parse_args(argv)
    print(f"# {machine.describe()}")
    print(f"# command: python {' '.join(sys.argv)}")
    T, B, rounds = 64, 32, opt.rounds
    rng = np.random.default_rng(0)
    lens = np.sort(rng.integers(1, T + 1, B))[::-1].copy()
    lens[0] = T
    a = rng.standard_normal((1024, 1024)).astype(np.float32)
    seen = []
    real = kernels.split_waited

    def spy(state):
        seen.append(sync.off_core(state))
        real(state)
    kernels.split_waited = spy
    print(f"# B={B} T={T}, f = {lens.sum() / (T * B):.0%} of the tokens; forward + backward "
          f"after a 2-thread OpenBLAS product; {rounds} rounds in turns, median")
    print("| cell | H | default | rows | units (forced) | default / rows | units / rows "
          "| default's unit-split calls off core |")
    print("|---|---|---|---|---|---|---|---|")
    for mode in ("lstm", "gru", "rnn"):
        for H in opt.sizes:
            cfg = layers.RNNConfig(mode, H, H, 1, True, False, 0.0, False)
            p = {k: v.astype(np.float32) for k, v in layers.init_params(cfg, rng, np.float64).items()}
            x = rng.standard_normal((T, B, H)).astype(np.float32)
            d = np.ones((T, B, H), np.float32)
            times, seen[:] = {"": [], "rows": [], "units": []}, []
            for _ in range(rounds):
                for split in times:
                    os.environ["RNNLAB_SPLIT"] = split
                    calls = len(seen)
                    a @ a
                    t0 = time.perf_counter()
                    out, _, cache = layers.forward(cfg, p, x, lengths=lens, impl="fast")
                    layers.backward(cfg, p, cache, d, impl="fast")
                    times[split].append(time.perf_counter() - t0)
                    if split:
                        del seen[calls:]                              # count the default's only
            m = {k: statistics.median(v) * 1e3 for k, v in times.items()}
            print(f"| {mode} | {H} | {m['']:.1f} ms | {m['rows']:.1f} ms | {m['units']:.1f} ms | "
                  f"{m[''] / m['rows']:.2f} | {m['units'] / m['rows']:.2f} | "
                  f"{sum(seen)} of {len(seen)} |", flush=True)
    os.environ.pop("RNNLAB_SPLIT")


if __name__ == "__main__":
    main()
