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
  message when training diverges;
- a step whose loss is finite but whose gradient is not (a float32 overflow in
  one backward, e.g. under weight noise) is skipped: no update, the weights and
  optimiser state stay as they were, and the epoch's record counts it as
  ``skipped_steps``; only ``skip_nonfinite`` such steps in a row are taken for
  a divergence.

A task is any object with:

    steps(epoch) -> int                        number of steps in that epoch
    loss_and_grads(params, epoch, i, rng) -> (loss, count, grads)
        the mean loss over the step's ``count`` items (tokens, frames, ...) and
        its gradient with the params' keys; ``rng`` for dropout or weight noise
    evaluate(params) -> dict of float          validation metrics, holding ``monitor``

and optionally ``carry``: a tuple of arrays the task keeps from step to step
(a language model's recurrent state, carried across truncated-BPTT chunks). The
trainer saves it in every checkpoint and sets it back on resume, so a run killed
mid-epoch continues from the same state. If ``loss_and_grads`` finds a
non-finite loss or gradient it may return ``grads=None`` (skipping the rest of
its backward): a non-finite loss is a divergence, reported before the update;
a finite loss with a non-finite gradient skips the update (see above).
``max_loss`` (optional): a loss above it counts as diverged too (for a language
model, far worse than a uniform guess).

Before the first step ``fit`` checks that the output folder can be written
(``check_out``; nothing is created until the first checkpoint, so a run that
fails to start leaves no empty folder behind) and removes the temporary files
of saves that a kill interrupted.
"""
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from rnnlab import optim
from rnnlab.engine import validate
from rnnlab.io import atomic, checkpoint, metrics
from rnnlab.io.progress import progress
from rnnlab.optim import schedules
from rnnlab.training.options import changed, check, flag, option


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
    epochs: int = option(10, "number of epochs", lo=1, hi=100_000)      # 1e20 ran on, lr at 0
    batch_size: int = option(32, "items per step", lo=1)
    max_steps: int = option(0, "cap on steps per epoch (0: whole epochs)", lo=0)
    early_stop: int = option(0, "stop after N epochs without a better --monitor (0: off)", lo=0)
    monitor: str = option("valid_loss", "validation metric for best.npz and early stopping")
    seed: int = option(0, "random seed; the same seed reproduces a run exactly", lo=0)
    out: str = option("runs/app", "output folder: last.npz, best.npz, metrics.jsonl")
    checkpoint_every: int = option(0, "steps between mid-epoch checkpoints (0: epoch ends)",
                                   lo=0)
    progress: bool = option(True, "show a progress bar on stderr")
    skip_nonfinite: int = option(5, "skip an update whose gradient is not finite (the loss "
                                 "being finite); stop as diverged after this many such "
                                 "steps in a row (0: stop at the first)", lo=0)

    def __post_init__(self):
        check(self)


# options that may change when a run is resumed; all others must match the checkpoint
RESUMABLE = ("epochs", "out", "checkpoint_every", "progress", "early_stop", "skip_nonfinite")


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
    skipped: int = 0                # this epoch's steps skipped for a non-finite gradient
    bad_in_row: int = 0             # consecutive skipped steps up to now
    plateau: Optional[dict] = None
    best: Optional[float] = None
    bad_epochs: int = 0
    history: Optional[list] = None
    finished: bool = False


def _meta(cfg, st, app_meta):
    return {"train_config": asdict(cfg), "app": app_meta, "rng": st.rng.bit_generator.state,
            "position": {"epoch": st.epoch, "step": st.step},
            "sums": {"loss": st.loss_sum, "count": st.count, "skipped": st.skipped,
                     "bad_in_row": st.bad_in_row}, "plateau": st.plateau,
            "best": st.best, "bad_epochs": st.bad_epochs, "history": st.history,
            "finished": st.finished}


def save(path, cfg, st, kind, app_meta, carry=None):
    checkpoint.save(path, st.params, st.opt_state, carry, _meta(cfg, st, app_meta), kind=kind)


_PLATEAU = ("a JSON object with lr > 0, best and bad_epochs",
            lambda v: isinstance(v, dict) and checkpoint.FINITE[1](v.get("lr"))
            and v["lr"] > 0 and checkpoint.NUMBER[1](v.get("best"))
            and checkpoint.NONNEG_INT[1](v.get("bad_epochs")))


def restore(ck, path):
    """A State from a loaded checkpoint; clear errors for missing or mistyped fields."""
    m, E = ck["meta"], checkpoint.expect
    rng = np.random.default_rng()
    try:
        rng.bit_generator.state = E(m, "rng", checkpoint.TABLE, path)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, checkpoint.CheckpointError):
            raise
        raise checkpoint.CheckpointError(
            f"{path}: checkpoint metadata 'rng' is not a random-generator state ({e})") from None
    history = E(m, "history", checkpoint.TABLES, path)
    epoch = E(m, "position.epoch", checkpoint.NONNEG_INT, path)
    plateau = m.get("plateau")
    if plateau is not None:
        E(m, "plateau", _PLATEAU, path)
    # skip counters: absent from checkpoints written before skipping existed
    skips = [E(m, f"sums.{k}", checkpoint.NONNEG_INT, path) if k in m.get("sums", {}) else 0
             for k in ("skipped", "bad_in_row")]
    st = State(ck["params"], ck["opt_state"], rng, epoch,
               E(m, "position.step", checkpoint.NONNEG_INT, path),
               float(E(m, "sums.loss", checkpoint.FINITE, path)),
               E(m, "sums.count", checkpoint.NONNEG_INT, path), *skips, plateau,
               E(m, "best", _BEST, path),
               E(m, "bad_epochs", checkpoint.NONNEG_INT, path), list(history),
               E(m, "finished", checkpoint.BOOL, path))
    _check_agrees(st, path)
    return st


# the best monitored value so far: null before the first epoch ends
_BEST = ("a finite number or null", lambda v: v is None or checkpoint.FINITE[1](v))


def _check_agrees(st, path):
    """The restored fields against each other: one history record per finished
    epoch (numbered 1..epoch), a best value once an epoch has ended, no more epochs
    without improvement than epochs, and sums that cover the steps taken in the
    epoch in progress (none at its step 0)."""
    numbers = [r.get("epoch") for r in st.history]
    after = f"after {st.epoch} finished epoch(s)"
    problems = (
        (len(st.history) != st.epoch,
         f"position.epoch is {st.epoch} but the history holds {len(st.history)} epoch(s)"),
        (numbers != list(range(1, st.epoch + 1)),
         f"the history's epochs are numbered {numbers[:8]}, expected 1..{st.epoch}"),
        ((st.best is None) != (st.epoch == 0),
         f"best is {'null' if st.best is None else st.best} {after}"),
        (st.bad_epochs > st.epoch, f"bad_epochs is {st.bad_epochs} {after}"),
        (st.skipped > st.step, f"sums.skipped is {st.skipped} at position.step {st.step}"),
        (st.step == 0 and bool(st.count or st.loss_sum),
         f"position.step is 0 but sums hold loss {st.loss_sum:g} over {st.count} item(s)"))
    why = next((w for bad, w in problems if bad), None)
    if why:
        raise checkpoint.CheckpointError(f"{path}: checkpoint metadata disagrees with "
                                         f"itself: {why}")


def check_opt_state(cfg, st, path):
    """The restored optimiser state is the one ``cfg``'s optimiser keeps for these
    weights (``init``'s names, each slot of its weight's shape and dtype) with a
    step count, an integer >= 0: a negative or fractional count skews Adam's bias
    correction, a slot of another dtype changes every later update."""
    want, got = make_optimizer(cfg).init(st.params), st.opt_state
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        which = [f"{w} {names[:4]}" for w, names in (("missing", missing),
                                                      ("unexpected", extra)) if names]
        raise checkpoint.CheckpointError(
            f"{path}: optimizer state does not match --optimizer {cfg.optimizer} over these "
            f"weights: {', '.join(which)}")
    for k, w in want.items():
        g = got[k]
        if k == "step":
            if g.shape != () or g.dtype.kind not in "iu" or int(g) < 0:
                shown = repr(g.tolist()) if g.size <= 4 else f"an array of shape {g.shape}"
                raise checkpoint.CheckpointError(
                    f"{path}: optimizer state 'step' should be an integer >= 0, found "
                    f"{shown} ({g.dtype})")
            st.opt_state[k] = np.asarray(int(g), np.int64)
        elif g.shape != w.shape or g.dtype != w.dtype:
            raise checkpoint.CheckpointError(
                f"{path}: optimizer state {k!r} is {g.dtype} {g.shape}; expected {w.dtype} "
                f"{w.shape}, as its weight")


def check_resumed_params(resume, shapes, dtype=None):
    """The weights of the checkpoint ``resume`` against the model its settings
    build: ``shapes`` ({name: shape}), all one float dtype (``dtype``, the run's
    --dtype, when given), finite; a CheckpointError naming the file otherwise."""
    path = resume["path"]
    try:
        found = validate.check_params(shapes, resume["params"], what="weights")
    except ValueError as e:
        raise checkpoint.CheckpointError(f"{path}: {e}") from None
    if dtype is not None and found != dtype:
        raise checkpoint.CheckpointError(f"{path}: weights are {found} but the checkpoint's "
                                         f"settings say --dtype {dtype}")


def _check_position(st, task, path, cfg):
    """A resumed position inside the epoch it names: at or past its end (data that
    shrank since the checkpoint was written, or an edited step) it would run that
    epoch for no step and record it as trained. (No checkpoint is written at an
    epoch's last step: the epoch's end moves the position to the next one.)"""
    if st.epoch >= cfg.epochs or st.step == 0:
        return
    n = task.steps(st.epoch)
    cap = bool(cfg.max_steps) and cfg.max_steps < n
    where = f"{path}: resumes at step {st.step} of epoch {st.epoch + 1}, but"
    if cap and st.step >= cfg.max_steps:
        raise checkpoint.CheckpointError(
            f"{where} --max-steps {cfg.max_steps} ends that epoch at step {cfg.max_steps}; "
            "its position.step was edited")
    if st.step >= n:
        raise checkpoint.CheckpointError(
            f"{where} that epoch has {n} steps on this data; resume on the data the "
            "checkpoint was trained on")


def resume_config(cls, meta, overrides, path):
    """The checkpoint's config with the allowed overrides; a clear error otherwise."""
    from rnnlab.training.options import from_mapping
    saved = checkpoint.expect(meta, "train_config", checkpoint.TABLE, path)
    resumable = getattr(cls, "RESUMABLE", RESUMABLE)
    clash = {k: (saved.get(k), v) for k, v in overrides.items()
             if k not in resumable and saved.get(k) != v}
    if clash:
        diff = ", ".join(f"--{k.replace('_', '-')}: checkpoint {a!r} vs given {b!r}"
                         for k, (a, b) in clash.items())
        raise ValueError(f"{path}: cannot resume with different settings ({diff}); "
                         "start a new run instead")
    return from_mapping(cls, {**saved, **overrides}, path)


def add_arguments(parser, cls, **kw):
    """A train command's flags: ``--config``, ``--resume`` (read by
    ``config_from_args``) and one flag per option of ``cls`` (``options.add_arguments``)."""
    from rnnlab.training.options import add_arguments as option_flags
    parser.add_argument("--config", help="TOML file with training options")
    parser.add_argument("--resume", help="checkpoint to continue from (e.g. OUT/last.npz)")
    option_flags(parser, cls, **kw)


def config_from_args(cls, args, kind):
    """(config, checkpoint or None) from parsed arguments: defaults < ``--config``
    TOML < command line; with ``--resume`` the checkpoint's settings, where only
    ``RESUMABLE`` options may differ."""
    from rnnlab.training.options import PARSER_KEYS, from_args, settings
    path = getattr(args, "resume", None)
    if path:
        ck = checkpoint.load(path, kind=kind)
        ck["path"] = path
        return resume_config(cls, ck["meta"], settings(args), path), ck
    # from_args names the --config file when a wrong or unknown key came from it
    return from_args(cls, args, drop=PARSER_KEYS), None


# options that one optimiser or schedule alone reads: (option, what reads it, which ones)
READ_BY = (("momentum", "optimizer", ("sgd",)), ("patience", "schedule", ("plateau",)),
           ("decay_start", "schedule", ("step", "zaremba")),
           ("lr_decay", "schedule", ("step", "zaremba", "plateau")))


def check_read(cfg):
    """Refuse an option set off its default that the chosen optimiser or schedule
    never reads (``--momentum`` with Adam, ``--patience`` without the plateau
    schedule): the run would ignore it silently."""
    for name, by, readers in READ_BY:
        chosen = getattr(cfg, by)
        if not changed(cfg, name) or chosen in readers:
            continue
        choices = cfg.__dataclass_fields__[by].metadata.get("choices") or readers
        which = " or ".join(r for r in readers if r in choices)
        raise ValueError(f"{flag(name)} {getattr(cfg, name):g}: read only with {flag(by)} "
                         f"{which}; with {flag(by)} {chosen} it would be ignored")


def make_optimizer(cfg):
    return optim.make(cfg.optimizer, **({"momentum": cfg.momentum} if cfg.optimizer == "sgd" else {}))


def learning_rate(cfg, st):
    if cfg.schedule == "plateau":
        return st.plateau["lr"]
    if cfg.schedule in ("step", "zaremba"):           # "zaremba": the LM's name for it
        return schedules.zaremba(cfg.lr, st.epoch, cfg.lr_decay, cfg.decay_start)
    return cfg.lr


OUTPUTS = ("last.npz", "best.npz", "metrics.jsonl")


def check_out(out):
    """Fail before training when the output folder cannot be written
    (``atomic.check_writable``: creates nothing, the first checkpoint makes the
    folder, so a run that fails to start leaves no empty folder); removes the
    temporary files that killed saves left in it."""
    atomic.check_writable("--out", out, folder=True)
    out = os.fspath(out)
    if os.path.isdir(out):
        for name in OUTPUTS:
            if os.path.isdir(os.path.join(out, name)):    # found only after an epoch before
                raise ValueError(f"--out {out}: {name} there is a folder; the run writes a "
                                 "file of that name")
            atomic.remove_stale(os.path.join(out, name))


def new_state(cfg, params, rng=None):
    rng = np.random.default_rng(cfg.seed) if rng is None else rng
    params = {k: np.array(v, copy=True) for k, v in params.items()}   # the steps write into
    return State(params, make_optimizer(cfg).init(params), rng,       # these: not the caller's
                 plateau=schedules.plateau_init(cfg.lr), history=[])


def _diverged(st, lr, what):
    return TrainingDiverged(f"training diverged at epoch {st.epoch + 1}, step {st.step + 1} "
                            f"({what}); lower --lr (now {lr:g}) or set --clip")


def _check_finite(st, lr):
    """Before any save: weights that overflowed are a divergence, never a checkpoint.
    (Between saves the next step's loss shows it; a sum is the cheap test.)"""
    with np.errstate(over="ignore", invalid="ignore"):
        bad = next((k for k, p in st.params.items() if not np.isfinite(p.sum())), None)
    if bad is not None:
        st.step -= 1                                    # name the step that did it
        raise _diverged(st, lr, f"the update made {bad} non-finite")


def _step(cfg, task, opt, st, lr, reduce_grads):
    # overflow is not an error here: a non-finite loss or norm is caught just below
    with np.errstate(over="ignore", invalid="ignore"):
        loss, count, grads = task.loss_and_grads(st.params, st.epoch, st.step, st.rng)
        if reduce_grads is not None:
            if grads is None:       # every rank must join the sum: NaN makes all of them skip
                grads = {k: np.full_like(v, np.nan) for k, v in st.params.items()}
            loss, count, grads = reduce_grads(loss, count, grads)
        if not math.isfinite(loss):
            raise _diverged(st, lr, f"loss {loss}")
        if loss > getattr(task, "max_loss", math.inf):
            raise _diverged(st, lr, f"loss {loss:.4g}, above {task.max_loss:.4g}, the "
                                    "bound for a model that is still learning")
        if grads is None:
            return _skip(cfg, st, lr, f"loss {loss:.4g}, gradients not finite")
        # donate: the step's gradients and the old params and state are no one
        # else's, so clipping and SGD write into them (the same numbers, no copies)
        grads, norm, _ = optim.clip_by_global_norm(grads, cfg.clip or None, donate=True)
        if not math.isfinite(norm):             # clipping cannot rescale an infinite norm
            return _skip(cfg, st, lr, f"loss {loss:.4g}, gradient norm {norm}")
        st.params, st.opt_state = opt.update(st.params, grads, st.opt_state, lr, donate=True)
    st.bad_in_row = 0
    st.loss_sum += loss * count
    st.count += count
    st.step += 1
    return loss


def _skip(cfg, st, lr, what):
    """A finite loss with a non-finite gradient: leave the weights, count the step,
    and call it a divergence only after ``skip_nonfinite`` of them in a row."""
    st.bad_in_row += 1
    if st.bad_in_row > cfg.skip_nonfinite:
        many = f", {st.bad_in_row} steps in a row" if st.bad_in_row > 1 else ""
        raise _diverged(st, lr, what + many)
    st.skipped += 1
    st.step += 1
    return math.nan                             # for the progress bar: no loss counted


def _epoch(cfg, task, opt, st, lr, kind, app_meta, reduce_grads, unit, writer=True):
    n = task.steps(st.epoch)
    n = min(n, cfg.max_steps) if cfg.max_steps else n
    t0, c0 = time.perf_counter(), st.count
    with progress(n, f"epoch {st.epoch + 1}", enabled=cfg.progress and writer,
                  initial=st.step) as bar:
        while st.step < n:
            loss = _step(cfg, task, opt, st, lr, reduce_grads)
            if cfg.checkpoint_every and st.step % cfg.checkpoint_every == 0 and st.step < n:
                _check_finite(st, lr)
                if writer:
                    save_last(cfg, st, kind, app_meta, getattr(task, "carry", None))
            rate = (st.count - c0) / max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.3g}", **{f"{unit}_s": f"{rate:.0f}"})
            bar.update(1)
    return (st.count - c0) / max(time.perf_counter() - t0, 1e-9)


