"""The engine's generic path on a GPU: what one training step of a layer costs
when its arrays are torch CUDA tensors or CuPy arrays, against torch's own
layer (cuDNN) on the same GPU and rnnlab's fused path on this machine's CPU.

The generic path is the reference engine, written once over the array
namespace it takes from its inputs (``rnnlab/engine/backend.py``): a Python loop
over time steps, a few small kernels each. It is there so the same code runs
on a GPU library and is checked there (``tests/test_namespace.py``, whose GPU
cases skip where there is none); it is not a fast path, and this script says by
how much. Needs a CUDA GPU with torch (and CuPy for its row); nothing in rnnlab
depends on one.

    python benchmarks/gpu_namespace.py [--sizes 128 256 512] [--batch 32] [--steps 64]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rnnlab  # noqa: F401,E402  (before NumPy: it sets OpenBLAS's idle spin)
import numpy as np  # noqa: E402

import machine  # noqa: E402
from rnnlab.engine import layers  # noqa: E402


def median_ms(f, sync):
    """Milliseconds per call of f, the device synchronised inside each call:
    ``machine.timeit``'s median of 7 after one more warm call of ours (two in all)."""
    def call():
        f()
        sync()
    call()
    return 1e3 * machine.timeit(call, repeats=7)


def rnnlab_step(cfg, params, x, dout):
    def f():
        out, _, cache = layers.forward(cfg, params, x)
        layers.backward(cfg, params, cache, dout)
    return f


def torch_step(torch, cfg, params, x, dout):
    m = torch.nn.LSTM(cfg.input_size, cfg.hidden_size).to(x.device)
    m.load_state_dict({k: torch.tensor(v, device=x.device) for k, v in params.items()})
    xr = x.clone().requires_grad_(True)

    def f():
        m.zero_grad(set_to_none=True)
        out, _ = m(xr)
        out.backward(dout)
    return f


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=64)
    args = ap.parse_args(argv)
    import torch
    if not torch.cuda.is_available():
        print("gpu_namespace: no CUDA GPU visible to torch; nothing to measure", file=sys.stderr)
        return 2
    try:
        import cupy
    except ImportError:
        cupy = None
    print(machine.describe(torch))
    print(f"# GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}, "
          f"cuDNN {torch.backends.cudnn.version()}; CuPy {cupy.__version__ if cupy else 'absent'}")
    print(f"# LSTM, one layer, I = H, B = {args.batch}, T = {args.steps}, float32; "
          "forward + full backward; median of 7 calls after 2 warm ones, wall clock with "
          "the device synchronised")
    print("| H | torch cuDNN (GPU) | rnnlab on torch CUDA | rnnlab on CuPy | "
          "rnnlab fused (CPU) | generic GPU / cuDNN |")
    print("|---|---|---|---|---|---|")
    T, B = args.steps, args.batch
    for H in args.sizes:
        cfg = layers.RNNConfig("lstm", H, H)
        params = layers.init_params(cfg, rng=0, dtype=np.float32)
        rng = np.random.default_rng(1)
        x = rng.standard_normal((T, B, H)).astype(np.float32)
        dout = rng.standard_normal((T, B, H)).astype(np.float32)
        dev = torch.device("cuda")
        tp = {k: torch.tensor(v, device=dev) for k, v in params.items()}
        tx, td = torch.tensor(x, device=dev), torch.tensor(dout, device=dev)
        sync = torch.cuda.synchronize
        cudnn = median_ms(torch_step(torch, cfg, params, tx, td), sync)
        on_torch = median_ms(rnnlab_step(cfg, tp, tx, td), sync)
        if cupy is not None:
            cp = {k: cupy.asarray(v) for k, v in params.items()}
            on_cupy = median_ms(rnnlab_step(cfg, cp, cupy.asarray(x), cupy.asarray(dout)),
                                cupy.cuda.Device().synchronize)
        else:
            on_cupy = float("nan")
        cpu = median_ms(rnnlab_step(cfg, params, x, dout), lambda: None)
        print(f"| {H} | {cudnn:.2f} ms | {on_torch:.2f} ms | {on_cupy:.2f} ms | {cpu:.2f} ms "
              f"| {on_torch / cudnn:.0f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
