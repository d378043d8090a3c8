"""Training throughput of rnnlab's recurrent layers against torch.nn, same run.

For RNN (tanh), GRU and LSTM at B=32, T=64, I=H in {128, 256, 512}, float32,
two threads (``--threads``): tokens/s of forward + full backward (input
gradient included) for rnnlab (fast path), rnnlab's pure-NumPy path and
torch.nn; their ratios; and the matrix-product work done per second as a
fraction of this machine's float32 matrix-multiply rate, measured in the same
run (best of NumPy and torch on a large square product). Every figure is
printed with the machine (``machine.describe``); a pause separates the two
libraries' runs (``machine.settle``).

    python benchmarks/bench_layers.py            # the full table (~3 minutes)
    python benchmarks/bench_layers.py --quick    # one size, fewer repeats
    python benchmarks/bench_layers.py --lengths  # variable-length batches only
    python benchmarks/bench_layers.py --threads 1 --clock cpu   # on a loaded machine

Variable lengths: the same layer on a batch whose rows have random lengths in
1..T against the full-length batch; the time ratio should track the fraction f
of tokens actually present (target: at most f + 0.1). torch runs the same batch
through pack_padded_sequence (target: rnnlab at least 1.5x faster).
"""
import argparse
import os
import statistics
import sys

import rnnlab  # noqa: F401  (before NumPy: it sets OpenBLAS's idle spin, see rnnlab/__init__.py)
import numpy as np

import machine
from rnnlab.engine.cells import CELLS


def rnnlab_step(mode, H, T, B, generic=False):
    """One forward + backward; generic=True: the reference loop, else impl='auto'
    (the fused kernels when numba is installed and RNNLAB_IMPL does not say otherwise)."""
    import rnnlab
    cls = {"rnn": rnnlab.RNN, "gru": rnnlab.GRU, "lstm": rnnlab.LSTM}[mode]
    m = cls(H, H, seed=0, impl="reference" if generic else "auto")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, H)).astype(np.float32)
    dout = np.ones((T, B, H), np.float32)

    def f():
        m(x)
        m.backward(dout)
    return f


def torch_step(torch, mode, H, T, B):
    cls = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[mode]
    m = cls(H, H)
    x = torch.randn(T, B, H, requires_grad=True)

    def f():
        out, _ = m(x)
        out.sum().backward()                                      # dout = ones, like rnnlab's
    return f


def step_floor(lens, T, B):
    """What the per-step products of a batch of these lengths cost against the
    full batch's, by the fast path's own cost model (``gemm.cost``: columns'
    worth of a step; the steps' other work and the threads' meetings come on
    top), or None without the fast path."""
    try:
        from rnnlab.engine.fast import gemm, kernels
    except ImportError:
        return None
    if not kernels.available():
        return None
    cost = lambda n: gemm.cost(int(n), np.float32) if n else 0.0  # noqa: E731
    return sum(cost((lens > t).sum()) for t in range(T)) / (T * cost(B))


