"""Generation from a trained language model: sampling, beam search, scoring.

Word models with sentence tokens generate whole sentences, as the RNN tutorial
does: start from the sentence-start token (or the end-of-line token, which is
what precedes every PTB sentence), stop at the end token, and never emit the
unknown token (its probability is set to zero before sampling, and a model
whose next-token distribution is not finite is an error, not a stream of
``<unk>``).

What one call may ask for is bounded (``GenerateOptions``, the same checks for
the command line and the Python API): samples are drawn in groups so that
memory does not grow with ``n``, the priming text runs once in chunks, a beam
is at most the vocabulary and at most what fits in ``MAX_BEAM_CELLS`` scores
per step, and scoring runs in chunks.
"""
import math
from dataclasses import dataclass, fields
from typing import Optional

import numpy as np

from rnnlab import nn
from rnnlab.engine.truncation import chunk_slices
from rnnlab.lm import model as lm, vocab as vocab_mod
from rnnlab.training.options import check, flag, option

MAX_SAMPLES, MAX_LEN, MAX_BEAM = 1000, 10_000, 1000
GROUP_CELLS = 1 << 22         # rows x vocabulary per sampling group (32 MB of float64)
MAX_BEAM_CELLS = 1 << 24      # beam x vocabulary scores per beam step (128 MB of float64)
CHUNK = 256                   # tokens per forward when running a prime or a scored text


@dataclass
class GenerateOptions:
    """``rnnlab generate``'s options; ``sample``, ``beam_search`` and ``score`` apply the
    same checks to their arguments."""
    checkpoint: str = option("", "checkpoint file (.npz)", positional="required")
    prime: str = option("", "text the samples start with")
    num_samples: int = option(3, "samples to draw", lo=1, hi=MAX_SAMPLES, short="-n")
    max_len: int = option(60, "maximum tokens per sample or beam", lo=1, hi=MAX_LEN)
    temperature: float = option(1.0, "softmax temperature", lo=0, lo_open=True)
    top_k: int = option(0, "sample among the k likeliest tokens (0: all)", lo=0)
    top_p: float = option(1.0, "nucleus sampling: the smallest set of tokens holding this "
                          "much probability (1: off)", lo=0, hi=1, lo_open=True)
    seed: int = option(0, "random seed", lo=0)
    beam: int = option(0, "beam width: print the most likely continuation instead of "
                       "samples (0: sample); at most the vocabulary size", lo=0, hi=MAX_BEAM)
    score: Optional[str] = option(None, "print this sentence's log-probability and perplexity")

    def __post_init__(self):
        check(self)
        # what the chosen mode would ignore is an error, not a silent no-op (round
        # twelve's audit): --score reads only the sentence, --beam no sampling option
        d = {f.name: f.default for f in fields(self)}
        sampling = [f for f in ("num_samples", "temperature", "top_k", "top_p", "seed")
                    if getattr(self, f) != d[f]]
        given = lambda names: ", ".join(flag(n) if n != "num_samples" else "-n" for n in names)  # noqa: E731
        if self.score is not None:
            other = sampling + [f for f in ("beam", "prime", "max_len") if getattr(self, f) != d[f]]
            if other:
                raise ValueError(f"{given(other)}: not used with --score (it scores the "
                                 "sentence as given)")
        elif self.beam and sampling:
            raise ValueError(f"{given(sampling)}: sampling options, not used with --beam "
                             "(it prints the one most likely continuation)")


def _checked(**kw):
    """Check API arguments with GenerateOptions' rules."""
    return GenerateOptions(**kw)


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


def _log_probs(logits):
    """float64 log-probabilities (B, V) of the last step's logits; a model whose
    outputs are not finite (NaN weights) is an error here, not a garbage sample."""
    if not np.isfinite(logits).all():
        raise ValueError("the model's outputs are not finite (NaN or Inf weights?); "
                         "this checkpoint cannot generate")
    return nn.log_softmax(logits.astype(np.float64))


