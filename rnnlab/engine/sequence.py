"""The reference BPTT for one layer in one direction: a forward loop and a
backward loop that mirrors it, in plain NumPy (or any array-API namespace).

This is the definition every other path is checked against; the fused kernels
of ``rnnlab.engine.fast`` are an optimisation chosen by ``rnnlab.engine.dispatch``.

Shapes: T time, B batch, I input, H hidden, G = GATES * H, A = act width.

The work that does not depend on the recurrence is done once for all steps:
the input projection ``gx = x W_ih^T + b_ih`` is one (T*B, I) x (I, G) product
before the loop, and ``dW_ih``, ``dW_hh``, ``dx`` are one product each after
the backward loop. Inside the loops only the recurrent product and the gate
arithmetic remain.

Variable lengths: rows are sorted by length (longest first, by the caller), so
the rows still running at step t are a prefix ``[:batch_sizes[t]]``; each step
computes only those rows, and finished rows carry their final state unchanged.

Truncation ``bptt_truncate=k`` (per term, as the classic tutorial): the loss at
step t sends gradient to steps t-k..t only. The step loop keeps the k+1
contributions still in flight apart in a (k+1, B, H) ring and pushes them
through each step's Jacobian together, as one product (the form the lab's
per-step hook reads); without a hook the same sums run depth by depth, each
depth one batched step over all T steps (``_truncated_by_depth``).
"""
from typing import NamedTuple, Optional, Tuple

from rnnlab.engine import backend as _backend


class DirParams(NamedTuple):
    """One layer-direction's parameters in PyTorch layout (b_* may be None)."""
    w_ih: object      # (G, I)
    w_hh: object      # (G, H)
    b_ih: object      # (G,)
    b_hh: object      # (G,)


class SeqCache(NamedTuple):
    """What the backward needs: inputs, every state, every step's activations."""
    x: object                     # (T, B, I) the layer's input
    states: tuple                 # each (T+1, B, H); [0] is the initial state
    acts: object                  # (T, B, A) cell activations per step
    batch_sizes: Optional[Tuple[int, ...]]  # rows running at each step, or None
    fm: object = None             # fast.kernels.FM: the fused path's buffers, if it ran


def _rows(batch_sizes, s, B):
    return B if batch_sizes is None else batch_sizes[s]


def forward(cell, p, x, state0, batch_sizes=None, **opts):
    """Run the layer over x (T, B, I) from state0 (tuple of (B, H)).

    Returns (states, cache): states is a tuple of (T+1, B, H) histories.
    """
    xp = _backend.namespace(x, *state0)
    T, B, _ = x.shape
    H = p.w_hh.shape[1]
    G = p.w_ih.shape[0]
    x2 = xp.reshape(x, (T * B, x.shape[2]))       # 2-D: NumPy's 3-D @ 2-D is far slower
    gx = xp.reshape(x2 @ p.w_ih.T, (T, B, G))                     # (T, B, G)
    if p.b_ih is not None:
        gx = gx + p.b_ih
    states = tuple(_backend.empty(xp, (T + 1, B, H), x) for _ in cell.STATE)
    for st, s0 in zip(states, state0):
        st[0] = s0
    acts = _backend.zeros(xp, (T, B, cell.act_width(H, **opts)), x)
    for s in range(T):
        b = _rows(batch_sizes, s, B)
        prev = tuple(st[s, :b] for st in states)
        new, a = cell.step_forward(xp, p, gx[s, :b], prev, **opts)
        for st, v in zip(states, new):
            st[s + 1, :b] = v
            if b < B:                     # finished rows keep their state
                st[s + 1, b:] = st[s, b:]
        acts[s, :b] = a
    return states, SeqCache(x, states, acts, batch_sizes)


def _final_rows(batch_sizes, s, B, T):
    """Rows whose last step is s: [lo, hi) in the length-sorted batch."""
    if batch_sizes is None:
        return (0, B) if s == T - 1 else (0, 0)
    nxt = batch_sizes[s + 1] if s + 1 < T else 0
    return nxt, batch_sizes[s]


