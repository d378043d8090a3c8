"""Initialisers (issue 4): orthogonal, identity (IRNN), LSTM forget bias."""
import numpy as np
import pytest

from rnnlab.lab import init
from rnnlab.engine import layers


def test_orthogonal_blocks_have_unit_singular_values():
    cfg = layers.RNNConfig("lstm", 3, 6, num_layers=2)
    p = init.initialize(cfg, "orthogonal", 0)
    for k in ("weight_hh_l0", "weight_hh_l1"):
        for g in range(4):
            s = np.linalg.svd(p[k][g * 6:(g + 1) * 6].astype(np.float64), compute_uv=False)
            np.testing.assert_allclose(s, 1.0, atol=1e-5)
    assert p["weight_hh_l0"].dtype == np.float32


def test_identity_is_irnn():
    cfg = layers.RNNConfig("rnn", 3, 5, nonlinearity="relu")
    p = init.initialize(cfg, "identity", 0)
    np.testing.assert_array_equal(p["weight_hh_l0"], np.eye(5))
    assert not p["bias_ih_l0"].any() and not p["bias_hh_l0"].any()
    assert 0 < np.std(p["weight_ih_l0"]) < 0.01


def test_identity_refuses_tanh():
    with pytest.raises(ValueError, match="relu"):
        init.initialize(layers.RNNConfig("rnn", 3, 5), "identity", 0)


def test_forget_bias_total_and_pure():
    cfg = layers.RNNConfig("lstm", 3, 4)
    p = init.initialize(cfg, rng=0)
    q = init.forget_bias(cfg, p, 1.5)
    np.testing.assert_allclose((q["bias_ih_l0"] + q["bias_hh_l0"])[4:8], 1.5)
    np.testing.assert_array_equal(q["bias_ih_l0"][:4], p["bias_ih_l0"][:4])   # other gates kept
    assert not np.array_equal(p["bias_ih_l0"][4:8], q["bias_ih_l0"][4:8])       # input untouched
    with pytest.raises(ValueError, match="keeps the old state .LSTM forget gate, GRU update gate"):
        init.forget_bias(layers.RNNConfig("rnn", 3, 4), {}, 1.0)


def test_gru_keep_gate_is_the_update_gate():
    """The GRU's z (rows H:2H) starts near sigmoid(b): the old state is mostly kept."""
    cfg = layers.RNNConfig("gru", 3, 4)
    q = init.forget_bias(cfg, init.initialize(cfg, rng=0), 3.0)
    np.testing.assert_allclose((q["bias_ih_l0"] + q["bias_hh_l0"])[4:8], 3.0)
    x = np.zeros((1, 1, 3), np.float32)
    h0 = np.ones((1, 1, 4), np.float32)
    _, h1, cache = layers.forward(cfg, q, x, (h0,))
    z = cache.seq[0][0].acts[0, 0, 4:8]                              # acts: r, z, n, gh_n
    assert np.all(z > 0.9)


def test_seeded_and_unknown_scheme():
    cfg = layers.RNNConfig("gru", 3, 4)
    a, b = init.initialize(cfg, "orthogonal", 7), init.initialize(cfg, "orthogonal", 7)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="init must be one of"):
        init.initialize(cfg, "xavier", 0)
