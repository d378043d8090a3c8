"""Decoding: greedy (batched) and beam search, both returning the attention maps.

Shapes: B images, S grid cells, T emitted words, k beam width.
"""
import numpy as np

from rnnlab.caption import model
from rnnlab.nn import attention
from rnnlab.nn.functional import log_softmax


def _start(cfg, params, images):
    feats, _ = model.encode(cfg, params, images)
    pk = attention.project_keys("additive", params, feats) if cfg.decoder == "attend" else None
    _, state = model.init_state(cfg, params, feats)
    return feats, pk, state


def greedy(cfg, params, images, max_len=20):
    """(ids: list of B word-id lists without </s>, alphas: list of B (T_i, S) arrays
    (None for show-tell)) taking the likeliest word at every step."""
    feats, pk, state = _start(cfg, params, images)
    B, S = feats.shape[:2]
    p = model.lstm_params(params)
    word = np.full(B, model.BOS)
    done = np.zeros(B, bool)
    out, maps = [[] for _ in range(B)], [[] for _ in range(B)]
    for _ in range(max_len):
        logits, state, alpha, _ = model.step(cfg, params, p, pk, feats, word, state)
        word = logits.argmax(axis=1)
        for b in np.flatnonzero(~done):
            if word[b] == model.EOS:
                done[b] = True
            else:
                out[b].append(int(word[b]))
                if alpha is not None:
                    maps[b].append(alpha[b])
        if done.all():
            break
    alphas = None if cfg.decoder != "attend" else [np.array(m).reshape(-1, S) for m in maps]
    return out, alphas


def beam(cfg, params, image, k=3, max_len=20):
    """(ids, log-probability, alphas (T, S) or None) of the best of ``k`` beams
    for one image (1, 3, size, size); a finished hypothesis leaves the beam."""
    feats, pk, state = _start(cfg, params, image)
    p = model.lstm_params(params)
    hyps = [((), 0.0, ())]                               # (ids, log-prob, alphas)
    done = []
    for _ in range(max_len):
        n = len(hyps)
        words = np.array([h[0][-1] if h[0] else model.BOS for h in hyps])
        rep = lambda a: np.repeat(a[:1], n, 0) if a.shape[0] != n else a
        logits, new, alpha, _ = model.step(cfg, params, p, None if pk is None else rep(pk),
                                           rep(feats), words, tuple(rep(s) for s in state))
        scores = np.array([h[1] for h in hyps])[:, None] + log_softmax(logits)   # (n, V)
        best = np.argsort(scores, axis=None)[::-1][:k]
        keep, rows = [], []
        for flat in best:
            r, w = divmod(int(flat), scores.shape[1])
            if w == model.EOS:
                done.append((hyps[r][0], float(scores[r, w]), hyps[r][2]))
            else:
                a = hyps[r][2] + ((alpha[r],) if alpha is not None else ())
                keep.append((hyps[r][0] + (w,), float(scores[r, w]), a))
                rows.append(r)
        if len(done) >= k or not keep:
            break
        hyps, state = keep, tuple(s[rows] for s in new)
    ids, lp, a = max(done or hyps, key=lambda h: h[1])
    return list(ids), lp, (np.array(a) if alpha is not None else None)
