"""The shared trainer: epochs of minibatch steps with every habit an application needs.

An application gives a **task** (its data and model, as plain functions) and a
config that subclasses ``TrainOptions``; ``fit`` does the rest, the same way for
music, translation, forecasting and captioning:

- optimiser (``rnnlab.optim``), gradient clipping by global norm, learning-rate
  schedule (constant, step decay after ``decay_start`` epochs, or on plateau);
- validation after every epoch, early stopping on any metric the task reports
  (``monitor``, lower or higher is better), ``best.npz`` and ``last.npz``;
- exact resume: weights, optimiser state, RNG state, the position inside the
  epoch, the schedule and the history are all in the checkpoint, and batch
  order is a function of (seed, epoch), so a run killed at any step and resumed
  ends with the same weights, bit for bit, as one that never stopped;
- ``OUT/metrics.jsonl`` rewritten from the checkpointed history (one row per
  finished epoch, whatever was killed when), the one progress bar, and a clear
  message when training diverges.

A task is any object with:

    steps(epoch) -> int                        number of steps in that epoch
    loss_and_grads(params, epoch, i, rng) -> (loss, count, grads)
        the mean loss over the step's ``count`` items (tokens, frames, ...) and
        its gradient with the params' keys; ``rng`` for dropout or weight noise
    evaluate(params) -> dict of float          validation metrics, holding ``monitor``
"""
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from rnnlab import optim
from rnnlab.io import checkpoint, metrics
from rnnlab.io.progress import progress
from rnnlab.optim import schedules
from rnnlab.training.options import check, option


@dataclass
class TrainOptions:
    """The training options every application shares (subclass to add your own)."""
    optimizer: str = option("adam", "optimiser", choices=tuple(sorted(optim.OPTIMIZERS)))
    lr: float = option(1e-3, "learning rate", lo=0, lo_open=True)
    momentum: float = option(0.0, "SGD momentum", lo=0, hi=1, hi_open=True)
    clip: float = option(5.0, "clip gradients to this global norm (0: off)", lo=0)
    schedule: str = option("constant", "learning-rate schedule: constant, step (decay each "
                           "epoch after --decay-start) or plateau (decay when --monitor "
                           "stops improving)", choices=("constant", "step", "plateau"))
    lr_decay: float = option(0.5, "decay factor of the step and plateau schedules",
                             lo=0, hi=1, lo_open=True)
    decay_start: int = option(4, "step schedule: epochs at the full rate", lo=0)
    patience: int = option(0, "plateau schedule: epochs without improvement before a decay",
                           lo=0)
    epochs: int = option(10, "number of epochs", lo=1)
    batch_size: int = option(32, "items per step", lo=1)
    max_steps: int = option(0, "cap on steps per epoch (0: whole epochs)", lo=0)
    early_stop: int = option(0, "stop after N epochs without a better --monitor (0: off)", lo=0)
    monitor: str = option("valid_loss", "validation metric for best.npz and early stopping")
    seed: int = option(0, "random seed; the same seed reproduces a run exactly", lo=0)
    out: str = option("runs/app", "output folder: last.npz, best.npz, metrics.jsonl")
    checkpoint_every: int = option(0, "steps between mid-epoch checkpoints (0: epoch ends)",
                                   lo=0)
    progress: bool = option(True, "show a progress bar on stderr")

    def __post_init__(self):
        check(self)


# options that may change when a run is resumed; all others must match the checkpoint
RESUMABLE = ("epochs", "out", "checkpoint_every", "progress", "early_stop")


class TrainingDiverged(ValueError):
    """The loss or the gradient became non-finite."""


def higher_is_better(metric):
    return any(metric.endswith(s) for s in ("bleu", "acc", "accuracy", "exact", "f1", "hit"))


@dataclass
class State:
    """Everything that changes during a run; all of it goes into the checkpoint."""
    params: dict
    opt_state: dict
    rng: np.random.Generator
    epoch: int = 0                  # 0-based epoch in progress
    step: int = 0                   # next step within it
    loss_sum: float = 0.0           # this epoch's summed training loss
    count: int = 0                  # and the items it covers
    plateau: Optional[dict] = None
    best: Optional[float] = None
    bad_epochs: int = 0
    history: Optional[list] = None
    finished: bool = False


