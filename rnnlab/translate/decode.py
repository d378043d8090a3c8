"""Decoding: greedy, batched beam search with n-best lists, scoring a given translation.

Every decoder reads the same step (``decoder.step_forward``) and the same
log-probabilities: log-softmax of the logits, ``<pad>`` and ``<bos>`` never
chosen, and at a row's last allowed step only ``<eos>``. A row may write at
most ``floor(max_len_a * source length + max_len_b)`` tokens, ``<eos>``
included (fairseq's rule), so a source longer than any seen in training
simply allows a longer output.

A hypothesis's score is the sum of its tokens' log-probabilities under the
model (``<eos>`` included); beam search ranks by ``score / length ** alpha``
(``alpha`` 0: the raw score; 1: the per-token mean). Beam search keeps
``width`` live hypotheses per sentence in one batch of B * width rows, moves a
hypothesis ending in ``<eos>`` among the top ``width`` candidates to the
finished list, and stops a sentence once it has ``width`` finished ones.
Beam search is not monotone in the width in general; here the greedy
translation is added to the finished list of every sentence, so a wider beam
never ranks below greedy under the model (and width 1 *is* greedy).

What the command line may ask for is declared once in ``DecodeOptions`` (ranges,
and the combinations that would decode nothing or ignore an option); a beam is at
most the target vocabulary and 1,000 (``max_beam``, as ``rnnlab generate``), and
beam search runs as many sentences at a time as keep ``MAX_BEAM_CELLS`` scores
per step, so memory does not grow with the batch size times the beam.
"""
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from rnnlab import nn
from rnnlab.training.options import check, option
from rnnlab.translate import decoder
from rnnlab.translate.data import BOS_ID, EOS_ID, PAD_ID
from rnnlab.translate.model import encode, out_weight, select

MAX_BEAM = 1000               # as rnnlab generate's --beam
MAX_BEAM_CELLS = 1 << 24      # sentences x beam x vocabulary scores per beam step (128 MB)
MAX_LEN_A, MAX_LEN_B = 100, 10_000   # far beyond any translation; keeps the cap an int64


@dataclass
class DecodeOptions:
    """``rnnlab translate eval`` and ``translate``'s decoding options, checked once."""
    beam: int = option(1, "beam width (1: greedy); at most the target vocabulary", lo=1,
                       hi=MAX_BEAM)
    alpha: float = option(0.0, "beam search: rank by score / length**alpha (length "
                          "normalisation)", lo=0)
    max_len_a: float = option(1.5, "output length cap a*|src|+b, <eos> included", lo=0,
                              hi=MAX_LEN_A)
    max_len_b: float = option(10.0, "output length cap a*|src|+b, <eos> included", lo=0,
                              hi=MAX_LEN_B)
    batch_size: int = option(64, "sentences per batch", lo=1)
    nbest: int = option(1, "print the N best translations (N <= --beam)", lo=1)

    def __post_init__(self):
        check(self)
        if self.nbest > self.beam:
            raise ValueError(f"--beam/--nbest: expected 1 <= nbest <= beam, got beam "
                             f"{self.beam}, nbest {self.nbest}")
        # the cap counts <eos>: below 2 a one-token source gets an empty translation
        # (and with a = 0 every source does)
        if self.max_len_a + self.max_len_b < 2:
            raise ValueError(f"--max-len-a/--max-len-b: expected a + b >= 2, so that the "
                             f"cap a*|src|+b (<eos> included) leaves room for a word, got "
                             f"a {self.max_len_a:g}, b {self.max_len_b:g}")
        # greedy decoding keeps one hypothesis: nothing for alpha to rank
        if self.alpha and self.beam == 1:
            raise ValueError(f"--alpha {self.alpha:g}: ranks the hypotheses of a beam search, "
                             "so it changes nothing with --beam 1 (greedy); give --beam K > 1 "
                             "or drop --alpha")


