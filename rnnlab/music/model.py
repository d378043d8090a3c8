"""Frame-level polyphonic models: a recurrent stack over piano-roll frames.

    frames v_0 .. v_{T-1} (T, B, 88)  ->  inputs x_t = v_{t-1} (x_0 = 0)
      -> recurrent stack (T, B, H) -> output for frame t given frames < t

Outputs (``MusicConfig.output``):

- ``"bernoulli"`` (Chung et al. 2014, Boulanger-Lewandowski 2012's RNN
  baseline): 88 independent sigmoids, logits = out.weight h_t + out.bias.
- ``"nade"`` (RNN-NADE, Boulanger-Lewandowski 2012): the same logits are the
  NADE's visible biases b_t; its hidden biases c_t = nade.cond.weight h_t +
  nade.cond.bias; nade.W, nade.V are shared (see ``nade.py``).

Every frame counts, the first one too (predicted from the zero input and the
zero initial state). The loss is the negative log-likelihood per time step in
nats: summed over the 88 notes, averaged over all frames of the batch pooled
(``count`` frames). Parameters: ``rnn.<torch name>``, ``out.weight`` (88, H),
``out.bias`` (88,), and for NADE ``nade.cond.weight`` (Hn, H),
``nade.cond.bias`` (Hn,), ``nade.W`` (Hn, 88), ``nade.V`` (88, Hn).
Shapes: T time, B batch, H hidden, N = valid frames, Hn NADE hidden.
"""
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from rnnlab import nn
from rnnlab.engine import layers
from rnnlab.music.data import KEYS
from rnnlab.music.nade import nade_backward, nade_forward, nade_sample

OUTPUTS = ("bernoulli", "nade")


@dataclass(frozen=True)
class MusicConfig:
    """Architecture (saved with every checkpoint)."""
    mode: str = "lstm"                 # "rnn" (tanh) | "lstm" | "gru"
    hidden_size: int = 36
    num_layers: int = 1
    output: str = "bernoulli"          # "bernoulli" | "nade"
    nade_hidden: int = 50

    def __post_init__(self):
        if self.output not in OUTPUTS:
            raise ValueError(f"--output: expected one of {', '.join(OUTPUTS)}, got {self.output!r}")
        self.rnn  # validates mode and sizes

    @property
    def rnn(self):
        return layers.RNNConfig(self.mode, KEYS, self.hidden_size, self.num_layers)

    def to_dict(self):
        return asdict(self)


def param_shapes(cfg):
    H, Hn = cfg.hidden_size, cfg.nade_hidden
    shapes = {"rnn." + k: s for k, s in layers.param_shapes(cfg.rnn).items()}
    shapes.update({"out.weight": (KEYS, H), "out.bias": (KEYS,)})
    if cfg.output == "nade":
        shapes.update({"nade.cond.weight": (Hn, H), "nade.cond.bias": (Hn,),
                       "nade.W": (Hn, KEYS), "nade.V": (KEYS, Hn)})
    return shapes


def init_params(cfg, rng=None, dtype=np.float32, frequencies=None):
    """torch.nn's U(-1/sqrt(fan_in), .) everywhere; out.bias = logit of each
    note's training frequency when ``frequencies`` (88,) is given, else 0."""
    rng = np.random.default_rng(rng)
    params = {"rnn." + k: v for k, v in layers.init_params(cfg.rnn, rng, dtype).items()}
    for k, shape in param_shapes(cfg).items():
        if k not in params:
            fan_in = shape[-1] if len(shape) == 2 else cfg.hidden_size
            bound = 1.0 / np.sqrt(fan_in)
            params[k] = rng.uniform(-bound, bound, shape).astype(dtype)
    params["out.bias"] = (np.zeros(KEYS) if frequencies is None
                          else frequency_logits(frequencies)).astype(dtype)
    return params


def note_frequencies(rolls):
    """Each note's frequency over all frames, with add-one smoothing (88,)."""
    # start from 88 zeros: a bare sum() of no pieces is the int 0, which made a
    # 0-d out.bias and a checkpoint that cannot be loaded (data.check_sets now
    # refuses an empty train split; this keeps the shape right regardless)
    on = sum((r.sum(axis=0, dtype=np.int64) for r in rolls), np.zeros(KEYS, np.int64))
    frames = sum(len(r) for r in rolls)
    return (on + 1.0) / (frames + 2.0)


def frequency_logits(p):
    return np.log(p) - np.log1p(-p)


def rnn_params(params):
    return {k[4:]: v for k, v in params.items() if k.startswith("rnn.")}


class Batch(NamedTuple):
    x: np.ndarray          # (T, B, 88) inputs: the previous frame
    y: np.ndarray          # (N, 88) bool: the valid frames, time-major order
    lengths: np.ndarray    # (B,)
    rows: np.ndarray       # (N,) indices of the valid frames in the (T*B) flattening


