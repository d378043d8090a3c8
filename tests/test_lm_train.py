"""Schedules, batching and reproducibility of training."""
import json

import numpy as np
import pytest

from rnnlab.optim import schedules
from rnnlab.lm import train


def test_zaremba_schedule_decays_after_start():
    lrs = [schedules.zaremba(1.0, e, 0.5, 4) for e in range(7)]
    assert lrs == [1, 1, 1, 1, 0.5, 0.25, 0.125]


def test_plateau_halves_when_loss_rises():
    st = schedules.plateau_init(0.1)
    for loss, lr in [(5.0, 0.1), (4.0, 0.1), (4.5, 0.05), (3.9, 0.05), (3.9, 0.025)]:
        st = schedules.plateau_step(st, loss, 0.5, 0)
        assert st["lr"] == pytest.approx(lr)
    json.dumps(st)                                         # rides in the checkpoint


def test_batchify_lays_streams_side_by_side():
    d = train.batchify(np.arange(10), 3)
    assert d.shape == (3, 3) and list(d[:, 1]) == [3, 4, 5]
    with pytest.raises(ValueError, match="too short for batch size 4"):
        train.batchify(np.arange(7), 4, "corpus x")


def _fit(tmp_path, name, **kw):
    text = tmp_path / "t.txt"
    if not text.exists():
        text.write_text("abcab cabba bcab " * 60)
    opts = dict(corpus=str(text), level="char", emb_size=4, hidden_size=6, num_layers=2,
                dropout=0.3, batch_size=3, bptt=6, epochs=2, samples=1, sample_len=5,
                progress=False, out=str(tmp_path / name))
    cfg = train.LMTrainConfig(**{**opts, **kw})
    return train.fit(cfg, log=lambda *a: None)


@pytest.mark.parametrize("opt", ["sgd", "adam", "rmsprop", "adagrad"])
def test_same_seed_same_run(tmp_path, opt):
    kw = dict(optimizer=opt, lr=0.01 if opt != "sgd" else 0.5, schedule="plateau")
    a, ha = _fit(tmp_path, "a", **kw)[4::2]
    b, hb = _fit(tmp_path, "b", **kw)[4::2]
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert [h["valid_loss"] for h in ha] == [h["valid_loss"] for h in hb]
    lines = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_row_sparse_embedding_gradient_trains_as_the_dense_one(tmp_path, monkeypatch, opt):
    """Alone, the trainer takes the embedding's touched rows (nn.RowGrad): the run
    must be the dense run up to float32 rounding of the clipping norm."""
    kw = dict(optimizer=opt, lr=0.5 if opt == "sgd" else 0.01, clip=0.1)
    seen, backward = [], train.lm.backward

    def spy(*a, sparse=False, **k):
        seen.append(sparse)
        return backward(*a, sparse=sparse, **k)
    monkeypatch.setattr(train.lm, "backward", spy)
    rows = _fit(tmp_path, "rows", **kw)[4]
    monkeypatch.setattr(train.lm, "backward", lambda *a, sparse=False, **k: backward(*a, **k))
    full = _fit(tmp_path, "dense", **kw)[4]
    assert seen and all(seen)
    for k in full.params:
        np.testing.assert_allclose(rows.params[k], full.params[k], rtol=2e-5, atol=2e-6)


def test_early_stop_after_no_improvement(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "evaluate", lambda *a: 1.0)      # validation never improves
    r = _fit(tmp_path, "e", early_stop=2, epochs=9)
    run, hist = r.state, r.history
    assert run.finished and len(hist) == 3


def test_lm_resumable_options_extend_the_trainers():
    from rnnlab.training import trainer
    assert set(trainer.RESUMABLE) <= set(train.LMTrainConfig.RESUMABLE)
