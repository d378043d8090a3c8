"""Generation: sentences start to end, never <unk>, same seed same sample, scoring."""
import math

import numpy as np
import pytest

from rnnlab.lm import generate, model as lm, vocab as vocab_mod


@pytest.fixture
def word_model():
    v = vocab_mod.build("the cat sat on mat a dog".split(), "word",
                        unk="<unk>", eos="SENTENCE_END", bos="SENTENCE_START")
    cfg = lm.LMConfig(len(v), emb_size=6, hidden_size=6, num_layers=1, init_scale=0.5)
    params = lm.init_params(cfg, np.random.default_rng(0))
    params["decoder.bias"][v.id("unk")] = 20.0          # the model loves <unk> ...
    params["decoder.bias"][v.id("eos")] = 1.5
    return cfg, params, v


def test_never_emits_unknown_and_stops_at_end(word_model):
    cfg, params, v = word_model
    samples = generate.sample(cfg, params, v, n=20, max_len=50, rng=1)
    for s in samples:                                      # ... but never says it
        assert "<unk>" not in s and "SENTENCE_START" not in s and "SENTENCE_END" not in s
    assert any(len(s.split()) < 50 for s in samples)      # sentences do end


def test_same_seed_same_sample(word_model):
    cfg, params, v = word_model
    a = generate.sample(cfg, params, v, n=3, rng=7, temperature=0.8, top_p=0.9)
    assert a == generate.sample(cfg, params, v, n=3, rng=7, temperature=0.8, top_p=0.9)
    assert a != generate.sample(cfg, params, v, n=3, rng=8, temperature=0.8, top_p=0.9)


def test_top_k_one_is_greedy_and_matches_beam_one(word_model):
    cfg, params, v = word_model
    greedy = generate.sample(cfg, params, v, n=2, max_len=8, top_k=1, prime="the cat", rng=0)
    assert greedy[0] == greedy[1] and greedy[0].startswith("the cat")
    text, _ = generate.beam_search(cfg, params, v, prime="the cat", beam=1, max_len=8)
    assert text == greedy[0]


@pytest.mark.parametrize("beam", [1, 3])
def test_beam_log_prob_is_the_sentence_score(word_model, beam):
    cfg, params, v = word_model
    text, lp = generate.beam_search(cfg, params, v, beam=beam, max_len=20)
    assert "<unk>" not in text
    assert math.isclose(lp, generate.score(cfg, params, v, text)["log_prob"], rel_tol=1e-9)


def test_top_p_keeps_the_smallest_head():
    logp = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    p = generate.next_token_probs(logp.copy(), [], top_p=0.7)
    np.testing.assert_allclose(p, [[0.625, 0.375, 0, 0]])


def test_score_is_sum_of_step_log_probs(word_model):
    cfg, params, v = word_model
    s = generate.score(cfg, params, v, "the cat sat")
    assert s["tokens"] == 4                                # three words and the end
    assert math.isclose(s["perplexity"], math.exp(-s["log_prob"] / 4))
    assert generate.score(cfg, params, v, "the zebra")["unknown"] == 1


def test_unknown_words_in_prime(word_model):
    cfg, params, v = word_model
    with pytest.raises(ValueError, match="'zebra'"):
        generate.sample(cfg, params, v, prime="the zebra")
