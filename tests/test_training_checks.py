"""What the shared trainer and options gained for issue 14, for every application:
the output folder checked (and nothing created) before the first step, carried
state in the checkpoint, divergence caught before it reaches the weights or a
checkpoint, strict checkpoint metadata, the TOML file named in option errors."""
import argparse
import math
import os
from dataclasses import dataclass

import numpy as np
import pytest

from rnnlab.io import checkpoint, metrics
from rnnlab.training import options, trainer


class Counter:
    """A task whose carried state counts the steps since the epoch began."""

    def __init__(self, blow_up_at=None, max_loss=None):
        self.carry, self.calls, self.blow_up_at = (np.zeros(2),), [], blow_up_at
        if max_loss is not None:
            self.max_loss = max_loss

    def steps(self, epoch):
        return 5

    def loss_and_grads(self, params, epoch, i, rng):
        self.calls.append((epoch, i, float(self.carry[0][0])))
        self.carry = (np.zeros(2),) if i == 0 else self.carry
        self.carry = (self.carry[0] + 1,)
        loss = 1.0 / (1 + epoch + i)
        if self.blow_up_at == (epoch, i):
            return (math.nan, 1, None) if i % 2 else (1e9, 1, {"w": np.ones(2)})
        return loss, 1, {"w": 0.1 * np.ones(2)}

    def evaluate(self, params):
        return {"valid_loss": float(np.sum(params["w"] ** 2))}


def _cfg(tmp_path, **kw):
    return trainer.TrainOptions(**{**dict(out=str(tmp_path / "run"), epochs=2, progress=False,
                                          optimizer="sgd", lr=0.1, checkpoint_every=2), **kw})


def _fit(cfg, task, resume=None):
    return trainer.fit(cfg, task, {"w": np.ones(2)}, kind="test", resume=resume,
                       log=lambda *a: None)


def test_carried_state_is_checkpointed_and_restored(tmp_path):
    task = Counter()
    cfg = _cfg(tmp_path)
    st = _fit(cfg, task)
    assert len(st.history) == 2
    ck = checkpoint.load(str(tmp_path / "run" / "last.npz"), kind="test")
    np.testing.assert_array_equal(ck["state"][0], [5, 5])
    # a mid-epoch checkpoint: resume continues from the carried state
    mid = {**ck, "path": "x"}
    mid["meta"] = {**ck["meta"], "position": {"epoch": 1, "step": 2},
                   "history": ck["meta"]["history"][:1], "finished": False}
    mid["state"] = (np.full(2, 2.0),)
    task2 = Counter()
    _fit(_cfg(tmp_path, epochs=2), task2, resume=mid)
    assert task2.calls[0] == (1, 2, 2.0)                 # step 3 of epoch 2, carry 2


@pytest.mark.parametrize("at, words", [((0, 3), "loss nan"), ((1, 2), "above 100")])
def test_divergence_is_reported_by_the_trainer(tmp_path, at, words):
    with pytest.raises(trainer.TrainingDiverged, match=words) as e:
        _fit(_cfg(tmp_path), Counter(blow_up_at=at, max_loss=100))
    assert f"epoch {at[0] + 1}, step {at[1] + 1}" in str(e.value) and "lower --lr" in str(e.value)


def test_weights_that_overflow_never_reach_a_checkpoint(tmp_path):
    class Huge(Counter):
        def loss_and_grads(self, params, epoch, i, rng):
            return 1.0, 1, {"w": np.full(2, 1e10)}          # a finite gradient ...
    with pytest.raises(trainer.TrainingDiverged, match="made w non-finite"):
        _fit(_cfg(tmp_path, lr=1e300, clip=0.0), Huge())    # ... times a huge rate
    assert not (tmp_path / "run").exists()


def test_check_out_creates_nothing_and_names_the_problem(tmp_path):
    trainer.check_out(str(tmp_path / "a" / "b"))
    assert os.listdir(tmp_path) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        trainer.check_out(str(tmp_path / "f"))
    with pytest.raises(ValueError, match="is a file, so no folder"):
        trainer.check_out(str(tmp_path / "f" / "x"))
    with pytest.raises(ValueError, match="--out: expected a folder name"):
        trainer.check_out("")


def test_check_out_probes_writability(tmp_path, monkeypatch):
    import builtins
    real = builtins.open

    def deny(path, *a, **k):
        if ".rnnlab-write-test-" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *a, **k)
    monkeypatch.setattr(builtins, "open", deny)
    with pytest.raises(ValueError, match=r"cannot write there \(Permission denied\)"):
        trainer.check_out(str(tmp_path))
    with pytest.raises(ValueError, match="cannot write in"):
        trainer.check_out(str(tmp_path / "new"))