def _feed(mcfg, params, ids, state):
    """Run ids (T, B); returns log-probabilities of the next token (B, V) and the state."""
    logits, state, _ = lm.logits_forward(mcfg, params, ids, state)
    return _log_probs(logits[-1]), state


def _step(mcfg, params, tok, state):
    """One token per row, tok (B,): the next token's float64 logits (B, V), checked
    finite, and the state. Sampling needs no normalisation: every rule below is the
    same for logits and for log-probabilities (they differ by a constant per row)."""
    logits, state = lm.step_logits(mcfg, params, tok, state)           # (B, V)
    if not np.isfinite(logits).all():
        raise ValueError("the model's outputs are not finite (NaN or Inf weights?); "
                         "this checkpoint cannot generate")
    return logits.astype(np.float64), state


def _prime(mcfg, params, ctx):
    """Log-probabilities (1, V) after the context, and the state: one row, in chunks."""
    ids = np.array(ctx, np.int64)[:, None]                          # (T0, 1)
    state = lm.zero_state(mcfg, 1, params["decoder.bias"].dtype)
    for sl in chunk_slices(len(ctx), CHUNK):
        logp, state = _feed(mcfg, params, ids[sl], state)
    return logp, state


def _temper(z, banned, temperature):
    """z (B, V) divided by the temperature and the banned tokens set to -inf, in place."""
    if temperature != 1:
        with np.errstate(over="ignore", under="ignore"):    # tiny temperatures: -inf is right
            z /= temperature
    z[:, banned] = -np.inf
    return z


def _row_max(z):
    """Each row's largest score (B, 1); a row with nothing left to draw is an error."""
    top = z.max(axis=1, keepdims=True)
    if not np.isfinite(top).all():
        raise ValueError("no token is left to sample: every token of the vocabulary is a "
                         "special one (unknown, sentence start) or has probability 0")
    return top


def next_token_probs(logp, banned, temperature=1.0, top_k=0, top_p=1.0):
    """Sampling distribution (B, V) from log-probabilities (B, V)."""
    _checked(temperature=temperature, top_k=top_k, top_p=top_p)
    z = _temper(logp.copy(), banned, temperature)
    if top_k and top_k < z.shape[1]:
        kth = np.sort(z, axis=1)[:, -top_k][:, None]               # (B, 1)
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - _row_max(z))
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


def _draw(p, rng):
    """One token per row of p (B, V); only tokens with p > 0 can be drawn."""
    c = np.cumsum(p, axis=1)
    u = np.maximum(rng.random((p.shape[0], 1)) * c[:, -1:], np.finfo(c.dtype).tiny)
    return np.minimum((c < u).sum(axis=1), p.shape[1] - 1)          # first c >= u


def _draw_plain(z, banned, temperature, rng):
    """Plain sampling (no top-k, no top-p) straight from logits z (B, V) float64,
    overwritten: the draw ``_draw(next_token_probs(z, banned, temperature), rng)``
    makes, with the same uniforms, in half the passes over (B, V)."""
    _temper(z, banned, temperature)
    z -= _row_max(z)
    np.exp(z, out=z)
    np.cumsum(z, axis=1, out=z)                                    # unnormalised CDF
    u = np.maximum(rng.random((z.shape[0], 1)) * z[:, -1:], np.finfo(z.dtype).tiny)
    return np.minimum((z < u).sum(axis=1), z.shape[1] - 1)


