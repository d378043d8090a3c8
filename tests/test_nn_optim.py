"""The pieces around the recurrent stack: nn.* backwards against finite
differences in float64, and the optimisers against their update rules."""
import numpy as np
import pytest

from rnnlab import nn, optim
from rnnlab.lab.gradcheck import check_grads

RNG = np.random.default_rng(0)


def test_softmax_cross_entropy_gradient_with_weights():
    targets, weights = RNG.integers(0, 6, 7), np.array([1, 0, 2, 1, 1, 0.5, 1])

    def f(d):
        loss, dlogits = nn.softmax_cross_entropy(d["logits"], targets, weights)
        return loss, {"logits": dlogits}
    errs = check_grads(f, {"logits": RNG.standard_normal((7, 6)) * 3})
    assert max(errs.values()) < 1e-7


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    loss, d = nn.softmax_cross_entropy(np.array([[1000.0, 0.0], [0.0, -1000.0]]), np.array([0, 0]))
    assert np.isfinite(loss) and np.isfinite(d).all() and abs(loss) < 1e-12


@pytest.mark.parametrize("shape", [(5, 3), (4, 2, 3)])
def test_linear_backward_any_leading_axes(shape):
    w, b, dy = RNG.standard_normal((2, 3)), RNG.standard_normal(2), RNG.standard_normal(shape[:-1] + (2,))

    def f(d):
        y = nn.linear_forward(d["x"], d["w"], d["b"])
        dx, dw, db = nn.linear_backward(dy, d["x"], d["w"])
        return float((y * dy).sum()), {"x": dx, "w": dw, "b": db}
    errs = check_grads(f, {"x": RNG.standard_normal(shape), "w": w, "b": b})
    assert max(errs.values()) < 1e-7


def test_embedding_backward_adds_repeated_ids():
    ids = np.array([[1, 3], [1, 1]])
    dtable = nn.embedding_backward(np.ones((2, 2, 4)), ids, vocab_size=5)
    assert dtable[1].tolist() == [3.0] * 4 and dtable[3].tolist() == [1.0] * 4
    assert not dtable[[0, 2, 4]].any()


def test_sgd_momentum_and_adam_follow_their_rules():
    p, g = {"w": np.array([1.0, -2.0])}, {"w": np.array([0.5, 0.25])}
    opt = optim.sgd(momentum=0.9)
    s = opt.init(p)
    p1, s = opt.update(p, g, s, 0.1)
    p2, s = opt.update(p1, g, s, 0.1)
    assert np.allclose(p1["w"], p["w"] - 0.1 * g["w"])
    assert np.allclose(p2["w"], p1["w"] - 0.1 * (0.9 * g["w"] + g["w"]))
    adam = optim.adam()
    pa, _ = adam.update(p, g, adam.init(p), 0.01)
    assert np.allclose(pa["w"], p["w"] - 0.01 * np.sign(g["w"]), atol=1e-6)   # first step: lr * sign
    assert p["w"].tolist() == [1.0, -2.0]                                     # pure: inputs untouched


def test_clip_by_global_norm():
    g = {"a": np.array([3.0]), "b": np.array([4.0])}
    clipped, norm, was = optim.clip_by_global_norm(g, 1.0)
    assert norm == 5.0 and was and np.isclose(optim.global_norm(clipped), 1.0)
    same, _, was = optim.clip_by_global_norm(g, 10.0)
    assert same is g and not was


def test_unknown_optimizer_is_a_clear_error():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        optim.make("lbfgs")
