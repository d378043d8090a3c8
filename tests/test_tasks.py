"""Long-range tasks (issue 4): seeded generators, baselines, success criteria,
the model's hand-written backward, training records, sweep tables."""
import math

import numpy as np
import pytest

from rnnlab.lab import experiment, tasks


def _rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_generators_are_reproducible_by_seed(name):
    task = tasks.get_task(name)
    a, b = task.sample(_rng(3), 20, 5), task.sample(_rng(3), 20, 5)
    c = task.sample(_rng(4), 20, 5)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))
    assert a[0].dtype == np.float32 and a[0].shape[1:] == (5, task.input_size)


def test_adding_markers_and_target():
    x, y = tasks.adding(_rng(), 10, 200)
    marks = x[..., 1]
    assert np.all(marks.sum(0) == 2)
    assert np.all(marks[:5].sum(0) == 1) and np.all(marks[5:].sum(0) == 1)   # one per half
    np.testing.assert_allclose(y[:, 0], (x[..., 0] * marks).sum(0), rtol=1e-6)


def test_adding_baseline_is_mse_of_predicting_one():
    _, y = tasks.adding(_rng(), 50, 100_000)
    assert np.mean((y - 1.0) ** 2) == pytest.approx(tasks.TASKS["adding"].baseline(50), abs=3e-3)


def test_copy_layout_and_memoryless_baseline():
    T = 15
    x, y = tasks.copy_memory(_rng(), T, 4)
    ids = x.argmax(-1)
    assert x.shape == (T + 20, 4, 10)
    np.testing.assert_array_equal(y[T + 10:], ids[:10])             # recall the first 10
    assert np.all(ids[T + 9] == tasks.COPY_DELIM)
    assert np.all(y[:T + 10] == tasks.COPY_BLANK)
    # blanks with certainty, then uniform over 8 symbols: exactly 10 log 8 / (T + 20)
    p = np.zeros((T + 20, 9))
    p[:T + 10, tasks.COPY_BLANK] = 1.0
    p[T + 10:, :8] = 1.0 / 8
    ce = -np.mean(np.log(p[np.arange(T + 20)[:, None], y]))
    assert ce == pytest.approx(tasks.TASKS["copy"].baseline(T))
    assert tasks.TASKS["copy"].baseline(100) == pytest.approx(10 * math.log(8) / 120)


def test_temporal_order_positions_and_classes():
    T, B = 50, 400
    x, y = tasks.temporal_order(_rng(), T, B)
    ids = x.argmax(-1)
    for b in range(B):
        pos = np.nonzero(ids[:, b] >= 4)[0]
        rel = pos[(ids[pos, b] == 4) | (ids[pos, b] == 5)]
        assert len(rel) == 2 and 5 <= rel[0] < 10 and 25 <= rel[1] < 30
        assert y[b] == 2 * (ids[rel[0], b] - 4) + (ids[rel[1], b] - 4)
    assert set(np.unique(y)) == {0, 1, 2, 3}


def test_digits_pixel_by_pixel_and_permuted():
    pytest.importorskip("sklearn")
    x, y = tasks.digits(_rng(1), 64, 6)
    xp, yp = tasks.digits(_rng(1), 64, 6, permuted=True)
    assert x.shape == (64, 6, 1) and 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(y, yp)
    np.testing.assert_array_equal(xp[:, :, 0], x[tasks.PIXEL_ORDER, :, 0])
    assert 0.08 < tasks.TASKS["digits"].baseline(64) < 0.2


