"""The classic RNN tutorial's language model (dennybritz/rnn-tutorial-rnnlm), on PTB.

Its setup: sentences wrapped in SENTENCE_START / SENTENCE_END, vocabulary capped at
8,000 (the rest -> UNKNOWN_TOKEN), a tanh RNN with hidden 100, SGD lr 0.005 on the
loss summed over the sentence, one sentence per step, ``bptt_truncate`` 4, the rate
halved when the loss goes up. Its Reddit file is not available, so this runs on
the PTB training sentences. The tutorial reports ~350 ms per SGD step for these
sizes in NumPy; the target here is >= 100x faster.

Difference: the tutorial feeds one-hot vectors to U (H x V); we use an embedding
(V x 100) followed by W_ih (100 x 100) and biases, the same function class plus a
100 x 100 matrix.

    python benchmarks/tutorial_rnnlm.py --sentences 3000
"""
import argparse
import math
import os
import platform
import time

import numpy as np

from rnnlab.lm import corpus, generate, model as lm, vocab as vocab_mod
from rnnlab.optim import schedules

HERE = os.path.dirname(os.path.abspath(__file__))
PTB = os.environ.get("RNNLAB_PTB", os.path.join(HERE, "..", "..", "shared", "data", "ptb"))


def sgd_step(cfg, params, ids, lr, truncate):
    """One sentence: summed loss (as the tutorial) with truncated BPTT."""
    x, y = ids[:-1, None], ids[1:, None]                           # (T, 1)
    loss, _, cache = lm.loss_forward(cfg, params, x, y, None)
    grads = lm.backward(cfg, params, cache, bptt_truncate=truncate)
    T = len(y)
    for k, p in params.items():                                   # in place: no copies
        p -= np.float32(lr * T) * grads[k]                        # sum = T * mean
    return params, loss


def mean_loss(cfg, params, sents):
    total = count = 0
    for ids in sents:
        loss, _, _ = lm.loss_forward(cfg, params, ids[:-1, None], ids[1:, None], None)
        total, count = total + loss * (len(ids) - 1), count + len(ids) - 1
    return total / count


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentences", type=int, default=3000, help="SGD steps (one sentence each)")
    p.add_argument("--eval-every", type=int, default=1000, help="steps between loss checks")
    p.add_argument("--eval-sentences", type=int, default=300, help="held-out sentences")
    a = p.parse_args(argv)
    sents = corpus.line_sentences(os.path.join(PTB, "ptb.train.txt"),
                                  eos=vocab_mod.SENTENCE_END)
    # PTB already writes rare words as <unk>: that is the tutorial's UNKNOWN_TOKEN
    v = vocab_mod.build([t for s in sents for t in s], "word", max_size=8000,
                        unk=vocab_mod.UNK, eos=vocab_mod.SENTENCE_END,
                        bos=vocab_mod.SENTENCE_START)
    ids = [vocab_mod.encode(v, s) for s in sents]
    held, train_ids = ids[-a.eval_sentences:], ids[:-a.eval_sentences]
    cfg = lm.LMConfig(len(v), 100, 100, 1, "rnn", init_scale=0.1)
    params = lm.init_params(cfg, np.random.default_rng(10))
    lr, plateau = 0.005, schedules.plateau_init(0.005)
    print(f"vocabulary {len(v)}, {len(train_ids)} training sentences; "
          f"initial held-out loss {mean_loss(cfg, params, held):.3f} (ln 8000 = {math.log(8000):.3f})")
    step_time, t_all = 0.0, time.perf_counter()
    for i in range(a.sentences):
        t0 = time.perf_counter()
        params, _ = sgd_step(cfg, params, train_ids[i % len(train_ids)], lr, 4)
        step_time += time.perf_counter() - t0
        if (i + 1) % a.eval_every == 0:
            loss = mean_loss(cfg, params, held)
            plateau = schedules.plateau_step(plateau, loss, 0.5, 0)
            lr = plateau["lr"]
            print(f"step {i + 1:6d}  held-out loss {loss:.3f}  lr {lr:g}  "
                  f"{step_time / (i + 1) * 1000:.2f} ms/step")
    ms = step_time / a.sentences * 1000
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus; wall {time.perf_counter() - t_all:.0f} s")
    print(f"time per SGD step {ms:.2f} ms vs tutorial ~350 ms: {350 / ms:.0f}x faster")
    for s in generate.sample(cfg, params, v, n=5, max_len=20, rng=0):
        print("  sample:", s)


if __name__ == "__main__":
    main()
