"""The gradient-path measurement: the attention path is the exact gradient of the
loss at step t with respect to the keys (finite differences); a model without
attention has only the recurrent chain."""
import numpy as np

from rnnlab import nn
from rnnlab.nn import attention
from rnnlab.translate import data, decoder, gradpaths, model

from test_translate_model import tiny

VOCABS = (data.Vocab(data.SPECIALS + tuple("abcde")), data.Vocab(data.SPECIALS + tuple("vwxy")))
PAIR = (list("abcae"), list("wxv"))


def _loss_t(cfg, p, keys, mask, state0, y_in, t, gold):
    mem = model.Memory(keys, attention.project_keys(cfg.attention, p, keys), mask)
    state = state0
    for s in range(t + 1):
        o, state, _, _ = decoder.step_forward(cfg, p, mem, y_in[s], state)
    lp = nn.log_softmax(o @ p["out.weight"].T + p["out.bias"])
    return -lp[0, gold], o


def _output_gradient_norm(p, o, gold):
    """||dL_t/do_t||, the scale ``measure`` divides by."""
    q = np.exp(nn.log_softmax(o @ p["out.weight"].T + p["out.bias"]))[0]
    q[gold] -= 1.0
    return np.linalg.norm(q @ p["out.weight"])


def test_attention_path_is_the_exact_key_gradient():
    cfg, p = tiny(seed=1, init_scale=0.8)
    att, rec = gradpaths.measure(cfg, p, PAIR, VOCABS)
    b = data.make_batch([PAIR], *VOCABS)
    mem, state0, _ = model.encode(cfg, p, b.src, b.src_len)
    T, S = att.shape
    assert (T, S) == (len(PAIR[1]) + 1, len(PAIR[0])) and (rec > 0).all()
    for t in (0, T - 1):
        num = np.zeros_like(mem.keys)
        for i in np.ndindex(mem.keys.shape):
            k1, k2 = mem.keys.copy(), mem.keys.copy()
            k1[i] += 1e-6
            k2[i] -= 1e-6
            f = lambda k: _loss_t(cfg, p, k, mem.mask, state0, b.tgt[:-1], t, b.tgt[t + 1, 0])
            num[i] = (f(k1)[0] - f(k2)[0]) / 2e-6
        scale = _output_gradient_norm(p, f(mem.keys)[1], b.tgt[t + 1, 0])
        np.testing.assert_allclose(att[t] * scale, np.linalg.norm(num[0], axis=1), rtol=1e-6,
                                   atol=1e-10)


def test_without_attention_only_the_recurrent_chain_remains():
    cfg, p = tiny(attention="none", enc_layers=2, enc_mode="lstm")
    att, rec = gradpaths.measure(cfg, p, PAIR, VOCABS)
    assert not att.any() and (rec > 0).all()
