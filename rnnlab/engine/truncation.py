"""Chunked truncated BPTT: a long stream in chunks of k steps.

A language model trained on one long text cannot backpropagate through all of
it. It cuts the stream into chunks of k steps, runs each chunk from the state
the previous one ended in (so the forward sees the whole past), and
backpropagates within the chunk only: the carried state is a constant, the
gradient stops at the chunk's edge (``.detach()`` in PyTorch).

This differs from per-term truncation (``layers.backward(bptt_truncate=k)``):
there every step's loss reaches back exactly k steps; here the loss at the end
of a chunk reaches back k steps and the one at its start reaches nothing.

Shapes: T time, B batch, I input, H hidden, L layers, D directions.
"""
from typing import NamedTuple

import numpy as np

from rnnlab.engine import backend as _backend, layers


def chunk_slices(T, k):
    """slice(0, k), slice(k, 2k), ... covering 0..T (the last may be shorter).

    >>> [(s.start, s.stop) for s in chunk_slices(7, 3)]
    [(0, 3), (3, 6), (6, 7)]
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"chunk length k must be a positive integer, got {k!r}")
    for start in range(0, T, k):
        yield slice(start, min(start + k, T))


class ChunkedResult(NamedTuple):
    loss: float        # summed over chunks
    grads: dict        # summed over chunks; params' keys
    state: tuple       # final states, each (L*D, B, H): carry into the next segment


def _time_axis(cfg, x):
    return 1 if cfg.batch_first and len(x.shape) == 3 else 0


def chunked_forward_backward(cfg, params, x, k, dloss_fn, hx=None, training=False, rng=None,
                             impl="auto"):
    """Run x in chunks of k steps, carrying the state, stopping the gradient.

    cfg, params: a layer's RNNConfig and params (a module's ``.config``,
    ``.params``). x: the stream, (T, B, I) (or (B, T, I) with batch_first).
    dloss_fn(output_chunk, sl) -> (loss, doutput_chunk): the loss of one
    chunk and its gradient; sl is the chunk's slice of time, to pick targets.
    hx: tuple of initial states (None = zeros). rng: seed or Generator for the
    dropout masks; one generator serves every chunk, so each draws new masks.
    impl: "auto" | "reference" | "fast" (``rnnlab.engine.dispatch``).
    """
    rng = np.random.default_rng(rng) if training else rng
    axis = _time_axis(cfg, x)
    index = [slice(None)] * len(x.shape)
    xp = _backend.namespace(x)
    grads = {n: _backend.zeros(xp, v.shape, v) for n, v in params.items()}
    total, state = 0.0, hx
    for sl in chunk_slices(x.shape[axis], k):
        index[axis] = sl
        out, state, cache = layers.forward(cfg, params, x[tuple(index)],
                                           None if state is None else layers.as_hx(state),
                                           training=training, rng=rng, impl=impl)
        loss, dout = dloss_fn(out, sl)
        # dh_n = None: the next chunk's gradient does not flow into this one
        _, _, g = layers.backward(cfg, params, cache, dout, impl=impl)
        for n in grads:
            grads[n] = grads[n] + g[n]
        total += float(loss)
    return ChunkedResult(total, grads, state)
