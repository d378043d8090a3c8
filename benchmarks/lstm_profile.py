"""Where an LSTM training step spends its time: rnnlab's fast path against torch.

Issue 12 asks, for a target not met, the profile that shows where the time
goes. For one LSTM layer (B=32, T=64, I=H, float32) this times, in the same
process and with the same thread count:

- the whole forward, and forward + backward, of rnnlab (fused path) and torch.nn.LSTM;
- the matrix products the step cannot avoid, done as rnnlab does them (the
  per-step ones on its own kernel, in the row slices the layer uses; the
  whole-sequence ones on NumPy's OpenBLAS) and by torch's BLAS on the same shapes: the input product
  W_ih x (4H, I) @ (I, T*B), the T recurrent products W_hh h (4H, H) @ (H, B),
  the T backward products W_hh^T dG (H, 4H) @ (4H, B), the input gradient
  W_ih^T dG and the weight gradients dG x^T, dG h^T (each (4H, T*B)-sized).
  rnnlab's LSTM folds the input product into its steps ([W_ih | W_hh] (4H,
  I + H) times [x_t; h_{t-1}]) and the input gradient into its backward's
  ([W_ih | W_hh]^T dG_t, on the forward's packed weights): its rows time those;
- what is left of rnnlab's time after its products: the gate passes, the
  gathers and scatters between steps, and Python overhead;
- a call of one step (T = 1), forward + backward, both libraries: what a call
  costs beyond its steps (packing the weights, the hand-offs to the threads,
  the checks and copies at the layer's boundary).

    python benchmarks/lstm_profile.py                    # H = 256 and 512, 1 thread, CPU clock
    python benchmarks/lstm_profile.py --threads 2 --clock wall   # on a quiet machine

Writes the table to stdout and, with --out, to a Markdown record.
"""
import argparse
import os
import sys

import rnnlab  # before NumPy: it sets OpenBLAS's idle spin, see rnnlab/__init__.py
import numpy as np

import machine


def products(mm, zeros, H, T, B, rng):
    """The products of one LSTM layer's step, as callables on one library's arrays
    (None: rnnlab runs it inside another row's products)."""
    G = 4 * H
    w, x, h, dg = (mm(rng.standard_normal(s).astype(np.float32))
                   for s in ((G, H), (H, T * B), (H, B), (G, T * B)))
    wt, dgb = mm(np.ascontiguousarray(rng.standard_normal((H, G)).astype(np.float32))), dg[:, :B]

    def steps_fwd():
        for _ in range(T):
            w @ h

    def steps_bwd():
        for _ in range(T):
            wt @ dgb
    whole, dx = (lambda: w @ x), (lambda: wt @ dg)                # noqa: E731
    if mm is np.asarray:                                          # rnnlab's own per-step path
        from rnnlab.engine.fast import kernels
        # the LSTM loop folds W_ih x into its steps: [W_ih | W_hh] @ [x_t; h_{t-1}],
        # and dx into its backward's: [W_ih | W_hh]^T dG_t, on the forward's
        # panels (gemm.product_t)
        wx = np.concatenate([w, w], axis=1)                       # (G, I + H), I = H
        xh = kernels.aligned((2 * H, B + 16), np.float32)
        xh[:] = 1.0
        gb = kernels.aligned((G, B + 16), np.float32)
        gb[:] = 1.0
        steps_fwd, steps_bwd = packed_steps(wx, xh, T, B), packed_steps(wx, gb, T, B, True)
        whole = dx = None
    return {"input product W_ih x": whole,
            "T recurrent products W_hh h": steps_fwd,
            "input gradient W_ih^T dG": dx,
            "T backward products W_hh^T dG": steps_bwd,
            "weight gradients dG x^T, dG h^T": lambda: (dg @ x.T, dg @ x.T)}


