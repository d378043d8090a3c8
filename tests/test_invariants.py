"""Properties any correct recurrent layer has (issue 2, items 2, 4, 6): rows of a
batch are independent, a sequence split in two with the state carried is the
same sequence, variable lengths mean running each row alone, truncation past
the sequence's length is no truncation, and seeds reproduce.
"""
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab import GRU, LSTM, RNN
from rnnlab.lab import gradcheck as gc
from rnnlab.engine import layers, truncation
from rnnlab.engine.layers import as_hx


def row(res, b, cfg, length=None):
    """Row b of a run_layer result, alone: batch axis kept (size 1), time cut."""
    out = {}
    for k, v in res.items():
        if k in ("output", "input"):
            v = v[:, b:b + 1] if not cfg.batch_first else v[b:b + 1]
            out[k] = v if length is None else v[:length]
        elif k.endswith(("_0", "_n")):
            out[k] = v[:, b:b + 1]
    return out


def alone(cfg, params, x, state0, dout, dstate_n, b, run, n=None):
    """run_layer on row b only (its first n steps)."""
    t = slice(None, n)
    return run(cfg, params, x[t, b:b + 1], tuple(s[:, b:b + 1] for s in state0),
               dout[t, b:b + 1], tuple(d[:, b:b + 1] for d in dstate_n))


def test_batch_rows_are_independent(variant, case, run, close):
    cfg = layers.RNNConfig(input_size=2, hidden_size=3, num_layers=2, bidirectional=True,
                           **variant)
    params, x, state0, dout, dstate_n = case(cfg, 4, 3, seed=1)
    whole = run(cfg, params, x, state0, dout, dstate_n)
    summed = {k: np.zeros_like(v) for k, v in params.items()}
    for b in range(3):
        one = alone(cfg, params, x, state0, dout, dstate_n, b, run)
        close(row(whole, b, cfg), row(one, 0, cfg), 1e-12, f"row {b}")
        for k in summed:
            summed[k] += one[k]
    close({k: whole[k] for k in params}, summed, 1e-12, "parameter gradients = sum over rows")


def test_variable_lengths_equal_each_row_alone(variant, case, run, close):
    cfg = layers.RNNConfig(input_size=2, hidden_size=3, num_layers=2, bidirectional=True,
                           **variant)
    lengths = [2, 5, 1, 4]
    params, x, state0, dout, dstate_n = case(cfg, 5, 4, seed=2)
    whole = run(cfg, params, x, state0, dout, dstate_n, lengths)
    summed = {k: np.zeros_like(v) for k, v in params.items()}
    for b, n in enumerate(lengths):
        one = alone(cfg, params, x, state0, dout, dstate_n, b, run, n)
        close(row(whole, b, cfg, n), row(one, 0, cfg), 1e-12, f"row {b} of length {n}")
        assert not np.any(whole["output"][n:, b]) and not np.any(whole["input"][n:, b])
        for k in summed:
            summed[k] += one[k]
    close({k: whole[k] for k in params}, summed, 1e-12, "parameter gradients = sum over rows")


@pytest.mark.parametrize("num_layers", [1, 2])
def test_two_chunks_with_carried_state_equal_one_forward(variant, case, num_layers):
    cfg = layers.RNNConfig(input_size=2, hidden_size=3, num_layers=num_layers, **variant)
    params, x, state0, _, _ = case(cfg, 7, 2, seed=3)
    out, fin, _ = layers.forward(cfg, params, x, as_hx(state0))
    out1, mid, _ = layers.forward(cfg, params, x[:3], as_hx(state0))
    out2, fin2, _ = layers.forward(cfg, params, x[3:], as_hx(mid))
    np.testing.assert_allclose(np.concatenate([out1, out2]), out, rtol=1e-13, atol=1e-15)
    for a, b in zip(fin2, fin):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("extra", [0, 1, 5])
