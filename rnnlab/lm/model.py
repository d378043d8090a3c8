"""A recurrent language model with its backward written out by hand.

    ids (T, B) -> embedding (T, B, E) -> dropout -> recurrent stack (T, B, H)
               -> dropout -> linear decoder (T, B, V) -> softmax cross-entropy

Dropout sits on the non-recurrent connections only (Zaremba et al. 2014,
arXiv:1409.2329): after the embedding, between recurrent layers (the stack's own
``dropout``) and before the decoder; the recurrent state is never dropped. The
decoder can share the embedding matrix ("weight tying", Press & Wolf 2017), which
needs E == H; the tied gradient is then the sum of both uses.

Parameters are a flat dict named as PyTorch's word_language_model state_dict:
``encoder.weight`` (V, E), ``rnn.weight_ih_l0`` ..., ``decoder.weight`` (V, H)
(absent when tied), ``decoder.bias`` (V,).

``load_model(path)`` reads a checkpoint back as (config, params, vocabulary,
metadata), every part checked.
"""
from dataclasses import asdict, dataclass
from typing import NamedTuple, Optional

import numpy as np

from rnnlab import nn
from rnnlab.engine import layers, validate
from rnnlab.io import checkpoint
from rnnlab.training.options import check, option

# the largest sizes one option may ask for (a typo like --hidden-size 2000000
# gets a clear error instead of an allocation that takes the machine down)
MAX_SIZE, MAX_LAYERS = 65536, 64


@dataclass(frozen=True)
class LMConfig:
    """Architecture of the language model (saved with every checkpoint)."""
    vocab_size: int
    emb_size: int = option(200, "embedding size E", lo=1, hi=MAX_SIZE)
    hidden_size: int = option(200, "hidden size H of every recurrent layer", lo=1, hi=MAX_SIZE)
    num_layers: int = option(2, "number of stacked recurrent layers", lo=1, hi=MAX_LAYERS)
    mode: str = option("lstm", "recurrent cell", choices=("rnn", "lstm", "gru"))
    dropout: float = option(0.0, "dropout on the non-recurrent connections", lo=0, hi=1,
                            hi_open=True)
    tie_weights: bool = option(False, "decoder.weight = encoder.weight (needs E == H)")
    # U(-s, s) everywhere (Zaremba); None: torch's defaults
    init_scale: Optional[float] = option(0.1, "initialise every weight uniformly in [-s, s]",
                                         lo=0, lo_open=True)

    def __post_init__(self):
        v = self.vocab_size
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 2:
            raise ValueError(f"vocab_size: expected an integer >= 2, got {v!r}")
        check(self)
        if self.tie_weights and self.emb_size != self.hidden_size:
            raise ValueError(f"tied weights need emb_size == hidden_size, got "
                             f"{self.emb_size} and {self.hidden_size}")
        self.rnn  # validates mode, sizes and dropout

    @property
    def rnn(self):
        return layers.RNNConfig(self.mode, self.emb_size, self.hidden_size, self.num_layers,
                                dropout=self.dropout if self.num_layers > 1 else 0.0)

    def to_dict(self):
        return asdict(self)


def param_shapes(cfg):
    V, E, H = cfg.vocab_size, cfg.emb_size, cfg.hidden_size
    shapes = {"encoder.weight": (V, E)}
    shapes.update({"rnn." + k: s for k, s in layers.param_shapes(cfg.rnn).items()})
    if not cfg.tie_weights:
        shapes["decoder.weight"] = (V, H)
    shapes["decoder.bias"] = (V,)
    return shapes


def init_params(cfg, rng=None, dtype=np.float32):
    rng = np.random.default_rng(rng)
    if cfg.init_scale is None:
        params = {"encoder.weight": rng.standard_normal((cfg.vocab_size, cfg.emb_size))}
        params.update({"rnn." + k: v for k, v in layers.init_params(cfg.rnn, rng, dtype).items()})
        if not cfg.tie_weights:
            k = 1.0 / np.sqrt(cfg.hidden_size)
            params["decoder.weight"] = rng.uniform(-k, k, (cfg.vocab_size, cfg.hidden_size))
        params["decoder.bias"] = np.zeros(cfg.vocab_size)
        return {k: v.astype(dtype) for k, v in params.items()}
    s = cfg.init_scale
    return {k: rng.uniform(-s, s, shape).astype(dtype) for k, shape in param_shapes(cfg).items()}