def show_record(record):
    """The default epoch line: every metric of the record."""
    return " | ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                      for k, v in record.items())


def _end_epoch(cfg, task, st, lr, rate, unit, log, show):
    record = {"epoch": st.epoch + 1, "lr": lr, "train_loss": st.loss_sum / max(st.count, 1),
              f"{unit}_per_s": rate}
    if st.skipped:
        record["skipped_steps"] = st.skipped    # updates left out: non-finite gradient
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
    st.epoch, st.step, st.loss_sum, st.count, st.skipped = st.epoch + 1, 0, 0.0, 0, 0
    stop = bool(cfg.early_stop) and st.bad_epochs >= cfg.early_stop
    st.finished = st.epoch >= cfg.epochs or stop
    log(show(record) + (f"\nearly stop: no better {cfg.monitor} for {cfg.early_stop} epochs"
                 if stop else ""))
    return improved


def save_last(cfg, st, kind, app_meta, carry=None):
    """last.npz and metrics.jsonl, together, at every save (mid-epoch ones too).

    The metrics file is written and synced under its temporary name first and
    renamed right after the checkpoint, so whenever the process is killed the
    two agree (but for the microseconds between the two renames), also when a
    fresh run starts in a folder that holds an older run's files. A resumed run
    rewrites the file from the checkpoint's history at its start as well.
    """
    with atomic.atomic_path(os.path.join(cfg.out, "metrics.jsonl")) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(metrics.text(st.history))
        save(os.path.join(cfg.out, "last.npz"), cfg, st, kind, app_meta, carry)


