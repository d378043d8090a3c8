"""Gradient-flow measurements (issue 4): Jacobians vs finite differences, the
per-distance norms vs explicit Jacobian products, verdicts, non-finite handling."""
import numpy as np
import pytest

from rnnlab.lab import gradflow, init
from rnnlab.engine import layers

CASES = [("rnn", {}), ("rnn", {"nonlinearity": "sigmoid"}), ("rnn", {"nonlinearity": "relu"}),
         ("lstm", {}), ("gru", {}), ("gru", {"reset_after": False})]


def _model(mode, opts, H=4, I=3, seed=0):
    cfg = layers.RNNConfig(mode, I, H, **opts)
    params = {k: v.astype(np.float64) for k, v in layers.init_params(cfg, seed).items()}
    return cfg, params


def _final_state(cfg, params, x, state):
    """The state after running x from ``state`` (concatenated (h[, c]))."""
    H = cfg.hidden_size
    parts = tuple(state[k * H:(k + 1) * H].reshape(1, 1, H) for k in range(len(cfg.cell.STATE)))
    _, fin, _ = layers.forward(cfg, params, x, parts if len(parts) == 2 else parts[0])
    return np.concatenate([f[0, 0] for f in fin])


@pytest.mark.parametrize("mode,opts", CASES)
def test_step_jacobian_matches_finite_differences(mode, opts):
    cfg, p = _model(mode, opts)
    x = np.random.default_rng(1).standard_normal((3, 1, 3))
    if opts.get("nonlinearity") == "relu":
        x = np.abs(x) + 0.5                     # keep units away from the kink
    jac = gradflow.step_jacobians(cfg, p, x)[2, 0]                 # step 2, row 0
    _, _, cache = layers.forward(cfg, p, x)
    s1 = np.concatenate([st[2, 0] for st in cache.seq[0][0].states])   # state entering step 2
    eps = 1e-6
    num = np.stack([(_final_state(cfg, p, x[2:], s1 + eps * e)
                     - _final_state(cfg, p, x[2:], s1 - eps * e)) / (2 * eps)
                    for e in np.eye(s1.size)], axis=1)
    np.testing.assert_allclose(jac, num, atol=1e-8)


def _explicit_h_norm(jac, g, t, d, H):
    """||h part of g J_t J_{t-1} .. J_{t-d+1}|| with g = (dh, 0) for one row."""
    v = np.concatenate([g, np.zeros(jac.shape[-1] - H)])
    for s in range(t, t - d, -1):
        v = v @ jac[s]
    return np.linalg.norm(v[:H])


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_last_step_curve_is_jacobian_product_applied_to_upstream(mode):
    cfg, p = _model(mode, {})
    T, B, H = 6, 3, cfg.hidden_size
    x = np.random.default_rng(2).standard_normal((T, B, 3))
    g = np.random.default_rng(3).standard_normal((B, H))
    curve = gradflow.per_distance_last(cfg, p, x, dh_last=g)[(0, 0)]
    jac = gradflow.step_jacobians(cfg, p, x, rows=B)                # (T, B, S, S)
    for d in range(T):
        want = np.mean([_explicit_h_norm(jac[:, b], g[b], T - 1, d, H) for b in range(B)])
        assert curve.mean[d] == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_every_step_curve_separates_each_loss_term(mode):
    cfg, p = _model(mode, {})
    T, B, H = 5, 2, cfg.hidden_size
    x = np.random.default_rng(4).standard_normal((T, B, 3))
    dout = np.random.default_rng(5).standard_normal((T, B, H))
    curve = gradflow.per_distance(cfg, p, x, dout)[(0, 0)]
    jac = gradflow.step_jacobians(cfg, p, x, rows=B)
    for d in range(T):
        want = np.mean([_explicit_h_norm(jac[:, b], dout[t, b], t, d, H)
                        for t in range(d, T) for b in range(B)])
        assert curve.mean[d] == pytest.approx(want, rel=1e-9)
        assert curve.count[d] == (T - d) * B


