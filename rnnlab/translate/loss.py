"""The training loss of a batch, forward and backward.

    encode -> T decoder steps (teacher forcing, or the model's own argmax with
    probability 1 - teacher_forcing per step) -> logits (N, V) in one product
    -> cross-entropy over real target tokens (padding positions get no logits at
    all: the output layer, the model's largest product, runs on real rows only).

``forward`` returns the mean loss over real tokens, their count and a cache;
``backward`` returns the gradient of that mean for every parameter.
"""
from typing import NamedTuple

import numpy as np

from rnnlab import nn
from rnnlab.translate import decoder
from rnnlab.translate.data import PAD_ID
from rnnlab.translate.model import DecState, encode, encode_backward, out_weight


class LossCache(NamedTuple):
    enc: object            # model.EncCache
    mem: object            # model.Memory
    steps: list            # T decoder.StepCache
    y_in: np.ndarray       # (T, B) the decoder's input tokens
    o: np.ndarray          # (T, B, O) output features
    rows: np.ndarray       # (N,) flat (t, b) positions of the N real target tokens
    dlogits: np.ndarray    # (N, V) gradient of the mean loss


def forward(cfg, params, batch, training=False, rng=None, teacher_forcing=1.0, smoothing=0.0):
    """(mean loss over real target tokens, their count, LossCache)."""
    src, src_len, tgt = batch
    T, B = tgt.shape[0] - 1, tgt.shape[1]
    mem, state, enc = encode(cfg, params, src, src_len, training, rng)
    O, E = cfg.out_size, cfg.emb_size
    W, b = out_weight(cfg, params), params["out.bias"]
    o_all = np.empty((T, B, O), W.dtype)
    y_in = tgt[:-1].copy()                                             # (T, B)
    drop = (lambda shape: nn.dropout_mask(shape, cfg.dropout, rng, W.dtype)) if training \
        else (lambda shape: None)
    steps = []
    for t in range(T):
        if t > 0 and teacher_forcing < 1.0 and rng.random() >= teacher_forcing:
            y_in[t] = (o_all[t - 1] @ W.T + b).argmax(axis=1)         # the model's own guess
        o, state, _, c = decoder.step_forward(cfg, params, mem, y_in[t], state,
                                              drop((B, E)), drop((B, O)))
        o_all[t] = o
        steps.append(c)
    gold = tgt[1:].reshape(-1)
    rows = np.flatnonzero(gold != PAD_ID)                              # padding: no logits at all
    logits = nn.linear_forward(o_all.reshape(T * B, O)[rows], W, b)    # (N, V)
    loss, dlogits = nn.softmax_cross_entropy(logits, gold[rows], None, smoothing)
    return loss, len(rows), LossCache(enc, mem, steps, y_in, o_all, rows, dlogits)


def backward(cfg, params, cache):
    """Gradients of the mean loss, with the params' keys."""
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    T, B, O = cache.o.shape
    W = out_weight(cfg, params)
    d_real, dW, db = nn.linear_backward(cache.dlogits, cache.o.reshape(T * B, O)[cache.rows], W)
    do = np.zeros((T * B, O), W.dtype)
    do[cache.rows] = d_real
    do = do.reshape(T, B, O)
    grads["tgt_emb.weight" if cfg.tie_embeddings else "out.weight"] += dW
    grads["out.bias"] += db
    dmem = [np.zeros_like(cache.mem.keys),
            None if cache.mem.pk is None else np.zeros_like(cache.mem.pk)]
    h = cache.steps[0].prev[0]
    dstate = DecState(np.zeros_like(h))
    de = np.empty((T, B, cfg.emb_size), W.dtype)
    for t in reversed(range(T)):
        de[t], dstate = decoder.step_backward(cfg, params, cache.steps[t], do[t], dstate,
                                              grads, dmem)
    grads["tgt_emb.weight"] += nn.embedding_backward(de, cache.y_in, cfg.tgt_vocab)
    encode_backward(cfg, params, cache.enc, dmem[0], dmem[1], dstate, grads)
    return grads


def loss_and_grads(cfg, params, batch, training=False, rng=None, teacher_forcing=1.0,
                   smoothing=0.0):
    """(mean loss, real target tokens, grads) for one batch."""
    loss, count, cache = forward(cfg, params, batch, training, rng, teacher_forcing, smoothing)
    return loss, count, backward(cfg, params, cache)
