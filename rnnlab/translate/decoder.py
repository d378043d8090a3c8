"""One decoder step, forward and backward side by side (the equations are in
``model``'s docstring). Training, greedy and beam search, scoring and the
gradient-path measurement all run this one step.

Shapes: B rows, E embedding, C context, Hd decoder hidden, O output features.
"""
from typing import NamedTuple

import numpy as np

from rnnlab.engine import sequence
from rnnlab.engine.cells import CELLS
from rnnlab.nn import attention
from rnnlab.translate.model import DecState

CELL_OPTS = {"gru": {"reset_after": True}, "lstm": {}}


class StepCache(NamedTuple):
    drop_e: object          # (B, E) dropout mask or None
    drop_o: object          # (B, O) or None
    x: np.ndarray           # (B, I_d) the cell's input
    prev: tuple             # cell state before the step
    new: tuple              # and after
    acts: np.ndarray        # the cell's activations
    att: object             # attention.Cache or None
    hc: object              # (B, C + Hd) Luong: [c; h_t]
    ht: object              # (B, Hd) Luong: h~_t


def cell_params(params):
    return sequence.DirParams(params["decoder.weight_ih"], params["decoder.weight_hh"],
                              params["decoder.bias_ih"], params["decoder.bias_hh"])


def step_forward(cfg, params, mem, y_prev, state, drop_e=None, drop_o=None):
    """(o (B, O), new DecState, attention weights (B, S) or None, StepCache).

    y_prev (B,) previous target ids; mem the encoder's Memory; drop_* dropout
    masks (training) or None.
    """
    cell, opts = CELLS[cfg.dec_mode], CELL_OPTS[cfg.dec_mode]
    e = params["tgt_emb.weight"][y_prev]                               # (B, E)
    if drop_e is not None:
        e = e * drop_e
    a = att = hc = ht = None
    if cfg.style == "bahdanau":
        if cfg.attends:
            ctx, a, att = attention.forward(cfg.attention, params, state.h, mem.keys, mem.pk,
                                            mem.mask)                  # (B, C)
            x = np.concatenate([e, ctx], axis=1)
        else:
            x = e
    else:
        x = np.concatenate([e, state.feed], axis=1) if cfg.input_feed else e
    prev = (state.h,) if cfg.dec_mode == "gru" else (state.h, state.c)
    gx = x @ params["decoder.weight_ih"].T + params["decoder.bias_ih"]  # (B, G)
    new, acts = cell.step_forward(np, cell_params(params), gx, prev, **opts)
    h = new[0]                                                         # (B, Hd)
    if cfg.style == "bahdanau":
        o = np.concatenate([h, ctx, e] if cfg.attends else [h, e], axis=1)
    else:
        ctx, a, att = attention.forward(cfg.attention, params, h, mem.keys, mem.pk, mem.mask)
        hc = np.concatenate([ctx, h], axis=1)                          # (B, C + Hd)
        ht = o = np.tanh(hc @ params["combine.weight"].T)              # (B, Hd)
    if drop_o is not None:
        o = o * drop_o
    state = DecState(h, new[1] if cfg.dec_mode == "lstm" else None,
                     ht if cfg.style == "luong" and cfg.input_feed else None)
    return o, state, a, StepCache(drop_e, drop_o, x, prev, new, acts, att, hc, ht)


def step_backward(cfg, params, cache, do, dstate, grads, dmem):
    """Backprop one step: (de (B, E) on y_prev's embedding row, dstate before the step).

    do (B, O) gradient on o; dstate (DecState, None parts zero) on the step's new
    state. Parameter gradients are added into ``grads``; the attention's key
    gradients into ``dmem = [dkeys (B, S, C), dpk]``.
    """
    cell, opts = CELLS[cfg.dec_mode], CELL_OPTS[cfg.dec_mode]
    E, Hd, C = cfg.emb_size, cfg.dec_hidden, cfg.ctx_size
    if cache.drop_o is not None:
        do = do * cache.drop_o
    dh = do[:, :Hd] if cfg.style == "bahdanau" else np.zeros_like(dstate.h)
    dh = dh + dstate.h
    if cfg.style == "luong":
        dht = do if dstate.feed is None else do + dstate.feed
        dz = dht * (1.0 - cache.ht * cache.ht)                         # (B, Hd)
        grads["combine.weight"] += dz.T @ cache.hc
        dhc = dz @ params["combine.weight"]                            # (B, C + Hd)
        dh = dh + dhc[:, C:] + _attend_backward(cfg, params, cache.att, dhc[:, :C], grads, dmem)
    dnew = (dh,) if cfg.dec_mode == "gru" else (dh, dstate.c if dstate.c is not None
                                                else np.zeros_like(dh))
    p = cell_params(params)
    dgx, dgh, dprev = cell.step_backward(np, p, dnew, cache.acts, cache.prev, cache.new, **opts)
    grads["decoder.weight_ih"] += dgx.T @ cache.x
    grads["decoder.bias_ih"] += dgx.sum(axis=0)
    dw, db = cell.hh_grads(np, dgh, cache.prev[0], cache.acts, **opts)
    grads["decoder.weight_hh"] += dw
    grads["decoder.bias_hh"] += db
    dx = dgx @ p.w_ih                                                  # (B, I_d)
    de, dh_prev, dfeed = dx[:, :E], dprev[0], None
    if cfg.style == "bahdanau":
        if cfg.attends:
            dctx = dx[:, E:] + do[:, Hd:Hd + C]
            dh_prev = dh_prev + _attend_backward(cfg, params, cache.att, dctx, grads, dmem)
        de = de + do[:, -E:]
    elif cfg.input_feed:
        dfeed = dx[:, E:]
    if cache.drop_e is not None:
        de = de * cache.drop_e
    return de, DecState(dh_prev, dprev[1] if cfg.dec_mode == "lstm" else None, dfeed)


def _attend_backward(cfg, params, att, dctx, grads, dmem):
    """dq (B, Hd) for dctx (B, C); key gradients into dmem, weights into grads."""
    dq, dkeys, dpk, g = attention.backward(cfg.attention, params, att, dctx)
    dmem[0] += dkeys
    dmem[1] += dpk
    for k, v in g.items():
        grads[k] += v
    return dq
