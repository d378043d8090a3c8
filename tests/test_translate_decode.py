"""Decoding: beam width 1 is greedy, wider beams never rank below greedy, length
normalisation on a hand-built case, scores agree with ``score``, BLEU conventions."""
import numpy as np
import pytest

from rnnlab.translate import bleu, data, decode

from test_translate_model import batch, tiny


def _model(seed, **kw):
    cfg, p = tiny(seed, init_scale=1.5, **kw)
    return cfg, p


@pytest.mark.parametrize("kw", [dict(), dict(style="luong", attention="general",
                                             dec_mode="lstm", input_feed=True)])
def test_beam_width_one_is_greedy(kw):
    cfg, p = _model(0, **kw)
    b = batch(3, B=5)
    g = decode.greedy(cfg, p, b.src, b.src_len, max_len_b=4)
    bs = decode.beam_search(cfg, p, b.src, b.src_len, width=1, max_len_b=4)
    for x, (y,) in zip(g, bs):
        assert x.tokens == y.tokens and abs(x.score - y.score) < 1e-12
        np.testing.assert_allclose(x.attention, y.attention)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_wider_beams_never_rank_below_greedy_and_scores_are_the_models(alpha):
    for seed in range(4):
        cfg, p = _model(seed)
        b = batch(seed, B=5)
        g = decode.greedy(cfg, p, b.src, b.src_len, max_len_b=4, alpha=alpha)
        for width in (2, 4):
            best = decode.beam_search(cfg, p, b.src, b.src_len, width, alpha, max_len_b=4)
            for x, (y,) in zip(g, best):
                assert y.norm >= x.norm - 1e-12
        nb = decode.beam_search(cfg, p, b.src, b.src_len, 4, alpha, nbest=3, max_len_b=4)
        rows = [h for hyps in nb for h in hyps]
        tgt = [[data.BOS_ID] + h.tokens for h in rows]
        src = [list(b.src[:b.src_len[i], i]) for i, hyps in enumerate(nb) for _ in hyps]
        want = decode.score(cfg, p, data.pad_batch(src, tgt))
        np.testing.assert_allclose([h.score for h in rows], want, rtol=1e-10)
        for hyps in nb:
            assert [h.norm for h in hyps] == sorted((h.norm for h in hyps), reverse=True)


def test_length_normalisation_on_a_hand_built_model():
    """Output independent of the input: p(<eos>) = .3, p(w4) = .6, the rest share .1."""
    cfg, p = tiny()
    V = cfg.tgt_vocab
    probs = np.full(V, 0.1 / (V - 5))
    probs[:5] = [0.0, 0.0, 0.0, 0.3, 0.6]
    p["out.weight"][:] = 0.0
    p["out.bias"][:] = np.log(np.maximum(probs, 1e-30))
    b = batch(0, B=2)
    lp4, lpe = np.log(0.6), np.log(0.3)
    raw = decode.beam_search(cfg, p, b.src, b.src_len, width=3, alpha=0.0, nbest=3)
    norm = decode.beam_search(cfg, p, b.src, b.src_len, width=3, alpha=1.0, nbest=3)
    for r, n, L in zip(raw, norm, decode.max_lengths(b.src_len)):
        assert [h.tokens for h in r] == [[4] * k + [data.EOS_ID] for k in (0, 1, 2)]
        np.testing.assert_allclose([h.score for h in r], [lpe, lp4 + lpe, 2 * lp4 + lpe])
        # per-token mean: longer is better here; greedy (4 until the cap) comes first
        assert [len(h.tokens) for h in n] == [L, 3, 2]
        np.testing.assert_allclose([h.norm for h in n], [((L - 1) * lp4 + lpe) / L,
                                                         (2 * lp4 + lpe) / 3, (lp4 + lpe) / 2])


def test_output_length_is_capped_relative_to_the_source():
    cfg, p = _model(1)
    p["out.bias"][data.EOS_ID] = -50.0                                 # never wants to stop
    b = batch(1, B=3)
    for h, n in zip(decode.greedy(cfg, p, b.src, b.src_len, 1.0, 2), b.src_len):
        assert len(h.tokens) == n + 2 and h.tokens[-1] == data.EOS_ID


def test_bleu_conventions():
    hyp = [["a", "man", "&apos;s", "hat", "."]]
    assert bleu.detokenize(hyp[0]) == "a man's hat."
    assert bleu.token_bleu(hyp, hyp) == pytest.approx(100.0)
    s, sig = bleu.sacrebleu_score(["A man's hat."], ["a man's hat."], lowercase=True)
    assert s == pytest.approx(100.0) and "case:lc" in sig