def test_a_failed_first_epoch_leaves_no_folder(tmp_path):
    class Bad(Counter):
        def evaluate(self, params):
            raise ValueError("the data is wrong")
    with pytest.raises(ValueError, match="data is wrong"):
        _fit(_cfg(tmp_path, checkpoint_every=0), Bad())
    assert not (tmp_path / "run").exists()


def test_metrics_are_written_with_every_last_checkpoint(tmp_path, monkeypatch):
    """A fresh run in a folder holding an older run: its first (mid-epoch) save of
    last.npz replaces the old metrics too, so the two never disagree."""
    out = tmp_path / "run"
    out.mkdir()
    metrics.write(out / "metrics.jsonl", [{"epoch": 1}, {"epoch": 2}, {"epoch": 3}])
    seen, real = [], trainer.save_last

    def spy(cfg, st, *a, **k):
        real(cfg, st, *a, **k)
        ck = checkpoint.load(str(out / "last.npz"), kind="test")
        seen.append((len(ck["meta"]["history"]), len(metrics.read(out / "metrics.jsonl"))))
    monkeypatch.setattr(trainer, "save_last", spy)
    _fit(_cfg(tmp_path), Counter())
    assert seen[0] == (0, 0) and all(a == b for a, b in seen) and seen[-1] == (2, 2)


@pytest.mark.parametrize("edit, words", [
    (lambda m: m.pop("history"), "no 'history'"),
    (lambda m: m.update(position={"epoch": 2, "step": -1}), "'position.step'"),
    (lambda m: m.update(position={"epoch": 5, "step": 0}), "disagrees with itself"),
    (lambda m: m.update(best="low"), "'best'"),
    (lambda m: m.update(finished="no"), "'finished'"),
    (lambda m: m.update(plateau={"lr": -1}), "'plateau'"),
    (lambda m: m.update(rng={"bit_generator": "MT19937"}), "random-generator state"),
])
def test_restore_checks_every_field(tmp_path, edit, words):
    _fit(_cfg(tmp_path), Counter())
    ck = checkpoint.load(str(tmp_path / "run" / "last.npz"), kind="test")
    edit(ck["meta"])
    with pytest.raises(checkpoint.CheckpointError, match=words):
        trainer.restore(ck, "x.npz")


def test_zaremba_is_the_step_schedule_and_resumable_is_per_config():
    cfg = trainer.TrainOptions(lr=1.0, decay_start=1, lr_decay=0.5)
    object.__setattr__(cfg, "schedule", "zaremba")
    st = trainer.State({}, {}, None, epoch=2)
    assert trainer.learning_rate(cfg, st) == 0.25

    @dataclass
    class Mine(trainer.TrainOptions):
        RESUMABLE = ("epochs", "lr")
    meta = {"train_config": {"lr": 0.1, "epochs": 2}}
    assert trainer.resume_config(Mine, meta, {"lr": 0.2}, "x.npz").lr == 0.2
    with pytest.raises(ValueError, match="--lr: checkpoint 0.1 vs given 0.2"):
        trainer.resume_config(trainer.TrainOptions, meta, {"lr": 0.2}, "x.npz")


def test_from_args_names_the_toml_file_only_for_its_own_values(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text("lr = -1.0\n")
    args = argparse.Namespace(config=str(toml), epochs=3)
    with pytest.raises(ValueError, match=f"--config {toml}: --lr: expected a number > 0"):
        options.from_args(trainer.TrainOptions, args)
    toml.write_text("lr = 0.5\n")
    with pytest.raises(ValueError, match="^--epochs: expected an integer >= 1 and <= 100000, got 0$"):
        options.from_args(trainer.TrainOptions, argparse.Namespace(config=str(toml), epochs=0))
    assert options.from_args(trainer.TrainOptions, args).lr == 0.5


def test_short_flags_and_required_positionals():
    @dataclass
    class Opts:
        path: str = options.option("", "a file", positional="required")
        count: int = options.option(3, "how many", lo=1, short="-n")

        def __post_init__(self):
            options.check(self)
    p = argparse.ArgumentParser(argument_default=argparse.SUPPRESS)
    options.add_arguments(p, Opts)
    assert vars(p.parse_args(["f.txt", "-n", "5"])) == {"path": "f.txt", "count": 5}
    with pytest.raises(SystemExit):
        p.parse_args([])


def test_redefault_keeps_the_declared_range_and_choices():
    @dataclass
    class Opts(trainer.TrainOptions):
        schedule: str = options.redefault(trainer.TrainOptions, "schedule", "plateau")
        patience: int = options.redefault(trainer.TrainOptions, "patience", 2)
    assert (Opts().schedule, Opts().patience) == ("plateau", 2)
    with pytest.raises(ValueError, match="--schedule"):
        Opts(schedule="cosine")
    with pytest.raises(ValueError, match="--patience"):
        Opts(patience=-1)
