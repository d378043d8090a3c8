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


# ---------------------------------------------------------------- optimisers, several steps

STEPS = 6


def _grads(k):
    """A different gradient each step, with tiny and large entries, float64."""
    rng = np.random.default_rng(100 + k)
    return {"w": rng.standard_normal((3, 4)) * np.array([1e-6, 1e-2, 1.0, 30.0]),
            "b": rng.standard_normal(4)}


def _params():
    rng = np.random.default_rng(7)
    return {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}


def _ours(opt, lr):
    p, s = _params(), None
    s = opt.init(p)
    for k in range(STEPS):
        p, s = opt.update(p, _grads(k), s, lr)
    return p, s


def _rule(name, lr, **hp):
    """The update rule written out once more, by the book, per parameter."""
    out = {}
    for key, p in _params().items():
        p, a, b = p.copy(), np.zeros_like(p), np.zeros_like(p)
        for k in range(STEPS):
            g = _grads(k)[key]
            if name == "sgd":
                a = hp["momentum"] * a + g
                p -= lr * a
            elif name == "adam":
                a = hp["beta1"] * a + (1 - hp["beta1"]) * g
                b = hp["beta2"] * b + (1 - hp["beta2"]) * g * g
                mhat, vhat = a / (1 - hp["beta1"] ** (k + 1)), b / (1 - hp["beta2"] ** (k + 1))
                p -= lr * mhat / (np.sqrt(vhat) + hp["eps"])
            elif name == "rmsprop":
                a = hp["decay"] * a + (1 - hp["decay"]) * g * g
                p -= lr * g / (np.sqrt(a) + hp["eps"])
            else:                                                 # adagrad
                a = a + g * g
                p -= lr * g / (np.sqrt(a) + hp["eps"])
        out[key] = p
    return out


OPT_CASES = [  # name, our hyper-parameters, torch class and its arguments
    ("sgd", {"momentum": 0.9}, "SGD", {"momentum": 0.9}),
    ("adam", {"beta1": 0.8, "beta2": 0.99, "eps": 1e-8}, "Adam",
     {"betas": (0.8, 0.99), "eps": 1e-8}),
    ("rmsprop", {"decay": 0.99, "eps": 1e-8}, "RMSprop", {"alpha": 0.99, "eps": 1e-8}),
    ("adagrad", {"eps": 1e-10}, "Adagrad", {"eps": 1e-10}),
]


@pytest.mark.parametrize("name, hp, _cls, _targs", OPT_CASES, ids=[c[0] for c in OPT_CASES])
def test_optimizer_follows_its_rule_over_several_steps(name, hp, _cls, _targs):
    p, s = _ours(optim.make(name, **hp), 0.05)
    want = _rule(name, 0.05, **hp)
    for k in want:
        np.testing.assert_allclose(p[k], want[k], rtol=1e-13, atol=1e-15)
    assert int(s["step"]) == STEPS


@pytest.mark.needs_torch
@pytest.mark.parametrize("name, hp, cls, targs", OPT_CASES, ids=[c[0] for c in OPT_CASES])
def test_optimizer_matches_torch_optim(name, hp, cls, targs):
    """Same hyper-parameters, same gradients, float64: torch.optim lands on the
    same parameters (eps outside the square root in both; see optim's docstrings)."""
    import torch
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in _params().items()}
    opt = getattr(torch.optim, cls)(list(tp.values()), lr=0.05, **targs)
    for k in range(STEPS):
        for key, g in _grads(k).items():
            tp[key].grad = torch.tensor(g)
        opt.step()
    p, _ = _ours(optim.make(name, **hp), 0.05)
    for key in p:
        np.testing.assert_allclose(p[key], tp[key].detach().numpy(), rtol=1e-12, atol=1e-14)


def test_default_eps_placement_differs_from_inside_the_root():
    """eps outside the root: a gradient of 1e-6 still moves a parameter by about lr
    (inside, sqrt(g^2 + 1e-8) ~ 1e-4 would shrink the step a hundredfold)."""
    p = {"w": np.zeros(1)}
    for opt in (optim.rmsprop(decay=0.0), optim.adagrad()):
        new, _ = opt.update(p, {"w": np.array([1e-6])}, opt.init(p), 1.0)
        assert new["w"][0] == pytest.approx(-1.0, rel=2e-2)               # not -0.01


