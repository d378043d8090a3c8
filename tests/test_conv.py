"""Convolution, ReLU and pooling: finite differences in float64 and torch."""
import numpy as np
import pytest

from rnnlab.lab.gradcheck import check_grads
from rnnlab.nn import conv


def _conv_loss(stride, pad, up):
    def f(x):
        y, cache = conv.conv2d_forward(x["x"], x["w"], x["b"], stride, pad)
        dx, dw, db = conv.conv2d_backward(up, x["w"], cache)
        return float((y * up).sum()), {"x": dx, "w": dw, "b": db}
    return f


@pytest.mark.parametrize("stride, pad", [(1, 1), (2, 0), (2, 1)])
def test_conv_gradients_match_finite_differences(stride, pad):
    r = np.random.default_rng(0)
    x = {"x": r.standard_normal((2, 2, 5, 5)), "w": r.standard_normal((3, 2, 3, 3)),
         "b": r.standard_normal(3)}
    Ho = (5 + 2 * pad - 3) // stride + 1
    up = r.standard_normal((2, 3, Ho, Ho))
    errors = check_grads(_conv_loss(stride, pad, up), x)
    assert max(errors.values()) < 1e-8, errors


def _pool_loss(kind, up):
    fwd, bwd = {"max": (conv.maxpool_forward, conv.maxpool_backward),
                "avg": (conv.avgpool_forward, conv.avgpool_backward)}[kind]

    def f(x):
        y, cache = fwd(conv.relu_forward(x["x"]), 2)
        dy = bwd(up, cache)
        return float((y * up).sum()), {"x": conv.relu_backward(dy, conv.relu_forward(x["x"]))}
    return f


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_relu_and_pooling_gradients_match_finite_differences(kind):
    r = np.random.default_rng(1)
    x = {"x": r.standard_normal((2, 3, 4, 6))}                    # no ties, no exact zeros
    errors = check_grads(_pool_loss(kind, r.standard_normal((2, 3, 2, 3))), x)
    assert max(errors.values()) < 1e-8, errors


@pytest.mark.parametrize("stride, pad", [(1, 1), (2, 1)])
def test_against_torch(stride, pad):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    r = np.random.default_rng(2)
    x, w, b = r.standard_normal((2, 3, 8, 8)), r.standard_normal((4, 3, 3, 3)), r.standard_normal(4)
    y, cache = conv.conv2d_forward(x, w, b, stride, pad)
    h = conv.relu_forward(y)
    p, pc = conv.maxpool_forward(h, 2)
    a, ac = conv.avgpool_forward(p, 2)
    up = r.standard_normal(a.shape)
    dp = conv.maxpool_backward(conv.avgpool_backward(up, ac), pc)
    dx, dw, db = conv.conv2d_backward(conv.relu_backward(dp, h), w, cache)
    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (x, w, b))
    ta = F.avg_pool2d(F.max_pool2d(F.relu(F.conv2d(tx, tw, tb, stride, pad)), 2), 2)
    np.testing.assert_allclose(a, ta.detach().numpy(), rtol=1e-12, atol=1e-12)
    (ta * torch.tensor(up)).sum().backward()
    for mine, t in ((dx, tx), (dw, tw), (db, tb)):
        np.testing.assert_allclose(mine, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"expected images \(B, C, H, W\)"):
        conv.conv2d_forward(np.zeros((3, 8, 8)), np.zeros((2, 3, 3, 3)))
    with pytest.raises(ValueError, match="does not fit 3 input channels"):
        conv.conv2d_forward(np.zeros((1, 3, 8, 8)), np.zeros((2, 1, 3, 3)))
    with pytest.raises(ValueError, match="not a multiple of the window 2"):
        conv.maxpool_forward(np.zeros((1, 1, 5, 4)), 2)