def max_beam(vocab_size):
    """The widest beam for this target vocabulary (no wider than the choices, and one
    sentence's scores within ``MAX_BEAM_CELLS``)."""
    return max(1, min(vocab_size, MAX_BEAM, MAX_BEAM_CELLS // vocab_size))


def check_beam(width, vocab_size):
    if not 1 <= width <= max_beam(vocab_size):
        raise ValueError(f"--beam: expected an integer from 1 to {max_beam(vocab_size)} for "
                         f"this model (target vocabulary {vocab_size:,} tokens), got {width}")


class Hypothesis(NamedTuple):
    tokens: list           # target ids, <eos> last when it was written
    score: float           # sum of log-probabilities
    norm: float            # the ranking score: score / len ** alpha
    attention: np.ndarray  # (len, S) weights per written token (empty without attention)


def max_lengths(src_len, a=1.5, b=10):
    """Output length caps a*|src| + b, at least 1. a and b are checked here as well,
    for callers of the Python API (the command line checks them in DecodeOptions):
    NaN made empty translations and a cast warning."""
    if not (math.isfinite(a) and math.isfinite(b) and a >= 0 and b >= 0):
        raise ValueError(f"max_len_a, max_len_b: expected finite numbers >= 0, got {a}, {b}")
    return np.maximum(1, np.floor(a * np.asarray(src_len) + b)).astype(np.int64)


def log_probs(cfg, params, o, t=None, limit=None):
    """(rows, V) log-probabilities for output features o; <eos> forced at the limit."""
    lp = nn.log_softmax(o @ out_weight(cfg, params).T + params["out.bias"])
    lp[:, PAD_ID] = -np.inf
    lp[:, BOS_ID] = -np.inf
    if limit is not None:
        last = t >= limit - 1
        if last.any():
            eos = lp[last, EOS_ID]
            lp[last] = -np.inf
            lp[last, EOS_ID] = eos
    return lp


def _hyp(tokens, score, att, alpha):
    return Hypothesis(list(tokens), float(score), float(score) / len(tokens) ** alpha, att)


def greedy(cfg, params, src, src_len, max_len_a=1.5, max_len_b=10, alpha=0.0):
    """One Hypothesis per row: the most probable token at every step."""
    mem, state, _ = encode(cfg, params, src, src_len)
    S, B = src.shape
    limit = max_lengths(src_len, max_len_a, max_len_b)
    rows = np.arange(B)
    y = np.full(B, BOS_ID)
    alive, score, toks, atts = np.ones(B, bool), np.zeros(B), [], []
    for t in range(int(limit.max())):
        o, state, a, _ = decoder.step_forward(cfg, params, mem, y, state)
        lp = log_probs(cfg, params, o, t, limit)
        y = lp.argmax(axis=1)
        score += np.where(alive, lp[rows, y], 0.0)
        toks.append(np.where(alive, y, PAD_ID))
        atts.append(a if a is not None else np.zeros((B, 0)))
        alive &= y != EOS_ID
        if not alive.any():
            break
    toks, atts = np.stack(toks, 1), np.stack(atts, 1)                  # (B, t), (B, t, S)
    out = []
    for b in range(B):
        n = int((toks[b] != PAD_ID).sum())
        out.append(_hyp(toks[b, :n], score[b], atts[b, :n], alpha))
    return out


def beam_search(cfg, params, src, src_len, width=5, alpha=0.0, nbest=1, max_len_a=1.5,
                max_len_b=10):
    """Per row, the ``nbest`` best Hypotheses (best first) of a width-``width`` beam."""
    if width < 1 or nbest < 1 or nbest > width:
        raise ValueError(f"--beam/--nbest: expected 1 <= nbest <= beam, got beam {width}, "
                         f"nbest {nbest}")
    check_beam(width, cfg.tgt_vocab)
    S, B = src.shape
    rows = max(1, MAX_BEAM_CELLS // (width * cfg.tgt_vocab))          # sentences per pass
    if B > rows:                       # sentences are independent: same result, less memory
        return [hyps for i in range(0, B, rows)
                for hyps in beam_search(cfg, params, src[:, i:i + rows], src_len[i:i + rows],
                                        width, alpha, nbest, max_len_a, max_len_b)]
    K = width
    mem, state, _ = encode(cfg, params, src, src_len)
    rep = np.repeat(np.arange(B), K)                                   # row b -> K beams
    mem, state = select(mem, rep), select(state, rep)
    limit = max_lengths(src_len, max_len_a, max_len_b)
    scores = np.full((B, K), -np.inf)
    scores[:, 0] = 0.0                                                 # one live beam at first
    toks, atts = np.zeros((B * K, 0), np.int64), np.zeros((B * K, 0, S if cfg.attends else 0))
    y = np.full(B * K, BOS_ID)
    finished, done = [[] for _ in range(B)], np.zeros(B, bool)
    for t in range(int(limit.max())):
        o, state, a, _ = decoder.step_forward(cfg, params, mem, y, state)
        lp = log_probs(cfg, params, o, t, limit[rep])
        a = np.zeros((B * K, 0)) if a is None else a
        V = lp.shape[1]
        cand = (scores.reshape(-1, 1) + lp).reshape(B, K * V)
        n = min(2 * K, K * V)
        top = np.argsort(-cand, axis=1, kind="stable")[:, :n]          # (B, n) best first
        val = np.take_along_axis(cand, top, axis=1)
        new_scores, src_beam = np.full((B, K), -np.inf), np.zeros((B, K), np.int64)
        new_tok = np.full((B, K), PAD_ID)
        for b in np.flatnonzero(~done):
            k = 0
            for r in range(n):
                if not np.isfinite(val[b, r]) or k == K:
                    break
                beam, w = divmod(int(top[b, r]), V)
                if w == EOS_ID:
                    if r < K:
                        i = b * K + beam
                        finished[b].append(_hyp(list(toks[i]) + [EOS_ID], val[b, r],
                                                np.concatenate([atts[i], a[i][None]]), alpha))
                    continue
                new_scores[b, k], src_beam[b, k], new_tok[b, k] = val[b, r], beam, w
                k += 1
            done[b] = len(finished[b]) >= K or k == 0
        if done.all():
            break
        idx = (np.arange(B)[:, None] * K + src_beam).reshape(-1)
        state = select(state, idx)
        toks = np.concatenate([toks[idx], new_tok.reshape(-1, 1)], axis=1)
        atts = np.concatenate([atts[idx], a[idx][:, None]], axis=1)
        scores, y = new_scores, new_tok.reshape(-1)
    if K > 1:
        for b, g in enumerate(greedy(cfg, params, src, src_len, max_len_a, max_len_b, alpha)):
            if all(h.tokens != g.tokens for h in finished[b]):
                finished[b].append(g)
    return [sorted(f, key=lambda h: -h.norm)[:nbest] for f in finished]


def score(cfg, params, batch):
    """(B,) sum of log-probabilities of each row's given target (<eos> included)."""
    src, src_len, tgt = batch
    mem, state, _ = encode(cfg, params, src, src_len)
    B = src.shape[1]
    rows, total = np.arange(B), np.zeros(B)
    for t in range(tgt.shape[0] - 1):
        o, state, _, _ = decoder.step_forward(cfg, params, mem, tgt[t], state)
        lp = nn.log_softmax(o @ out_weight(cfg, params).T + params["out.bias"])
        gold = tgt[t + 1]
        total += np.where(gold != PAD_ID, lp[rows, gold], 0.0)
    return total
