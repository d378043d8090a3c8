"""Sampling new music from a trained frame model, frame by frame.

The recurrent state is advanced one frame at a time: frame t is drawn from the
output given the frames before it (Bernoulli: each note on with probability
s(logit / temperature); NADE: pitch by pitch, each with that tempered
probability), then fed back as the next input. A primer (a (P, 88) roll, e.g.
the first bars of a test piece) is fed through first, unchanged, and the
sample continues it.
"""
import numpy as np

from rnnlab import nn
from rnnlab.engine import layers
from rnnlab.music import model
from rnnlab.music.data import KEYS
from rnnlab.music.nade import nade_sample


def _draw(mcfg, params, h, rng, temperature):
    """One frame (B, 88) bool from recurrent outputs h (B, H)."""
    b = nn.linear_forward(h, params["out.weight"], params["out.bias"])      # (B, 88)
    if mcfg.output == "bernoulli":
        return rng.random(b.shape) < nn.sigmoid(b / temperature)
    c = nn.linear_forward(h, params["nade.cond.weight"], params["nade.cond.bias"])
    return nade_sample(b, c, params["nade.W"], params["nade.V"], rng, temperature)


def sample(mcfg, params, steps, primer=None, temperature=1.0, seed=0, num=1):
    """``num`` pieces of ``steps`` frames each, (num, steps, 88) bool; the first
    P frames are the primer (P, 88) when one is given."""
    if temperature <= 0:
        raise ValueError(f"--temperature: expected a number > 0, got {temperature}")
    primer = np.zeros((0, KEYS), bool) if primer is None else np.asarray(primer, bool)
    if len(primer) > steps:
        raise ValueError(f"--length {steps} is shorter than the primer ({len(primer)} steps)")
    rng = np.random.default_rng(seed)
    dtype = params["out.weight"].dtype
    rnn, state = model.rnn_params(params), None
    prev = np.zeros((1, num, KEYS), dtype)                                  # (1, B, 88)
    out = np.zeros((num, steps, KEYS), bool)
    for t in range(steps):
        h, finals, _ = layers.forward(mcfg.rnn, rnn, prev, state)           # (1, B, H)
        state = finals[0] if len(finals) == 1 else finals
        frame = (np.broadcast_to(primer[t], (num, KEYS)) if t < len(primer)
                 else _draw(mcfg, params, h[0], rng, temperature))
        out[:, t] = frame
        prev = frame[None].astype(dtype)
    return out
