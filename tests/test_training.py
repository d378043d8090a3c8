"""The shared trainer: exact resume, metrics that agree with the checkpoint,
early stopping, divergence, option checks."""
import io
import json
import os
from dataclasses import dataclass

import numpy as np
import pytest

from rnnlab import optim
from rnnlab.io import checkpoint, metrics
from rnnlab.io.progress import progress
from rnnlab.training import options, trainer


class Regression:
    """y = x w + noise, minibatches in a (seed, epoch)-shuffled order."""

    def __init__(self, seed=0, n=64, batch=8):
        r = np.random.default_rng(seed)
        self.x = r.standard_normal((n, 3))
        self.y = self.x @ np.array([1.0, -2.0, 0.5]) + 0.01 * r.standard_normal(n)
        self.batch, self.seed = batch, seed

    def steps(self, epoch):
        return len(self.x) // self.batch

    def loss_and_grads(self, params, epoch, i, rng):
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.x))
        idx = order[i * self.batch:(i + 1) * self.batch]
        noise = rng.standard_normal(3) * 1e-3                     # uses the trainer's RNG
        err = self.x[idx] @ (params["w"] + noise) - self.y[idx]
        return float(np.mean(err ** 2)), len(idx), {"w": 2 * self.x[idx].T @ err / len(idx)}

    def evaluate(self, params):
        return {"valid_loss": float(np.mean((self.x @ params["w"] - self.y) ** 2))}


def _cfg(tmp_path, **kw):
    base = dict(out=str(tmp_path / "run"), epochs=4, lr=0.05, progress=False, batch_size=8)
    base.update(kw)
    return trainer.TrainOptions(**base)


def _fit(cfg, resume=None, task=None):
    return trainer.fit(cfg, task or Regression(), {"w": np.zeros(3)}, kind="test",
                       resume=resume, log=lambda *a: None)


class Kill(Exception):
    pass


def _killed_at(cfg, task, at):
    """Train until step ``at`` = (epoch, i), both 0-based, is killed; the last
    checkpoint, loaded, with its path."""
    real = task.loss_and_grads

    def dying(params, epoch, i, rng):
        if (epoch, i) == at:
            raise Kill
        return real(params, epoch, i, rng)
    task.loss_and_grads = dying
    with pytest.raises(Kill):
        _fit(cfg, task=task)
    path = os.path.join(cfg.out, "last.npz")
    return {**checkpoint.load(path, kind="test"), "path": path}


