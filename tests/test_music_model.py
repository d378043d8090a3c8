"""Music models: sigmoid cross-entropy (torch, finite differences), the NADE
output (exact normalisation, finite differences), and the frame models'
gradients for every cell and output."""
import itertools

import numpy as np
import pytest

from rnnlab import nn
from rnnlab.lab.gradcheck import check_grads
from rnnlab.music import model
from rnnlab.music.nade import nade_backward, nade_forward, nade_sample


def _bce_case(seed=0, N=5, K=4):
    r = np.random.default_rng(seed)
    return 3 * r.standard_normal((N, K)), r.random((N, K)) < 0.4, r.random(N)


def test_sigmoid_cross_entropy_gradient_by_finite_differences():
    z, y, w = _bce_case()

    def f(i):
        loss, dz = nn.sigmoid_cross_entropy(i["z"], y, w)
        return loss, {"z": dz}
    errs = check_grads(f, {"z": z})
    assert errs["z"] < 1e-7


def test_sigmoid_cross_entropy_matches_torch_bce_with_logits():
    torch = pytest.importorskip("torch")
    z, y, w = _bce_case(1)
    loss, dz = nn.sigmoid_cross_entropy(z, y, w)
    tz = torch.tensor(z, requires_grad=True)
    per_row = torch.nn.BCEWithLogitsLoss(reduction="none")(tz, torch.tensor(y, dtype=torch.float64))
    tl = (per_row.sum(1) * torch.tensor(w)).sum() / w.sum()
    tl.backward()
    assert abs(loss - tl.item()) < 1e-12
    np.testing.assert_allclose(dz, tz.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_sigmoid_cross_entropy_is_finite_at_extreme_logits():
    z = np.array([[800.0, -800.0]])
    loss, dz = nn.sigmoid_cross_entropy(z, np.array([[False, True]]))
    assert loss == pytest.approx(1600.0) and np.allclose(dz, [[1.0, -1.0]])


def _nade_case(D=4, Hn=3, N=2, seed=0):
    r = np.random.default_rng(seed)
    return {"b": r.standard_normal((N, D)), "c": r.standard_normal((N, Hn)),
            "W": r.standard_normal((Hn, D)), "V": r.standard_normal((D, Hn))}


def test_nade_probabilities_sum_to_one_over_every_frame():
    p = _nade_case(D=4)
    frames = np.array(list(itertools.product([0, 1], repeat=4)), dtype=bool)   # (16, 4)
    b, c = np.repeat(p["b"][:1], 16, 0), np.repeat(p["c"][:1], 16, 0)
    nll, _ = nade_forward(b, c, p["W"], p["V"], frames)
    assert np.exp(-nll).sum() == pytest.approx(1.0, abs=1e-12)


def test_nade_backward_by_finite_differences():
    v = np.random.default_rng(3).random((2, 4)) < 0.5
    g = np.array([0.3, 1.7])

    def f(i):
        nll, cache = nade_forward(i["b"], i["c"], i["W"], i["V"], v)
        db, dc, dW, dV = nade_backward(cache, i["W"], i["V"], g)
        return float(nll @ g), {"b": db, "c": dc, "W": dW, "V": dV}
    errs = check_grads(f, _nade_case())
    assert max(errs.values()) < 1e-7, errs


def test_nade_greedy_pass_takes_each_conditional_at_one_half():
    p = _nade_case(D=5, N=3, seed=4)
    v = nade_sample(p["b"], p["c"], p["W"], p["V"], greedy=True)
    for i in range(5):                         # each decision is the threshold of its conditional
        nll_on, _ = nade_forward(p["b"][:, :i + 1], p["c"], p["W"][:, :i + 1], p["V"][:i + 1],
                                 np.concatenate([v[:, :i], np.ones((3, 1), bool)], 1))
        nll_prefix = (nade_forward(p["b"][:, :i], p["c"], p["W"][:, :i], p["V"][:i], v[:, :i])[0]
                      if i else 0.0)
        assert ((np.exp(nll_prefix - nll_on) >= 0.5) == v[:, i]).all()


def _rolls(seed=0):
    r = np.random.default_rng(seed)
    return [r.random((4, 88)) < 0.08, r.random((2, 88)) < 0.08, r.random((3, 88)) < 0.08]


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("output", ["bernoulli", "nade"])
def test_frame_model_gradients_by_finite_differences(mode, output):
    cfg = model.MusicConfig(mode=mode, hidden_size=2, output=output, nade_hidden=3)
    params = model.init_params(cfg, 1, np.float64)
    batch = model.make_batch(_rolls(), np.float64)
    keep = {k for k in params if not k.startswith("out.") or k == "out.bias"}   # elementwise: small

    def f(i):
        full = {**params, **i}
        loss, _, cache = model.loss_forward(cfg, full, batch)
        return loss, model.backward(cfg, full, cache)
    errs = check_grads(f, {k: params[k] for k in keep})
    assert max(errs.values()) < 1e-6, errs


@pytest.mark.parametrize("output", ["bernoulli", "nade"])
def test_output_dropout_gradients_by_finite_differences(output):
    cfg = model.MusicConfig(mode="lstm", hidden_size=3, output=output, nade_hidden=3)
    params = model.init_params(cfg, 2, np.float64)
    batch = model.make_batch(_rolls(), np.float64)
    drop = nn.dropout_mask((len(batch.rows), 3), 0.4, np.random.default_rng(0), np.float64)
    assert (drop == 0).any() and (drop > 1).any()                      # a real mask

    def f(i):
        full = {**params, **i}
        loss, _, cache = model.loss_forward(cfg, full, batch, drop)
        return loss, model.backward(cfg, full, cache)
    # the tensors the mask touches: the recurrence (through dh) and the output layers
    keep = [k for k in params if k.startswith("rnn.") or k.endswith("weight")]
    errs = check_grads(f, {k: params[k] for k in keep})
    assert max(errs.values()) < 1e-6, errs
    # a mask of ones is no dropout
    ones = model.loss_forward(cfg, params, batch, np.ones_like(drop))[0]
    assert ones == pytest.approx(model.loss_forward(cfg, params, batch)[0], rel=1e-12)


def test_padding_is_invisible_to_the_pooled_loss():
    cfg = model.MusicConfig(mode="gru", hidden_size=4)
    params = model.init_params(cfg, 0, np.float64)
    rolls = _rolls(2)
    together, n, _ = model.loss_forward(cfg, params, model.make_batch(rolls, np.float64))
    parts = [model.loss_forward(cfg, params, model.make_batch([r], np.float64))[:2] for r in rolls]
    assert n == 9 and together == pytest.approx(sum(l * k for l, k in parts) / n, rel=1e-12)


@pytest.mark.parametrize("output", ["bernoulli", "nade"])
def test_sampling_keeps_the_primer_and_repeats_with_the_seed(output):
    from rnnlab.music import generate
    cfg = model.MusicConfig(mode="lstm", hidden_size=3, output=output, nade_hidden=3)
    params = model.init_params(cfg, 0, np.float32)
    primer = _rolls(5)[0][:3]
    a = generate.sample(cfg, params, 6, primer, temperature=0.8, seed=1, num=2)
    b = generate.sample(cfg, params, 6, primer, temperature=0.8, seed=1, num=2)
    assert a.shape == (2, 6, 88) and (a == b).all() and (a[:, :3] == primer).all()
    with pytest.raises(ValueError, match="--temperature"):
        generate.sample(cfg, params, 6, temperature=-1.0)


def test_nade_matches_a_torch_autograd_twin():
    torch = pytest.importorskip("torch")
    p = _nade_case(D=6, Hn=4, N=3, seed=7)
    v = np.random.default_rng(8).random((3, 6)) < 0.5
    g = np.array([0.2, 0.5, 1.0])
    nll, cache = nade_forward(p["b"], p["c"], p["W"], p["V"], v)
    ours = dict(zip("bcWV", nade_backward(cache, p["W"], p["V"], g)))
    t = {k: torch.tensor(x, requires_grad=True) for k, x in p.items()}
    tv = torch.tensor(v, dtype=torch.float64)
    contrib = tv[:, :, None] * t["W"].T[None]                   # (N, D, Hn)
    a = t["c"][:, None, :] + torch.cumsum(contrib, 1) - contrib  # sum over j < i
    logits = t["b"] + (torch.sigmoid(a) * t["V"][None]).sum(-1)
    tnll = torch.nn.functional.binary_cross_entropy_with_logits(logits, tv, reduction="none").sum(1)
    (tnll * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(nll, tnll.detach().numpy(), rtol=1e-12)
    for k in "bcWV":
        np.testing.assert_allclose(ours[k], t[k].grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_whole_piece_shifted_by_one_frame_against_a_plain_loop(dtype):
    """The metric of issue 8, independently: one state carried through the whole
    piece (no truncation, no reset), the input at step t is frame t-1 (zeros at
    t = 0, so the first frame is predicted from the zero state and counted),
    NLL summed over the 88 notes; whichever implementation "auto" picks."""
    from rnnlab.music import train
    r = np.random.default_rng(3)
    rolls = [r.random((T, 88)) < 0.05 for T in (300, 7, 41)]
    cfg = model.MusicConfig(mode="rnn", hidden_size=5)
    params = model.init_params(cfg, 2, dtype)
    p = {k: v.astype(np.float64) for k, v in params.items()}
    want = []
    for roll in rolls:
        h, x, nll = np.zeros(5), np.zeros(88), []
        for v in roll:
            h = np.tanh(p["rnn.weight_ih_l0"] @ x + p["rnn.bias_ih_l0"]
                        + p["rnn.weight_hh_l0"] @ h + p["rnn.bias_hh_l0"])
            q = 1 / (1 + np.exp(-(p["out.weight"] @ h + p["out.bias"])))
            nll.append(-np.log(np.where(v, q, 1 - q)).sum())
            x = v.astype(np.float64)
        want.append(np.array(nll))
    got = train.piece_nlls(cfg, params, rolls, batch=2)
    tol = 1e-10 if dtype == np.float64 else 2e-5
    for g, w in zip(got, want):
        assert g.shape == w.shape and np.allclose(g, w, rtol=tol, atol=tol)
    pooled = np.concatenate(want).mean()
    assert train.evaluate(cfg, params, rolls, batch=2)["nll"] == pytest.approx(pooled, rel=tol)


def test_piece_nlls_pool_to_the_evaluated_nll_with_the_nade_output():
    from rnnlab.music import train
    cfg = model.MusicConfig(mode="gru", hidden_size=3, output="nade", nade_hidden=4)
    params = model.init_params(cfg, 0, np.float64)
    rolls = _rolls(4)
    per_piece = train.piece_nlls(cfg, params, rolls, batch=2)
    assert [len(x) for x in per_piece] == [len(r) for r in rolls]
    assert np.concatenate(per_piece).mean() == pytest.approx(
        train.evaluate(cfg, params, rolls, batch=3)["nll"], rel=1e-12)
