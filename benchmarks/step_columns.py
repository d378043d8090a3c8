"""What a step's batch columns cost: the per-step product's granularity, and what
it does to a layer of the language model's shape.

The per-step product (``rnnlab/engine/fast/gemm.py``) runs the batch along the
vector lanes: whole vectors of 16 float32 columns. Until round fifteen a step's
last columns ran on a half vector of 8: where that costs half a whole one (Zen 4
splits 512-bit operations in two), a step of 20 rows cost 24 columns; where it
costs as much as a whole one (a CPU with two full-width 512-bit FMA units, the
Xeon), 32. Since round fifteen the last n % 16 (up to 12) run on the units tile,
with the vector along the weights' rows: about their own count. This measures,
on this CPU:

1. the product's time against its column count n = 4 ... 32 (one thread, W of
   an LSTM's folded step at H = 128 and 256), relative to n = 16;
2. one LSTM layer of the PTB language model's shape (T = 20, B = 20, H = 200,
   float32), rnnlab against torch in turns: forward alone, and forward + backward;
   and a GRU layer's forward + backward beside it (torch's CPU LSTM is a fused
   oneDNN primitive, its GRU is not);
3. how two row slices of that batch are cut (``kernels.row_slices``): by cost
   (B = 20 as 12 + 8) against on whole vectors of 16 (16 + 4), in turns in one
   process (this machine's noise between runs is larger than the difference):
   that LSTM layer's forward + backward, and the whole language model's training
   step (``lm_speed.rnnlab_stepper``, V = ``--vocab``);
4. a step's one whole vector of columns (16 float32, a row slice of B = 32 or
   48) on the pair tile, which runs two panels at once (2R rows, 16
   accumulators: round sixteen), against one panel at a time (R rows, 8
   accumulators, as before), the product and the transposed one (one thread);
5. a time loop's products (T = 64 steps of one 16-column vector, a row slice
   of B = 32) on one thread alone against two threads at once, each on its own
   copy of W, as a layer's two row slices run: what running both cores costs
   each (``machine.two_at_once``; round seventeen, the 2-core Xeon: 1.02-1.96x
   the time alone, from one run to the next within an hour, where NumPy's
   matmul ran 1.65-2.0x its one-thread rate on two; the row slices never
   meet, so that is what the cores share, cache, memory bandwidth and clock,
   not waiting).

    python benchmarks/step_columns.py
"""
import argparse
import statistics
import sys
import time

import rnnlab  # noqa: F401  (before NumPy: it sets OpenBLAS's idle spin, see rnnlab/__init__.py)
import numpy as np

import machine

COLUMNS = (4, 8, 12, 16, 20, 24, 28, 32)


def product_times(M, K, rounds, calls=200):
    """{n: median seconds of one product of n columns} on a packed (M, K) W."""
    from rnnlab.engine.fast import gemm
    rng = np.random.default_rng(0)
    panels = gemm.pack(rng.standard_normal((M, K)).astype(np.float32))
    x = rng.standard_normal((K, max(COLUMNS) + 16)).astype(np.float32)
    c = np.empty(gemm.width(max(COLUMNS), np.float32) * panels.shape[0] * gemm.ROWS,
                 np.float32)
    times = {n: [] for n in COLUMNS}
    for n in COLUMNS:                                             # compiled and warm
        gemm.product(panels, x, 0, x.shape[1], c, n)
    for _ in range(rounds):                                       # in turns
        for n in COLUMNS:
            t0 = time.perf_counter()
            for _ in range(calls):
                gemm.product(panels, x, 0, x.shape[1], c, n)
            times[n].append((time.perf_counter() - t0) / calls)
    return {n: statistics.median(v) for n, v in times.items()}


def layer_steps(torch, T, B, H):
    """The callables timed in turns: rnnlab's and torch's LSTM forward, LSTM
    forward + backward and GRU forward + backward, one layer each."""
    x = np.random.default_rng(1).standard_normal((T, B, H)).astype(np.float32)
    dout = np.ones_like(x)
    xt = torch.from_numpy(x).requires_grad_(True)
    fs = {}
    for cell, ours, theirs in (("lstm", rnnlab.LSTM, torch.nn.LSTM),
                               ("gru", rnnlab.GRU, torch.nn.GRU)):
        m, tm = ours(H, H, seed=0, dtype=np.float32), theirs(H, H)

        def t_step(tm=tm):
            out, _ = tm(xt)
            out.sum().backward()
        fs.update({f"rnnlab {cell} step": lambda m=m: (m(x), m.backward(dout)),
                   f"torch {cell} step": t_step})
        if cell == "lstm":
            def t_fwd(tm=tm):
                with torch.no_grad():
                    tm(xt)
            fs.update({"rnnlab lstm forward": lambda m=m: m(x), "torch lstm forward": t_fwd})
    return fs