def test_resume_after_a_kill_mid_epoch_is_bit_identical(tmp_path):
    whole = _fit(_cfg(tmp_path / "a"))
    cfg = _cfg(tmp_path / "b", checkpoint_every=2)
    ck = _killed_at(cfg, Regression(), (1, 4))                    # in epoch 2, step 5
    assert ck["meta"]["position"] == {"epoch": 1, "step": 4}     # saved at step 4 of epoch 2
    assert len(metrics.read(tmp_path / "b" / "run" / "metrics.jsonl")) == 1
    task2, steps_after = Regression(), []
    real2 = task2.loss_and_grads
    task2.loss_and_grads = lambda *a: steps_after.append(a[1:3]) or real2(*a)
    resumed = _fit(cfg, resume=ck, task=task2)
    assert steps_after[0] == (1, 4) and len(steps_after) == 4 * 8 - 12   # from the saved step
    np.testing.assert_array_equal(resumed.params["w"], whole.params["w"])
    rows = metrics.read(tmp_path / "b" / "run" / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert [r["valid_loss"] for r in rows] == [r["valid_loss"] for r in whole.history]



def test_resume_past_the_end_of_its_epoch_is_refused(tmp_path):
    """Data that shrank since the checkpoint: its step lies past the epoch's end,
    which would have run that epoch for no step and recorded it as trained."""
    cfg = _cfg(tmp_path, checkpoint_every=2)
    ck = _killed_at(cfg, Regression(), (1, 6))                    # saved at step 6 of epoch 2
    with pytest.raises(checkpoint.CheckpointError,
                       match=r"last.npz: resumes at step 6 of epoch 2, but that epoch has 4 "
                             r"steps on this data; resume on the data"):
        _fit(cfg, resume=ck, task=Regression(n=32))
    assert _fit(cfg, resume=ck, task=Regression()).epoch == 4     # the same data: resumes


def test_learns_and_keeps_best(tmp_path):
    st = _fit(_cfg(tmp_path, epochs=6))
    losses = [r["valid_loss"] for r in st.history]
    assert losses[-1] < 0.05 * losses[0]
    best = checkpoint.load(str(tmp_path / "run" / "best.npz"), kind="test")
    assert best["meta"]["best"] == min(losses)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_steps_write_in_place_never_into_the_callers_params(tmp_path, monkeypatch, optimizer):
    """The trainer donates its own copies to clipping and the optimiser: the
    caller's starting arrays stay as they were, and the run has the same bits
    as one that makes new arrays at every step."""
    start = {"w": np.zeros(3)}
    cfg = _cfg(tmp_path, clip=0.5, optimizer=optimizer)
    st = trainer.fit(cfg, Regression(), start, kind="test", log=lambda *a: None)
    np.testing.assert_array_equal(start["w"], np.zeros(3))
    clip, make = optim.clip_by_global_norm, trainer.make_optimizer

    def no_donation(c):
        o = make(c)
        return o._replace(update=lambda p, g, s, lr, donate: o.update(p, g, s, lr))
    monkeypatch.setattr(optim, "clip_by_global_norm", lambda g, m, donate: clip(g, m))
    monkeypatch.setattr(trainer, "make_optimizer", no_donation)
    kept = trainer.fit(_cfg(tmp_path / "b", clip=0.5, optimizer=optimizer), Regression(),
                       start, kind="test", log=lambda *a: None)
    np.testing.assert_array_equal(st.params["w"], kept.params["w"])
    assert [r["valid_loss"] for r in st.history] == [r["valid_loss"] for r in kept.history]


def test_early_stop_and_plateau(tmp_path):
    class Flat(Regression):
        def evaluate(self, params):
            return {"valid_loss": 1.0}
    st = _fit(_cfg(tmp_path, epochs=10, early_stop=2, schedule="plateau"), task=Flat())
    assert len(st.history) == 3                    # best at 1, two bad epochs, stop
    assert [r["lr"] for r in st.history] == [0.05, 0.05, 0.025]   # decays after a bad epoch


def test_divergence_names_the_fix(tmp_path):
    with pytest.raises(trainer.TrainingDiverged, match="lower --lr"):
        _fit(_cfg(tmp_path, lr=1e6, clip=0.0, optimizer="sgd"))


class Overflows(Regression):
    """Regression whose gradient is infinite (the loss finite) at the steps ``bad``."""

    def __init__(self, bad):
        super().__init__()
        self.bad, self.seen = bad, {}

    def loss_and_grads(self, params, epoch, i, rng):
        self.seen[epoch, i] = params["w"].copy()
        loss, count, grads = super().loss_and_grads(params, epoch, i, rng)
        if (epoch, i) in self.bad:
            grads = {"w": np.array([np.inf, 0.0, 0.0])}
        return loss, count, grads


def test_a_non_finite_gradient_skips_the_update_and_is_counted(tmp_path):
    task = Overflows({(1, 3), (1, 4)})
    st = _fit(_cfg(tmp_path / "a", checkpoint_every=3), task=task)
    w = task.seen
    assert not np.array_equal(w[1, 2], w[1, 3])                 # a normal update
    np.testing.assert_array_equal(w[1, 3], w[1, 4])             # no update after a skip
    np.testing.assert_array_equal(w[1, 4], w[1, 5])
    assert [r.get("skipped_steps", 0) for r in st.history] == [0, 2, 0, 0]
    rows = metrics.read(tmp_path / "a" / "run" / "metrics.jsonl")
    assert [r.get("skipped_steps", 0) for r in rows] == [0, 2, 0, 0]
    assert st.history[-1]["valid_loss"] < 0.5 * st.history[0]["valid_loss"]   # still learns
    ref = _fit(_cfg(tmp_path / "b", skip_nonfinite=1), task=Overflows({(1, 3)}))
    assert ref.history[1]["skipped_steps"] == 1


def test_non_finite_gradients_in_a_row_are_a_divergence(tmp_path):
    bad = {(0, i) for i in range(2, 8)}
    with pytest.raises(trainer.TrainingDiverged, match=r"epoch 1, step 5 .*gradient norm inf, "
                       r"3 steps in a row.*lower --lr"):
        _fit(_cfg(tmp_path, skip_nonfinite=2), task=Overflows(bad))
    with pytest.raises(trainer.TrainingDiverged, match=r"epoch 1, step 3 .*gradient norm inf\)"):
        _fit(_cfg(tmp_path, skip_nonfinite=0), task=Overflows(bad))


class NoGradients(Regression):
    """Hands back no gradients (its backward overflowed) at the steps ``bad``."""

    def __init__(self, bad):
        super().__init__()
        self.bad = bad

    def loss_and_grads(self, params, epoch, i, rng):
        loss, count, grads = super().loss_and_grads(params, epoch, i, rng)
        return loss, count, None if (epoch, i) in self.bad else grads


def test_a_rank_without_gradients_still_joins_the_reduction_and_all_skip(tmp_path):
    seen = []

    def reduce_grads(loss, count, grads):          # a one-rank stand-in for dp.reduce_grads
        seen.append(sorted(grads))
        return loss, count, grads
    st = trainer.fit(_cfg(tmp_path), NoGradients({(0, 2)}), {"w": np.zeros(3)}, kind="test",
                     reduce_grads=reduce_grads, log=lambda *a: None)
    assert seen and all(keys == ["w"] for keys in seen)
    assert [r.get("skipped_steps", 0) for r in st.history][:1] == [1]


def test_resume_across_skipped_steps_is_bit_identical(tmp_path):
    bad = {(0, 1), (1, 2), (1, 3)}
    whole = _fit(_cfg(tmp_path / "a"), task=Overflows(bad))
    cfg = _cfg(tmp_path / "b", checkpoint_every=4)
    ck = _killed_at(cfg, Overflows(bad), (1, 5))
    assert ck["meta"]["sums"]["skipped"] == 2 and ck["meta"]["sums"]["bad_in_row"] == 2
    resumed = _fit(cfg, resume=ck, task=Overflows(bad))
    np.testing.assert_array_equal(resumed.params["w"], whole.params["w"])
    assert [r.get("skipped_steps", 0) for r in resumed.history] == [1, 2, 0, 0]


@pytest.mark.parametrize("kw, words", [
    (dict(lr=-1.0), "--lr: expected a number > 0, got -1"),
    (dict(clip=-1.0), "--clip: expected a number >= 0"),
    (dict(lr_decay=float("nan")), "--lr-decay"),
    (dict(epochs=0), "--epochs: expected an integer >= 1"),
    (dict(max_steps=-3), "--max-steps"),
    (dict(optimizer="adamw"), "--optimizer: expected one of"),
    (dict(batch_size=2.5), "--batch-size: expected an integer"),
])
def test_options_are_checked_once_for_every_front_end(kw, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        trainer.TrainOptions(**kw)
    with pytest.raises(ValueError, match="run.toml"):
        options.from_mapping(trainer.TrainOptions, kw, "run.toml")


def test_out_that_is_a_file_fails_before_training(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        _fit(_cfg(tmp_path, out=str(tmp_path / "f")))


def test_resume_with_other_settings_is_refused(tmp_path):
    meta = {"train_config": {"lr": 0.1, "epochs": 2}}
    with pytest.raises(ValueError, match="--lr: checkpoint 0.1 vs given 0.2"):
        trainer.resume_config(trainer.TrainOptions, meta, {"lr": 0.2}, "x.npz")


def test_progress_line_shows_rate_and_loss():
    out = io.StringIO()
    bar = progress(4, "epoch 1", file=out, plain=True)
    bar.set_postfix(loss="0.500")
    for _ in range(4):
        bar.update(1)
    bar.close()
    line = out.getvalue().split("\r")[-3]                    # the last update, before the clearing
    assert line.startswith("epoch 1  4/4  ") and " step/s  loss=0.500" in line
    rate = float(line.split()[3])
    assert rate > 0


@pytest.mark.parametrize("plain", [True, False])
def test_progress_line_is_cleared_when_the_loop_raises(plain):
    """Used as a context manager, the bar (the built-in line, or tqdm's) is closed
    and its line cleared also when the loop raises, before anyone prints the error."""
    out = io.StringIO()
    with pytest.raises(ValueError, match="bad"):
        with progress(4, "epoch 1", file=out, plain=plain) as bar:
            bar.update(1)
            raise ValueError("bad")
    out.write("rnnlab train: error: bad")
    assert out.getvalue().split("\r")[-1] == "rnnlab train: error: bad"
    assert "epoch 1" in out.getvalue()
