"""Generation from a trained language model: sampling, beam search, scoring.

Word models with sentence tokens generate whole sentences, as the RNN tutorial
does: start from the sentence-start token (or the end-of-line token, which is
what precedes every PTB sentence), stop at the end token, and never emit the
unknown token (its probability is set to zero before sampling).
"""
import math

import numpy as np

from rnnlab.lm import model as lm, vocab as vocab_mod


def _start(vocab):
    """The context every sample starts from: a sentence boundary if there is one."""
    for role in ("bos", "eos"):
        if vocab.id(role) is not None:
            return [vocab.id(role)]
    for tok in ("\n", " "):
        if tok in vocab.stoi:
            return [vocab.stoi[tok]]
    return [len(vocab) - 1]


def context_ids(vocab, prime):
    """Start context + priming text as ids; unknown words/characters are an error."""
    missing = vocab_mod.unknown_in(vocab, prime) if prime else []
    if missing:
        kind = "word" if vocab.level == "word" else "character"
        raise ValueError(f"priming text has {len(missing)} {kind}(s) not in the model's "
                         f"vocabulary: " + ", ".join(repr(t) for t in missing[:10]))
    return _start(vocab) + [vocab.stoi[t] for t in vocab_mod.tokenize(vocab, prime or "")]


def _banned(vocab):
    return [i for i in (vocab.id("unk"), vocab.id("bos")) if i is not None]


def _next_logits(mcfg, params, ids, state):
    """Run ids (T, B); returns the next token's logits (B, V) in float64 and the
    state. One token per row (T = 1, every sampling step) takes ``lm.step_logits``."""
    if ids.shape[0] == 1:
        logits, state = lm.step_logits(mcfg, params, ids[0], state)   # (B, V)
    else:
        logits, state, _ = lm.logits_forward(mcfg, params, ids, state)
        logits = logits[-1]
    return logits.astype(np.float64), state


def _feed(mcfg, params, ids, state):
    """Run ids (T, B); returns log-probabilities of the next token (B, V) and the state."""
    z, state = _next_logits(mcfg, params, ids, state)
    z -= z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True)), state


def _draw(z, banned, temperature, u):
    """Plain sampling from logits z (B, V) (float64, overwritten) with uniforms u
    (B,): the token whose cumulative probability first reaches u, as
    ``next_token_probs`` + inverse CDF would pick, in a third of the passes."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if temperature != 1:
        z /= temperature
    z[:, banned] = -np.inf
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    np.cumsum(z, axis=1, out=z)                                    # unnormalised CDF
    return np.array([min(np.searchsorted(c, ui * c[-1]), len(c) - 1)
                     for c, ui in zip(z, u)], np.int64)


def next_token_probs(logp, banned, temperature=1.0, top_k=0, top_p=1.0):
    """Sampling distribution (B, V) from log-probabilities (B, V)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    z = logp / temperature
    z[:, banned] = -np.inf
    if top_k and top_k < z.shape[1]:
        kth = np.sort(z, axis=1)[:, -top_k][:, None]               # (B, 1)
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    if top_p < 1:
        order = np.argsort(-p, axis=1, kind="stable")
        sp = np.take_along_axis(p, order, axis=1)
        drop = np.cumsum(sp, axis=1) - sp >= top_p                 # keep the smallest head
        sp[drop] = 0.0
        p = np.zeros_like(p)
        np.put_along_axis(p, order, sp, axis=1)
        p /= p.sum(axis=1, keepdims=True)
    return p