def fit(cfg, task, params=None, *, kind, app_meta=None, resume=None, log=print,
        reduce_grads=None, unit="item", on_epoch=None, rng=None, show=show_record,
        writer=True):
    """Train ``params`` on ``task`` (or continue the checkpoint ``resume``).

    ``resume`` is a checkpoint loaded with ``checkpoint.load(path, kind)`` (with
    ``"path"`` added) whose config the caller already merged (``resume_config``).
    ``reduce_grads(loss, count, grads)`` combines a step's results across
    processes (data parallelism: ``rnnlab.dist.mpi.DataParallel.fit_hooks()``
    gives it, with ``writer`` False on every rank but rank 0, which alone logs
    and writes); ``on_epoch(state, record)`` runs after each
    epoch (samples, figures). ``rng``: the Generator the
    steps draw from (default: one seeded with ``cfg.seed``); ``show(record)``:
    the epoch's log line. Returns the final State; its ``history`` holds one
    record per epoch.
    """
    if resume is None:              # a resumed run keeps the settings it was started with
        check_read(cfg)
    if writer:
        check_out(cfg.out)
    else:
        log = lambda *a, **k: None                                 # noqa: E731
    if resume is not None:
        st = restore(resume, resume["path"])
        if hasattr(task, "carry"):
            try:
                task.carry = resume["state"]
            except ValueError as e:
                raise checkpoint.CheckpointError(f"{resume['path']}: {e}") from None
        check_opt_state(cfg, st, resume["path"])
        _check_position(st, task, resume["path"], cfg)
        log(f"resumed from {resume['path']} at epoch {st.epoch + 1}, step {st.step}")
    else:
        st = new_state(cfg, params, rng)
    st.finished = st.epoch >= cfg.epochs or (
        bool(cfg.early_stop) and st.bad_epochs >= cfg.early_stop)
    opt = make_optimizer(cfg)
    if writer and resume is not None and os.path.isdir(cfg.out):   # agree with the checkpoint
        metrics.write(os.path.join(cfg.out, "metrics.jsonl"), st.history)
    while not st.finished:
        lr = learning_rate(cfg, st)
        rate = _epoch(cfg, task, opt, st, lr, kind, app_meta, reduce_grads, unit, writer)
        _check_finite(st, lr)
        improved = _end_epoch(cfg, task, st, lr, rate, unit, log, show)
        carry = getattr(task, "carry", None)
        if writer and improved:
            save(os.path.join(cfg.out, "best.npz"), cfg, st, kind, app_meta, carry)
        if writer:
            save_last(cfg, st, kind, app_meta, carry)
        if on_epoch is not None:
            on_epoch(st, st.history[-1])
    return st