def _meta(cfg, st, app_meta):
    return {"train_config": asdict(cfg), "app": app_meta, "rng": st.rng.bit_generator.state,
            "position": {"epoch": st.epoch, "step": st.step},
            "sums": {"loss": st.loss_sum, "count": st.count}, "plateau": st.plateau,
            "best": st.best, "bad_epochs": st.bad_epochs, "history": st.history,
            "finished": st.finished}


def save(path, cfg, st, kind, app_meta):
    checkpoint.save(path, st.params, st.opt_state, None, _meta(cfg, st, app_meta), kind=kind)


def restore(ck, path):
    """A State from a loaded checkpoint; clear errors for missing or mistyped fields."""
    m = ck["meta"]
    try:
        rng = np.random.default_rng()
        rng.bit_generator.state = m["rng"]
        pos, sums = m["position"], m["sums"]
        return State(ck["params"], ck["opt_state"], rng, int(pos["epoch"]), int(pos["step"]),
                     float(sums["loss"]), int(sums["count"]), m["plateau"], m["best"],
                     int(m["bad_epochs"]), list(m["history"]), bool(m["finished"]))
    except (KeyError, TypeError, ValueError) as e:
        raise checkpoint.CheckpointError(
            f"{path}: checkpoint metadata is incomplete or of the wrong type "
            f"({type(e).__name__}: {e})") from None


def resume_config(cls, meta, overrides, path):
    """The checkpoint's config with the allowed overrides; a clear error otherwise."""
    from rnnlab.training.options import from_mapping
    saved = meta.get("train_config")
    if not isinstance(saved, dict):
        raise checkpoint.CheckpointError(f"{path}: checkpoint has no train_config")
    clash = {k: (saved.get(k), v) for k, v in overrides.items()
             if k not in RESUMABLE and saved.get(k) != v}
    if clash:
        diff = ", ".join(f"--{k.replace('_', '-')}: checkpoint {a!r} vs given {b!r}"
                         for k, (a, b) in clash.items())
        raise ValueError(f"{path}: cannot resume with different settings ({diff}); "
                         "start a new run instead")
    return from_mapping(cls, {**saved, **overrides}, path)


def config_from_args(cls, args, kind):
    """(config, checkpoint or None) from parsed arguments: defaults < ``--config``
    TOML < command line; with ``--resume`` the checkpoint's settings, where only
    ``RESUMABLE`` options may differ."""
    from rnnlab.training.options import from_mapping, settings
    given = settings(args)
    path = getattr(args, "resume", None)
    if path:
        ck = checkpoint.load(path, kind=kind)
        ck["path"] = path
        return resume_config(cls, ck["meta"], given, path), ck
    return from_mapping(cls, given, "options"), None


def make_optimizer(cfg):
    return optim.make(cfg.optimizer, **({"momentum": cfg.momentum} if cfg.optimizer == "sgd" else {}))


def learning_rate(cfg, st):
    if cfg.schedule == "plateau":
        return st.plateau["lr"]
    if cfg.schedule == "step":
        return schedules.zaremba(cfg.lr, st.epoch, cfg.lr_decay, cfg.decay_start)
    return cfg.lr


