"""Whole-model training speed: rnnlab against PyTorch running the same model.

Same model (embedding -> 2 x 200 LSTM -> linear decoder over V = 10,000, as
Zaremba's "small"), same batch (20) and bptt (20), same step (forward,
cross-entropy, BPTT, clip to norm 5, SGD lr 1), state carried between chunks.
The two are timed in alternating rounds of --block steps in one process
(``machine.rounds``), so load from other jobs on a shared machine hits both
alike; each round starts after a pause, so one library's spinning BLAS/OpenMP
threads do not slow the other, and after untimed steps for at least 0.15 s, so
it does not pay for threads and cores that slept in the pause (a training loop
steps back to back; right after a pause rnnlab's decoder, its products and its
softmax blocks on two threads, ran 3-5x slower for 20-60 ms); the median round
gives tokens/s, the median over rounds of the two times the ratio. rnnlab's
step is what ``rnnlab lm train`` runs: the fused decoder + cross-entropy, the
row-sparse embedding gradient (``lm.backward(..., sparse=True)``), clipping and
SGD from ``rnnlab.optim``, donated as the trainer donates them. Then the
decoder + softmax cross-entropy alone is timed the same way, to split the step.

Memory: each library then runs alone in a fresh process (``--memory-of``), and
the peak resident set during its training steps (VmHWM, reset by ``clear_refs``
after setup), above the resident set after its model and first step were built,
is reported in MiB.

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
from rnnlab import nn, optim


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


def decoder_steppers(cfg, B, T, seed=0):
    """The decoder and softmax cross-entropy alone, forward and backward, on the
    model's shapes (N = B*T rows of H features, V outputs): rnnlab's fused
    ``linear_cross_entropy`` and torch's linear + cross_entropy + backward."""
    import torch
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((B * T, cfg.hidden_size)).astype(np.float32)   # (N, H)
    w = (0.1 * rng.standard_normal((cfg.vocab_size, cfg.hidden_size))).astype(np.float32)
    b = np.zeros(cfg.vocab_size, np.float32)
    t = rng.integers(0, cfg.vocab_size, B * T)
    th, tw, tb = (torch.tensor(a, requires_grad=True) for a in (h, w, b))
    tt = torch.from_numpy(t)

    def torch_step():
        loss = torch.nn.functional.cross_entropy(torch.nn.functional.linear(th, tw, tb), tt)
        loss.backward()
        th.grad = tw.grad = tb.grad = None
        return loss.item()
    return {"rnnlab": lambda: nn.linear_cross_entropy(h, w, b, t)[0], "torch": torch_step}


def split_lines(whole, decoder, target=1.2):
    """What the decoder's share says about the target: lines to print."""
    rest = {k: whole[k] - decoder[k] for k in whole}
    need = whole["torch"] / target - decoder["rnnlab"]            # rnnlab's rest for the target
    lines = [f"split: decoder + softmax cross-entropy alone (forward + backward): rnnlab "
             f"{decoder['rnnlab'] * 1e3:.1f} ms, torch {decoder['torch'] * 1e3:.1f} ms "
             f"({decoder['torch'] / decoder['rnnlab']:.2f}x)"]
    if min(rest.values()) <= 0:           # timed apart, the machine's speed moved between
        return lines + ["split: the decoder alone took as long as a whole step: the machine "
                        "changed speed between the two timings; no split"]
    lines += [f"split: the rest of the step (embedding, LSTM forward and BPTT, clip, update): "
              f"rnnlab {rest['rnnlab'] * 1e3:.1f} ms, torch {rest['torch'] * 1e3:.1f} ms "
              f"({rest['torch'] / rest['rnnlab']:.2f}x)"]
    if need <= 0:
        lines.append(f"split: with this decoder time no rest could give {target}x")
    else:
        lines.append(f"split: for {target}x with this decoder time, the rest would have to "
                     f"run {rest['torch'] / need:.2f}x torch's")
    return lines


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
    print(machine.describe(torch))
    steppers = {"rnnlab": rnnlab_stepper(cfg, a.batch), "torch": torch_stepper(cfg, a.batch)}
    machine.freeze_gc()
    reps = max(1, -(-a.steps // a.block))                         # rounds of --block steps
    times = machine.rounds({k: (lambda s=s: s(x, y)) for k, s in steppers.items()}, reps,
                           a.block, a.clock)
    dec = machine.rounds(decoder_steppers(cfg, a.batch, a.bptt), reps, a.block, a.clock)
    whole = {k: statistics.median(v) for k, v in times.items()}
    decoder = {k: statistics.median(v) for k, v in dec.items()}
    tok = {k: a.batch * a.bptt / v for k, v in whole.items()}
    print(f"command: python benchmarks/lm_speed.py {' '.join(argv)}")
    print(f"model: V={a.vocab} E=H={a.hidden} L={a.layers} lstm, B={a.batch}, bptt={a.bptt}, "
          f"float32; step = forward, cross-entropy, BPTT, clip 5, SGD lr 1; "
          f"{a.threads} thread(s), {a.clock} clock")
    for k in tok:
        print(f"{k:7s} median {whole[k] * 1000:7.1f} ms/step {tok[k]:9,.0f} tokens/s")
    print(f"ratio rnnlab/torch: {machine.ratio(times, 'torch', 'rnnlab'):.2f}x, the median over "
          f"{reps} rounds of torch's time / rnnlab's in the same round (target >= 1.2x)")
    for line in split_lines(whole, decoder):
        print(line)
    mem = _measure_memory(argv)
    for k, (over, peak, base) in mem.items():
        print(f"{k:7s} peak resident set during steps {over:6.1f} MiB above the "
              f"{base:.0f} MiB after setup (peak {peak:.0f} MiB)")
    print(f"memory per step rnnlab/torch: {mem['rnnlab'][0] / mem['torch'][0]:.2f} "
          f"(target <= 1)")


if __name__ == "__main__":
    main()
