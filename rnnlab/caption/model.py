"""The captioner: a small CNN encoder and an LSTM decoder, as pure functions over a
flat params dict, each backward right under its forward.

Shapes: B batch, T caption steps, S = G*G grid cells, F feature size per cell,
E embedding, H hidden, V vocabulary, A attention size.

Encoder (trained end to end from random weights: no pretrained CNN can be
downloaded here)::

    image (B, 3, 48, 48) -> [conv 3x3 -> ReLU -> max-pool 2] x n -> (B, C, G, G)
    grid  (B, S=G*G, C) ++ fixed position features (row, col: linear and one-hot)
          -> feats (B, S, F = C + 2 + 2*G)

n = 3 blocks give a 6 x 6 grid, n = 4 a 3 x 3 grid whose cells are the scenes'
cells (one object per cell, each cell's receptive field covering it). With
``colour_channels`` > 0 the encoder has two streams (``encode``): the conv
blocks see the brightness only, and a 1x1 conv sees the colours, so a cell's
features name its shape and its colour separately; a colour-shape pair never
seen in training then reads as a known shape next to a known colour.

Decoders (``decoder`` in the config):

- ``attend`` (Show, Attend and Tell, Xu et al. 2015): h_0, c_0 = tanh(W mean_s feats);
  at every step additive attention over the grid with query h_{t-1} gives the
  weights alpha_t (B, S) and context z_t = sum_s alpha_ts feats_s; the LSTM reads
  [embed(w_{t-1}), z_t]; logits_t = W_o h_t + W_z z_t (the paper's deep output,
  so the attended cell speaks to the word directly). Loss: cross-entropy plus the doubly
  stochastic regulariser alpha_c * mean_b sum_s (1 - sum_t alpha_ts)^2, which
  asks every cell to be looked at about once over the caption. Training may
  drop words the LSTM reads (``word_dropout``: replaced by <pad>) and the
  context it reads (``ctx_dropout``, inverted dropout; the output layer keeps it).
- ``show-tell`` (Vinyals et al. 2015): h_0, c_0 = tanh(W flatten(feats)) (the whole
  grid, so positions survive); the LSTM reads embed(w_{t-1}) alone.

Backward: the loop over steps runs in reverse, carrying dh, dc; each step
splits the LSTM input gradient into the embedding's and the context's part,
sends the context's through the attention backward (with d alpha from the
regulariser), and adds the attention's dq to dh_{t-1}. The keys' gradients of
every step are summed and sent once through the key projection and the CNN.
"""
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from rnnlab.engine.cells import gate_rows, lstm as cell
from rnnlab.engine.sequence import DirParams
from rnnlab.nn import attention, conv
from rnnlab.nn.functional import (dropout_mask, linear_backward, linear_forward,
                                  softmax_cross_entropy)

DECODERS = ("attend", "show-tell")
PAD, BOS, EOS = 0, 1, 2


@dataclass(frozen=True)
class ModelConfig:
    decoder: str
    vocab_size: int
    channels: tuple = (16, 32, 32)
    embed: int = 32
    hidden: int = 128
    attention: int = 64
    alpha_c: float = 0.1
    image: int = 48                    # side of the square RGB input
    colour_channels: int = 0           # >0: two-stream encoder (see ``encode``)
    ctx_dropout: float = 0.0           # training: drop the context the LSTM reads
    word_dropout: float = 0.0          # training: replace the previous word by <pad>

    @property
    def grid(self):
        return self.image // 2 ** len(self.channels)

    @property
    def feat(self):
        return self.channels[-1] + self.colour_channels + 2 + 2 * self.grid

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**{**d, "channels": tuple(d["channels"])})


def init_params(cfg, rng=None, dtype=np.float32):
    rng = np.random.default_rng(rng)
    u = lambda shape, fan: rng.uniform(-fan ** -0.5, fan ** -0.5, shape).astype(dtype)
    p, C = {}, 1 if cfg.colour_channels else 3
    if cfg.colour_channels:
        p.update(conv.init_params(3, cfg.colour_channels, 1, rng, dtype, prefix="colour."))
    for i, O in enumerate(cfg.channels):
        p.update(conv.init_params(C, O, 3, rng, dtype, prefix=f"conv{i + 1}."))
        C = O
    S, F, H, E, V = cfg.grid ** 2, cfg.feat, cfg.hidden, cfg.embed, cfg.vocab_size
    init_in = F if cfg.decoder == "attend" else S * F
    for name in ("init_h", "init_c"):
        p[name + ".weight"], p[name + ".bias"] = u((H, init_in), init_in), np.zeros(H, dtype)
    p["embed.weight"] = rng.standard_normal((V, E)).astype(dtype) * 0.3
    I = E + (F if cfg.decoder == "attend" else 0)
    p.update({"lstm.weight_ih": u((4 * H, I), H), "lstm.weight_hh": u((4 * H, H), H),
              "lstm.bias_ih": np.zeros(4 * H, dtype), "lstm.bias_hh": np.zeros(4 * H, dtype)})
    p["lstm.bias_ih"][gate_rows(cell, cell.KEEP_GATE, H)] = 1.0   # forget-gate bias
    if cfg.decoder == "attend":
        p.update(attention.init_params("additive", H, F, cfg.attention, rng, dtype))
    p["out.weight"], p["out.bias"] = u((V, H), H), np.zeros(V, dtype)
    if cfg.decoder == "attend":
        p["out_ctx.weight"] = u((V, F), F)
    return p


