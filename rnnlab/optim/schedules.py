"""Learning-rate schedules: plain functions of the epoch, or small state dicts.

``zaremba`` is Zaremba et al.'s fixed decay: lr0 for the first ``start`` epochs,
then multiplied by ``decay`` each epoch. ``plateau`` lowers the rate when the
validation metric stops improving; its state is a JSON-able dict so it rides in
the checkpoint and a resumed run decays exactly as an uninterrupted one.
"""
import math

SCHEDULES = ("constant", "zaremba", "plateau")


def constant(lr0, epoch):
    return lr0


def zaremba(lr0, epoch, decay=0.5, start=4):
    """lr for 0-based ``epoch``: lr0 * decay ** max(0, epoch + 1 - start).

    With start=4: epochs 1-4 (1-based) at lr0, epoch 5 at lr0 * decay, ...
    """
    return lr0 * decay ** max(0, epoch + 1 - start)


def plateau_init(lr0):
    return {"lr": float(lr0), "best": math.inf, "bad_epochs": 0}


def plateau_step(state, metric, factor=0.5, patience=0, min_lr=0.0, threshold=0.0):
    """Record one epoch's metric (lower is better); returns the new state.

    After more than ``patience`` epochs without beating ``best * (1 - threshold)``,
    lr is multiplied by ``factor`` (patience 0, factor 0.5: the tutorial's "halve
    the rate when the loss goes up").
    """
    st = dict(state)
    if metric < st["best"] * (1.0 - threshold):
        st["best"], st["bad_epochs"] = float(metric), 0
        return st
    st["bad_epochs"] += 1
    if st["bad_epochs"] > patience:
        st["lr"], st["bad_epochs"] = max(min_lr, st["lr"] * factor), 0
    return st


def lr_for_epoch(name, lr0, epoch, state=None, decay=0.5, start=4):
    """The rate to train 0-based ``epoch`` with, under schedule ``name``."""
    if name == "constant":
        return constant(lr0, epoch)
    if name == "zaremba":
        return zaremba(lr0, epoch, decay, start)
    if name == "plateau":
        return state["lr"]
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")