@pytest.mark.parametrize("name", ["adding", "copy", "temporal_order"])
def test_model_gradients_match_finite_differences(name):
    task = tasks.get_task(name)
    cfg = experiment.TrainConfig(task=name, cell="gru", length=10, hidden=3)
    rc = experiment.rnn_config(cfg, task)
    model = {k: v.astype(np.float64) for k, v in experiment.init_model(cfg, task, _rng()).items()}
    x, y = task.sample(_rng(1), 10, 2)
    x = x.astype(np.float64)
    y = y.astype(np.float64) if task.loss == "mse" else y
    _, grads, _ = experiment.loss_and_grads(task, rc, model, x, y)
    assert set(grads) == set(model)
    rng, eps = _rng(2), 1e-6
    for k in ("weight_hh_l0", "readout.weight", "bias_ih_l0"):
        v = rng.standard_normal(model[k].shape)
        plus = dict(model, **{k: model[k] + eps * v})
        minus = dict(model, **{k: model[k] - eps * v})
        num = (experiment.loss_and_grads(task, rc, plus, x, y, False)[0]
               - experiment.loss_and_grads(task, rc, minus, x, y, False)[0]) / (2 * eps)
        assert np.vdot(grads[k], v) == pytest.approx(num, rel=1e-5, abs=1e-9)


def test_training_learns_short_adding_and_records_everything():
    cfg = experiment.TrainConfig(task="adding", cell="lstm", length=8, steps=150, hidden=16,
                            lr=1e-2, clip=0.05, record_every=50, eval_batch=200)
    res, model = experiment.train(cfg, progress=None)
    assert res["score"] < 0.5 * res["baseline"]
    assert [s["step"] for s in res["gradflow"]] == [0, 50, 100, 150]
    assert len(res["losses"]) == len(res["grad_norms"]) == 150
    c = res["clip"]
    assert 0 < c["events"] <= 150 and c["fraction"] == c["events"] / 150
    assert c["mean_ratio"] > 1.0
    again, _ = experiment.train(cfg, progress=None)
    assert again["score"] == res["score"]                           # seeded end to end


def test_irnn_uses_relu_and_identity():
    cfg = experiment.TrainConfig(cell="irnn", hidden=4)
    task = tasks.get_task("adding")
    rc = experiment.rnn_config(cfg, task)
    assert rc.nonlinearity == "relu"
    np.testing.assert_array_equal(experiment.init_model(cfg, task, _rng())["weight_hh_l0"], np.eye(4))


@pytest.mark.parametrize("bad,match", [(dict(task="nope"), "--task: expected one of adding"),
                                       (dict(cell="lstmm"), "--cell: expected one of rnn"),
                                       (dict(length=0), "--length: expected an integer >= 1"),
                                       (dict(steps=-1), "--steps"),
                                       (dict(clip=-1.0), "--clip: expected a number > 0"),
                                       (dict(lr=float("nan")), "--lr: expected a number > 0"),
                                       (dict(record_every=-2), "--record-every"),
                                       (dict(forget_bias=float("inf")), "--forget-bias"),
                                       (dict(task="temporal_order", length=5), "length >= 10")])
def test_bad_config_is_a_clear_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        experiment.TrainConfig(**bad)


def test_divergence_is_reported_with_the_fix():
    cfg = experiment.TrainConfig(task="adding", cell="rnn", nonlinearity="relu", length=10,
                            steps=60, hidden=8, lr=1e9, clip=None, eval_batch=10,
                            record_every=0, optimizer="sgd")
    with pytest.raises(ValueError, match=r"training diverged at step \d+ .*lower --lr"):
        experiment.train(cfg, progress=None)


def test_sweep_table_and_success_by_length(tmp_path):
    base = experiment.TrainConfig(task="adding", steps=3, hidden=4, eval_batch=20, record_every=0)
    res = experiment.sweep(base, ["rnn", "gru"], [4, 6], [0, 1], progress=None)
    assert len(res) == 8
    experiment.write_table(res, tmp_path / "t.csv")
    experiment.write_table(res, tmp_path / "t.md")
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[0].startswith("task,cell,length") and len(lines) == 9
    assert (tmp_path / "t.md").read_text().count("| adding |") == 8
    frac = experiment.success_by_length(res)
    assert set(frac) == {"rnn", "gru"} and set(frac["gru"]) == {4, 6}
