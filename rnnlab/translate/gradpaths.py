"""Why attention helps, measured: which path the gradient takes to the source.

For a trained model and one held-out sentence, the loss at target step t alone
(L_t = -log p(y_t)) is backpropagated, and the gradient reaching the encoder's
top-layer state at source position j (both directions, (C,)) is split in two:

- **attention path**: what arrives at h_j directly, because the attention at
  some decoder step s <= t read h_j as a key (``dkeys``, including the key
  projection);
- **recurrent chain**: what arrives through the decoder's recurrence down to
  its initial state, the bridge, the encoder's final states and then the
  encoder's own recurrence back to position j (the engine's ``on_step`` hook
  reads it at every step for free).

(Gradient that enters the encoder by attention at position j' and then walks
the encoder's recurrence to j is counted in neither; it is small whenever the
attention path is.) A model without attention has only the recurrent chain.
Both norms are averaged over (sentence, t, j) by the distance |t - j| and by the
source length. This is the core lab's vanishing-gradient picture seen from a
decoder: the recurrent chain is the only road in a plain encoder-decoder, and
it fades with distance; attention opens a road of length one to every position.
"""
import os
from dataclasses import dataclass

import numpy as np

from rnnlab import nn
from rnnlab.engine import layers
from rnnlab.io import atomic
from rnnlab.nn import attention
from rnnlab.training.options import check, option
from rnnlab.translate import data, decoder, loss as tloss, train
from rnnlab.translate.model import DecState, _enc_params, out_weight


@dataclass
class PathsOptions:
    """``rnnlab translate paths``'s options; ``run`` applies the same checks."""
    with_attention: str = option("", "checkpoint of a model with attention (additive, dot "
                                 "or general)", positional="required")
    without_attention: str = option("", "checkpoint of a model of the same data with "
                                    "--attention none", positional="required")
    sentences: int = option(100, "held-out sentences measured", lo=1)
    out: str = option("runs/paths", "folder for the figure and page")

    def __post_init__(self):
        check(self)


def _recurrent(mcfg, params, enc, dh0):
    """(S, C) gradient reaching each encoder state through the bridge and recurrence."""
    dz = dh0 * (1.0 - enc.h0 * enc.h0)
    dhcat = dz @ params["bridge.weight"]                               # (1, C)
    He, L = mcfg.enc_hidden, mcfg.enc_layers
    dh_n = np.zeros((2 * L, 1, He), dhcat.dtype)
    dh_n[-2], dh_n[-1] = dhcat[:, :He], dhcat[:, He:]
    S = enc.src.shape[0]
    seen = np.zeros((2, S, He))

    def hook(layer, d, s, ds):
        if layer == L - 1:
            seen[d, s if d == 0 else S - 1 - s] = ds[0][0]            # B = 1: rows unsorted
    dfinal = (dh_n,) if mcfg.enc_mode != "lstm" else (dh_n, None)
    layers.backward(mcfg.enc, _enc_params(params), enc.rnn,
                    np.zeros((S, 1, 2 * He), dhcat.dtype), dfinal, on_step=hook)
    return np.concatenate([seen[0], seen[1]], axis=1)                  # (S, C)


def measure(mcfg, params, pair, vocabs):
    """(attention path (T, S), recurrent chain (T, S)) gradient norms for one pair,
    each divided by ||dL_t/do_t||, the gradient at the decoder's output at step t,
    so that models with different losses compare (a fraction of what enters)."""
    b = data.make_batch([pair], *vocabs)
    _, _, cache = tloss.forward(mcfg, params, b)
    T, S = len(cache.steps), b.src.shape[0]
    W = out_weight(mcfg, params)
    p = np.exp(nn.log_softmax(cache.o[:, 0] @ W.T + params["out.bias"]))   # (T, V)
    p[np.arange(T), b.tgt[1:, 0]] -= 1.0                                   # dL_t/dlogits_t
    att, rec = np.zeros((T, S)), np.zeros((T, S))
    grads = {k: np.zeros_like(v) for k, v in params.items()}               # not read
    for t in range(T):
        top = (p[t] @ W)[None]                                         # dL_t/do_t (1, O)
        dmem = [np.zeros_like(cache.mem.keys),
                None if cache.mem.pk is None else np.zeros_like(cache.mem.pk)]
        dstate = DecState(np.zeros_like(cache.steps[0].prev[0]))
        for s in reversed(range(t + 1)):
            do = top if s == t else np.zeros_like(cache.o[s])
            _, dstate = decoder.step_backward(mcfg, params, cache.steps[s], do, dstate, grads,
                                              dmem)
        if mcfg.attends:
            dk2, _ = attention.project_keys_backward(mcfg.attention, params, cache.mem.keys,
                                                     dmem[1])
            att[t] = np.linalg.norm((dmem[0] + dk2)[0], axis=1)
        rec[t] = np.linalg.norm(_recurrent(mcfg, params, cache.enc, dstate.h), axis=1)
        scale = max(np.linalg.norm(top), 1e-300)
        att[t], rec[t] = att[t] / scale, rec[t] / scale
    return att, rec