def cut_steps(T, B, H, V):
    """The callables of table 3: {cut: LSTM layer step, LM step} with row_slices
    by cost and cut on whole vectors of 16 (set before each call)."""
    import lm_speed
    from rnnlab.engine.fast import kernels
    from rnnlab.lm import model as lm
    by_cost, on_16 = kernels.row_slices, kernels.vector_slices
    layer = rnnlab.LSTM(H, H, seed=0)
    x = np.random.default_rng(1).standard_normal((T, B, H)).astype(np.float32)
    cfg = lm.LMConfig(V, H, H, 2, "lstm")
    data = np.random.default_rng(0).integers(0, V, (T + 1, B))
    fs = {}
    for name, cut in (("by cost", by_cost), ("on 16", on_16)):
        step = lm_speed.rnnlab_stepper(cfg, B)

        def t_layer(cut=cut):
            kernels.row_slices = cut
            out, _ = layer(x)
            layer.backward(np.ones_like(out))

        def t_lm(cut=cut, step=step):
            kernels.row_slices = cut
            step(data[:-1], data[1:])
        fs[f"layer {name}"], fs[f"lm {name}"] = t_layer, t_lm
    return fs, by_cost


PAIR_SHAPES = ((512, 256), (800, 400), (1024, 512), (2048, 1024))