def sample(mcfg, params, vocab, n=1, max_len=60, temperature=1.0, top_k=0, top_p=1.0,
           prime="", rng=None):
    """n samples (strings: the priming text plus its continuation)."""
    rng = np.random.default_rng(rng)
    ctx = context_ids(vocab, prime)
    state = lm.zero_state(mcfg, n, params["decoder.bias"].dtype)
    ids = np.repeat(np.array(ctx, np.int64)[:, None], n, axis=1)   # (T0, n)
    z, state = _next_logits(mcfg, params, ids, state)
    end = vocab.id("eos") if vocab.level == "word" else None
    out, done = [[] for _ in range(n)], np.zeros(n, bool)
    plain = not top_k and top_p >= 1
    for _ in range(max_len):
        u = rng.random((n, 1))
        if plain:
            tok = _draw(z, _banned(vocab), temperature, u[:, 0])                 # (n,)
        else:
            logp = z - z.max(axis=1, keepdims=True)
            logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
            p = next_token_probs(logp, _banned(vocab), temperature, top_k, top_p)
            tok = np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), p.shape[1] - 1)
        for b in np.flatnonzero(~done):
            done[b] = end is not None and tok[b] == end
            if not done[b]:
                out[b].append(int(tok[b]))
        if done.all():
            break
        z, state = _next_logits(mcfg, params, tok[None, :], state)
    sep = " " if vocab.level == "word" else ""
    head = (prime + sep) if prime and vocab.level == "word" else (prime or "")
    return [head + vocab_mod.decode(vocab, o) for o in out]


def beam_search(mcfg, params, vocab, prime="", beam=5, max_len=30):
    """The most likely continuation found by beam search: (text, log-probability)."""
    ctx = context_ids(vocab, prime)
    logp, state = _feed(mcfg, params, np.array(ctx, np.int64)[:, None],
                        lm.zero_state(mcfg, 1, params["decoder.bias"].dtype))
    end = vocab.id("eos") if vocab.level == "word" else None
    beams, finished = [([], 0.0)], []
    banned = _banned(vocab)
    for _ in range(max_len):
        logp[:, banned] = -np.inf
        total = np.array([s for _, s in beams])[:, None] + logp        # (K, V)
        flat = np.argsort(-total, axis=None, kind="stable")[:beam]
        rows, toks = np.unravel_index(flat, total.shape)
        nxt = []
        for r, t in zip(rows, toks):
            seq, score = beams[r][0] + [int(t)], float(total[r, t])
            (finished if t == end else nxt).append((seq, score, r))
        if not nxt:
            beams = []
            break
        beams = [(s, sc) for s, sc, _ in nxt]
        keep = np.array([r for _, _, r in nxt])
        state = tuple(s[:, keep] for s in state)
        logp, state = _feed(mcfg, params, np.array([[s[-1] for s, _ in beams]]), state)
    # a complete sentence beats any cut-off one; partial beams only if none ended
    best = max(finished or [(s, sc, 0) for s, sc in beams], key=lambda b: b[1])
    toks = [t for t in best[0] if t != end]
    sep = " " if vocab.level == "word" else ""
    return (prime + sep if prime else "") + vocab_mod.decode(vocab, toks), best[1]


def score(mcfg, params, vocab, text):
    """Log-probability (nats) and perplexity of ``text`` as one sentence.

    Word models add the end token, so the score covers where the sentence stops;
    words outside the vocabulary are scored as the unknown token.
    """
    toks = vocab_mod.tokenize(vocab, text)
    ids = list(vocab_mod.encode(vocab, toks))
    if vocab.level == "word" and vocab.id("eos") is not None:
        ids.append(vocab.id("eos"))               # an empty sentence still has its end
    if not ids:
        raise ValueError("nothing to score: the text is empty")
    seq = np.array(_start(vocab) + ids, np.int64)[:, None]         # (T+1, 1)
    logits, _, _ = lm.logits_forward(mcfg, params, seq[:-1],
                                     lm.zero_state(mcfg, 1, params["decoder.bias"].dtype))
    z = logits[:, 0].astype(np.float64)                             # (T, V)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    lp = float(logp[np.arange(len(ids)), seq[1:, 0]].sum())
    unknown = sum(1 for t in toks if t not in vocab.stoi)
    return {"log_prob": lp, "tokens": len(ids), "perplexity": math.exp(-lp / len(ids)),
            "unknown": unknown}