def rnn_params(params):
    return {k[4:]: v for k, v in params.items() if k.startswith("rnn.")}


def decoder_weight(cfg, params):
    return params["encoder.weight"] if cfg.tie_weights else params["decoder.weight"]


def zero_state(cfg, B, dtype=np.float32):
    """Initial recurrent state: a tuple of (L, B, H) zeros ((h,) or (h, c))."""
    n = len(cfg.rnn.cell.STATE)
    return tuple(np.zeros((cfg.num_layers, B, cfg.hidden_size), dtype) for _ in range(n))


class LMCache(NamedTuple):
    ids: np.ndarray            # (T, B)
    emb_mask: object           # (T, B, E) or None
    out_mask: object           # (T, B, H) or None
    h: np.ndarray              # (T, B, H) decoder input (after dropout)
    rnn_cache: object
    decoder_grads: object      # (dh (T*B, H), dW (V, H), db (V,)), from the loss


def logits_forward(cfg, params, ids, state, training=False, rng=None, masks=None):
    """Logits (T, B, V) and the final state; plus what the backward needs.

    masks: optional fixed (emb_mask, out_mask) to use instead of drawing them.
    """
    out, finals, cache = _features(cfg, params, ids, state, training, rng, masks)
    T, B, H = out.shape
    # 2-D product: NumPy's (T, B, H) @ (H, V) runs as T small matmuls, 5-10x slower
    logits = nn.linear_forward(out.reshape(T * B, H), decoder_weight(cfg, params),
                               params["decoder.bias"]).reshape(T, B, -1)   # (T, B, V)
    return logits, finals, cache


def step_logits(cfg, params, ids, state):
    """Next-token logits (B, V) after one token per row, ids (B,); and the new
    state (None: zeros). Evaluation mode; what a sampling loop calls once per token."""
    if state is None:
        state = zero_state(cfg, len(ids), params["decoder.bias"].dtype)
    x = nn.embedding_forward(ids, params["encoder.weight"])           # (B, E)
    out, state = layers.step(cfg.rnn, rnn_params(params), x, state)  # (B, H)
    return nn.linear_forward(out, decoder_weight(cfg, params), params["decoder.bias"]), state


def _features(cfg, params, ids, state, training, rng, masks):
    """The decoder's input (T, B, H), the final state and the cache."""
    check_ids("ids", ids, cfg.vocab_size)
    x = nn.embedding_forward(ids, params["encoder.weight"])            # (T, B, E)
    drop = training and cfg.dropout > 0
    if masks is not None:
        emb_mask, out_mask = masks
    elif drop:
        rng = np.random.default_rng(rng)
        emb_mask = nn.dropout_mask(x.shape, cfg.dropout, rng, x.dtype)
        out_mask = nn.dropout_mask(x.shape[:2] + (cfg.hidden_size,), cfg.dropout, rng, x.dtype)
    else:
        emb_mask = out_mask = None
    if emb_mask is not None:
        x = x * emb_mask
    hx = None if state is None else (state[0] if len(state) == 1 else tuple(state))
    out, finals, rcache = layers.forward(cfg.rnn, rnn_params(params), x, hx,
                                         training=drop, rng=rng)      # (T, B, H)
    if out_mask is not None:
        out = out * out_mask
    return out, finals, LMCache(ids, emb_mask, out_mask, out, rcache, None)


def loss_forward(cfg, params, ids, targets, state, training=False, rng=None, masks=None):
    """Mean cross-entropy (nats per token) of targets (T, B) given ids (T, B).

    Returns (loss, final state, cache); the state is carried to the next chunk.
    The decoder's gradients are computed here, with the loss, so the (T*B, V)
    logits are one buffer that becomes their gradient (``nn.linear_cross_entropy``).
    """
    out, finals, cache = _features(cfg, params, ids, state, training, rng, masks)
    T, B, H = out.shape
    loss, *dec = nn.linear_cross_entropy(out.reshape(T * B, H), decoder_weight(cfg, params),
                                         params["decoder.bias"], targets.reshape(-1))
    return loss, finals, cache._replace(decoder_grads=tuple(dec))