def backward(cell, p, cache, dout, dstate_n, bptt_truncate=None, on_step=None, **opts):
    """Backprop through the layer.

    dout: (T, B, H) gradient on every step's output h_t (zero past a row's end).
    dstate_n: tuple of (B, H), gradients on each row's final state.
    on_step: optional ``f(s, ds)`` called at each step s (processing order) with
    the state gradients dL/dstate_s about to enter step s: a tuple of (b, H), or
    of (K, b, H) with truncation, where slot j holds the term of the loss at the
    step t with t % K == j. Diagnostics read gradient flow from it for free.
    Returns dx (T, B, I), dstate0 (tuple of (B, H)), grads (DirParams).
    """
    if bptt_truncate is not None and on_step is None:
        return _truncated_by_depth(cell, p, cache, dout, dstate_n, bptt_truncate, opts)
    x, states, acts, bs, _ = cache
    xp = _backend.namespace(x, dout)
    T, B, _ = x.shape
    G = p.w_hh.shape[0]
    K = 1 if bptt_truncate is None else bptt_truncate + 1
    # in-flight state gradients: (B, H) for full BPTT, (K, B, H) ring if truncated
    lead = () if bptt_truncate is None else (K,)
    carry = [_backend.zeros(xp, lead + (B, st.shape[-1]), x) for st in states]
    dgx = _backend.zeros(xp, (T, B, G), x)
    dgh = _backend.zeros(xp, (T, B, G), x)
    for s in reversed(range(T)):
        b = _rows(bs, s, B)
        lo, hi = _final_rows(bs, s, B, T)
        if bptt_truncate is None:
            inject = carry
        else:                   # slot s % K now starts a new term: the loss at s
            for c in carry:
                c[s % K] = 0.0
            inject = [c[s % K] for c in carry]
        inject[0][:b] = inject[0][:b] + dout[s, :b]
        for c, d in zip(inject, dstate_n):
            c[lo:hi] = c[lo:hi] + d[lo:hi]
        ds = tuple(c[..., :b, :] for c in carry)
        if on_step is not None:
            on_step(s, ds)
        prev = tuple(st[s, :b] for st in states)
        new = tuple(st[s + 1, :b] for st in states)
        g_x, g_h, dprev = cell.step_backward(xp, p, ds, acts[s, :b], prev, new, **opts)
        if bptt_truncate is not None:             # sum the terms in flight
            g_x, g_h = xp.sum(g_x, axis=0), xp.sum(g_h, axis=0)
        dgx[s, :b] = g_x
        dgh[s, :b] = g_h
        for c, d in zip(carry, dprev):
            c[..., :b, :] = d
    return _weight_grads(cell, xp, p, cache, dgx, dgh, carry, lead, opts)


def _truncated_by_depth(cell, p, cache, dout, dstate_n, k, opts):
    """Per-term truncation as k + 1 batched passes instead of T looped steps.

    The same sums as the ring loop above, grouped the other way: the terms at
    depth d (the loss at t reaching step t - d) do not depend on each other;
    e_d[s] = the gradient entering step s from the term at s + d, for steps
    0..T-d-1. One ``step_backward`` over all of them gives their gate gradients
    and e_{d+1}[s - 1] = dprev[s]; what reaches the initial state goes to
    dstate0. A ragged batch's padded positions get no gradient in (dout is zero
    there, as ``backward`` requires), so none comes out of them. Same FLOPs as
    the ring; k + 1 calls instead of T, what a short sequence with a small
    batch (one sentence per SGD step) pays for.
    """
    x, states, acts, bs, _ = cache
    xp = _backend.namespace(x, dout)
    T, B, _ = x.shape
    G = p.w_hh.shape[0]
    e = [xp.asarray(dout, copy=True)]                             # e_0: each step's own term
    e += [_backend.zeros(xp, (T, B, st.shape[-1]), x) for st in states[1:]]   # each (T, B, H)
    for s in range(T):                          # a row's final state: part of its last term
        lo, hi = _final_rows(bs, s, B, T)
        for a, d in zip(e, dstate_n):
            a[s, lo:hi] = a[s, lo:hi] + d[lo:hi]
    dstate0 = [_backend.zeros(xp, (B, st.shape[-1]), x) for st in states]
    for d in range(min(k, T - 1) + 1):
        n = T - d                                                 # steps 0..n-1 hold a term
        flat = lambda a: xp.reshape(a[:n], (n * B, a.shape[-1]))  # (n*B, ·)
        g_x, g_h, dprev = cell.step_backward(
            xp, p, tuple(flat(a) for a in e), flat(acts), tuple(flat(st) for st in states),
            tuple(flat(st[1:]) for st in states), **opts)
        same = g_h is g_x                          # RNN, LSTM: one gradient serves both
        g_x = xp.reshape(g_x, (n, B, G))                          # (n, B, G)
        g_h = g_x if same else xp.reshape(g_h, (n, B, G))
        if d == 0:
            dgx, dgh = g_x, g_h
        else:                                     # in place: no new (T, B, G) array
            dgx[:n] += g_x
            if not same:
                dgh[:n] += g_h
        dprev = [xp.reshape(a, (n, B, a.shape[-1])) for a in dprev]
        for a, dp in zip(dstate0, dprev):
            a += dp[0]
        e = [dp[1:] for dp in dprev]                              # e_{d+1}: steps 0..n-2
    return _weight_grads(cell, xp, p, cache, dgx, dgh, dstate0, (), opts)


def _weight_grads(cell, xp, p, cache, dgx, dgh, carry, lead, opts):
    """The products over all steps at once, after the loop."""
    x, states, acts, _, _ = cache
    T, B, I = x.shape
    G = dgx.shape[-1]
    H = states[0].shape[-1]
    dgx2 = xp.reshape(dgx, (T * B, G))
    x2 = xp.reshape(x, (T * B, I))
    dx = xp.reshape(dgx2 @ p.w_ih, (T, B, I))                     # (T, B, I)
    dw_ih = dgx2.T @ x2                                            # (G, I)
    h_prev = xp.reshape(states[0][:-1], (T * B, H))
    acts2 = xp.reshape(acts, (T * B, acts.shape[-1]))
    dw_hh, db_hh = cell.hh_grads(xp, xp.reshape(dgh, (T * B, G)), h_prev, acts2, **opts)
    db_ih = xp.sum(dgx2, axis=0) if p.b_ih is not None else None
    db_hh = db_hh if p.b_hh is not None else None
    dstate0 = tuple(xp.sum(c, axis=0) if lead else c for c in carry)
    return dx, dstate0, DirParams(dw_ih, dw_hh, db_ih, db_hh)