def collect(path, pairs):
    """Rows (|t-j|, source length, attention norm, recurrent norm, chain length) of a
    model; the chain length t + 1 + min(j, S-1-j) counts the recurrent steps from
    the loss at t down to h_j (decoder steps, then the nearer encoder direction)."""
    mcfg, params, vocabs, _ = train.load_model(path)
    params = {k: v.astype(np.float64) for k, v in params.items()}
    rows = []
    for pair in pairs:
        att, rec = measure(mcfg, params, pair, vocabs)
        T, S = att.shape
        t, j = np.meshgrid(np.arange(T), np.arange(S), indexing="ij")
        chain = t + 1 + np.minimum(j, S - 1 - j)
        rows.append(np.stack([np.abs(t - j).ravel(), np.full(T * S, S), att.ravel(),
                              rec.ravel(), chain.ravel()], 1))
    return np.concatenate(rows)


def by(rows, col, edges):
    """Mean attention and recurrent norms per bucket [edges[i], edges[i+1])."""
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (rows[:, col] >= lo) & (rows[:, col] < hi)
        if m.any():
            out.append((lo, hi, rows[m, 2].mean(), rows[m, 3].mean(), int(m.sum())))
    return out


def _check_models(with_path, without_path):
    """The first model's app metadata; refuses the two checkpoints swapped, both of
    one kind, or trained on different data (the comparison would be meaningless)."""
    (mcfg, _, _, meta), (mcfg0, _, _, meta0) = (train.load_model(p)
                                                for p in (with_path, without_path))
    if not mcfg.attends:
        swapped = " (swapped? the model with attention comes first)" if mcfg0.attends else ""
        raise ValueError(f"{with_path}: expected a model with attention as the first "
                         f"checkpoint (with_attention), found --attention none{swapped}")
    if mcfg0.attends:
        raise ValueError(f"{without_path}: expected a model with --attention none as the "
                         f"second checkpoint (without_attention), found --attention "
                         f"{mcfg0.attention}")
    task = lambda m: f"{m['data']} {m['src_lang']}->{m['tgt_lang']}"
    if task(meta0) != task(meta):
        raise ValueError(f"{without_path}: expected a model of the same data as {with_path} "
                         f"({task(meta)}), found {task(meta0)}")
    split, split0 = train.split_args(with_path), train.split_args(without_path)
    if split0 != split and data.split_depends_on_seed(meta["data"]):
        # a pair held out from one run may be a training pair of the other
        raise ValueError(f"{without_path}: expected the held-out split of {with_path} "
                         f"(seed {split['seed']}, short {split['short']}), found seed "
                         f"{split0['seed']}, short {split0['short']}: {meta['data']}'s split "
                         "depends on them")
    return meta, split


def run(with_path, without_path, n, out):
    """Measure both models on n held-out pairs; write a figure and a page."""
    from rnnlab.translate import report
    PathsOptions(with_path, without_path, n, out)
    atomic.check_writable("--out", out, folder=True)   # before the measurement
    meta, split = _check_models(with_path, without_path)
    # the runs' own held-out pairs (tatoeba's split depends on the seed and filter:
    # with seed 0 here, a run of another seed was measured on its training pairs)
    splits = data.load_pair(meta["data"], meta["src_lang"], meta["tgt_lang"], **split)
    pairs = (splits.get("test") or splits["valid"])[:n]         # user data: test is optional
    a, z = collect(with_path, pairs), collect(without_path, pairs)
    top = int(max(a[:, 0].max(), z[:, 0].max())) + 1
    dist = (by(a, 0, np.arange(top + 1)), by(z, 0, np.arange(top + 1)))
    lens = np.unique(np.quantile(a[:, 1], np.linspace(0, 1, 6)).round().astype(int))
    lens[-1] += 1
    length = (by(a, 1, lens), by(z, 1, lens))
    top = int(max(a[:, 4].max(), z[:, 4].max())) + 1
    chain = (by(a, 4, np.arange(1, top + 1)), by(z, 4, np.arange(1, top + 1)))
    os.makedirs(out, exist_ok=True)
    png = report.paths_png((dist, length, chain), os.path.join(out, "gradient_paths.png"))
    return report.paths_page(os.path.join(out, "paths.html"), png, dist, length, chain, a,
                             len(pairs))