def sample(mcfg, params, vocab, n=1, max_len=60, temperature=1.0, top_k=0, top_p=1.0,
           prime="", rng=None):
    """n samples (strings: the priming text plus its continuation)."""
    _checked(num_samples=n, max_len=max_len, temperature=temperature, top_k=top_k,
             top_p=top_p)
    rng = np.random.default_rng(rng)
    logp0, state0 = _prime(mcfg, params, context_ids(vocab, prime))
    end = vocab.id("eos") if vocab.level == "word" else None
    group = max(1, min(n, GROUP_CELLS // len(vocab)))
    banned, plain = _banned(vocab), not top_k and top_p >= 1
    out = []
    for g0 in range(0, n, group):
        g = min(group, n - g0)
        z = np.repeat(logp0, g, axis=0)                            # (g, V)
        state = tuple(np.repeat(s, g, axis=1) for s in state0)
        rows, done = [[] for _ in range(g)], np.zeros(g, bool)
        for _ in range(max_len):
            if plain:
                tok = _draw_plain(z, banned, temperature, rng)
            else:
                tok = _draw(next_token_probs(z, banned, temperature, top_k, top_p), rng)
            for b in np.flatnonzero(~done):
                done[b] = end is not None and tok[b] == end
                if not done[b]:
                    rows[b].append(int(tok[b]))
            if done.all():
                break
            z, state = _step(mcfg, params, tok, state)
        out.extend(rows)
    sep = " " if vocab.level == "word" else ""
    head = (prime + sep) if prime and vocab.level == "word" else (prime or "")
    return [head + vocab_mod.decode(vocab, o) for o in out]


def max_beam(vocab_size):
    """The widest beam one step can afford for this vocabulary."""
    return max(1, min(vocab_size, MAX_BEAM, MAX_BEAM_CELLS // vocab_size))


def beam_search(mcfg, params, vocab, prime="", beam=5, max_len=30):
    """The most likely continuation found by beam search: (text, log-probability)."""
    _checked(beam=beam, max_len=max_len)
    if beam < 1 or beam > max_beam(len(vocab)):
        raise ValueError(f"--beam: expected an integer from 1 to {max_beam(len(vocab))} for "
                         f"this model (vocabulary {len(vocab):,} tokens), got {beam}")
    logp, state = _prime(mcfg, params, context_ids(vocab, prime))
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
            if not np.isfinite(total[r, t]):
                continue                                   # banned: never a candidate
            seq, score_ = beams[r][0] + [int(t)], float(total[r, t])
            (finished if t == end else nxt).append((seq, score_, r))
        if not nxt:
            beams = []
            break
        beams = [(s, sc) for s, sc, _ in nxt]
        keep = np.array([r for _, _, r in nxt])
        state = tuple(s[:, keep] for s in state)
        logp, state = _feed(mcfg, params, np.array([[s[-1] for s, _ in beams]]), state)
    # a complete sentence beats any cut-off one; partial beams only if none ended
    best = max(finished or [(s, sc, 0) for s, sc in beams] or [([], -math.inf, 0)],
               key=lambda b: b[1])
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
    state = lm.zero_state(mcfg, 1, params["decoder.bias"].dtype)
    lp = 0.0
    for sl in chunk_slices(len(ids), CHUNK):
        logits, state, _ = lm.logits_forward(mcfg, params, seq[sl], state)
        logp = _log_probs(logits[:, 0])                                # (T, V)
        lp += float(logp[np.arange(logp.shape[0]), seq[sl.start + 1:sl.stop + 1, 0]].sum())
    unknown = sum(1 for t in toks if t not in vocab.stoi)
    return {"log_prob": lp, "tokens": len(ids), "perplexity": math.exp(-lp / len(ids)),
            "unknown": unknown}


def run(opts, print_=print):
    """``rnnlab generate``: load the checkpoint, then score, beam-search or sample."""
    mcfg, params, vocab, _ = lm.load_model(opts.checkpoint)
    if opts.score is not None:
        s = score(mcfg, params, vocab, opts.score)
        print_(f"log-probability {s['log_prob']:.3f} nats over {s['tokens']} tokens, "
               f"perplexity {s['perplexity']:.2f}"
               + (f" ({s['unknown']} unknown word(s) scored as {vocab.unk})"
                  if s["unknown"] else ""))
        return
    if opts.beam:
        text, lp = beam_search(mcfg, params, vocab, opts.prime, opts.beam, opts.max_len)
        print_(f"{text}\n(log-probability {lp:.3f})")
        return
    for s in sample(mcfg, params, vocab, opts.num_samples, opts.max_len, opts.temperature,
                    opts.top_k, opts.top_p, opts.prime, opts.seed):
        print_(s if vocab.level == "word" else s + "\n" + "-" * 40)
