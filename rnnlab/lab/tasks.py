"""Long-range benchmark tasks: seeded data, baselines and success criteria.

Each task has a seeded generator ``sample(rng, T, B) -> x (T, B, I), y``, the
score of a trivial predictor (``baseline``) and a success criterion:

- ``adding`` (Hochreiter & Schmidhuber 1997; the form of Le, Jaitly & Hinton
  2015): two channels, values U(0, 1) and a marker that is 1 at one step in each
  half; target the sum of the two marked values. Always predicting 1 scores MSE
  Var(u1 + u2) = 1/6 ~ 0.167. Success: test MSE < 0.01.
- ``copy`` (Arjovsky, Shah & Bengio 2016): 10 symbols from 8, then T-1 blanks, a
  delimiter and 10 blanks; the model must output blanks and then the 10 symbols.
  Length T + 20. The memoryless baseline (blanks, then a uniform guess over 8)
  has cross-entropy 10 log 8 / (T + 20). Success: CE < half of that.
- ``temporal_order`` (Hochreiter & Schmidhuber 1997 exp. 6a; Pascanu et al.
  2013): distractors a-d between start and end symbols; X or Y at one step in
  [0.1T, 0.2T) and one in [0.5T, 0.6T); 4 classes (XX, XY, YX, YY). Chance
  accuracy 0.25. Success: accuracy >= 0.99 (Pascanu et al.: error < 1%).
- ``digits`` / ``permuted_digits``: the 8x8 digits of scikit-learn fed pixel by
  pixel (T = 64, one channel; the permuted variant shuffles pixel order with a
  fixed permutation). Baseline: the majority class. Success: accuracy >= 0.9.

Training a model on them: ``rnnlab.lab.experiment``. Shapes: T time, B batch,
I input, V classes.
"""
import math
from typing import Callable, NamedTuple, Optional

import numpy as np


class Task(NamedTuple):
    name: str
    input_size: int
    output_size: int
    readout: str                  # "last" | "every"
    loss: str                     # "mse" | "ce"
    metric: str                   # "mse" | "ce" | "accuracy"
    sample: Callable              # (rng, T, B, split) -> x (T', B, I) float32, y
    baseline: Callable            # T -> score of the trivial predictor
    success: Callable             # (score, T) -> bool
    fixed_length: Optional[int] = None


# ---------------------------------------------------------------- generators

def adding(rng, T, B, split="train"):
    """x (T, B, 2) [value, marker]; y (B, 1) the sum of the two marked values."""
    values = rng.uniform(0.0, 1.0, size=(T, B))
    marks = np.zeros((T, B))
    marks[rng.integers(0, T // 2, size=B), np.arange(B)] = 1.0      # one in each half
    marks[rng.integers(T // 2, T, size=B), np.arange(B)] = 1.0
    x = np.stack([values, marks], axis=-1).astype(np.float32)     # (T, B, 2)
    return x, (values * marks).sum(axis=0)[:, None].astype(np.float32)


COPY_SYMBOLS, COPY_BLANK, COPY_DELIM = 8, 8, 9


def copy_memory(rng, T, B, split="train"):
    """x (T+20, B, 10) one-hot; y (T+20, B) int targets in 0..8 (8 = blank)."""
    data = rng.integers(0, COPY_SYMBOLS, size=(10, B))
    ids = np.full((T + 20, B), COPY_BLANK)
    ids[:10] = data
    ids[T + 9] = COPY_DELIM                                       # "now recall"
    y = np.full((T + 20, B), COPY_BLANK)
    y[T + 10:] = data
    return np.eye(10, dtype=np.float32)[ids], y


def temporal_order(rng, T, B, split="train"):
    """x (T, B, 8) one-hot over [a, b, c, d, X, Y, start, end]; y (B,) in 0..3."""
    ids = rng.integers(0, 4, size=(T, B))
    ids[0], ids[-1] = 6, 7
    t1 = rng.integers(int(0.1 * T), max(int(0.2 * T), int(0.1 * T) + 1), size=B)
    t2 = rng.integers(int(0.5 * T), max(int(0.6 * T), int(0.5 * T) + 1), size=B)
    s1, s2 = rng.integers(0, 2, size=B), rng.integers(0, 2, size=B)   # 0 = X, 1 = Y
    ids[t1, np.arange(B)], ids[t2, np.arange(B)] = 4 + s1, 4 + s2
    return np.eye(8, dtype=np.float32)[ids], 2 * s1 + s2


_DIGITS = {}


def _digits_split(split):
    """Fixed 80/20 train/test split of sklearn's 1797 digits: (pixels (N, 64), labels)."""
    if not _DIGITS:
        try:
            from sklearn.datasets import load_digits
        except ImportError as e:
            raise ValueError("the digits tasks need scikit-learn: pip install scikit-learn") from e
        d = load_digits()
        order = np.random.default_rng(0).permutation(len(d.target))
        n = int(0.8 * len(order))
        pix = (d.data / 16.0).astype(np.float32)
        _DIGITS["train"] = (pix[order[:n]], d.target[order[:n]])
        _DIGITS["test"] = (pix[order[n:]], d.target[order[n:]])
    return _DIGITS[split]


PIXEL_ORDER = np.random.default_rng(1234).permutation(64)       # the permuted variant's order


def digits(rng, T, B, split="train", permuted=False):
    """x (64, B, 1) pixels in [0, 1]; y (B,) labels. split 'test' with B=None: all."""
    pix, lab = _digits_split(split)
    idx = np.arange(len(lab)) if B is None else rng.integers(0, len(lab), size=B)
    x = pix[idx][:, PIXEL_ORDER] if permuted else pix[idx]        # (B, 64)
    return x.T[:, :, None], lab[idx]                              # (64, B, 1)


def _majority():
    lab = _digits_split("test")[1]
    return float(np.bincount(lab).max() / len(lab))


TASKS = {
    "adding": Task("adding", 2, 1, "last", "mse", "mse", adding,
                   lambda T: 1.0 / 6.0, lambda s, T: s < 0.01),
    "copy": Task("copy", 10, 9, "every", "ce", "ce", copy_memory,
                 lambda T: 10 * math.log(8) / (T + 20),
                 lambda s, T: s < 0.5 * 10 * math.log(8) / (T + 20)),
    "temporal_order": Task("temporal_order", 8, 4, "last", "ce", "accuracy", temporal_order,
                           lambda T: 0.25, lambda s, T: s >= 0.99),
    "digits": Task("digits", 1, 10, "last", "ce", "accuracy", digits,
                   lambda T: _majority(), lambda s, T: s >= 0.9, 64),
    "permuted_digits": Task("permuted_digits", 1, 10, "last", "ce", "accuracy",
                            lambda r, T, B, split="train": digits(r, T, B, split, True),
                            lambda T: _majority(), lambda s, T: s >= 0.9, 64),
}


def get_task(name):
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")
    return TASKS[name]
