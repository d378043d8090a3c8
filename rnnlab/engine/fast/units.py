"""Time loops whose threads split each step's hidden units (ragged batches).

The loops of ``loops`` split the batch: each thread runs the whole time loop for
its own rows, and a step costs whole vectors of 16 columns (the last few
columns on the units tile, ``gemm``), so the thread holding the longest rows
of a ragged batch sets the time while the others wait. Here every thread runs every
running row, but only its own hidden units u0..u1: the gate rows g*H + u of
its units, one slice of the packed panels per gate (whole R-row panels: H and
u0, u1 multiples of R), so a step's product reads 1/n of the weights on each of
n threads, and a step of b <= 16 rows costs each thread 1/n of a full-width
step. The threads meet once per step (``sync.barrier``): the next product
needs all of h_t. The arithmetic is that of ``loops`` (see each cell's loop
there), on the thread's rows.

Forward, per step s (b = bs[s] rows running, w = b in whole vectors):

    z_u = W_u [x_s; h_{s-1}] (+ the input projection)     rows of units u, every gate
    the cell on z_u -> h_u (and the LSTM's c_u)
    next operand: h_u (and the LSTM's thread's input rows i0..i1 of x_{s+1}),
    written to the other one of two shared (K, w) buffers;  barrier

Backward, per step s from the last:

    dz_u = the cell's derivatives for units u
    written to the step's shared (Mp, w) dz (one of two);   barrier
    dh_{s-1, u} = (W^T dz)[I + u]                           (``gemm.product_t``, rows of the
    LSTM: dx_s[i0:i1] = (W^T dz)[i0:i1]                      transposed panels: all of dz)

Two buffers alternate, so a thread that runs ahead writes step s + 1's operand
(or s - 1's dz) while the other still reads step s's. Everything a thread keeps
from step to step (h, c, dh, dc; the histories' rows) is its own units' rows.
"""
import numba
import numpy as np

from rnnlab.engine.fast.gemm import ROWS, product, product_t
from rnnlab.engine.fast.loops import (_JIT_OPTIONS, _add, _block, _carry, _cols, _gather,
                                      _gather_affine, _gather_either, _inject_rows, _scatter_rows,
                                      _scratch, add_rows, gru_gates, gru_gates_back, lstm_gates,
                                      lstm_gates_back, rnn_act, rnn_act_back)
from rnnlab.engine.fast.sync import barrier


def _jit(f):
    return numba.njit(**_JIT_OPTIONS)(f)