def test_truncation_at_or_beyond_the_length_is_full_bptt(variant, case, run, close, extra):
    cfg = layers.RNNConfig(input_size=2, hidden_size=2, num_layers=2, bidirectional=True,
                           **variant)
    params, x, state0, dout, dstate_n = case(cfg, 4, 2, seed=4)
    full = run(cfg, params, x, state0, dout, dstate_n, [4, 3])
    cut = run(cfg, params, x, state0, dout, dstate_n, [4, 3], bptt_truncate=3 + extra)
    close(cut, full, 1e-12, f"k = T - 1 + {extra}")


@settings(max_examples=40, deadline=None)
@given(mode=st.sampled_from(["rnn", "lstm", "gru"]), T=st.integers(1, 6), B=st.integers(1, 3),
       k=st.integers(0, 6), num_layers=st.integers(1, 2), bidirectional=st.booleans(),
       with_lengths=st.booleans(), seed=st.integers(0, 999))
def test_truncation_matches_the_per_term_reference(mode, T, B, k, num_layers, bidirectional,
                                                   with_lengths, seed):
    lengths = gc.variable_lengths(T, B, seed) if with_lengths else None
    report = gc.check_layer(mode, num_layers=num_layers, bidirectional=bidirectional,
                            bptt_truncate=k, lengths=lengths, T=T, B=B, I=2, H=2, seed=seed)
    assert max(report.errors.values()) < 1e-12, report.errors


@pytest.mark.parametrize("lengths", [None, [6, 4, 1]], ids=["full", "ragged"])
@pytest.mark.parametrize("k", [0, 2, 5])
def test_truncation_by_depth_matches_the_ring_loop(variant, case, k, lengths):
    """The batched depth-major pass (no hook) and the step loop with its (k+1)
    ring (a hook on) give the same sums; the upstream gradient past a row's end
    is huge here, and no path may read it."""
    cfg = layers.RNNConfig(input_size=2, hidden_size=3, **variant)
    params, x, state0, dout, dstate_n = case(cfg, 6, 3, seed=6)
    out, _, cache = layers.forward(cfg, params, x, as_hx(state0), lengths, impl="reference")
    for b, n in enumerate(lengths or ()):
        dout[n:, b] = 1e6                                         # past the row's end
    flat = lambda r: [r[0], *r[1], *r[2].values()]                # dx, dstate0, grads
    by_depth = flat(layers.backward(cfg, params, cache, dout, dstate_n, bptt_truncate=k))
    ring = flat(layers.backward(cfg, params, cache, dout, dstate_n, bptt_truncate=k,
                                on_step=lambda *a: None))
    assert len(by_depth) == len(ring)
    for a, b in zip(by_depth, ring):
        assert np.abs(a).max() < 1e3
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_truncation_below_the_length_changes_the_gradient(mode, case, run):
    cfg = layers.RNNConfig(mode, 2, 3)
    params, x, state0, dout, dstate_n = case(cfg, 5, 2, seed=5)
    full = run(cfg, params, x, state0, dout, dstate_n)
    for k in range(4):
        cut = run(cfg, params, x, state0, dout, dstate_n, bptt_truncate=k)
        assert gc.rel_error(cut["weight_hh_l0"], full["weight_hh_l0"]) > 1e-4, k
        np.testing.assert_array_equal(cut["output"], full["output"])


# ---------------------------------------------------------------- reproducibility

@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_same_seed_same_params_and_dropout(cls):
    x = np.random.default_rng(0).standard_normal((5, 3, 4)).astype(np.float32)
    a, b = (cls(4, 6, num_layers=3, dropout=0.5, seed=7) for _ in range(2))
    c = cls(4, 6, num_layers=3, dropout=0.5, seed=8)
    assert a.params.keys() == b.params.keys()
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.params["weight_hh_l0"], c.params["weight_hh_l0"])
    out_a, out_b = a(x)[0], b(x)[0]
    np.testing.assert_array_equal(out_a, out_b)                    # same masks
    assert not np.array_equal(out_a, a(x)[0])                      # a fresh mask per call
    a.eval()
    np.testing.assert_array_equal(a(x)[0], a(x)[0])                # no dropout in eval


