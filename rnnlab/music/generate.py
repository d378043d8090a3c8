"""Sampling new music from a trained frame model, frame by frame.

The recurrent state is advanced one frame at a time: frame t is drawn from the
output given the frames before it (Bernoulli: each note on with probability
s(logit / temperature); NADE: pitch by pitch, each with that tempered
probability), then fed back as the next input. A primer (a (P, 88) roll, e.g.
the first bars of a test piece) is fed through first, unchanged, and the
sample continues it.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from rnnlab import nn
from rnnlab.engine import layers
from rnnlab.music import model
from rnnlab.music.data import KEYS
from rnnlab.music.nade import nade_sample
from rnnlab.training.options import check, option

# What one call may ask for, bounded as ``rnnlab generate`` bounds its own (1,000
# samples, 10,000 tokens): the longest piece of the four data sets has 4,273 steps
# (MuseData), so 10,000 steps hold any whole piece with room to spare; each sample
# writes three PNGs, two WAVs and two MIDI files and puts two players on the page
# (about a second at the default length), so 100 samples are already a long page.
MAX_SAMPLES, MAX_LEN = 100, 10_000
MAX_TOTAL_STEPS = 20_000      # pieces x steps of one sample run, all told


@dataclass
class SampleOptions:
    """``rnnlab music sample``'s options; ``sample`` and ``report.sample_run`` apply
    the same checks to their arguments."""
    checkpoint: str = option("", "checkpoint file (.npz)", positional="required")
    out: Optional[str] = option(None, "output folder (not given: CHECKPOINT's "
                                "folder/samples)")
    num: int = option(2, "pieces to sample", lo=1, hi=MAX_SAMPLES, short="-n")
    length: int = option(64, "time steps per piece", lo=1, hi=MAX_LEN)
    temperature: float = option(1.0, "divide the logits by this (< 1: safer, > 1: wilder)",
                                lo=0, lo_open=True)
    primer: str = option("test", "test (the first steps of test piece K for sample K), a "
                         "MIDI file, or none")
    primer_steps: int = option(8, "time steps of the primer to keep", lo=1, hi=MAX_LEN)
    seed: int = option(0, "random seed", lo=0)

    def __post_init__(self):
        check(self)
        # each bound alone allows 100 pieces of 10,000 steps: about 45 GB of page,
        # MIDI and audio (one piece of 10,000 steps wrote about 450 MB)
        if self.num * self.length > MAX_TOTAL_STEPS:
            raise ValueError(f"-n {self.num} x --length {self.length}: expected at most "
                             f"{MAX_TOTAL_STEPS:,} steps in all (each step is written as "
                             "MIDI, a piano roll and audio), got "
                             f"{self.num * self.length:,}")


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
    SampleOptions(length=steps, temperature=temperature, seed=seed, num=num)   # the checks
    primer = np.zeros((0, KEYS), bool) if primer is None else np.asarray(primer, bool)
    check_primer(len(primer), steps)
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


def check_primer(primer_steps, length):
    """The primer must fit in the piece: a ValueError naming --length otherwise."""
    if primer_steps > length:
        raise ValueError(f"--length: expected at least the primer's {primer_steps} steps "
                         f"(or a smaller --primer-steps), got {length}")