@_jit
def _gate_products(wp, xh, w, out, b, H, u0, u1, gates):
    """out (gates * nu, w) = the rows g*H + u0 .. g*H + u1 of each gate g of the
    packed W (whole panels) times the shared operand xh (K, w)."""
    n = (u1 - u0) * w
    for g in range(gates):
        product(wp[(g * H + u0) // ROWS:(g * H + u1) // ROWS], xh, 0, w, out[g * n:], b)


@_jit
def _scatter_gates(blk, dst, H, u0, nu, gates, c0, b):
    """Each gate's block of nu rows of blk (gates * nu, w) to rows g*H + u0 of dst."""
    for g in range(gates):
        _scatter_rows(blk, g * nu, dst, g * H + u0, nu, c0, b)


@_jit
def _gather_gates(src, H, u0, nu, gates, c0, b, blk):
    """Rows g*H + u0 .. of src, columns c0..c0+b, to blk (gates * nu, w)."""
    for g in range(gates):
        _gather(src[g * H + u0:g * H + u0 + nu], c0, b, blk[g * nu:(g + 1) * nu])


@_jit
def _back_units(wp, wt, gs, w, o_buf, b, u0, u1, dh_mat):
    """dL/dh_{t-1} of units u0..u1: rows I + u of the panels' W^T times the
    shared dz gs (Mp, w) (``gemm.product_t``: all of dz, only these rows)."""
    k0 = (wp.shape[1] - dh_mat.shape[0] + u0) // ROWS * ROWS
    k1 = wp.shape[1] - dh_mat.shape[0] + u1
    product_t(wp, wt, gs, w, o_buf, b, k0, k1)
    _scatter_rows(_block(o_buf, k1 - k0 + ROWS, w), k1 - (u1 - u0) - k0, dh_mat, u0, u1 - u0, 0, b)


@_jit
def _o_scratch(wp, H, u0, u1, i0, i1, B, a):
    """Scratch for ``_back_units`` (and an input row range i0..i1)."""
    I = wp.shape[1] - H
    return _scratch(max(I + u1 - (I + u0) // ROWS * ROWS, i1 - i0 // ROWS * ROWS) + ROWS, B, a)


@_jit
def lstm_fwd(wp, x, x_fm, acts, bias, hist, chist, bs, B, half, xh2, sync, nt, u0, u1, i0):
    """This thread's units u0..u1 of the LSTM forward (module docstring). x: its
    input rows (a view of rows i0.. of the feature-major (I, T*B) input, or of
    its columns of the time-major (T*B, I) rows: x_fm); bias (G,) scaled; xh2
    (2, (I + H) * w(B)) the shared operands, zeroed; sync the barrier, nt threads."""
    H = hist.shape[0]
    I, nu, T = wp.shape[1] - H, u1 - u0, bs.shape[0]
    ni = x.shape[0] if x_fm else x.shape[1]
    a_buf, z_buf = _scratch(4 * nu, B, acts), _scratch(4 * nu, B, acts)
    c_buf, h_buf = _scratch(nu, B, acts), _scratch(nu, B, acts)
    w = _cols(bs[0], acts)
    xh = _block(xh2[0], I + H, w)
    _gather(hist[u0:u1], 0, bs[0], xh[I + u0:I + u1])             # h_0
    _gather_either(x, x_fm, 0, bs[0], xh[i0:i0 + ni])             # x_0
    barrier(sync, nt)
    w0 = 0
    for s in range(T):
        b, c0, c1 = bs[s], s * B, (s + 1) * B
        w = _cols(b, acts)
        n = nu * w
        if w != w0:                                               # c_{t-1}, bias
            _gather(chist[u0:u1], c0, b, _block(c_buf, nu, w))
            zb = _block(z_buf, 4 * nu, w)
            for g in range(4):
                for j in range(nu):
                    zb[g * nu + j, :] = bias[g * H + u0 + j]
        w0 = w
        _gate_products(wp, xh2[s % 2], w, a_buf, b, H, u0, u1, 4)
        lstm_gates(a_buf, z_buf, c_buf, h_buf, n, half)
        hb = _block(h_buf, nu, w)
        _scatter_gates(_block(a_buf, 4 * nu, w), acts, H, u0, nu, 4, c0, b)
        _scatter_rows(_block(c_buf, nu, w), 0, chist, u0, nu, c1, b)
        _scatter_rows(hb, 0, hist, u0, nu, c1, b)
        if b < B:
            _carry(hist[u0:u1], c0, c1, b, B)
            _carry(chist[u0:u1], c0, c1, b, B)
        if s + 1 < T:                                             # step s+1's operand
            bn = bs[s + 1]
            nx = _block(xh2[(s + 1) % 2], I + H, _cols(bn, acts))
            _gather(hb, 0, bn, nx[I + u0:I + u1])
            _gather_either(x, x_fm, c1, bn, nx[i0:i0 + ni])
        barrier(sync, nt)


@_jit
def lstm_bwd(wp, wt, dout, d_fm, acts, chist, dg, dh_mat, dc, dhn, dcn, dx, bs, off, B, one,
             g2, sync, nt, u0, u1, i0, i1):
    """This thread's units u0..u1 of the LSTM backward (module docstring), on the
    forward's panels read transposed; dg gets dL/dz of the scaled pre-activations
    (``loops.lstm_bwd``). dout: its units' rows (a view: of the feature-major
    (H, T*B), d_fm, or of the columns of the time-major (T*B, H)); dx rows i0..i1
    its share (no rows in dx: not wanted); g2 (2, Mp * w(B)) the shared dz, zeroed."""
    H = dh_mat.shape[0]
    I, nu, T = wp.shape[1] - H, u1 - u0, bs.shape[0]
    Mp = wp.shape[0] * ROWS
    a_buf, z_buf = _scratch(4 * nu, B, dg), _scratch(4 * nu, B, dg)
    t_buf, c_buf, d_buf = _scratch(nu, B, dg), _scratch(nu, B, dg), _scratch(nu, B, dg)
    dh_buf, dc_buf = _scratch(nu, B, dg), _scratch(nu, B, dg)
    k0x = i0 // ROWS * ROWS                                       # dx's first row block
    o_buf = _o_scratch(wp, H, u0, u1, i0, i1, B, dg)
    dhu, dcu, dhnu, dcnu = dh_mat[u0:u1], dc[u0:u1], dhn[u0:u1], dcn[u0:u1]
    for s in range(T - 1, -1, -1):
        b, c0 = bs[s], s * B                                      # b rows running at step s
        w = _cols(b, dg)
        n = nu * w
        lo = bs[s + 1] if s + 1 < T else 0
        _inject_rows(dhu, dhnu, lo, bs[s], 0, B)                  # rows whose last step is s
        _inject_rows(dcu, dcnu, lo, bs[s], 0, B)
        _gather_gates(acts, H, u0, nu, 4, c0, b, _block(a_buf, 4 * nu, w))
        _gather(chist[u0:u1], c0 + B, b, _block(t_buf, nu, w))    # c_t
        _gather(chist[u0:u1], c0, b, _block(c_buf, nu, w))        # c_{t-1}
        _gather_either(dout, d_fm, c0, b, _block(d_buf, nu, w))
        _gather(dhu, 0, b, _block(dh_buf, nu, w))                 # from step t+1
        _gather(dcu, 0, b, _block(dc_buf, nu, w))
        lstm_gates_back(a_buf, t_buf, c_buf, d_buf, dh_buf, dc_buf, z_buf, n, one)
        _scatter_rows(_block(dc_buf, nu, w), 0, dc, u0, nu, 0, b)
        z2, gs = _block(z_buf, 4 * nu, w), _block(g2[s % 2], Mp, w)
        _scatter_gates(z2, gs, H, u0, nu, 4, 0, b)
        _scatter_gates(z2, dg, H, u0, nu, 4, off[s], b)
        barrier(sync, nt)
        _back_units(wp, wt, gs, w, o_buf, b, u0, u1, dh_mat)          # W_hh^T dz for units u
        if dx.shape[0] and i1 > i0:
            product_t(wp, wt, gs, w, o_buf, b, k0x, i1)               # dx_t rows i0..i1
            _scatter_rows(_block(o_buf, i1 - k0x + ROWS, w), i0 - k0x, dx, i0, i1 - i0, c0, b)


@_jit
def rnn_fwd(wp, gx, scale, bias, hist, bs, off, B, kind, half, hh2, sync, nt, u0, u1):
    """This thread's units u0..u1 of the RNN forward (``loops.rnn_fwd``): rows u of
    s * W_hh times the shared h_{t-1} (hh2: (2, H * w(B)), zeroed), plus
    s * (W_ih x + b) (gx, packed), through the nonlinearity; h_u to the other buffer."""
    H, nu, T = hist.shape[0], u1 - u0, bs.shape[0]
    a_buf, g_buf = _scratch(nu, B, gx), _scratch(nu, B, gx)
    _gather(hist[u0:u1], 0, bs[0], _block(hh2[0], H, _cols(bs[0], gx))[u0:u1])    # h_0
    barrier(sync, nt)
    for s in range(T):
        b, c0, c1 = bs[s], s * B, (s + 1) * B
        w = _cols(b, gx)
        n = nu * w
        _gate_products(wp, hh2[s % 2], w, a_buf, b, H, u0, u1, 1)
        _gather_affine(gx[u0:u1], off[s], b, _block(g_buf, nu, w), scale[u0:u1], bias[u0:u1])
        _add(a_buf[:n], g_buf[:n])
        rnn_act(a_buf[:n], kind, half)
        hb = _block(a_buf, nu, w)
        _scatter_rows(hb, 0, hist, u0, nu, c1, b)
        if b < B:
            _carry(hist[u0:u1], c0, c1, b, B)
        if s + 1 < T:                                             # step s+1's operand
            bn = bs[s + 1]
            _gather(hb, 0, bn, _block(hh2[(s + 1) % 2], H, _cols(bn, gx))[u0:u1])
        barrier(sync, nt)


@_jit
def rnn_bwd(wp, wt, dout, d_fm, hist, dg, dh_mat, dhn, bs, off, B, kind, one, g2, sync, nt, u0, u1):
    """This thread's units of the RNN backward (``loops.rnn_bwd``): dz_u to dg and
    to the shared g2 (2, Mp * w(B)); after the barrier, dL/dh_{t-1} of units u."""
    H, nu, T = dh_mat.shape[0], u1 - u0, bs.shape[0]
    Mp = wp.shape[0] * ROWS
    d_buf, h_buf, dh_buf = _scratch(nu, B, dg), _scratch(nu, B, dg), _scratch(nu, B, dg)
    g_buf, o_buf = _scratch(nu, B, dg), _o_scratch(wp, H, u0, u1, 0, 0, B, dg)
    dhu, dhnu = dh_mat[u0:u1], dhn[u0:u1]
    for s in range(T - 1, -1, -1):
        b, c0 = bs[s], s * B
        w = _cols(b, dg)
        n = nu * w
        _inject_rows(dhu, dhnu, bs[s + 1] if s + 1 < T else 0, bs[s], 0, B)
        _gather_either(dout, d_fm, c0, b, _block(d_buf, nu, w))
        _gather(hist[u0:u1], c0 + B, b, _block(h_buf, nu, w))    # h_t = f(a_t)
        _gather(dhu, 0, b, _block(dh_buf, nu, w))                 # dL/dh_t from step t+1
        _add(dh_buf[:n], d_buf[:n])
        rnn_act_back(g_buf[:n], dh_buf[:n], h_buf[:n], kind, one)
        gb, gs = _block(g_buf, nu, w), _block(g2[s % 2], Mp, w)
        _scatter_rows(gb, 0, gs, u0, nu, 0, b)
        _scatter_rows(gb, 0, dg, u0, nu, off[s], b)
        barrier(sync, nt)
        _back_units(wp, wt, gs, w, o_buf, b, u0, u1, dh_mat)


@_jit
def gru_fwd(wp, gx, scale, bias, hist, acts, b_hn, bs, off, B, half, hh2, sync, nt, u0, u1):
    """This thread's units u0..u1 of the GRU forward (``loops.gru_fwd``): rows r, z,
    n of units u of s * W_hh times the shared h_{t-1} (hh2), the gates, h_u (kept
    here for the z h term, and to the other buffer)."""
    H, nu, T = hist.shape[0], u1 - u0, bs.shape[0]
    a_buf, x_buf = _scratch(3 * nu, B, gx), _scratch(3 * nu, B, gx)
    h_buf, n_buf = _scratch(nu, B, gx), _scratch(nu, B, gx)
    _gather(hist[u0:u1], 0, bs[0], _block(hh2[0], H, _cols(bs[0], gx))[u0:u1])    # h_0
    barrier(sync, nt)
    w0 = 0
    for s in range(T):
        b, c0, c1 = bs[s], s * B, (s + 1) * B
        w = _cols(b, gx)
        n = nu * w
        if w != w0:                                               # h_{t-1}, this thread's rows
            _gather(hist[u0:u1], c0, b, _block(h_buf, nu, w))
        w0 = w
        _gate_products(wp, hh2[s % 2], w, a_buf, b, H, u0, u1, 3)
        xb = _block(x_buf, 3 * nu, w)
        for g in range(3):
            r = slice(g * H + u0, g * H + u1)
            _gather_affine(gx[r], off[s], b, xb[g * nu:(g + 1) * nu], scale[r], bias[r])
        add_rows(_block(a_buf, 3 * nu, w)[2 * nu:], b_hn, u0)     # gh_n = W_hn h + b_hn
        gru_gates(a_buf, x_buf, h_buf, n_buf, n, half)
        a2, hb = _block(a_buf, 3 * nu, w), _block(h_buf, nu, w)
        _scatter_gates(a2, acts, H, u0, nu, 2, c0, b)             # r, z
        _scatter_rows(_block(n_buf, nu, w), 0, acts, 2 * H + u0, nu, c0, b)   # n
        _scatter_rows(a2, 2 * nu, acts, 3 * H + u0, nu, c0, b)    # gh_n
        _scatter_rows(hb, 0, hist, u0, nu, c1, b)
        if b < B:
            _carry(hist[u0:u1], c0, c1, b, B)
        if s + 1 < T:
            bn = bs[s + 1]
            _gather(hb, 0, bn, _block(hh2[(s + 1) % 2], H, _cols(bn, gx))[u0:u1])
        barrier(sync, nt)


@_jit
def gru_bwd(wp, wt, dout, d_fm, acts, hist, dgx, dgh, dh_mat, dh_dir, dhn, bs, off, B, one,
            g2, sync, nt, u0, u1):
    """This thread's units of the GRU backward (``loops.gru_bwd``): dgx, dgh (and
    the shared g2) get its units' rows; after the barrier, dL/dh_{t-1} of units u
    through W_hh (the direct path, dh * z, stays in dh_dir)."""
    H, nu, T = dh_mat.shape[0], u1 - u0, bs.shape[0]
    Mp = wp.shape[0] * ROWS
    a_buf, x_buf, g_buf = _scratch(4 * nu, B, dgx), _scratch(3 * nu, B, dgx), _scratch(3 * nu, B, dgx)
    h_buf, d_buf = _scratch(nu, B, dgx), _scratch(nu, B, dgx)
    dh_buf, dd_buf = _scratch(nu, B, dgx), _scratch(nu, B, dgx)
    o_buf = _o_scratch(wp, H, u0, u1, 0, 0, B, dgx)
    dhu, ddu, dhnu = dh_mat[u0:u1], dh_dir[u0:u1], dhn[u0:u1]
    for s in range(T - 1, -1, -1):
        b, c0 = bs[s], s * B
        w = _cols(b, dgx)
        n = nu * w
        _inject_rows(ddu, dhnu, bs[s + 1] if s + 1 < T else 0, bs[s], 0, B)
        _gather_gates(acts, H, u0, nu, 4, c0, b, _block(a_buf, 4 * nu, w))   # r, z, n, gh_n
        _gather(hist[u0:u1], c0, b, _block(h_buf, nu, w))         # h_{t-1}
        _gather_either(dout, d_fm, c0, b, _block(d_buf, nu, w))
        _gather(dhu, 0, b, _block(dh_buf, nu, w))                 # W_hh^T dGh from step t+1
        _gather(ddu, 0, b, _block(dd_buf, nu, w))                 # dh * z from step t+1
        gru_gates_back(a_buf, h_buf, d_buf, dh_buf, dd_buf, x_buf, g_buf, n, one)
        _scatter_rows(_block(dd_buf, nu, w), 0, dh_dir, u0, nu, 0, b)
        gb, gs = _block(g_buf, 3 * nu, w), _block(g2[s % 2], Mp, w)
        _scatter_gates(_block(x_buf, 3 * nu, w), dgx, H, u0, nu, 3, off[s], b)
        _scatter_gates(gb, dgh, H, u0, nu, 3, off[s], b)
        _scatter_gates(gb, gs, H, u0, nu, 3, 0, b)
        barrier(sync, nt)
        _back_units(wp, wt, gs, w, o_buf, b, u0, u1, dh_mat)
