"""Encoder-decoder with attention, forward and backward written out by hand.

Shapes: S source steps, T target steps, B batch, E embedding, He encoder hidden,
C = 2 He (context: both directions), Hd decoder hidden, O output features,
V vocabulary.

Encoder: src ids (S, B) -> embedding (S, B, E) -> dropout -> bidirectional
stack (the engine's layers, ``lengths=`` so each row stops at its own end)
-> keys (B, S, C); the initial decoder state is
``h_0 = tanh(W_bridge [h_fwd_last; h_bwd_last] + b)`` from the top layer (as
Bahdanau et al. and bentrevett's notebooks; an LSTM decoder starts with c_0 = 0).

Decoder step (``step_forward`` / ``step_backward``, side by side), y the
previous target token, e its embedding after dropout:

    bahdanau: c, a = attend(h_{t-1});  h_t = cell([e; c], h_{t-1});  o = [h_t; c; e]
    luong:    h_t = cell([e; h~_{t-1}] with input feeding, else e, h_{t-1})
              c, a = attend(h_t);  h~_t = tanh(W_c [c; h_t]);  o = h~_t
    none:     h_t = cell(e, h_{t-1});  o = [h_t; e]      (no attention: the baseline)

then logits = W_out dropout(o) + b_out (one product over all steps). Attention is
``rnnlab.nn.attention`` (additive, dot, general), masked at source padding.
With tied embeddings W_out is ``tgt_emb.weight`` (needs O == E; Luong with Hd == E).

Loss: mean cross-entropy over real target tokens (padding weight 0), optional
label smoothing; teacher forcing with probability ``teacher_forcing`` per step
(one coin per step for the whole batch), otherwise the model's own argmax.

Parameters (flat dict): ``src_emb.weight`` (V_s, E), ``encoder.<engine names>``,
``bridge.weight`` (Hd, C), ``bridge.bias``, ``tgt_emb.weight`` (V_t, E),
``decoder.weight_ih`` (G, I_d), ``decoder.weight_hh`` (G, Hd), ``decoder.bias_ih``,
``decoder.bias_hh`` (the cell's gate order, PyTorch's GRUCell/LSTMCell layout),
``attention.*``, ``combine.weight`` (Hd, C + Hd) (Luong), ``out.weight`` (V_t, O)
(absent when tied), ``out.bias`` (V_t,).
"""
from dataclasses import asdict, dataclass
from typing import NamedTuple, Optional

import numpy as np

from rnnlab import nn
from rnnlab.engine import layers
from rnnlab.engine.cells import CELLS
from rnnlab.nn import attention


@dataclass(frozen=True)
class Seq2SeqConfig:
    """Architecture (saved with every checkpoint)."""
    src_vocab: int
    tgt_vocab: int
    emb_size: int = 64
    enc_hidden: int = 64
    enc_layers: int = 1
    enc_mode: str = "gru"               # rnn | lstm | gru
    dec_hidden: int = 64
    dec_mode: str = "gru"               # gru | lstm
    attention: str = "additive"         # additive | dot | general | none
    attn_size: int = 0                  # additive A (0: dec_hidden)
    style: str = "bahdanau"             # bahdanau | luong
    input_feed: bool = False            # luong: feed h~_{t-1} into the cell
    dropout: float = 0.0
    tie_embeddings: bool = False
    init_scale: float = 0.1             # U(-s, s) for every weight

    def __post_init__(self):
        checks = [(self.dec_mode in ("gru", "lstm"), "dec_mode", "gru or lstm", self.dec_mode),
                  (self.attention in attention.KINDS + ("none",), "attention",
                   "additive, dot, general or none", self.attention),
                  (self.style in ("bahdanau", "luong"), "style", "bahdanau or luong", self.style),
                  (not (self.style == "luong" and self.attention == "none"), "style",
                   "bahdanau with attention none", self.style),
                  (not (self.attention == "dot" and self.dec_hidden != self.ctx_size),
                   "dec_hidden", f"2 * enc_hidden = {self.ctx_size} for dot attention",
                   self.dec_hidden),
                  (not (self.tie_embeddings and self.out_size != self.emb_size), "emb_size",
                   f"the output size {self.out_size} for tied embeddings", self.emb_size)]
        for ok, name, want, got in checks:
            if not ok:
                raise ValueError(f"{name}: expected {want}, got {got!r}")
        self.enc  # validates sizes and dropout

    @property
    def enc(self):
        return layers.RNNConfig(self.enc_mode, self.emb_size, self.enc_hidden, self.enc_layers,
                                dropout=self.dropout if self.enc_layers > 1 else 0.0,
                                bidirectional=True)

    @property
    def attends(self):
        return self.attention != "none"

    @property
    def ctx_size(self):
        return 2 * self.enc_hidden

    @property
    def dec_input(self):
        if self.style == "luong":
            return self.emb_size + (self.dec_hidden if self.input_feed else 0)
        return self.emb_size + (self.ctx_size if self.attends else 0)

    @property
    def out_size(self):
        if self.style == "luong":
            return self.dec_hidden
        return self.dec_hidden + self.emb_size + (self.ctx_size if self.attends else 0)

    def to_dict(self):
        return asdict(self)