def backward(cfg, params, cache, bptt_truncate=None, sparse=False):
    """Gradients of the mean loss for every parameter (same keys as params).

    The carried-in state gets no gradient: truncated BPTT stops at chunk starts.
    sparse=True: the untied embedding's gradient is an ``nn.RowGrad`` (the rows
    the chunk touched), which ``rnnlab.optim`` applies without a dense (V, E) array.
    """
    T, B = cache.ids.shape
    H = cfg.hidden_size
    dout, dW, db = cache.decoder_grads
    dout = dout.reshape(T, B, H)                                        # (T, B, H)
    if not np.isfinite(dout).all():                  # weights blown up: say so here
        raise FloatingPointError("the gradient reaching the recurrent layers is not finite "
                                 "(the weights have blown up)")
    if cache.out_mask is not None:
        dout = dout * cache.out_mask
    dx, _, rgrads = layers.backward(cfg.rnn, rnn_params(params), cache.rnn_cache, dout,
                                    bptt_truncate=bptt_truncate)        # dx (T, B, E)
    if cache.emb_mask is not None:
        dx = dx * cache.emb_mask
    emb_backward = (nn.embedding_backward_rows if sparse and not cfg.tie_weights
                    else nn.embedding_backward)
    grads = {"encoder.weight": emb_backward(dx, cache.ids, cfg.vocab_size)}
    if cfg.tie_weights:
        grads["encoder.weight"] += dW                                   # both uses add up
    else:
        grads["decoder.weight"] = dW
    grads["decoder.bias"] = db
    grads.update({"rnn." + k: g for k, g in rgrads.items()})
    return {k: grads[k] for k in params}


def check_ids(name, ids, vocab_size):
    """Token ids: a (T, B) integer array with every id in 0..V-1."""
    if not isinstance(ids, np.ndarray) or ids.ndim != 2:
        raise ValueError(f"{name} must be a (T, B) array of token ids, got "
                         f"{getattr(ids, 'shape', type(ids).__name__)}")
    if ids.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"{name} must lie in 0..{vocab_size - 1} (the vocabulary), got "
                         f"min {ids.min()} and max {ids.max()}")


def check_params(cfg, params, finite=False):
    """Clear error when weights do not fit the architecture (e.g. another vocabulary):
    names, shapes and dtype exactly, as every layer checks its own."""
    return validate.check_params(param_shapes(cfg), params, finite=finite)


class Saved(NamedTuple):
    """A language model read back from a checkpoint."""
    config: LMConfig
    params: dict
    vocab: object            # rnnlab.lm.vocab.Vocab
    meta: dict


def _app(meta):
    return meta["app"] if isinstance(meta.get("app"), dict) else meta   # older: at the top


def load_weights(path):
    """(config, params, metadata) from a checkpoint: the architecture and weights,
    checked against each other (no vocabulary needed)."""
    ck = checkpoint.load(path)
    mc = checkpoint.expect(_app(ck["meta"]), "model_config", checkpoint.TABLE, path)
    try:
        mcfg = LMConfig(**mc)
    except (TypeError, ValueError) as e:
        raise checkpoint.CheckpointError(f"{path}: checkpoint's model_config is not valid "
                                         f"({e})") from None
    try:
        check_params(mcfg, ck["params"], finite=True)
    except ValueError as e:
        raise checkpoint.CheckpointError(f"{path}: {e}") from None
    return mcfg, ck["params"], ck["meta"]


def load_model(path):
    """(config, params, vocabulary, metadata) from a checkpoint, every part checked:
    clear CheckpointErrors naming the file for anything missing or inconsistent."""
    from rnnlab.lm import vocab as vocab_mod
    mcfg, params, m = load_weights(path)
    vd = checkpoint.expect(_app(m), "vocab", checkpoint.TABLE, path)
    try:
        vocab = vocab_mod.Vocab.from_dict(vd)
    except (TypeError, ValueError) as e:
        raise checkpoint.CheckpointError(f"{path}: checkpoint's vocabulary is not valid "
                                         f"({e})") from None
    if len(vocab) != mcfg.vocab_size:
        raise checkpoint.CheckpointError(f"{path}: vocabulary has {len(vocab)} tokens but "
                                         f"the model expects {mcfg.vocab_size}")
    return Saved(mcfg, params, vocab, m)