def test_dropout_rng_argument_is_reproducible(case):
    cfg = layers.RNNConfig("lstm", 2, 3, num_layers=2, dropout=0.3)
    params, x, _, _, _ = case(cfg, 4, 2)
    run = [layers.forward(cfg, params, x, training=True, rng=s)[0] for s in (1, 1, 2)]
    np.testing.assert_array_equal(run[0], run[1])
    assert not np.array_equal(run[0], run[2])
    np.testing.assert_array_equal(layers.forward(cfg, params, x)[0],
                                  layers.forward(cfg, params, x, training=False, rng=1)[0])


def test_integer_seed_gives_each_layer_and_chunk_its_own_mask():
    """Regression (issue 7): an int rng made a fresh generator per layer, so every
    layer (and every truncation chunk) drew the same dropout mask."""
    cfg = layers.RNNConfig("rnn", 4, 4, num_layers=3, dropout=0.5)
    params = layers.init_params(cfg, 0, np.float64)
    x = np.ones((6, 2, 4))
    _, _, cache = layers.forward(cfg, params, x, training=True, rng=3)
    m0, m1 = cache.masks[0], cache.masks[1]
    assert not np.array_equal(m0, m1)                              # layers differ
    _, _, again = layers.forward(cfg, params, x, training=True, rng=3)
    assert all(np.array_equal(a, b) for a, b in zip(cache.masks[:2], again.masks[:2]))
    masks = []
    real_forward = layers.forward

    def spy(*args, **kw):
        out = real_forward(*args, **kw)
        masks.append(out[2].masks[0])
        return out
    with mock.patch.object(layers, "forward", spy):
        for _ in range(2):                                         # reproducible from the seed
            truncation.chunked_forward_backward(
                cfg, params, x, 3, lambda out, sl: (0.0, np.zeros_like(out)), training=True, rng=3)
    assert not np.array_equal(masks[0], masks[1])                 # chunks differ
    np.testing.assert_array_equal(masks[0], masks[2])
    np.testing.assert_array_equal(masks[1], masks[3])


# ---------------------------------------------------------------- the modules' hx

@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_module_initial_state_is_used(cls):
    m = cls(2, 3, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((3, 2, 2))
    h0 = np.full((1, 2, 3), 0.5)
    hx = as_hx((h0, h0) if cls is LSTM else (h0,))                # h_0, or (h_0, c_0)
    out0, _ = m(x)
    out, _ = m(x, hx)
    want, _, _ = layers.forward(m.config, m.params, x, hx)
    np.testing.assert_array_equal(out, want)
    assert not np.allclose(out, out0)
    # layers.forward documents hx as a tuple of states: the 1-tuple (h_0,) too
    as_tuple, _, _ = layers.forward(m.config, m.params, x, (h0, h0) if cls is LSTM else (h0,))
    np.testing.assert_array_equal(as_tuple, want)


def test_module_backward_is_the_layer_backward(case, run, close):
    """LSTM module, batch_first: the same numbers as the pure functions; grads
    named exactly as params, each gradient shaped like what it differentiates."""
    m = LSTM(3, 2, num_layers=2, batch_first=True, bidirectional=True, dtype=np.float64, seed=1)
    _, x, _, dout, dstate_n = case(m.config, 4, 2, seed=9)          # x (B, T, I)
    out, fin = m(x)
    dx, dstate0 = m.backward(dout, dstate_n)
    assert m.grads.keys() == m.params.keys()
    assert all(m.grads[k].shape == v.shape for k, v in m.params.items())
    assert dx.shape == x.shape and out.shape == dout.shape
    got = {"output": out, "h_n": fin[0], "c_n": fin[1], "input": dx, "h_0": dstate0[0],
           "c_0": dstate0[1], **m.grads}
    close(got, run(m.config, m.params, x, None, dout, dstate_n), 0.0, "module vs layers")
