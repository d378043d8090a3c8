"""The classic NumPy RNN tutorial's language model, re-created as the benchmark peer.

The well-known "Recurrent Neural Networks Tutorial" (WildML, 2015; its code is the
``RNNNumpy`` class of dennybritz/rnn-tutorial-rnnlm) trains a tanh RNN language
model in plain NumPy, one sentence per SGD step. This module re-creates its
algorithm step for step, so that rnnlab is measured against it in the same
process, on the same sentences, instead of against a number quoted from a blog:

    forward:  s_t = tanh(U[:, x_t] + W s_{t-1}),  o_t = softmax(V s_t)   one t at a time
    bptt:     for every t, the output error  delta_o = o_t - onehot(y_t);
              dV += outer(delta_o, s_t);  delta = V^T delta_o * (1 - s_t^2);
              then back through at most ``bptt_truncate`` earlier steps, one at a time:
              dW += outer(delta, s_{j-1});  dU[:, x_j] += delta;
              delta = W^T delta * (1 - s_{j-1}^2)
    sgd:      U -= lr dU;  V -= lr dV;  W -= lr dW   (gradient of the loss summed
              over the sentence)

Shapes: U (H, V), V (V, H), W (H, H); no biases; s_{-1} = 0.
"""
import numpy as np


def init(V, H, rng):
    """The tutorial's initialisation: U(-1/sqrt(n), 1/sqrt(n)) with n the fan-in."""
    return {"U": rng.uniform(-np.sqrt(1.0 / V), np.sqrt(1.0 / V), (H, V)),
            "V": rng.uniform(-np.sqrt(1.0 / H), np.sqrt(1.0 / H), (V, H)),
            "W": rng.uniform(-np.sqrt(1.0 / H), np.sqrt(1.0 / H), (H, H))}


def forward_propagation(p, x):
    T, H = len(x), p["W"].shape[0]
    s = np.zeros((T + 1, H))                                      # s[-1] is the zero state
    o = np.zeros((T, p["V"].shape[0]))
    for t in range(T):
        s[t] = np.tanh(p["U"][:, x[t]] + p["W"].dot(s[t - 1]))
        z = p["V"].dot(s[t])
        e = np.exp(z - z.max())
        o[t] = e / e.sum()
    return o, s


def loss(p, x, y):
    """Cross-entropy summed over the sentence (nats)."""
    o, _ = forward_propagation(p, x)
    return float(-np.log(o[np.arange(len(y)), y]).sum())


def bptt(p, x, y, bptt_truncate=4):
    """(dU, dV, dW) of the summed loss, the tutorial's nested loop."""
    T = len(y)
    o, s = forward_propagation(p, x)
    dU, dV, dW = np.zeros_like(p["U"]), np.zeros_like(p["V"]), np.zeros_like(p["W"])
    delta_o = o
    delta_o[np.arange(T), y] -= 1.0
    for t in range(T)[::-1]:
        dV += np.outer(delta_o[t], s[t])
        delta = p["V"].T.dot(delta_o[t]) * (1 - s[t] ** 2)
        for j in range(max(0, t - bptt_truncate), t + 1)[::-1]:
            dW += np.outer(delta, s[j - 1])
            dU[:, x[j]] += delta
            delta = p["W"].T.dot(delta) * (1 - s[j - 1] ** 2)
    return dU, dV, dW


def sgd_step(p, x, y, lr, bptt_truncate=4):
    dU, dV, dW = bptt(p, x, y, bptt_truncate)
    p["U"] -= lr * dU
    p["V"] -= lr * dV
    p["W"] -= lr * dW
    return p