def lengths_table(torch, clock, H=256, T=64, B=32, reps=7):
    """Time of a variable-length batch relative to the full batch, both libraries."""
    import rnnlab
    lens = np.random.default_rng(2).integers(1, T + 1, size=B)
    share = lens.sum() / (T * B)
    x = np.random.default_rng(1).standard_normal((T, B, H)).astype(np.float32)
    print(f"\n# variable lengths: B={B} T={T} H={H}, lengths uniform in 1..{T}: "
          f"f = {share:.0%} of the T*B tokens are present; forward + full backward; "
          f"targets: varlen / full <= f + 0.1 = {share + 0.1:.2f}, >= 1.5x torch packed; "
          f"the four timed in turns, {reps} rounds: times of the median round, ratios the "
          f"median over rounds")
    floor = step_floor(lens, T, B)
    if floor is not None:
        print(f"# rnnlab's per-step products of this batch cost {floor:.2f} of the full batch's "
              f"(gemm.cost: a step of b rows costs its whole vectors plus the units tile's "
              f"block for the rest); its whole-sequence products, {share:.2f}")
    print("| cell | rnnlab full | rnnlab varlen | varlen / full | torch full | torch packed "
          "| packed / full | rnnlab vs torch packed |")
    print("|---|---|---|---|---|---|---|---|")
    for mode in ("rnn", "gru", "lstm"):
        m = {"rnn": rnnlab.RNN, "gru": rnnlab.GRU, "lstm": rnnlab.LSTM}[mode](H, H, seed=0)

        def ours(lengths):
            def f():
                out, _ = m(x, lengths=lengths)
                m.backward(np.ones_like(out))
            return f
        fs = {"full": ours(None), "var": ours(lens)}
        if torch is not None:
            tm = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[mode](H, H)
            xt = torch.from_numpy(x).requires_grad_(True)

            def theirs(packed):
                def f():
                    inp = (torch.nn.utils.rnn.pack_padded_sequence(
                        xt, torch.from_numpy(lens), enforce_sorted=False) if packed else xt)
                    out, _ = tm(inp)
                    out = torch.nn.utils.rnn.pad_packed_sequence(out)[0] if packed else out
                    out.sum().backward()
                return f
            fs.update(tfull=theirs(False), tpacked=theirs(True))
        times = machine.rounds(fs, reps, 3, clock)
        med = {k: statistics.median(v) for k, v in times.items()}
        row = (f"| {mode} | {med['full'] * 1e3:.1f} ms | {med['var'] * 1e3:.1f} ms | "
               f"{machine.ratio(times, 'var', 'full'):.2f} |")
        if torch is not None:
            row += (f" {med['tfull'] * 1e3:.1f} ms | {med['tpacked'] * 1e3:.1f} ms | "
                    f"{machine.ratio(times, 'tpacked', 'tfull'):.2f} | "
                    f"{machine.ratio(times, 'tpacked', 'var'):.2f}x |")
        print(row, flush=True)
        machine.settle()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="H=256 only, fewer repeats")
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--no-generic", action="store_true", help="skip the pure-NumPy path")
    ap.add_argument("--lengths", action="store_true", help="only the variable-length table")
    ap.add_argument("--threads", type=int, default=2, help="BLAS / torch threads")
    ap.add_argument("--clock", choices=sorted(machine.CLOCKS), default="wall",
                    help="wall time, or this process's CPU time (use with --threads 1 "
                         "when other jobs load the machine)")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
        print("torch is not installed: rnnlab columns only (pip install 'rnnlab[torch]')")
    T, B = 64, 32
    sizes = [256] if args.quick else args.sizes
    reps = 3 if args.quick else 7
    with threadpool_limits(args.threads):
        print(f"# {machine.describe(torch)}")
        machine.freeze_gc()
        print(f"# command: python benchmarks/bench_layers.py {' '.join(argv)}; "
              f"{args.threads} thread(s), {args.clock} clock")
        if args.lengths:
            return lengths_table(torch, args.clock)
        peak = machine.matmul_rate(torch, clock=args.clock)
        print(f"# float32 matmul rate {peak:.0f} GFLOP/s (2048^2, best of NumPy and torch)")
        print(f"# {machine.two_at_once_line()}")
        print(f"# B={B} T={T} I=H, forward + full backward; tok/s = T*B / time; targets: "
              f"LSTM >= 1.0x (stretch 1.2x), RNN and GRU >= 1.3x at 256, GRU >= 1.5x at "
              f"256 and 512, every cell >= 85% of the matmul rate at 512; rnnlab and torch "
              f"timed in turns, {reps} rounds: tok/s from the median round, 'vs torch' the "
              f"median over rounds of torch's time / rnnlab's in the same round")
        print("| cell | H | rnnlab tok/s | torch tok/s | vs torch | pure NumPy tok/s | "
              "rnnlab GFLOP/s | of matmul rate |")
        print("|---|---|---|---|---|---|---|---|")
        for H in sizes:
            for mode in ("rnn", "gru", "lstm"):
                G = CELLS[mode].GATES * H
                flops = 6 * 2 * T * B * H * G                     # 2 products fwd, 4 bwd
                number = max(1, int(2e9 / flops))
                fs = {"ours": rnnlab_step(mode, H, T, B)}
                if torch is not None:
                    fs["theirs"] = torch_step(torch, mode, H, T, B)
                times = machine.rounds(fs, reps, max(3, number), args.clock)
                ours = statistics.median(times["ours"])
                theirs = statistics.median(times["theirs"]) if torch is not None else float("nan")
                vs = machine.ratio(times, "theirs", "ours") if torch is not None else float("nan")
                machine.settle()
                plain = (float("nan") if args.no_generic else
                         machine.timeit(rnnlab_step(mode, H, T, B, generic=True),
                                        max(2, reps // 3), number, args.clock))
                gf = flops / ours / 1e9
                print(f"| {mode} | {H} | {T * B / ours:,.0f} | {T * B / theirs:,.0f} | "
                      f"{vs:.2f}x | {T * B / plain:,.0f} | {gf:.0f} | {gf / peak:.0%} |",
                      flush=True)
        lengths_table(torch, args.clock)


if __name__ == "__main__":
    main()
