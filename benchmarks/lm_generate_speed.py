"""Sampling speed: rnnlab's ``generate.sample`` against torch running the same loop.

Same model and weights (embedding -> 2 x 200 LSTM -> linear decoder over
V = 10,000, Zaremba's "small", float32), same loop: feed the start token, then
per token the recurrent step, the logits, the softmax at temperature 1 and one
draw per row; rows never stop early (the vocabulary has no end token), so each
call samples B * N tokens. torch runs it under ``torch.inference_mode`` with
``torch.multinomial``. Timed in alternating blocks in one process with a pause
between them (see ``machine.settle``); median time per call gives tokens/s.

    python benchmarks/lm_generate_speed.py
"""
import argparse
import statistics
import sys

import rnnlab  # noqa: F401  (before NumPy: it sets OpenBLAS's idle spin, see rnnlab/__init__.py)
import numpy as np

import machine
from rnnlab.lm import generate, model as lm, vocab as vocab_mod


def rnnlab_sampler(cfg, params, B, N):
    v = vocab_mod.Vocab(tuple(f"w{i}" for i in range(cfg.vocab_size)), "word", unk=None)
    rng = np.random.default_rng(0)
    return lambda: generate.sample(cfg, params, v, n=B, max_len=N, rng=rng)


def torch_sampler(cfg, params, B, N):
    import torch
    from torch import nn
    emb = nn.Embedding(cfg.vocab_size, cfg.emb_size)
    rnn = nn.LSTM(cfg.emb_size, cfg.hidden_size, cfg.num_layers)
    dec = nn.Linear(cfg.hidden_size, cfg.vocab_size)
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(params["encoder.weight"]))
        for k, p in rnn.named_parameters():
            p.copy_(torch.from_numpy(params["rnn." + k]))
        dec.weight.copy_(torch.from_numpy(params["decoder.weight"]))
        dec.bias.copy_(torch.from_numpy(params["decoder.bias"]))
    gen = torch.Generator().manual_seed(0)

    def sample():
        with torch.inference_mode():
            tok = torch.full((1, B), cfg.vocab_size - 1, dtype=torch.long)
            state, out = None, []
            for _ in range(N):
                h, state = rnn(emb(tok), state)
                p = torch.softmax(dec(h[0]), dim=-1)              # (B, V)
                tok = torch.multinomial(p, 1, generator=gen).T    # (1, B)
                out.append(tok)
            return torch.cat(out).T.tolist()
    return sample


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=100, help="N tokens per row per call")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32], help="B rows")
    p.add_argument("--repeats", type=int, default=7, help="timed calls per library")
    p.add_argument("--threads", type=int, default=2, help="BLAS / torch threads")
    p.add_argument("--clock", choices=sorted(machine.CLOCKS), default="wall",
                   help="wall time, or this process's CPU time (with --threads 1 on a "
                        "loaded machine)")
    a = p.parse_args(argv)
    from threadpoolctl import threadpool_limits
    with threadpool_limits(a.threads):
        _run(a, argv)


def _run(a, argv):
    import torch
    torch.set_num_threads(a.threads)
    cfg = lm.LMConfig(10000, 200, 200, 2, "lstm")
    params = lm.init_params(cfg, np.random.default_rng(0))
    print(machine.describe(torch))
    machine.freeze_gc()
    print(f"command: python benchmarks/lm_generate_speed.py {' '.join(argv)}")
    print(f"model: V={cfg.vocab_size} E=H={cfg.hidden_size} L={cfg.num_layers} lstm, float32; "
          f"{a.tokens} sampled tokens per row per call; {a.threads} thread(s), "
          f"{a.clock} clock; target >= 1.5x")
    print("| B | rnnlab tokens/s | torch tokens/s | rnnlab / torch |")
    print("|---|---|---|---|")
    for B in a.batches:
        fs = {"rnnlab": rnnlab_sampler(cfg, params, B, a.tokens),
              "torch": torch_sampler(cfg, params, B, a.tokens)}
        for f in fs.values():
            f()                                                   # warm up
        times = machine.rounds(fs, a.repeats, 1, a.clock, warm=0)
        tok = {k: B * a.tokens / statistics.median(v) for k, v in times.items()}
        print(f"| {B} | {tok['rnnlab']:,.0f} | {tok['torch']:,.0f} | "
              f"{tok['rnnlab'] / tok['torch']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
