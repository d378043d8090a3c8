"""The classic RNN tutorial's language model, against a re-creation of its own NumPy code.

The tutorial (WildML's "Recurrent Neural Networks Tutorial", code
dennybritz/rnn-tutorial-rnnlm): sentences wrapped in SENTENCE_START /
SENTENCE_END, vocabulary capped at 8,000 (the rest -> UNKNOWN_TOKEN), a tanh RNN
with H = 100, SGD lr 0.005 on the loss summed over the sentence, one sentence per
step, ``bptt_truncate`` 4. Its Reddit file is not available, so both run on PTB's
training sentences.

The peer is ``tutorial_peer.py``, the tutorial's algorithm re-created step for
step (one-hot input through U, one time step and one outer product at a time).
rnnlab runs the same function: an embedding E = U^T, W_ih = identity, zero biases,
W_hh = W, decoder = V. Both start from the same weights, take the same SGD steps
on the same sentences in the same process, and this script checks first that
both give the same gradients on a sentence (float64). Reported: ms per SGD step
for each and their ratio (target >= 100x), in float64 (the tutorial's precision)
and with rnnlab in float32.

    python benchmarks/tutorial_rnnlm.py --peer-sentences 100 --sentences 1500
"""
import argparse
import math
import os
import time

import numpy as np

import machine
import tutorial_peer as peer
from rnnlab import optim
from rnnlab.lm import corpus, generate, model as lm, vocab as vocab_mod
from rnnlab.optim import schedules

HERE = os.path.dirname(os.path.abspath(__file__))
PTB = os.environ.get("RNNLAB_PTB", os.path.join(HERE, "..", "..", "shared", "data", "ptb"))


SGD = optim.sgd()


def sgd_step(cfg, params, ids, lr, truncate):
    """One sentence: summed loss (as the tutorial) with truncated BPTT; rnnlab's
    SGD, in place (donated, as the trainer does), the embedding's touched rows only."""
    x, y = ids[:-1, None], ids[1:, None]                           # (T, 1)
    loss, _, cache = lm.loss_forward(cfg, params, x, y, None)
    grads = lm.backward(cfg, params, cache, bptt_truncate=truncate, sparse=True)
    params, _ = SGD.update(params, grads, SGD.init(params), lr * len(y), donate=True)
    return params, loss                                           # sum = T * mean


def as_rnnlab(p, dtype=np.float64):
    """The tutorial's U, V, W as rnnlab language-model parameters (same function)."""
    H, V = p["U"].shape
    cfg = lm.LMConfig(V, H, H, 1, "rnn", init_scale=0.1)
    params = {"encoder.weight": p["U"].T, "rnn.weight_ih_l0": np.eye(H),
              "rnn.weight_hh_l0": p["W"], "rnn.bias_ih_l0": np.zeros(H),
              "rnn.bias_hh_l0": np.zeros(H), "decoder.weight": p["V"],
              "decoder.bias": np.zeros(V)}
    return cfg, {k: np.array(v, dtype=dtype) for k, v in params.items()}


def same_gradients(p, ids):
    """Largest relative difference between the two libraries' gradients (float64)."""
    x, y = ids[:-1], ids[1:]
    dU, dV, dW = peer.bptt(p, x, y, 4)
    cfg, params = as_rnnlab(p)
    _, _, cache = lm.loss_forward(cfg, params, x[:, None], y[:, None], None)
    g = lm.backward(cfg, params, cache, bptt_truncate=4)
    T = len(y)
    pairs = [(g["encoder.weight"] * T, dU.T), (g["rnn.weight_hh_l0"] * T, dW),
             (g["decoder.weight"] * T, dV)]
    return max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in pairs)