def pair_times(M, K, rounds, calls=50):
    """{(tile, product): median seconds} of one vector of columns (n = V) over a
    packed (M, K) W: every panel (row block) pair on ``gemm._tile_pair`` (its
    transposed twin) or each alone on ``gemm._tile``, in turns."""
    import numba
    from rnnlab.engine.fast import gemm
    R, V = gemm.ROWS, gemm.lanes(np.float32)
    rng = np.random.default_rng(0)
    panels = gemm.pack(rng.standard_normal((M, K)).astype(np.float32))
    nq = panels.shape[0]
    x = np.ascontiguousarray(rng.standard_normal((max(nq * R, K), V)).astype(np.float32))
    c = np.empty((max(nq, -(-K // R)) + 1) * R * V, np.float32)

    @numba.njit(nogil=True)
    def run(panels, x, c, pair, transposed, calls):
        K, size, zero = panels.shape[1], np.uintp(4), np.float32(0)
        blocks = -(-K // R) if transposed else panels.shape[0]
        step = 2 if pair else 1
        for _ in range(calls):
            for q in range(0, blocks - blocks % 2, step):       # the same rows either way
                at = q * R * R if transposed else q * K * R
                p, o = panels.ctypes.data + size * np.uintp(at), c.ctypes.data + size * np.uintp(q * R * V)
                if transposed and pair:
                    gemm._tile_pair_t(p, x.ctypes.data, V, K * R, o, V, nq, zero)
                elif transposed:
                    gemm._tile_t(p, x.ctypes.data, V, K * R, o, V, nq, zero)
                elif pair:
                    gemm._tile_pair(p, x.ctypes.data, V, o, V, K, zero)
                else:
                    gemm._tile(p, x.ctypes.data, V, o, V, K, zero)
    cases = [(pair, tr) for tr in (False, True) for pair in (True, False)]
    for pair, tr in cases:                                        # compiled and warm
        run(panels, x, c, pair, tr, 1)
    times = {case: [] for case in cases}
    for _ in range(rounds):
        for case in cases:
            t0 = time.perf_counter()
            run(panels, x, c, *case, calls)
            times[case].append((time.perf_counter() - t0) / calls)
    return times


CONCURRENT_SHAPES = ((512, 256), (1024, 256), (1024, 512), (2048, 1024))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7, help="rounds of the in-turn timing")
    ap.add_argument("--threads", type=int, default=2, help="threads of the layer comparison")
    ap.add_argument("--layer", type=int, nargs=3, default=[20, 20, 200], metavar=("T", "B", "H"),
                    help="the layer's shape (default: the PTB language model's)")
    ap.add_argument("--vocab", type=int, default=10000, help="V of table 3's language model")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits
    import torch
    torch.set_num_threads(args.threads)
    print(f"# {machine.describe(torch)}")
    print(f"# command: python benchmarks/step_columns.py {' '.join(argv)}")
    machine.freeze_gc()
    print("\n## The per-step product against its columns (one thread, float32; time / "
          "time at n = 16, medians of the rounds)\n")
    print("| W (M, K) | " + " | ".join(f"n={n}" for n in COLUMNS) + " | us at n=16 |")
    print("|---|" + "---|" * (len(COLUMNS) + 1))
    with threadpool_limits(1):
        for H in (128, 256):
            M, K = 4 * H, 2 * H                                   # LSTM, input folded in
            t = product_times(M, K, args.rounds)
            print(f"| ({M}, {K}) | " + " | ".join(f"{t[n] / t[16]:.2f}" for n in COLUMNS)
                  + f" | {t[16] * 1e6:.1f} |", flush=True)
    T, B, H = args.layer
    print(f"\n## One layer, T={T} B={B} I=H={H}, float32, {args.threads} thread(s), "
          f"rnnlab and torch in turns ({args.rounds} rounds)\n")
    with threadpool_limits(args.threads):
        times = machine.rounds(layer_steps(torch, T, B, H), args.rounds, 10)
    med = {k: statistics.median(v) for k, v in times.items()}
    print("| call | rnnlab ms | torch ms | rnnlab vs torch |")
    print("|---|---|---|---|")
    for what in ("lstm forward", "lstm step", "gru step"):
        print(f"| {what} | {med['rnnlab ' + what] * 1e3:.2f} | {med['torch ' + what] * 1e3:.2f} "
              f"| {machine.ratio(times, 'torch ' + what, 'rnnlab ' + what):.2f}x |")
    from rnnlab.engine.fast import kernels
    fs, by_cost = cut_steps(T, B, H, args.vocab)
    print(f"\n## Two row slices of B={B}: cut by cost {by_cost(B, args.threads)} against on "
          f"16 rows, rnnlab alone in turns ({args.rounds} rounds, {args.threads} thread(s))\n")
    try:
        with threadpool_limits(args.threads):
            times = machine.rounds(fs, args.rounds, 3)
    finally:
        kernels.row_slices = by_cost
    print("| step | by cost ms | on 16 ms | by cost / on 16 |")
    print("|---|---|---|---|")
    for what in ("layer", "lm"):
        a, b = (statistics.median(times[f"{what} {c}"]) for c in ("by cost", "on 16"))
        print(f"| {what} | {a * 1e3:.2f} | {b * 1e3:.2f} "
              f"| {machine.ratio(times, what + ' by cost', what + ' on 16'):.2f} |")
    print(f"\n## One vector of columns (n = 16): two panels at once (pair tile) against one "
          f"(one thread, float32, {args.rounds} rounds in turns; GFLOP/s of the median "
          f"round, ratio the median over rounds)\n")
    print("| W (M, K) | product pair GFLOP/s | one GFLOP/s | one / pair time "
          "| transposed pair GFLOP/s | one GFLOP/s | one / pair time |")
    print("|---|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for M, K in PAIR_SHAPES:
            t = pair_times(M, K, args.rounds)
            rate = lambda case: 2 * M * K * 16 / statistics.median(t[case]) / 1e9  # noqa: E731
            cells = [f"{rate((True, tr)):.0f} | {rate((False, tr)):.0f} | "
                     f"{machine.ratio(t, (False, tr), (True, tr)):.2f}" for tr in (False, True)]
            print(f"| pair ({M}, {K}) | " + " | ".join(cells) + " |", flush=True)
    print(f"\n## A time loop's products (64 steps of n = 16) on one thread alone and on two "
          f"at once, each its own W ({args.rounds * 3} rounds in turns; GFLOP/s per thread "
          f"of the median round, ratio the median over rounds)\n")
    print("| W (M, K) | MiB | alone GFLOP/s | two at once, each GFLOP/s | at once / alone time |")
    print("|---|---|---|---|---|")
    with threadpool_limits(1):
        for M, K in CONCURRENT_SHAPES:
            t = machine.two_at_once(M, K, args.rounds * 3)
            rate = lambda case: 2 * M * K * 16 * 64 / statistics.median(t[case]) / 1e9  # noqa: E731
            print(f"| loop ({M}, {K}) | {M * K * 4 / 2 ** 20:.1f} | {rate('alone'):.0f} | "
                  f"{rate('both'):.0f} | {machine.ratio(t, 'both', 'alone'):.2f} |", flush=True)


if __name__ == "__main__":
    main()
