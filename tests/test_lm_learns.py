"""The language model learns: a few hundred steps on a small corpus bring the
validation perplexity well below the unigram perplexity, which the test derives
from the corpus's own counts (the best a model without context can do)."""
import math
from collections import Counter

import numpy as np

from rnnlab.lm import corpus as corpus_mod, train


def _corpus(path, seed=0):
    """Sentences from a tiny grammar: which character comes next is mostly
    decided by the ones before it, which a unigram model cannot use."""
    rng = np.random.default_rng(seed)
    subjects, verbs, objects = ["the cat", "a dog", "my bird"], ["sees", "likes"], [
        "the mat", "a fish", "red yarn"]
    lines = [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}."
             for _ in range(1500)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _unigram_perplexity(train_tokens, valid_tokens):
    """exp of the cross-entropy of the valid split under the train split's
    add-one-smoothed token frequencies."""
    counts = Counter(train_tokens)
    vocab = set(train_tokens) | set(valid_tokens)
    total = len(train_tokens) + len(vocab)
    nll = -sum(math.log((counts[t] + 1) / total) for t in valid_tokens) / len(valid_tokens)
    return math.exp(nll)


def test_a_few_hundred_steps_beat_the_unigram_model(tmp_path):
    src = _corpus(tmp_path / "grammar.txt")
    corp = corpus_mod.load(str(src), "char")
    unigram = _unigram_perplexity(corp.train, corp.valid)
    assert 8 < unigram < 30                          # a dozen-odd letters in use

    cfg = train.LMTrainConfig(corpus=str(src), level="char", emb_size=16, hidden_size=64,
                              num_layers=1, optimizer="adam", lr=0.01, clip=1.0,
                              schedule="constant", batch_size=16, bptt=20, epochs=3,
                              max_steps=100, samples=0, progress=False, seed=0,
                              out=str(tmp_path / "run"))
    r = train.fit(cfg, log=lambda *a: None)
    per_epoch = min(100, train.chunks(len(corp.train) // 16, 20))
    assert 200 <= r.steps_run == 3 * per_epoch                # a few hundred steps
    valid_ppl = r.history[-1]["valid_ppl"]
    assert valid_ppl < unigram / 3, (valid_ppl, unigram)
    assert r.history[0]["valid_ppl"] > valid_ppl     # and it kept improving