def make_batch(rolls, dtype=np.float32, before=None):
    """Pad pieces (each (T_b, 88)) into one time-major batch. ``before`` (B, 88):
    the frame preceding each roll, its first input (a window cut from inside a
    piece); zeros (the start of a piece) when None."""
    lengths = np.array([len(r) for r in rolls])
    T, B = int(lengths.max()), len(rolls)
    v = np.zeros((T, B, KEYS), dtype=bool)
    for b, r in enumerate(rolls):
        v[:len(r), b] = r
    x = np.zeros((T, B, KEYS), dtype=dtype)
    x[1:] = v[:-1]
    if before is not None:
        x[0] = before
    rows = np.flatnonzero((np.arange(T)[:, None] < lengths[None, :]).reshape(-1))
    return Batch(x, v.reshape(T * B, KEYS)[rows], lengths, rows)


class Cache(NamedTuple):
    rnn: object
    h: np.ndarray          # (N, H) recurrent outputs at the valid frames
    shape: tuple           # (T, B, H)
    rows: np.ndarray       # (N,) as in the Batch
    dlogits: object        # (N, 88), Bernoulli; or the NADE cache
    nade: object
    drop: object = None    # (N, H) dropout mask on the output layers' input, or None


def _states(cfg, params, batch):
    lengths = None if len(set(batch.lengths.tolist())) == 1 else batch.lengths
    out, _, rcache = layers.forward(cfg.rnn, rnn_params(params), batch.x, lengths=lengths)
    T, B, H = out.shape
    return out.reshape(T * B, H)[batch.rows], rcache, (T, B, H)      # (N, H)


def loss_forward(cfg, params, batch, drop=None):
    """(mean NLL per frame in nats, frames N, cache for ``backward``). ``drop``
    (N, H): a dropout mask (``nn.dropout_mask``) on the recurrent outputs where
    they enter the output layer (training only; the recurrence never sees it)."""
    h, rcache, shape = _states(cfg, params, batch)
    h = h if drop is None else h * drop
    b = nn.linear_forward(h, params["out.weight"], params["out.bias"])  # (N, 88)
    N = len(batch.rows)
    if cfg.output == "bernoulli":
        loss, dlogits = nn.sigmoid_cross_entropy(b, batch.y)
        return loss, N, Cache(rcache, h, shape, batch.rows, dlogits, None, drop)
    c = nn.linear_forward(h, params["nade.cond.weight"], params["nade.cond.bias"])  # (N, Hn)
    nll, ncache = nade_forward(b, c, params["nade.W"], params["nade.V"], batch.y)
    return float(nll.sum() / N), N, Cache(rcache, h, shape, batch.rows, None, ncache, drop)


def frame_nll(cfg, params, batch):
    """The NLL of every valid frame (N,) in nats, in the Batch's row order
    (time-major: row r is piece ``r % B`` at step ``r // B`` of the padded grid)."""
    h, _, _ = _states(cfg, params, batch)
    b = nn.linear_forward(h, params["out.weight"], params["out.bias"])  # (N, 88)
    if cfg.output == "bernoulli":
        return nn.sigmoid_nll_rows(b, batch.y)
    c = nn.linear_forward(h, params["nade.cond.weight"], params["nade.cond.bias"])  # (N, Hn)
    return nade_forward(b, c, params["nade.W"], params["nade.V"], batch.y)[0]


def backward(cfg, params, cache):
    """Gradients of the mean loss (params' keys)."""
    grads = {}
    if cfg.output == "bernoulli":
        db = cache.dlogits
    else:
        N = len(cache.h)
        g = np.full(N, 1.0 / N, dtype=cache.h.dtype)
        db, dc, grads["nade.W"], grads["nade.V"] = nade_backward(
            cache.nade, params["nade.W"], params["nade.V"], g)
        dh_c, grads["nade.cond.weight"], grads["nade.cond.bias"] = nn.linear_backward(
            dc, cache.h, params["nade.cond.weight"])
    dh, grads["out.weight"], grads["out.bias"] = nn.linear_backward(
        db, cache.h, params["out.weight"])                               # (N, H)
    if cfg.output == "nade":
        dh += dh_c
    if cache.drop is not None:
        dh *= cache.drop
    T, B, H = cache.shape
    dout = np.zeros((T * B, H), dtype=dh.dtype)
    dout[cache.rows] = dh
    _, _, rgrads = layers.backward(cfg.rnn, rnn_params(params), cache.rnn,
                                   dout.reshape(T, B, H))
    grads.update({"rnn." + k: g for k, g in rgrads.items()})
    return {k: grads[k].astype(params[k].dtype, copy=False) for k in params}


def predict(cfg, params, batch):
    """Frames (N, 88) bool for every valid frame given the true frames before it:
    p >= 0.5 per note (Bernoulli), or the greedy pitch-by-pitch pass (NADE)."""
    h, _, _ = _states(cfg, params, batch)
    b = nn.linear_forward(h, params["out.weight"], params["out.bias"])
    if cfg.output == "bernoulli":
        return b >= 0
    c = nn.linear_forward(h, params["nade.cond.weight"], params["nade.cond.bias"])
    return nade_sample(b, c, params["nade.W"], params["nade.V"], greedy=True)
