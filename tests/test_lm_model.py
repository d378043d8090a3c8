"""The language model's hand-written gradient against central differences (float64)."""
import numpy as np
import pytest

from rnnlab.lm import model as lm


def _fd_check(cfg, seed=0, T=4, B=3):
    rng = np.random.default_rng(seed)
    params = lm.init_params(cfg, rng, dtype=np.float64)
    params = {k: 0.5 * rng.standard_normal(v.shape) for k, v in params.items()}
    ids = rng.integers(0, cfg.vocab_size, (T, B))
    targets = rng.integers(0, cfg.vocab_size, (T, B))
    state = tuple(0.3 * rng.standard_normal(s.shape) for s in lm.zero_state(cfg, B, np.float64))
    masks = None
    if cfg.dropout:
        m = np.random.default_rng(seed + 1)
        masks = tuple((m.random(shape) >= cfg.dropout) / (1 - cfg.dropout)
                      for shape in ((T, B, cfg.emb_size), (T, B, cfg.hidden_size)))

    def loss(p):
        # a freshly seeded rng each call: the stack's between-layer masks are fixed too
        return lm.loss_forward(cfg, p, ids, targets, state, training=bool(cfg.dropout),
                               rng=np.random.default_rng(7), masks=masks)

    value, _, cache = loss(params)
    grads = lm.backward(cfg, params, cache)
    assert set(grads) == set(params)
    eps = 1e-5
    for name, p in params.items():
        assert grads[name].shape == p.shape
        num = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            lp = loss(params)[0]
            p[idx] = old - eps
            lm_ = loss(params)[0]
            p[idx] = old
            num[idx] = (lp - lm_) / (2 * eps)
        err = np.abs(num - grads[name]).max() / max(1e-8, np.abs(num).max() + np.abs(grads[name]).max())
        assert err < 1e-6, (name, err)
    return value


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("tie", [False, True])
def test_whole_model_gradient(mode, tie):
    cfg = lm.LMConfig(vocab_size=7, emb_size=3, hidden_size=3, num_layers=2, mode=mode,
                      tie_weights=tie)
    _fd_check(cfg)


@pytest.mark.parametrize("tie", [False, True])
def test_gradient_with_fixed_dropout_masks(tie):
    cfg = lm.LMConfig(vocab_size=6, emb_size=4, hidden_size=4, num_layers=2, mode="lstm",
                      dropout=0.3, tie_weights=tie)
    _fd_check(cfg, seed=3)


def test_untied_needs_no_equal_sizes_but_tied_does():
    lm.LMConfig(vocab_size=5, emb_size=2, hidden_size=3)
    with pytest.raises(ValueError, match="emb_size == hidden_size"):
        lm.LMConfig(vocab_size=5, emb_size=2, hidden_size=3, tie_weights=True)


def test_check_params_names_the_mismatch():
    cfg = lm.LMConfig(vocab_size=5, emb_size=2, hidden_size=2, num_layers=1)
    params = lm.init_params(lm.LMConfig(vocab_size=6, emb_size=2, hidden_size=2, num_layers=1))
    with pytest.raises(ValueError, match=r"'encoder.weight'\] must have shape \(5, 2\), "
                                         r"got \(6, 2\)"):
        lm.check_params(cfg, params)
