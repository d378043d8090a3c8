"""Figures for the music page: piano rolls and training curves (matplotlib, lazy).

Uses the lab's matplotlib loader and atomic PNG writer, so a missing
matplotlib is one clear error naming the ``plot`` extra.
"""
import numpy as np

from rnnlab.io.figures import pyplot as _plt, save_png as _save
from rnnlab.music.data import KEYS, LOWEST


def _pitch_range(rolls):
    used = np.flatnonzero(np.any([np.asarray(r, bool).any(axis=0) for r in rolls], axis=0))
    lo, hi = (used.min(), used.max()) if used.size else (0, KEYS - 1)
    return max(lo - 2, 0), min(hi + 2, KEYS - 1)


def _draw_roll(ax, roll, lo, hi, title, step_label):
    ax.imshow(np.asarray(roll, bool)[:, lo:hi + 1].T, origin="lower", aspect="auto",
              cmap="Greys", interpolation="nearest",
              extent=(0, len(roll), lo + LOWEST - 0.5, hi + LOWEST + 0.5))
    ax.set_xlabel(step_label)
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title, fontsize=10)


def piano_roll(roll, path, title="", step_label="time step"):
    """A (T, 88) roll as a PNG: time left to right, pitch bottom to top."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 2.6))
    _draw_roll(ax, roll, *_pitch_range([roll]), title, step_label)
    return _save(fig, path)


def real_vs_generated(real, generated, path, primer_steps=0, titles=("real", "generated"),
                      step_label="time step"):
    """Two rolls stacked on one pitch axis; a dashed line where the primer ends."""
    plt = _plt()
    lo, hi = _pitch_range([real, generated])
    fig, axes = plt.subplots(2, 1, figsize=(10, 4.6), sharex=True)
    for ax, roll, title in zip(axes, (real, generated), titles):
        _draw_roll(ax, roll, lo, hi, title, step_label)
    if primer_steps:
        axes[1].axvline(primer_steps, color="tab:red", linestyle="--", linewidth=1)
        axes[1].text(primer_steps + 0.3, 0.03, "primer | sampled", color="tab:red", fontsize=8,
                     va="bottom", transform=axes[1].get_xaxis_transform(),
                     bbox=dict(facecolor="white", edgecolor="none", pad=1))
    return _save(fig, path)


def curves(history, path, title="training", train_label="train"):
    """Train and validation NLL per epoch, and validation frame accuracy."""
    plt = _plt()
    ep = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3))
    a.plot(ep, [r["train_loss"] for r in history], label=train_label)
    a.plot(ep, [r["valid_nll"] for r in history], label="valid")
    a.set_xlabel("epoch")
    a.set_ylabel("NLL per time step (nats)")
    a.legend(fontsize=8)
    b.plot(ep, [r["valid_acc"] for r in history], color="tab:green")
    b.set_xlabel("epoch")
    b.set_ylabel("valid frame accuracy")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)
