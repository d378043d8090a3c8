"""A small additive synthesiser: piano rolls to WAV with NumPy and ``wave``.

Every run of consecutive on-steps of a pitch is one note: a sum of four
harmonics (amplitudes 1, 1/2, 1/4, 1/8) at f = 440 * 2 ** ((pitch - 69) / 12)
under a piano-like envelope (5 ms attack, exponential decay, 30 ms release), so
chords sound as chords and no soundfont is needed. The mix is normalised to a
peak of 0.8 and written as 16-bit mono PCM.
"""
import wave

import numpy as np

from rnnlab.io.atomic import atomic_path
from rnnlab.music.data import LOWEST

RATE = 16000
HARMONICS = (1.0, 0.5, 0.25, 0.125)


def note_runs(roll):
    """(pitch, first step, end step) for every run of on-steps."""
    padded = np.zeros((roll.shape[0] + 2, roll.shape[1]), np.int8)
    padded[1:-1] = roll
    edges = np.diff(padded, axis=0)                               # (T+1, 88)
    runs = []
    for j in range(roll.shape[1]):
        starts, ends = np.flatnonzero(edges[:, j] > 0), np.flatnonzero(edges[:, j] < 0)
        runs.extend((j + LOWEST, int(s), int(e)) for s, e in zip(starts, ends))
    return runs


def _tone(pitch, n, rate):
    t = np.arange(n) / rate
    f = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    wave_ = sum(a * np.sin(2 * np.pi * f * (k + 1) * t) for k, a in enumerate(HARMONICS)
                if f * (k + 1) < rate / 2)                        # no aliasing
    env = np.minimum(t / 0.005, 1.0) * np.exp(-t * 2.5)
    release = np.clip((n / rate - t) / 0.03, 0.0, 1.0)           # fade out at the end
    return wave_ * env * release


def render(roll, step_seconds=0.25, rate=RATE):
    """Samples in [-0.8, 0.8] (float64) for a (T, 88) roll; silence stays silence."""
    roll = np.asarray(roll, bool)
    step = int(round(step_seconds * rate))
    out = np.zeros(roll.shape[0] * step + rate // 10)
    for pitch, s, e in note_runs(roll):
        n = (e - s) * step
        out[s * step:s * step + n] += _tone(pitch, n, rate)
    peak = np.abs(out).max()
    return out * (0.8 / peak) if peak > 0 else out


def write_wav(path, samples, rate=RATE):
    """16-bit mono PCM, written atomically."""
    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype("<i2")
    with atomic_path(path) as tmp:
        with wave.open(tmp, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm.tobytes())
    return path