def test_log_softmax_is_normalised_and_shift_invariant():
    z = RNG.standard_normal((3, 5)) * 50
    lp = nn.log_softmax(z)
    np.testing.assert_allclose(np.exp(lp).sum(-1), 1.0)
    np.testing.assert_allclose(nn.log_softmax(z + 1000.0), lp, atol=1e-10)


# ---------------------------------------------------------------- donation: in place, same numbers

def _problem(seed=0):
    rng = np.random.default_rng(seed)
    params = {"w": rng.standard_normal((5, 3)).astype(np.float32),
              "emb": rng.standard_normal((7, 3)).astype(np.float32)}
    grads = {"w": rng.standard_normal((5, 3)).astype(np.float32),
             "emb": nn.RowGrad(np.array([1, 4]), rng.standard_normal((2, 3)).astype(np.float32),
                               (7, 3))}
    return params, grads


def _copy(d):
    return {k: nn.RowGrad(v.rows, v.values.copy(), v.shape) if isinstance(v, nn.RowGrad)
            else v.copy() for k, v in d.items()}


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_donated_sgd_writes_in_place_the_same_bits(momentum):
    opt = optim.sgd(momentum)
    params, grads = _problem()
    kept, kept_state = _copy(params), opt.init(params)
    donated, state = _copy(params), opt.init(params)
    for step in range(3):
        g = _copy(grads)
        g = {k: v * np.float32(step + 1) for k, v in g.items()}
        clipped, _, _ = optim.clip_by_global_norm(_copy(g), 1.0)
        kept, kept_state = opt.update(kept, clipped, kept_state, 0.1)
        before = {k: v for k, v in donated.items()}
        clipped, _, hit = optim.clip_by_global_norm(g, 1.0, donate=True)
        assert hit and clipped is g                                # scaled in place
        donated, state = opt.update(donated, clipped, state, 0.1, donate=True)
        assert all(donated[k] is before[k] for k in before)       # the same arrays
        for k in kept:
            np.testing.assert_array_equal(donated[k], kept[k])    # bit for bit
        for k in kept_state:
            np.testing.assert_array_equal(state[k], kept_state[k])


def test_donation_falls_back_to_new_arrays_where_writing_is_unsafe():
    opt = optim.sgd()
    params, grads = _problem()
    frozen = params["w"].copy()
    frozen.flags.writeable = False
    shared = params["emb"]
    cases = {"read-only": {"w": frozen, "emb": shared.copy()},
             "a view": {"w": params["w"][:, :], "emb": shared.copy()},
             "one array under two names": {"w": params["w"], "emb": shared, "emb2": shared}}
    for what, ps in cases.items():
        gs = dict(_copy(grads), **({"emb2": _copy(grads)["emb"]} if "emb2" in ps else {}))
        want, _ = opt.update(_copy(ps), gs, opt.init(ps), 0.1)
        olds = _copy(ps)
        got, _ = opt.update(ps, gs, opt.init(ps), 0.1, donate=True)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=what)
        if what != "one array under two names":
            np.testing.assert_array_equal(ps["w"], olds["w"], err_msg=what)   # untouched
        else:
            np.testing.assert_array_equal(shared, olds["emb"], err_msg=what)


def test_donated_clip_scales_a_shared_gradient_once():
    g = np.ones((3, 2), np.float32)
    out, norm, hit = optim.clip_by_global_norm({"a": g, "b": g}, 1.0, donate=True)
    assert hit and np.isclose(norm, np.sqrt(12))
    np.testing.assert_array_equal(g, np.ones((3, 2), np.float32))          # not written
    np.testing.assert_allclose(out["a"], 1 / np.sqrt(12), rtol=1e-6)


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "adagrad"])
@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_donate_must_be_a_flag(name, bad):
    params, grads = _problem()
    opt = optim.make(name)
    with pytest.raises(ValueError, match=f"donate must be True or False, got {bad!r}"):
        opt.update(params, grads, opt.init(params), 0.1, donate=bad)
    with pytest.raises(ValueError, match=f"donate must be True or False, got {bad!r}"):
        optim.clip_by_global_norm(grads, 1.0, donate=bad)