def param_shapes(cfg):
    E, Hd, C, G = cfg.emb_size, cfg.dec_hidden, cfg.ctx_size, CELLS[cfg.dec_mode].GATES
    shapes = {"src_emb.weight": (cfg.src_vocab, E)}
    shapes.update({"encoder." + k: s for k, s in layers.param_shapes(cfg.enc).items()})
    shapes.update({"bridge.weight": (Hd, C), "bridge.bias": (Hd,),
                   "tgt_emb.weight": (cfg.tgt_vocab, E), "decoder.weight_ih": (G * Hd, cfg.dec_input),
                   "decoder.weight_hh": (G * Hd, Hd), "decoder.bias_ih": (G * Hd,),
                   "decoder.bias_hh": (G * Hd,)})
    if cfg.attends:
        att = attention.init_params(cfg.attention, Hd, C, cfg.attn_size or Hd)
        shapes.update({k: v.shape for k, v in att.items()})
    if cfg.style == "luong":
        shapes["combine.weight"] = (Hd, C + Hd)
    if not cfg.tie_embeddings:
        shapes["out.weight"] = (cfg.tgt_vocab, cfg.out_size)
    shapes["out.bias"] = (cfg.tgt_vocab,)
    return shapes


def init_params(cfg, rng=None, dtype=np.float32):
    rng = np.random.default_rng(rng)
    s = cfg.init_scale
    return {k: rng.uniform(-s, s, shape).astype(dtype) for k, shape in param_shapes(cfg).items()}


def out_weight(cfg, params):
    return params["tgt_emb.weight" if cfg.tie_embeddings else "out.weight"]


class Memory(NamedTuple):
    """What every decoder step reads from the encoder."""
    keys: np.ndarray       # (B, S, C) encoder outputs (0 past each row's end)
    pk: object             # projected keys for attention (or None)
    mask: np.ndarray       # (B, S) True at real source positions


class DecState(NamedTuple):
    h: np.ndarray                      # (B, Hd)
    c: Optional[np.ndarray] = None     # (B, Hd) LSTM cell
    feed: Optional[np.ndarray] = None  # (B, Hd) Luong input feeding: h~_{t-1}


def select(x, idx):
    """Rows ``idx`` of every array in a Memory or DecState (beam reordering)."""
    return type(x)(*(None if a is None else a[idx] for a in x))


def _enc_params(params):
    return {k[8:]: v for k, v in params.items() if k.startswith("encoder.")}


# ---------------------------------------------------------------- encoder

class EncCache(NamedTuple):
    src: np.ndarray
    drop: object
    rnn: object
    hcat: np.ndarray       # (B, C) top layer's last states, both directions
    h0: np.ndarray         # (B, Hd) the decoder's initial state
    keys: np.ndarray       # (B, S, C)


def encode(cfg, params, src, src_len, training=False, rng=None):
    """(Memory, DecState at t = 0, EncCache) for src (S, B) and src_len (B,)."""
    S, B = src.shape
    x = params["src_emb.weight"][src]                                  # (S, B, E)
    drop = nn.dropout_mask(x.shape, cfg.dropout, rng, x.dtype) if training else None
    if drop is not None:
        x = x * drop
    out, h_n, rc = layers.forward(cfg.enc, _enc_params(params), x, lengths=src_len,
                                  training=training, rng=rng)
    hcat = np.concatenate([h_n[0][-2], h_n[0][-1]], axis=1)            # (B, C)
    h0 = np.tanh(hcat @ params["bridge.weight"].T + params["bridge.bias"])   # (B, Hd)
    keys = np.ascontiguousarray(out.transpose(1, 0, 2))                # (B, S, C)
    pk = attention.project_keys(cfg.attention, params, keys) if cfg.attends else None
    mask = np.arange(S)[None, :] < np.asarray(src_len)[:, None]        # (B, S)
    zeros = np.zeros_like(h0)
    state = DecState(h0, zeros if cfg.dec_mode == "lstm" else None,
                     zeros if cfg.style == "luong" and cfg.input_feed else None)
    return Memory(keys, pk, mask), state, EncCache(src, drop, rc, hcat, h0, keys)


def encode_backward(cfg, params, cache, dkeys, dpk, dstate0, grads):
    """Adds the encoder's gradients to ``grads``; dkeys (B, S, C), dstate0.h (B, Hd)."""
    if cfg.attends:
        dk2, g = attention.project_keys_backward(cfg.attention, params, cache.keys, dpk)
        dkeys = dkeys + dk2
        _add(grads, g)
    dz = dstate0.h * (1.0 - cache.h0 * cache.h0)                       # (B, Hd)
    grads["bridge.weight"] += dz.T @ cache.hcat
    grads["bridge.bias"] += dz.sum(axis=0)
    dhcat = dz @ params["bridge.weight"]                               # (B, C)
    He, L2 = cfg.enc_hidden, 2 * cfg.enc_layers
    dh_n = np.zeros((L2,) + (dhcat.shape[0], He), dhcat.dtype)
    dh_n[-2], dh_n[-1] = dhcat[:, :He], dhcat[:, He:]
    dfinal = (dh_n,) if cfg.enc_mode != "lstm" else (dh_n, None)
    dx, _, g = layers.backward(cfg.enc, _enc_params(params), cache.rnn,
                               np.ascontiguousarray(dkeys.transpose(1, 0, 2)), dfinal)
    _add(grads, {"encoder." + k: v for k, v in g.items()})
    if cache.drop is not None:
        dx = dx * cache.drop
    grads["src_emb.weight"] += nn.embedding_backward(dx, cache.src, cfg.src_vocab)


def _add(grads, g):
    for k, v in g.items():
        grads[k] += v
