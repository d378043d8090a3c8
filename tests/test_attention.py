"""Attention: finite differences in float64, torch autograd, masking."""
import numpy as np
import pytest

from rnnlab.lab.gradcheck import check_grads
from rnnlab.nn import attention

B, S, Hq, Hk, A = 3, 5, 4, 6, 7


def _case(kind, seed=0):
    r = np.random.default_rng(seed)
    Hq_ = Hk if kind == "dot" else Hq
    p = attention.init_params(kind, Hq_, Hk, A, rng=seed, dtype=np.float64)
    mask = np.ones((B, S), bool)
    mask[1, 3:] = False                                                # a padded row
    mask[2, 1:] = False                                                # one real key only
    x = {"q": r.standard_normal((B, Hq_)), "keys": r.standard_normal((B, S, Hk)), **p}
    return x, mask, r.standard_normal((B, Hk))


def _loss(kind, mask, up):
    def f(x):
        p = {k: v for k, v in x.items() if k.startswith("attention.")}
        pk = attention.project_keys(kind, p, x["keys"])
        ctx, a, cache = attention.forward(kind, p, x["q"], x["keys"], pk, mask)
        dq, dkeys, dpk, g = attention.backward(kind, p, cache, up)
        dk2, g2 = attention.project_keys_backward(kind, p, x["keys"], dpk)
        return float((ctx * up).sum()), {"q": dq, "keys": dkeys + dk2, **g, **g2}
    return f


@pytest.mark.parametrize("kind", attention.KINDS)
def test_gradients_match_finite_differences(kind):
    x, mask, up = _case(kind)
    errors = check_grads(_loss(kind, mask, up), x)
    assert max(errors.values()) < 1e-8, errors


@pytest.mark.parametrize("kind", attention.KINDS)
def test_weights_sum_to_one_over_real_keys_and_are_zero_on_padding(kind):
    x, mask, _ = _case(kind)
    p = {k: v for k, v in x.items() if k.startswith("attention.")}
    pk = attention.project_keys(kind, p, x["keys"])
    ctx, a, _ = attention.forward(kind, p, x["q"], x["keys"], pk, mask)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=1e-12)
    assert (a[~mask] == 0).all()
    np.testing.assert_allclose(ctx[2], x["keys"][2, 0], rtol=1e-12)   # one key: all weight
    keys2 = x["keys"].copy()
    keys2[~mask] = 1e3                                                 # padding content is ignored
    ctx2, _, _ = attention.forward(kind, p, x["q"], keys2, attention.project_keys(kind, p, keys2), mask)
    np.testing.assert_allclose(ctx2, ctx, rtol=1e-12)


@pytest.mark.parametrize("kind", attention.KINDS)
def test_against_torch_autograd(kind):
    torch = pytest.importorskip("torch")
    x, mask, up = _case(kind, seed=3)
    loss, grads = _loss(kind, mask, up)(x)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in x.items()}
    q, keys = t["q"], t["keys"]
    if kind == "additive":
        e = torch.tanh(keys @ t["attention.key.weight"].T
                       + (q @ t["attention.query.weight"].T)[:, None])
        s = e @ t["attention.energy.weight"]
    elif kind == "general":
        s = torch.einsum("bsh,bh->bs", keys @ t["attention.key.weight"].T, q)
    else:
        s = torch.einsum("bsh,bh->bs", keys, q)
    a = torch.softmax(s.masked_fill(~torch.tensor(mask), float("-inf")), dim=1)
    tl = (torch.einsum("bs,bsh->bh", a, keys) * torch.tensor(up)).sum()
    tl.backward()
    assert abs(tl.item() - loss) < 1e-12
    for k, v in t.items():
        np.testing.assert_allclose(grads[k], v.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_bad_kind_and_empty_rows_are_refused():
    with pytest.raises(ValueError, match="attention kind must be one of"):
        attention.init_params("concat", 3, 3)
    with pytest.raises(ValueError, match="dot attention needs query size == key size"):
        attention.init_params("dot", 3, 4)
    x, mask, _ = _case("dot")
    mask[0] = False
    with pytest.raises(ValueError, match="at least one real key"):
        attention.forward("dot", {}, x["q"], x["keys"], x["keys"], mask)
