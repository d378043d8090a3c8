"""A cell is one module and one registry line: the test-only ``mgu_cell``
(tests/mgu_cell.py), registered for the duration of each test, runs through
the gradient checker, the layer API, truncation, initialisers and the
gradient-flow lab, on the reference loop (it has no fused kernels).
"""
import numpy as np
import pytest

import mgu_cell
from rnnlab.engine import dispatch, layers, truncation
from rnnlab.engine.cells import CELLS
from rnnlab.lab import gradcheck as gc, gradflow, init


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    monkeypatch.setitem(CELLS, "mgu", mgu_cell)


def test_enrolled_in_the_variants_the_suites_walk():
    assert gc.variants()["mgu"]["mode"] == "mgu"


@pytest.mark.parametrize("lengths", [False, True], ids=["same-length", "lengths"])
@pytest.mark.parametrize("truncate", [None, 1], ids=["full", "truncate1"])
@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, True)])
def test_gradient_check(num_layers, bidirectional, truncate, lengths):
    lens = gc.variable_lengths(3, 3, seed=1) if lengths else None
    report = gc.check_layer("mgu", num_layers=num_layers, bidirectional=bidirectional,
                            bptt_truncate=truncate, lengths=lens, T=3, B=3, I=2, H=2, seed=3)
    assert "weight_hh_l0" in report.errors and "h_0" in report.errors
    assert report, report.errors


def test_directional_check_on_a_larger_layer():
    assert gc.check_layer("mgu", num_layers=2, T=6, B=3, I=5, H=8, directional=True)


def test_runs_on_the_reference_loop_and_refuses_fast():
    cfg = layers.RNNConfig("mgu", 3, 4)
    params = layers.init_params(cfg, 0, np.float64)
    x = np.ones((5, 2, 3))
    _, _, cache = layers.forward(cfg, params, x)                  # impl="auto"
    assert cache.seq[0][0].fm is None
    assert dispatch.choose("auto", cfg.cell, cfg.cell_opts, x) is None
    with pytest.raises(ValueError, match="impl='fast'"):
        layers.forward(cfg, params, x, impl="fast")


def test_layer_api_stacked_bidirectional_lengths_batch_first():
    """Rows of a length-sorted, batch_first, 2-layer bidirectional batch equal
    the same rows run alone, with their own lengths."""
    cfg = layers.RNNConfig("mgu", 3, 4, num_layers=2, bidirectional=True, batch_first=True)
    params = layers.init_params(cfg, 1, np.float64)
    x = np.random.default_rng(2).standard_normal((3, 6, 3))      # (B, T, I)
    lens = [6, 2, 4]
    out, (h_n,), cache = layers.forward(cfg, params, x, lengths=lens)
    assert out.shape == (3, 6, 8) and h_n.shape == (4, 3, 4)
    for b, n in enumerate(lens):
        alone, (h_b,), _ = layers.forward(cfg, params, x[b:b + 1, :n])
        np.testing.assert_allclose(out[b, :n], alone[0], atol=1e-12)
        np.testing.assert_allclose(h_n[:, b], h_b[:, 0], atol=1e-12)
        assert not out[b, n:].any()
    dx, (dh0,), grads = layers.backward(cfg, params, cache, np.ones_like(out))
    assert dx.shape == x.shape and set(grads) == set(params)


def test_chunked_truncation_carries_the_state():
    cfg = layers.RNNConfig("mgu", 2, 3)
    params = layers.init_params(cfg, 0, np.float64)
    x = np.random.default_rng(0).standard_normal((7, 2, 2))
    whole, _, _ = layers.forward(cfg, params, x)
    seen = []
    res = truncation.chunked_forward_backward(
        cfg, params, x, 3, lambda out, sl: (seen.append(out) or 0.0, np.zeros_like(out)))
    np.testing.assert_allclose(np.concatenate(seen), whole, atol=1e-12)
    np.testing.assert_allclose(res.state[0][0], whole[-1], atol=1e-12)


def test_keep_gate_bias_lands_on_its_declared_rows():
    cfg = layers.RNNConfig("mgu", 2, 3)
    p = init.forget_bias(cfg, init.initialize(cfg, rng=0), 2.0)
    np.testing.assert_array_equal(p["bias_ih_l0"][:3], 2.0)      # f is block 0 here
    np.testing.assert_array_equal(p["bias_hh_l0"][:3], 0.0)


def test_step_jacobian_against_finite_differences():
    cfg = layers.RNNConfig("mgu", 2, 3)
    params = layers.init_params(cfg, 4, np.float64)
    x = np.random.default_rng(5).standard_normal((2, 1, 2))
    jac = gradflow.step_jacobians(cfg, params, x)                 # (T, 1, H, H)
    p = layers.dir_params(params, cfg, 0, 0)
    gx = x[1] @ p.w_ih.T + p.b_ih                                 # step 1, from h_1
    h1 = layers.forward(cfg, params, x[:1])[0][0]                 # (1, H)
    eps, num = 1e-6, np.zeros((3, 3))
    for j in range(3):
        d = np.zeros((1, 3))
        d[0, j] = eps
        hp = mgu_cell.step_forward(np, p, gx, (h1 + d,))[0][0]
        hm = mgu_cell.step_forward(np, p, gx, (h1 - d,))[0][0]
        num[:, j] = ((hp - hm) / (2 * eps))[0]
    np.testing.assert_allclose(jac[1, 0], num, atol=1e-8)


def test_measured_by_the_gradient_flow_lab():
    cfg = layers.RNNConfig("mgu", 2, 8)
    params = init.forget_bias(cfg, init.initialize(cfg, rng=0), 3.0)
    x = np.random.default_rng(0).standard_normal((20, 4, 2)).astype(np.float32)
    flow = gradflow.measure(cfg, params, x, last_only=True)[(0, 0)]
    assert flow.jac_norms.shape == (20, 4) and flow.bound["gamma"] is None
    assert flow.verdict.kind in ("vanishing", "healthy") and 0 < flow.verdict.rate < 1.5
    assert flow.verdict.rate == pytest.approx(gradflow.decay_per_step(flow.curve.mean))