def test_product_norms_match_direct_products():
    cfg, p = _model("gru", {})
    x = np.random.default_rng(6).standard_normal((7, 2, 3))
    jac = gradflow.step_jacobians(cfg, p, x, rows=2)
    prods = gradflow.product_norms(jac)
    direct = np.eye(4)[None].repeat(2, 0)
    for d in range(1, 7):
        direct = direct @ jac[7 - d]
        np.testing.assert_allclose(prods[d], np.linalg.norm(direct, 2, axis=(1, 2)), rtol=1e-9)


def test_tanh_rnn_vanishes_faster_than_lstm_with_forget_bias_at_init():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (60, 8, 2))
    rates = {}
    for mode, fb in (("rnn", None), ("lstm", 1.0)):
        cfg = layers.RNNConfig(mode, 2, 32)
        flow = gradflow.measure(cfg, init.initialize(cfg, rng=0, forget=fb), x, last_only=True)
        rates[mode] = flow[(0, 0)]
        assert flow[(0, 0)].curve.mean[0] == pytest.approx(1.0)
    assert rates["rnn"].verdict.kind == "vanishing"
    assert rates["rnn"].verdict.rate < rates["lstm"].verdict.rate
    assert rates["rnn"].curve.mean[-1] < 1e-6 * rates["lstm"].curve.mean[-1]


def test_tanh_rnn_measured_decay_within_jacobians_and_theory_bound():
    cfg = layers.RNNConfig("rnn", 2, 32)
    p = init.initialize(cfg, rng=1)
    flow = gradflow.measure(cfg, p, np.random.default_rng(1).uniform(0, 1, (40, 4, 2)),
                            last_only=True)[(0, 0)]
    assert np.all(flow.jac_norms <= flow.bound["bound"] + 1e-12)
    # a unit vector times the product cannot beat the product's norm
    assert np.all(flow.curve.mean <= flow.products * (1 + 1e-9))
    assert flow.bound["gamma"] == 1.0


def test_identity_relu_rnn_is_healthy_and_large_weights_explode():
    cfg = layers.RNNConfig("rnn", 2, 8, nonlinearity="relu")
    x = np.random.default_rng(0).uniform(0, 1, (30, 4, 2))
    irnn = gradflow.measure(cfg, init.initialize(cfg, "identity", 0), x, last_only=True)
    assert irnn[(0, 0)].verdict.kind == "healthy"
    big = {k: v * (4.0 if k.startswith("weight_hh") else 1.0)
           for k, v in init.initialize(cfg, "orthogonal", 0).items()}
    assert gradflow.measure(cfg, big, x, last_only=True)[(0, 0)].verdict.kind == "exploding"


def test_non_finite_gradient_reported_as_exploding_with_step():
    cfg = layers.RNNConfig("rnn", 2, 8, nonlinearity="relu")
    p = init.initialize(cfg, "orthogonal", 0)
    p = {k: v.astype(np.float64) for k, v in p.items()}
    p["weight_hh_l0"] = p["weight_hh_l0"] * 1e80         # float64 overflow within a few steps
    x = np.random.default_rng(0).uniform(0.5, 1, (40, 2, 2))
    for last in (True, False):
        flow = gradflow.measure(cfg, p, x, last_only=last)[(0, 0)]
        assert flow.verdict.kind == "exploding"
        assert flow.verdict.nonfinite_step is not None
        assert "non-finite" in flow.verdict.describe()


def test_stacked_bidirectional_reports_every_layer_and_direction():
    cfg = layers.RNNConfig("lstm", 2, 4, num_layers=2, bidirectional=True)
    x = np.random.default_rng(0).standard_normal((5, 2, 2))
    flow = gradflow.measure(cfg, layers.init_params(cfg, 0), x)
    assert sorted(flow) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(np.isfinite(f.curve.mean).all() for f in flow.values())