def param_shapes(cfg):
    """{name: shape} of the model's weights."""
    return {k: v.shape for k, v in init_params(cfg, 0, np.float32).items()}


# ---------------------------------------------------------------- encoder

def position_features(G, dtype):
    """(S, 2 + 2G): row and column in [-1, 1], then their one-hots."""
    r, c = np.divmod(np.arange(G * G), G)
    lin = np.stack([r, c], 1) * (2.0 / max(G - 1, 1)) - 1.0
    return np.concatenate([lin, np.eye(G)[r], np.eye(G)[c]], 1).astype(dtype)


def encode(cfg, params, x):
    """feats (B, S, F) for images x (B, 3, image, image); cache for ``encode_backward``.

    One stream (``colour_channels`` 0): the conv blocks read the RGB image. Two
    streams (``colour_channels`` Cc > 0): the conv blocks read the image's
    brightness, max over R, G, B (HSV's value: about the same for every colour
    here), so the features they give each cell know the shape and size but not
    the colour; the colour stream is a 1x1 conv on the RGB pixels -> ReLU ->
    max-pool over each cell (B, S, Cc): which colours the cell holds, but
    no shape (it sees one pixel at a time). feats = [shape stream, colour
    stream, position].
    """
    img, caches = x, []
    if cfg.colour_channels:
        x = x.max(axis=1, keepdims=True)                                   # (B, 1, ·, ·)
    for i in range(len(cfg.channels)):
        w = params[f"conv{i + 1}.weight"]
        y, cc = conv.conv2d_forward(x, w, params[f"conv{i + 1}.bias"], 1, 1)
        r = conv.relu_forward(y)
        x, pc = conv.maxpool_forward(r, 2)
        caches.append((cc, r, pc))
    B, C, G, _ = x.shape
    parts = [x.reshape(B, C, G * G).transpose(0, 2, 1)]                    # (B, S, C)
    if cfg.colour_channels:
        y, cc = conv.conv2d_forward(img, params["colour.weight"], params["colour.bias"])
        r = conv.relu_forward(y)                                           # (B, Cc, ·, ·)
        col, pc = conv.maxpool_forward(r, img.shape[2] // G)               # (B, Cc, G, G)
        parts.append(col.reshape(B, -1, G * G).transpose(0, 2, 1))         # (B, S, Cc)
        caches.append((cc, r, pc))
    pos = position_features(G, x.dtype)
    parts.append(np.broadcast_to(pos, (B, G * G, pos.shape[1])))
    return np.concatenate(parts, 2), caches


def encode_backward(cfg, params, caches, dfeats):
    """grads of every conv tensor for dfeats (B, S, F)."""
    C, G, Cc = cfg.channels[-1], cfg.grid, cfg.colour_channels
    B = dfeats.shape[0]
    grads = {}
    if Cc:
        cc, r, pc = caches[-1]
        d = dfeats[:, :, C:C + Cc].transpose(0, 2, 1).reshape(B, Cc, G, G)
        d = conv.relu_backward(conv.maxpool_backward(d, pc), r)
        _, grads["colour.weight"], grads["colour.bias"] = conv.conv2d_backward(
            d, params["colour.weight"], cc, need_dx=False)
    d = dfeats[:, :, :C].transpose(0, 2, 1).reshape(B, C, G, G)          # (B, C, G, G)
    for i in reversed(range(len(cfg.channels))):
        cc, r, pc = caches[i]
        d = conv.relu_backward(conv.maxpool_backward(d, pc), r)
        w = params[f"conv{i + 1}.weight"]
        d, grads[f"conv{i + 1}.weight"], grads[f"conv{i + 1}.bias"] = conv.conv2d_backward(
            d, w, cc, need_dx=i > 0)
    return grads


# ---------------------------------------------------------------- decoder

class DecCache(NamedTuple):
    feats: np.ndarray      # (B, S, F)
    init_in: np.ndarray    # (B, F) or (B, S*F)
    h0c0: tuple            # (h_0, c_0) each (B, H)
    xs: list               # per step LSTM input (B, I)
    states: list           # per step (h, c) after the step; [0] is (h_0, c_0)
    acts: list             # per step gate activations (B, 4H)
    att: list              # per step attention caches (or empty)
    alphas: np.ndarray     # (T, B, S) or None
    ctxs: list             # per step context (B, F) (or empty)
    keep: np.ndarray       # (T, B, F) context dropout mask, or None
    inputs: np.ndarray     # (B, T) the words read (after word dropout)


def lstm_params(params):
    return DirParams(params["lstm.weight_ih"], params["lstm.weight_hh"],
                     params["lstm.bias_ih"], params["lstm.bias_hh"])


def init_state(cfg, params, feats):
    """(init_in, (h_0, c_0)): the decoder's start from the image."""
    B = feats.shape[0]
    inp = feats.mean(axis=1) if cfg.decoder == "attend" else feats.reshape(B, -1)
    return inp, tuple(np.tanh(linear_forward(inp, params[n + ".weight"], params[n + ".bias"]))
                      for n in ("init_h", "init_c"))


def step(cfg, params, p, pk, feats, word, state, keep=None):
    """One decoder step from ``state`` reading ``word`` (B,): (logits (B, V),
    new state, alpha (B, S) or None, (x, acts, attention cache, context)).
    ``keep`` (B, F): the training dropout mask (scaled) on the context the LSTM
    reads; the output layer always gets the whole context."""
    h, c = state
    x, alpha, ac, ctx = params["embed.weight"][word], None, None, None      # (B, E)
    if cfg.decoder == "attend":
        ctx, alpha, ac = attention.forward("additive", params, h, feats, pk)
        x = np.concatenate([x, ctx if keep is None else ctx * keep], 1)    # (B, E + F)
    gx = linear_forward(x, p.w_ih, p.b_ih)                                 # (B, 4H)
    new, acts = cell.step_forward(np, p, gx, state)
    logits = linear_forward(new[0], params["out.weight"], params["out.bias"])
    if ac is not None:
        logits += ctx @ params["out_ctx.weight"].T                        # (B, V)
    return logits, new, alpha, (x, acts, ac, ctx)


def dropout_masks(cfg, ids, feats, rng):
    """(inputs (B, T), keep (T, B, F) or None) for training with ``rng``: the words
    read, each after the first replaced by <pad> with probability ``word_dropout``,
    and the inverted-dropout mask of the context the LSTM reads (``ctx_dropout``)."""
    inputs = ids[:, :-1].copy()
    if rng is None:
        return inputs, None
    if cfg.word_dropout:
        drop = rng.random(inputs.shape) < cfg.word_dropout
        drop[:, 0] = False
        inputs[drop] = PAD
    if cfg.decoder != "attend":
        return inputs, None
    T, (B, _, F) = inputs.shape[1], feats.shape
    return inputs, dropout_mask((T, B, F), cfg.ctx_dropout, rng, feats.dtype)


def decode(cfg, params, feats, ids, rng=None):
    """Teacher-forced pass over ids (B, T+1) (BOS first): logits (T, B, V), cache.
    ``rng`` (training): word and context dropout as the config asks."""
    p = lstm_params(params)
    pk = attention.project_keys("additive", params, feats) if cfg.decoder == "attend" else None
    inputs, keep = dropout_masks(cfg, ids, feats, rng)
    init_in, state = init_state(cfg, params, feats)
    states, xs, acts, att, alphas, logits, ctxs = [state], [], [], [], [], [], []
    for t in range(inputs.shape[1]):
        lg, state, alpha, (x, a, ac, ctx) = step(cfg, params, p, pk, feats, inputs[:, t], state,
                                                 None if keep is None else keep[t])
        states.append(state), xs.append(x), acts.append(a), logits.append(lg)
        if alpha is not None:
            att.append(ac), alphas.append(alpha), ctxs.append(ctx)
    al = np.stack(alphas) if alphas else None
    return np.stack(logits), DecCache(feats, init_in, states[0], xs, states, acts, att, al,
                                      ctxs, keep, inputs)


def loss_forward(cfg, params, images, ids, rng=None):
    """(loss, parts, caches): mean token cross-entropy (+ the attention regulariser).
    ``rng``: training mode (word and context dropout, when the config has them)."""
    feats, enc = encode(cfg, params, images)
    logits, dec = decode(cfg, params, feats, ids, rng)
    T, B, V = logits.shape
    targets = ids[:, 1:].T                                                 # (T, B)
    mask = (targets != PAD).astype(logits.dtype)
    ce, dlogits = softmax_cross_entropy(logits.reshape(T * B, V), targets.reshape(-1),
                                        mask.reshape(-1))
    reg, dalpha = 0.0, None
    if dec.alphas is not None and cfg.alpha_c:
        left = 1.0 - np.einsum("tbs,tb->bs", dec.alphas, mask)             # (B, S)
        reg = cfg.alpha_c * float((left ** 2).sum(axis=1).mean())
        dalpha = (-2.0 * cfg.alpha_c / B) * left[None] * mask[:, :, None]  # (T, B, S)
    parts = {"ce": ce, "reg": reg, "tokens": int(mask.sum())}
    return ce + reg, parts, (enc, dec, dlogits.reshape(T, B, V), dalpha)


def backward(cfg, params, caches):
    """Gradients of ``loss_forward``'s loss for every parameter."""
    enc, dec, dlogits, dalpha = caches
    T, B, V = dlogits.shape
    p, H = lstm_params(params), cfg.hidden
    hs = np.stack([s[0] for s in dec.states[1:]])                          # (T, B, H)
    dhs, g_out_w, g_out_b = linear_backward(dlogits, hs, params["out.weight"])
    g = {"out.weight": g_out_w, "out.bias": g_out_b}
    gx_all = np.zeros((T, B, 4 * H), dlogits.dtype)
    dfeats = np.zeros_like(dec.feats)
    dpk = np.zeros((B, dec.feats.shape[1], cfg.attention), dlogits.dtype) if dec.att else None
    att_g = {}
    dh, dc = np.zeros_like(dec.h0c0[0]), np.zeros_like(dec.h0c0[1])
    for t in reversed(range(T)):
        da, _, (dh_prev, dc) = cell.step_backward(np, p, (dh + dhs[t], dc), dec.acts[t],
                                                  dec.states[t], dec.states[t + 1])
        gx_all[t] = da
        dh = dh_prev
        if dec.att:
            dctx = da @ p.w_ih[:, cfg.embed:]                              # (B, F)
            if dec.keep is not None:
                dctx *= dec.keep[t]
            dctx += dlogits[t] @ params["out_ctx.weight"]
            dq, dk, dpk_t, ga = attention.backward(
                "additive", params, dec.att[t], dctx,
                dweights=None if dalpha is None else dalpha[t])
            dh, dfeats, dpk = dh + dq, dfeats + dk, dpk + dpk_t
            att_g = {k: att_g.get(k, 0) + v for k, v in ga.items()}
    xs = np.stack(dec.xs)                                                  # (T, B, I)
    if dec.att:
        g["out_ctx.weight"] = np.einsum("tbv,tbf->vf", dlogits, np.stack(dec.ctxs))
    dxs, g["lstm.weight_ih"], g["lstm.bias_ih"] = linear_backward(gx_all, xs, p.w_ih)
    g["lstm.weight_hh"] = np.einsum("tbg,tbh->gh", gx_all, hs_prev(dec))
    g["lstm.bias_hh"] = gx_all.sum(axis=(0, 1))
    g["embed.weight"] = np.zeros_like(params["embed.weight"])
    np.add.at(g["embed.weight"], dec.inputs.T.reshape(-1),
              dxs[..., :cfg.embed].reshape(-1, cfg.embed))                 # (T*B, E)
    dinit = _init_backward(cfg, params, dec, (dh, dc), g)
    if dec.att:
        dk2, gk = attention.project_keys_backward("additive", params, dec.feats, dpk)
        g.update(att_g), g.update(gk)
        dfeats += dk2 + dinit[:, None, :] / dec.feats.shape[1]
    else:
        dfeats += dinit.reshape(dfeats.shape)
    g.update(encode_backward(cfg, params, enc, dfeats))
    return g


def hs_prev(dec):
    return np.stack([s[0] for s in dec.states[:-1]])                       # (T, B, H)


def _init_backward(cfg, params, dec, dstate0, g):
    """Through h_0, c_0 = tanh(W init_in + b); returns d init_in, fills g."""
    dinit = 0
    for name, s0, ds in zip(("init_h", "init_c"), dec.h0c0, dstate0):
        dz = ds * (1.0 - s0 * s0)
        d, g[name + ".weight"], g[name + ".bias"] = linear_backward(dz, dec.init_in,
                                                                    params[name + ".weight"])
        dinit = dinit + d
    return dinit
