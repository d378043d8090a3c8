"""Figures for the music page: piano rolls and training curves (matplotlib, lazy).

Uses the lab's matplotlib loader and atomic PNG writer, so a missing
matplotlib is one clear error naming the ``plot`` extra.
"""
import numpy as np

from rnnlab.lab.plots import _plt, _save
from rnnlab.music.data import KEYS, LOWEST


def piano_roll(roll, path, title="", step_label="time step"):
    """A (T, 88) roll as a PNG: time left to right, pitch bottom to top."""
    plt = _plt()
    roll = np.asarray(roll, bool)
    used = np.flatnonzero(roll.any(axis=0))
    lo, hi = (used.min(), used.max()) if used.size else (0, KEYS - 1)
    lo, hi = max(lo - 2, 0), min(hi + 2, KEYS - 1)
    fig, ax = plt.subplots(figsize=(8, 2.6))
    ax.imshow(roll[:, lo:hi + 1].T, origin="lower", aspect="auto", cmap="Greys",
              interpolation="nearest", extent=(0, len(roll), lo + LOWEST - 0.5, hi + LOWEST + 0.5))
    ax.set_xlabel(step_label)
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def curves(history, path, title="training"):
    """Train and validation NLL per epoch, and validation frame accuracy."""
    plt = _plt()
    ep = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3))
    a.plot(ep, [r["train_loss"] for r in history], label="train (with weight noise)")
    a.plot(ep, [r["valid_nll"] for r in history], label="valid")
    a.set_xlabel("epoch")
    a.set_ylabel("NLL per time step (nats)")
    a.legend(fontsize=8)
    b.plot(ep, [r["valid_acc"] for r in history], color="tab:green")
    b.set_xlabel("epoch")
    b.set_ylabel("valid frame accuracy")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)