def head_to_head(p0, sents, lr):
    """ms per SGD step: the tutorial's code, rnnlab float64, rnnlab float32."""
    p = {k: v.copy() for k, v in p0.items()}
    t0 = time.perf_counter()
    for ids in sents:
        peer.sgd_step(p, ids[:-1], ids[1:], lr, 4)
    times = {"tutorial (NumPy, float64)": (time.perf_counter() - t0) / len(sents)}
    for dtype in (np.float64, np.float32):
        machine.settle()
        cfg, params = as_rnnlab(p0, dtype)
        sgd_step(cfg, params, sents[0], lr, 4)                    # warm up (compile)
        cfg, params = as_rnnlab(p0, dtype)
        t0 = time.perf_counter()
        for ids in sents:
            sgd_step(cfg, params, ids, lr, 4)
        times[f"rnnlab ({np.dtype(dtype).name})"] = (time.perf_counter() - t0) / len(sents)
    return times


def mean_loss(cfg, params, sents):
    total = count = 0
    for ids in sents:
        loss, _, _ = lm.loss_forward(cfg, params, ids[:-1, None], ids[1:, None], None)
        total, count = total + loss * (len(ids) - 1), count + len(ids) - 1
    return total / count


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peer-sentences", type=int, default=100,
                   help="SGD steps timed for both libraries on the same sentences")
    p.add_argument("--sentences", type=int, default=1500,
                   help="SGD steps of rnnlab's own run afterwards (learning curve)")
    p.add_argument("--eval-every", type=int, default=500, help="steps between loss checks")
    p.add_argument("--eval-sentences", type=int, default=200, help="held-out sentences")
    a = p.parse_args(argv)
    print(machine.describe())
    path = os.path.join(PTB, "ptb.train.txt")
    if not os.path.exists(path):
        raise SystemExit(f"missing {path}: this benchmark needs shared/data/ptb (set RNNLAB_PTB)")
    sents = corpus.line_sentences(path, eos=vocab_mod.SENTENCE_END)
    # PTB already writes rare words as <unk>: that is the tutorial's UNKNOWN_TOKEN
    v = vocab_mod.build([t for s in sents for t in s], "word", max_size=8000,
                        unk=vocab_mod.UNK, eos=vocab_mod.SENTENCE_END,
                        bos=vocab_mod.SENTENCE_START)
    ids = [vocab_mod.encode(v, s) for s in sents]
    held, train_ids = ids[-a.eval_sentences:], ids[:-a.eval_sentences]
    p0 = peer.init(len(v), 100, np.random.default_rng(10))
    print(f"vocabulary {len(v)}, H 100, bptt_truncate 4, {len(train_ids)} training sentences")
    print(f"same gradients on sentence 0 (float64): largest relative difference "
          f"{same_gradients(p0, train_ids[0]):.1e}")
    times = head_to_head(p0, train_ids[:a.peer_sentences], 0.005)
    ref = times["tutorial (NumPy, float64)"]
    print(f"\nms per SGD step over the same {a.peer_sentences} sentences "
          f"(mean length {np.mean([len(s) for s in train_ids[:a.peer_sentences]]):.1f} tokens):")
    for name, t in times.items():
        print(f"  {name:<28} {t * 1e3:9.2f} ms   {ref / t:7.1f}x the tutorial")
    learning_curve(a, v, train_ids, held)


def learning_curve(a, v, train_ids, held):
    """rnnlab alone (float32) for --sentences steps: the held-out loss falls."""
    cfg = lm.LMConfig(len(v), 100, 100, 1, "rnn", init_scale=0.1)
    params = lm.init_params(cfg, np.random.default_rng(10))
    lr, plateau = 0.005, schedules.plateau_init(0.005)
    print(f"\nrnnlab run: initial held-out loss {mean_loss(cfg, params, held):.3f} "
          f"(ln 8000 = {math.log(8000):.3f})")
    step_time = 0.0
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
    for s in generate.sample(cfg, params, v, n=3, max_len=20, rng=0):
        print("  sample:", s)


if __name__ == "__main__":
    main()
