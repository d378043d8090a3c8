"""Translation model: every gradient against float64 finite differences, padding
invariance, attention masks, label smoothing."""
import numpy as np
import pytest

from rnnlab import nn
from rnnlab.lab.gradcheck import check_directional, check_grads, rel_error
from rnnlab.translate import data, loss as tloss, model

VARIANTS = {
    "bahdanau-additive-gru": dict(),
    "luong-general-lstm-feed": dict(style="luong", attention="general", dec_mode="lstm",
                                    input_feed=True),
    "luong-dot-tied": dict(style="luong", attention="dot", dec_hidden=6, emb_size=6,
                           tie_embeddings=True),
    "none-lstm-encoder-2-layers": dict(attention="none", enc_mode="lstm", enc_layers=2),
    "bahdanau-dot-rnn-encoder": dict(attention="dot", enc_mode="rnn", dec_hidden=6),
}


def tiny(seed=0, **kw):
    base = dict(src_vocab=9, tgt_vocab=8, emb_size=4, enc_hidden=3, dec_hidden=5,
                init_scale=0.5)
    base.update(kw)
    cfg = model.Seq2SeqConfig(**base)
    return cfg, model.init_params(cfg, seed, np.float64)


def batch(seed=0, B=3, S=5, T=4, src_vocab=9, tgt_vocab=8):
    """A padded batch with rows of different source and target lengths."""
    r = np.random.default_rng(seed)
    src = [list(r.integers(4, src_vocab, n)) for n in [S, 2, S - 1, 1, 3][:B]]
    tgt = [[data.BOS_ID] + list(r.integers(4, tgt_vocab, n)) + [data.EOS_ID]
           for n in [T, 1, T - 2, 2, 3][:B]]
    return data.pad_batch(src, tgt)


def loss_fn(cfg, b):
    def f(p):
        loss, _, grads = tloss.loss_and_grads(cfg, p, b)
        return loss, grads
    return f


def test_every_gradient_matches_finite_differences_elementwise():
    cfg, p = tiny()
    errors = check_grads(loss_fn(cfg, batch()), p, eps=1e-4)   # some gradients are ~1e-5
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_gradient_matches_finite_differences_along_random_directions(name):
    cfg, p = tiny(**VARIANTS[name])
    for seed in (0, 1):
        errors = check_directional(loss_fn(cfg, batch()), p, eps=1e-4, seed=seed)
        # one scalar per tensor: a small projection leaves ~1e-10 of rounding; a bug is O(1)
        assert max(errors.values()) < 1e-4, errors


def test_dropout_label_smoothing_and_teacher_forcing_gradients_are_exact():
    cfg, p = tiny(dropout=0.3, enc_layers=2)
    b = batch(1)

    def f(q):                                            # the same masks and coins every call
        loss, _, g = tloss.loss_and_grads(cfg, q, b, training=True, teacher_forcing=0.5,
                                          rng=np.random.default_rng(5), smoothing=0.1)
        return loss, g
    _, _, cache = tloss.forward(cfg, p, b, True, np.random.default_rng(5), 0.5, 0.1)
    assert (cache.y_in[1:] != b.tgt[1:-1]).any()         # some steps fed the model's guess
    errors = check_directional(f, p, eps=1e-4)
    assert max(errors.values()) < 1e-4, errors


def test_extra_padded_rows_change_nothing_for_the_real_rows():
    cfg, p = tiny()
    r = np.random.default_rng(0)
    pairs = [(list(r.integers(4, 9, n)), list(r.integers(4, 8, m))) for n, m in [(5, 3), (2, 4)]]
    v_src, v_tgt = data.Vocab(data.SPECIALS + tuple(map(str, range(4, 9)))), None
    src = [s for s, _ in pairs]
    tgt = [[data.BOS_ID] + t + [data.EOS_ID] for _, t in pairs]
    small = data.pad_batch(src, tgt)
    big = data.pad_batch(src + [[4, 5, 6, 7, 8, 4, 5]], tgt + [[data.BOS_ID] + [5] * 7 + [3]])
    l1, n1, g1 = tloss.loss_and_grads(cfg, p, small)
    # the third row is real but longer: its loss enters; check the first two rows alone
    # by giving the extra row target weight 0 (only padding after <bos>)
    big = big._replace(tgt=big.tgt.copy())
    big.tgt[1:, 2] = data.PAD_ID
    l2, n2, g2 = tloss.loss_and_grads(cfg, p, big)
    assert n1 == n2 and abs(l1 - l2) < 1e-12
    for k in p:
        assert rel_error(g1[k], g2[k]) < 1e-10, k
    assert v_src.encode(["4", "zzz"]) == [4, data.UNK_ID] and v_tgt is None


def test_attention_weights_sum_to_one_and_are_zero_on_padding():
    from rnnlab.translate import decoder
    cfg, p = tiny()
    b = batch()
    mem, state, _ = model.encode(cfg, p, b.src, b.src_len)
    _, _, a, _ = decoder.step_forward(cfg, p, mem, b.tgt[0], state)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=1e-12)
    pad = np.arange(b.src.shape[0])[None, :] >= b.src_len[:, None]
    assert pad.any() and (a[pad] == 0).all()
    assert (mem.keys[pad] == 0).all()


def test_label_smoothing_matches_its_definition():
    r = np.random.default_rng(0)
    logits, t = r.standard_normal((4, 6)), np.array([0, 5, 2, 2])
    loss, _ = nn.softmax_cross_entropy(logits, t, smoothing=0.2)
    lp = nn.log_softmax(logits)
    want = np.mean(0.8 * -lp[np.arange(4), t] + 0.2 * -lp.mean(axis=1))
    assert abs(loss - want) < 1e-12
    errors = check_grads(lambda x: nn.softmax_cross_entropy(x["z"], t, smoothing=0.2)[:1]
                         + ({"z": nn.softmax_cross_entropy(x["z"], t, smoothing=0.2)[1]},),
                         {"z": logits})
    assert errors["z"] < 1e-8


@pytest.mark.parametrize("kw, words", [
    (dict(attention="dot", dec_hidden=5), "dec_hidden: expected 2 \\* enc_hidden"),
    (dict(tie_embeddings=True), "emb_size: expected the output size"),
    (dict(style="luong", attention="none"), "style"),
    (dict(dec_mode="rnn"), "dec_mode"),
])
def test_bad_configs_are_refused(kw, words):
    with pytest.raises(ValueError, match=words):
        tiny(**kw)
