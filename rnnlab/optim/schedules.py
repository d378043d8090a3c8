"""Learning-rate schedules: plain functions of the epoch, or small state dicts.

``zaremba`` is Zaremba et al.'s fixed decay: lr0 for the first ``start`` epochs,
then multiplied by ``decay`` each epoch. ``plateau`` lowers the rate when the
validation metric stops improving; its state is a JSON-able dict so it rides in
the checkpoint and a resumed run decays exactly as an uninterrupted one.
"""
import math

from rnnlab.engine import validate

SCHEDULES = ("constant", "zaremba", "plateau")


def constant(lr0, epoch):
    return lr0


def zaremba(lr0, epoch, decay=0.5, start=4):
    """lr for 0-based ``epoch``: lr0 * decay ** max(0, epoch + 1 - start).

    With start=4: epochs 1-4 (1-based) at lr0, epoch 5 at lr0 * decay, ...
    """
    _check_rate(lr0, decay, "decay")
    for name, v in (("epoch", epoch), ("start", start)):
        validate.check_count(name, v)
    return lr0 * decay ** max(0, epoch + 1 - start)


def _check_rate(lr0, factor, name):
    """A schedule's start rate (finite, > 0) and its decay factor (in (0, 1]: 2 would
    raise the rate, -1 flip its sign)."""
    validate.check_number("lr0", lr0, lo=0, lo_open=True)
    validate.check_number(name, factor, lo=0, hi=1, lo_open=True)


def plateau_init(lr0):
    validate.check_number("lr0", lr0, lo=0, lo_open=True)
    return {"lr": float(lr0), "best": math.inf, "bad_epochs": 0}


def plateau_step(state, metric, factor=0.5, patience=0, min_lr=0.0, threshold=0.0):
    """Record one epoch's metric (lower is better); returns the new state.

    After more than ``patience`` epochs without beating ``best * (1 - threshold)``,
    lr is multiplied by ``factor`` (patience 0, factor 0.5: the tutorial's "halve
    the rate when the loss goes up").
    """
    _check_rate(state["lr"], factor, "factor")
    validate.check_count("patience", patience)
    validate.check_number("min_lr", min_lr, lo=0)
    validate.check_number("threshold", threshold, lo=0, hi=1, hi_open=True)
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
        if not isinstance(state, dict) or "lr" not in state:
            raise ValueError(f"schedule 'plateau' needs its state (plateau_init(lr0), then "
                             f"plateau_step each epoch), got {state!r}")
        return state["lr"]
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")
