"""One-token steps for generation (issue 12): ``layers.step`` and
``lm.step_logits`` compute what the full forward computes on a one-step input."""
import numpy as np
import pytest

from rnnlab.engine import layers
from rnnlab.lm import model as lm


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("impl", ["reference", "auto"])
def test_layers_step_equals_a_one_step_forward(mode, impl):
    cfg = layers.RNNConfig(mode, 3, 4, num_layers=2)
    params = layers.init_params(cfg, 0, np.float64)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 3))
    hx = tuple(rng.standard_normal((2, 2, 4)) for _ in cfg.cell.STATE)
    out, finals, _ = layers.forward(cfg, params, x, layers.as_hx(hx), impl=impl)
    y, states = layers.step(cfg, params, x[0], hx)
    np.testing.assert_allclose(y, out[0], rtol=0, atol=1e-12)
    for a, b in zip(states, finals):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_layers_step_refuses_bidirectional():
    cfg = layers.RNNConfig("gru", 3, 4, bidirectional=True)
    with pytest.raises(ValueError, match="unidirectional"):
        layers.step(cfg, layers.init_params(cfg, 0), np.zeros((1, 3), np.float32),
                    (np.zeros((2, 1, 4), np.float32),))


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_step_logits_continue_a_sequence(mode):
    cfg = lm.LMConfig(13, 5, 6, 2, mode)
    params = lm.init_params(cfg, 0, np.float64)
    ids = np.random.default_rng(2).integers(0, 13, (4, 3))
    logits, _, _ = lm.logits_forward(cfg, params, ids, None)
    _, state, _ = lm.logits_forward(cfg, params, ids[:-1], None)
    step, _ = lm.step_logits(cfg, params, ids[-1], state)
    np.testing.assert_allclose(step, logits[-1], rtol=0, atol=1e-12)
    first, _ = lm.step_logits(cfg, params, ids[0], None)
    np.testing.assert_allclose(first, logits[0], rtol=0, atol=1e-12)




@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_plain_draw_picks_what_the_probabilities_pick(temperature):
    from rnnlab import nn
    from rnnlab.lm import generate
    z = np.random.default_rng(4).standard_normal((64, 50)) * 3
    banned = [0, 7]
    p = generate.next_token_probs(nn.log_softmax(z), banned, temperature)
    want = generate._draw(p, np.random.default_rng(9))
    got = generate._draw_plain(z.copy() + 5.0, banned, temperature, np.random.default_rng(9))
    np.testing.assert_array_equal(got, want)                        # logits up to a shift
    assert not np.isin(got, banned).any()
