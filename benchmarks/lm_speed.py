"""Whole-model training speed: rnnlab against PyTorch running the same model.

Same model (embedding -> 2 x 200 LSTM -> linear decoder over V = 10,000, as
Zaremba's "small"), same batch (20) and bptt (20), same step (forward,
cross-entropy, BPTT, clip to norm 5, SGD lr 1), state carried between chunks.
The two are timed in alternating blocks in one process, so load from other
jobs on a shared machine hits both alike, with a pause between blocks so one
library's spinning BLAS/OpenMP threads do not slow the other; the median step
time gives tokens/s. rnnlab's step is what ``rnnlab lm train`` can run: the
fused decoder + cross-entropy and the row-sparse embedding gradient
(``lm.backward(..., sparse=True)``), clipping and SGD from ``rnnlab.optim``.

Memory: each library then runs alone in a fresh process (``--memory-of``), and
the peak resident set during its training steps, above the resident set after
its model and first step were built, is reported in MiB (Linux ``ru_maxrss``).

    python benchmarks/lm_speed.py --steps 30
"""
import argparse
import os
import statistics
import subprocess
import sys

import rnnlab  # noqa: F401  (before NumPy: it sets OpenBLAS's idle spin, see rnnlab/__init__.py)
import numpy as np

import machine
from rnnlab.lm import model as lm
from rnnlab import optim


def rnnlab_stepper(cfg, B, seed=0):
    params = lm.init_params(cfg, np.random.default_rng(seed))
    opt = optim.sgd()
    box = {"p": params, "o": opt.init(params), "s": lm.zero_state(cfg, B)}

    def step(x, y):
        loss, box["s"], cache = lm.loss_forward(cfg, box["p"], x, y, box["s"])
        grads, _, _ = optim.clip_by_global_norm(lm.backward(cfg, box["p"], cache, sparse=True),
                                                5.0, donate=True)             # as the trainer
        box["p"], box["o"] = opt.update(box["p"], grads, box["o"], 1.0, donate=True)
        return loss
    return step


def torch_stepper(cfg, B):
    import torch
    from torch import nn
    torch.manual_seed(0)
    emb = nn.Embedding(cfg.vocab_size, cfg.emb_size)
    rnn = nn.LSTM(cfg.emb_size, cfg.hidden_size, cfg.num_layers)
    dec = nn.Linear(cfg.hidden_size, cfg.vocab_size)
    ps = [*emb.parameters(), *rnn.parameters(), *dec.parameters()]
    opt = torch.optim.SGD(ps, lr=1.0)
    z = torch.zeros(cfg.num_layers, B, cfg.hidden_size)
    box = {"s": (z, z.clone())}

    def step(x, y):
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        out, (h, c) = rnn(emb(x), box["s"])
        box["s"] = (h.detach(), c.detach())                  # truncated BPTT
        loss = nn.functional.cross_entropy(dec(out).reshape(-1, cfg.vocab_size), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(ps, 5.0)
        opt.step()
        return loss.item()
    return step


def _status_mib(field):
    """VmRSS (resident now) or VmHWM (peak resident) of this process, in MiB."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024                # kB -> MiB
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_of(name, cfg, a, x, y):
    """Peak resident set over 5 steps above the set after model + first step (MiB).

    The kernel's peak (VmHWM) is reset after setup (``clear_refs`` 5), so the
    peak covers the training steps only, not imports or model building.
    """
    step = (rnnlab_stepper if name == "rnnlab" else torch_stepper)(cfg, a.batch)
    step(x, y)
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")
    base = _status_mib("VmRSS")
    for _ in range(5):
        step(x, y)
    peak = _status_mib("VmHWM")
    print(f"{name} {peak - base:.1f} {peak:.1f} {base:.1f}")


def _measure_memory(argv):
    out = {}
    for name in ("rnnlab", "torch"):
        r = subprocess.run([sys.executable, __file__, "--memory-of", name] + argv,
                           capture_output=True, text=True, check=True)
        _, over, peak, base = r.stdout.split()[-4:]
        out[name] = (float(over), float(peak), float(base))
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40, help="timed steps per library")
    p.add_argument("--block", type=int, default=5, help="steps per alternating block")
    p.add_argument("--vocab", type=int, default=10000, help="V")
    p.add_argument("--hidden", type=int, default=200, help="E = H")
    p.add_argument("--layers", type=int, default=2, help="L")
    p.add_argument("--batch", type=int, default=20, help="B")
    p.add_argument("--bptt", type=int, default=20, help="T")
    p.add_argument("--threads", type=int, default=2, help="BLAS / torch threads")
    p.add_argument("--clock", choices=sorted(machine.CLOCKS), default="wall",
                   help="wall time, or this process's CPU time (with --threads 1 on a "
                        "loaded machine)")
    p.add_argument("--memory-of", choices=["rnnlab", "torch"], help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    cfg = lm.LMConfig(a.vocab, a.hidden, a.hidden, a.layers, "lstm")
    rng = np.random.default_rng(0)
    data = rng.integers(0, a.vocab, (a.bptt + 1, a.batch))
    x, y = data[:-1], data[1:]
    from threadpoolctl import threadpool_limits
    os.environ["RNNLAB_THREADS"] = str(a.threads)     # the softmax blocks' threads too
    with threadpool_limits(a.threads):
        if a.memory_of:
            return memory_of(a.memory_of, cfg, a, x, y)
        return _speed(a, argv, cfg, x, y)


def _speed(a, argv, cfg, x, y):
    import torch
    torch.set_num_threads(a.threads)
    tick = machine.CLOCKS[a.clock]
    print(machine.describe(torch))
    steppers = {"rnnlab": rnnlab_stepper(cfg, a.batch), "torch": torch_stepper(cfg, a.batch)}
    times = {k: [] for k in steppers}
    for s in steppers.values():                              # warm-up (JIT, allocators)
        for _ in range(3):
            s(x, y)
    machine.freeze_gc()
    while min(len(t) for t in times.values()) < a.steps:
        for name, s in steppers.items():
            machine.settle()
            for _ in range(a.block):
                t0 = tick()
                s(x, y)
                times[name].append(tick() - t0)
    tok = {k: a.batch * a.bptt / statistics.median(v) for k, v in times.items()}
    print(f"command: python benchmarks/lm_speed.py {' '.join(argv)}")
    print(f"model: V={a.vocab} E=H={a.hidden} L={a.layers} lstm, B={a.batch}, bptt={a.bptt}, "
          f"float32; step = forward, cross-entropy, BPTT, clip 5, SGD lr 1; "
          f"{a.threads} thread(s), {a.clock} clock")
    for k in tok:
        print(f"{k:7s} median {statistics.median(times[k]) * 1000:7.1f} ms/step "
              f"{tok[k]:9,.0f} tokens/s")
    print(f"ratio rnnlab/torch: {tok['rnnlab'] / tok['torch']:.2f}x (target >= 1.2x)")
    mem = _measure_memory(argv)
    for k, (over, peak, base) in mem.items():
        print(f"{k:7s} peak resident set during steps {over:6.1f} MiB above the "
              f"{base:.0f} MiB after setup (peak {peak:.0f} MiB)")
    print(f"memory per step rnnlab/torch: {mem['rnnlab'][0] / mem['torch'][0]:.2f} "
          f"(target <= 1)")


if __name__ == "__main__":
    main()