def packed_steps(w, b, T=1, n=None, transposed=False):
    """T products w @ b[:, :n] (transposed: w^T @ b[:, :n]) as rnnlab's time loops
    run them: w packed once, each step on rnnlab's own kernel
    (``engine/fast/gemm.py``), the columns of b in the row slices the layer would
    use, one thread per slice."""
    import numba
    from rnnlab.engine.fast import gemm, kernels
    from rnnlab.engine.threads import parallel
    panels, n = gemm.pack(w), b.shape[1] if n is None else n
    wt = kernels.transposed_panels(panels, np.array([n])) if transposed else None
    rows = -(-w.shape[1] // gemm.ROWS) * gemm.ROWS if transposed else panels.shape[0] * gemm.ROWS
    slices = kernels.row_slices(n, kernels.own_workers(w.size, n))
    outs = [np.zeros(rows * gemm.width(kB, w.dtype), w.dtype) for _, kB in slices]

    @numba.njit(nogil=True)
    def steps(panels, wt, b, k0, c, kB, T, transposed):
        for _ in range(T):
            if transposed:
                gemm.product_t(panels, wt, b[:, k0:], b.shape[1], c, kB, 0, panels.shape[1])
            else:
                gemm.product(panels, b, k0, b.shape[1], c, kB)
    wt = gemm.no_pack_t(w.dtype) if wt is None else wt
    steps(panels, wt, b, 0, outs[0], 1, 1, transposed)            # compiled before timing

    def run():
        parallel([lambda k0=k0, kB=kB, c=c: steps(panels, wt, b, k0, c, kB, T, transposed)
                  for (k0, kB), c in zip(slices, outs)])
    return run


def profile(torch, H, T, B, clock, repeats):
    import rnnlab
    rng = np.random.default_rng(0)
    t = lambda f: machine.timeit(f, repeats, 1, clock) * 1e3          # ms
    x = rng.standard_normal((T, B, H)).astype(np.float32)
    dout = np.ones((T, B, H), np.float32)
    m = rnnlab.LSTM(H, H, seed=0)
    machine.settle()                       # the previous size ended on torch's products
    ours = {"forward": t(lambda: m(x))}
    ours["forward + backward"] = t(lambda: (m(x), m.backward(dout)))
    x1, d1 = x[:1], dout[:1]                       # one step: what a call costs beyond its steps
    ours["forward + backward, T = 1"] = t(lambda: (m(x1), m.backward(d1)))
    machine.settle()
    tm, xt = torch.nn.LSTM(H, H), torch.randn(T, B, H, requires_grad=True)
    xt1 = xt[:1].detach().requires_grad_()

    # the forward of a training step, as rnnlab's (which keeps its caches): with
    # autograd on, so oneDNN keeps its workspace for a backward (under no_grad it
    # runs its inference primitive: 3.4-3.5 ms against 4.7 at H = 128, 2 threads)
    theirs = {"forward": t(lambda: tm(xt)),
              "forward + backward": t(lambda: tm(xt)[0].sum().backward()),
              "forward + backward, T = 1": t(lambda: tm(xt1)[0].sum().backward())}
    machine.settle()
    np_p = {k: (t(f) if f is not None else 0.0)
            for k, f in products(np.asarray, np.zeros, H, T, B, rng).items()}
    machine.settle()
    th_p = {k: t(f) for k, f in products(torch.from_numpy, torch.zeros, H, T, B, rng).items()}
    return ours, theirs, np_p, th_p


def table(H, ours, theirs, np_p, th_p):
    rows = [f"### H = {H}", "", "| ms per call | rnnlab / its BLAS | torch / its BLAS | ratio |",
            "|---|---|---|---|"]
    for k in ours:
        rows.append(f"| whole {k} | {ours[k]:.2f} | {theirs[k]:.2f} | {theirs[k] / ours[k]:.2f}x |")
    # rows rnnlab runs inside another row's products: (that row, its label)
    inside = {"input product W_ih x": ("T recurrent products W_hh h", "T steps' products "
                                       "(rnnlab: [W_ih W_hh] [x; h]; torch: the two rows above)"),
              "input gradient W_ih^T dG": ("T backward products W_hh^T dG", "T backward "
                                           "products (rnnlab: [W_ih W_hh]^T dG, dx included; "
                                           "torch: W_hh^T dG and the row above)")}
    hosts = {inside[k][0]: (k, inside[k][1]) for k in inside if np_p[k] == 0.0}
    for k in np_p:
        mine, peer, label = np_p[k], th_p[k], k
        if k in inside and np_p[k] == 0.0:
            rows.append(f"| {k} | in the steps below | {peer:.2f} | |")
            continue
        if k in hosts:
            peer += th_p[hosts[k][0]]
            label = hosts[k][1]
        rows.append(f"| {label} | {mine:.2f} | {peer:.2f} | {peer / mine:.2f}x |")
    fwd_p = np_p["input product W_ih x"] + np_p["T recurrent products W_hh h"]
    all_p = sum(np_p.values())
    rows += ["", f"rnnlab forward: {fwd_p:.2f} ms in products, {ours['forward'] - fwd_p:.2f} ms "
             f"({1 - fwd_p / ours['forward']:.0%}) in gate passes, copies and overhead; "
             f"forward + backward: {all_p:.2f} ms in products, "
             f"{ours['forward + backward'] - all_p:.2f} ms "
             f"({1 - all_p / ours['forward + backward']:.0%}) else.", ""]
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", help="also write the record here (Markdown)")
    a = ap.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    try:
        import torch
    except ImportError:
        sys.exit("lstm_profile: torch is the peer here; pip install torch")
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(a.threads)
    threadpool_limits(a.threads)
    machine.freeze_gc()
    lines = ["# LSTM step profile (issue 12)", "", machine.describe(torch),
             f"command: python benchmarks/lstm_profile.py {' '.join(argv or sys.argv[1:])}",
             f"B=32, T=64, I=H, float32, {a.threads} thread(s), {a.clock} clock, "
             f"median of {a.repeats}", ""]
    for H in a.sizes:
        lines += table(H, *profile(torch, H, 64, 32, a.clock, a.repeats))
    text = "\n".join(lines)
    print(text)
    if a.out:
        from rnnlab.io.atomic import atomic_write
        with atomic_write(a.out) as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