def check_out(out):
    """Fail before training when the output folder cannot be written."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out}: exists and is not a folder")
    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, f".write-test-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise ValueError(f"--out {out}: cannot write there ({e.strerror or e})") from None


def new_state(cfg, params):
    return State(params, make_optimizer(cfg).init(params), np.random.default_rng(cfg.seed),
                 plateau=schedules.plateau_init(cfg.lr), history=[])


def _step(cfg, task, opt, st, lr, reduce_grads):
    # overflow is not an error here: a non-finite loss or norm is caught just below
    with np.errstate(over="ignore", invalid="ignore"):
        loss, count, grads = task.loss_and_grads(st.params, st.epoch, st.step, st.rng)
        if reduce_grads is not None:
            loss, count, grads = reduce_grads(loss, count, grads)
        grads, norm, _ = optim.clip_by_global_norm(grads, cfg.clip or None)
    if not (math.isfinite(loss) and math.isfinite(norm)):
        raise TrainingDiverged(
            f"training diverged at epoch {st.epoch + 1}, step {st.step + 1} (loss {loss}, "
            f"gradient norm {norm}); lower --lr (now {lr:g}) or set --clip")
    st.params, st.opt_state = opt.update(st.params, grads, st.opt_state, lr)
    st.loss_sum += loss * count
    st.count += count
    st.step += 1
    return loss


def _epoch(cfg, task, opt, st, lr, kind, app_meta, reduce_grads, unit):
    n = task.steps(st.epoch)
    n = min(n, cfg.max_steps) if cfg.max_steps else n
    bar = progress(n, f"epoch {st.epoch + 1}", enabled=cfg.progress, initial=st.step)
    t0, c0 = time.perf_counter(), st.count
    while st.step < n:
        loss = _step(cfg, task, opt, st, lr, reduce_grads)
        if cfg.checkpoint_every and st.step % cfg.checkpoint_every == 0 and st.step < n:
            save(os.path.join(cfg.out, "last.npz"), cfg, st, kind, app_meta)
        rate = (st.count - c0) / max(time.perf_counter() - t0, 1e-9)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.3g}", **{f"{unit}_s": f"{rate:.0f}"})
        bar.update(1)
    bar.close()
    return (st.count - c0) / max(time.perf_counter() - t0, 1e-9)


def _end_epoch(cfg, task, st, lr, rate, unit, log):
    record = {"epoch": st.epoch + 1, "lr": lr, "train_loss": st.loss_sum / max(st.count, 1),
              f"{unit}_per_s": rate}
    record.update(task.evaluate(st.params))
    if cfg.monitor not in record:
        raise ValueError(f"--monitor {cfg.monitor}: the task reports only {sorted(record)}")
    value = float(record[cfg.monitor])
    sign = -1.0 if higher_is_better(cfg.monitor) else 1.0
    if cfg.schedule == "plateau":
        st.plateau = schedules.plateau_step(st.plateau, sign * value, cfg.lr_decay, cfg.patience)
    improved = st.best is None or sign * value < sign * st.best
    st.best, st.bad_epochs = (value, 0) if improved else (st.best, st.bad_epochs + 1)
    st.history.append(record)
    st.epoch, st.step, st.loss_sum, st.count = st.epoch + 1, 0, 0.0, 0
    stop = bool(cfg.early_stop) and st.bad_epochs >= cfg.early_stop
    st.finished = st.epoch >= cfg.epochs or stop
    shown = " | ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                       for k, v in record.items())
    log(shown + (f"\nearly stop: no better {cfg.monitor} for {cfg.early_stop} epochs"
                 if stop else ""))
    return improved


def fit(cfg, task, params=None, *, kind, app_meta=None, resume=None, log=print,
        reduce_grads=None, unit="item", on_epoch=None):
    """Train ``params`` on ``task`` (or continue the checkpoint ``resume``).

    ``resume`` is a checkpoint loaded with ``checkpoint.load(path, kind)`` (with
    ``"path"`` added) whose config the caller already merged (``resume_config``).
    ``reduce_grads(loss, count, grads)`` combines a step's results across
    processes (data parallelism); ``on_epoch(state, record)`` runs after each
    epoch (samples, figures). Returns the final State; its ``history`` holds
    one record per epoch.
    """
    check_out(cfg.out)
    st = restore(resume, resume["path"]) if resume is not None else new_state(cfg, params)
    st.finished = st.epoch >= cfg.epochs or (
        bool(cfg.early_stop) and st.bad_epochs >= cfg.early_stop)
    opt = make_optimizer(cfg)
    mpath = os.path.join(cfg.out, "metrics.jsonl")
    metrics.write(mpath, st.history)                    # agree with the checkpoint
    while not st.finished:
        lr = learning_rate(cfg, st)
        rate = _epoch(cfg, task, opt, st, lr, kind, app_meta, reduce_grads, unit)
        improved = _end_epoch(cfg, task, st, lr, rate, unit, log)
        if improved:
            save(os.path.join(cfg.out, "best.npz"), cfg, st, kind, app_meta)
        save(os.path.join(cfg.out, "last.npz"), cfg, st, kind, app_meta)
        metrics.write(mpath, st.history)
        if on_epoch is not None:
            on_epoch(st, st.history[-1])
    return st
