"""The non-recurrent pieces around a recurrent stack, forward and backward side
by side: linear layer, embedding, dropout, softmax cross-entropy, sigmoid
(Bernoulli) cross-entropy, squared error.

Shapes: N rows (N = T*B when time is flattened), I in, O out, V vocabulary.
Each ``*_backward`` takes the upstream gradient and returns gradients for every
input and parameter of its forward.

Row-sparse gradients (``RowGrad``): an embedding looked up with N ids sends
gradient to at most N of its V rows. For a word model (V = 10,000, N = 400)
building the dense (V, E) gradient, measuring its norm and applying it cost more
than everything else about the embedding, so ``embedding_backward_rows`` keeps
the touched rows only, once each (repeated ids summed). ``rnnlab.optim``'s
norm, clipping and plain SGD read those rows only (plain SGD's result is bit
for bit the dense one); every rule with per-row state (momentum, Adam, RMSprop,
Adagrad) expands it first: their state decays on every row at every step, so
updating touched rows only ("lazy" Adam) would be a different rule.
K distinct ids (K <= N).
"""
import os
from typing import NamedTuple

import numpy as np

from rnnlab.engine.threads import env_count, parallel


def linear_forward(x, w, b=None):
    """y = x W^T + b.  x (..., I), w (O, I), b (O,) -> y (..., O).

    Leading axes are flattened first: NumPy runs a 3-D @ 2-D product as one
    small product per leading index, many times slower than one 2-D product.
    """
    y = (x.reshape(-1, x.shape[-1]) @ w.T).reshape(*x.shape[:-1], w.shape[0])
    return y + b if b is not None else y


def linear_backward(dy, x, w, with_bias=True):
    """Returns dx (..., I), dw (O, I), db (O,) or None; one 2-D product each."""
    O, I = w.shape
    dy2, x2 = dy.reshape(-1, O), x.reshape(-1, I)                 # (N, O), (N, I)
    dx = (dy2 @ w).reshape(*dy.shape[:-1], I)                     # (..., I)
    return dx, dy2.T @ x2, (dy2.sum(axis=0) if with_bias else None)


def embedding_forward(ids, table):
    """Rows of table (V, E) for integer ids (...,) -> (..., E)."""
    return table[ids]


def embedding_backward(dy, ids, vocab_size):
    """dtable (V, E): scatter-add of dy (..., E) into the rows named by ids."""
    E = dy.shape[-1]
    dtable = np.zeros((vocab_size, E), dtype=dy.dtype)
    np.add.at(dtable, ids.reshape(-1), dy.reshape(-1, E))         # repeated ids add up
    return dtable


class RowGrad(NamedTuple):
    """dL/d(table) (V, E) that is zero outside ``rows``."""
    rows: np.ndarray      # (K,) distinct row indices, increasing
    values: np.ndarray    # (K, E) the gradient on those rows
    shape: tuple          # (V, E) of the dense gradient

    @property
    def dtype(self):
        return self.values.dtype

    def to_dense(self):
        """The (V, E) dense gradient."""
        out = np.zeros(self.shape, self.values.dtype)
        out[self.rows] = self.values
        return out

    def __mul__(self, s):
        """Scaled by a scalar (clipping, sums over time): still row-sparse."""
        return RowGrad(self.rows, self.values * s, self.shape)

    __rmul__ = __mul__


def embedding_backward_rows(dy, ids, vocab_size):
    """The embedding's gradient as a ``RowGrad``: dy (..., E) summed per distinct id.

    Repeated ids add up in the order they occur, as ``np.add.at`` into zeros
    does for the dense gradient, so the touched rows equal the dense ones exactly.
    """
    E = dy.shape[-1]
    rows, inverse = np.unique(ids.reshape(-1), return_inverse=True)   # (K,), (N,)
    values = np.zeros((len(rows), E), dy.dtype)                       # (K, E)
    np.add.at(values, inverse.reshape(-1), dy.reshape(-1, E))
    return RowGrad(rows, values, (vocab_size, E))


def dense(g):
    """g as a dense array (a RowGrad is expanded; anything else is returned as is)."""
    return g.to_dense() if isinstance(g, RowGrad) else g


def dropout_mask(shape, p, rng, dtype):
    """Inverted dropout: keep with prob 1-p and scale by 1/(1-p); None if p == 0."""
    if p <= 0:
        return None
    return ((rng.random(shape) >= p) / (1.0 - p)).astype(dtype)


def log_softmax(logits):
    """log softmax over the last axis, shifted by the max so exp cannot overflow:
    (..., V) -> (..., V). The one log-softmax of rnnlab (sampling and scoring
    read it)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(logits, targets, weights=None, smoothing=0.0):
    """Mean negative log-likelihood of integer targets.

    logits (N, V), targets (N,), optional weights (N,) (0 masks a row; the mean
    is over the weight sum). ``smoothing`` eps > 0 is label smoothing as in
    torch.nn.CrossEntropyLoss: the target is (1 - eps) one-hot + eps / V
    everywhere, so each row's loss is (1 - eps) nll + eps mean_v(-log p_v).
    Returns (loss, dlogits) with dlogits (N, V).
    One exp over the logits serves both the loss and its gradient.
    """
    N, V = logits.shape
    rows = np.arange(N)
    p = logits - logits.max(axis=-1, keepdims=True)               # (N, V), max 0: no overflow
    z = p[rows, targets]                                          # target logits, shifted
    zmean = p.mean(axis=-1) if smoothing else None                # (N,)
    np.exp(p, out=p)
    total_e = p.sum(axis=-1)                                      # (N,)
    lse = np.log(total_e)
    nll = lse - z                                                 # (N,)
    if smoothing:
        nll = (1.0 - smoothing) * nll + smoothing * (lse - zmean)
    w = np.ones(N, dtype=logits.dtype) if weights is None else weights.astype(logits.dtype)
    total = max(float(w.sum()), 1e-12)
    loss = float((nll * w).sum() / total)
    p *= (w / (total * total_e))[:, None].astype(p.dtype)         # softmax * w / total
    p[rows, targets] -= (1.0 - smoothing) * w / total
    if smoothing:
        p -= (smoothing / V * w / total)[:, None].astype(p.dtype)
    return loss, p


def linear_cross_entropy(x, w, b, targets, block_rows=None, threads=None):
    """Mean negative log-likelihood of targets under softmax(x W^T + b), with
    every gradient, in one pass that holds a single (N, V) buffer.

    x (N, I), w (V, I), b (V,) or None, targets (N,) integers.
    Returns (loss, dx (N, I), dw (V, I), db (V,) or None): the same numbers as
    ``linear_forward`` + ``softmax_cross_entropy`` + ``linear_backward``, but the
    logits are turned into their gradient in place, so the logits and dlogits
    are never both held (a word model's (N, V) is its largest array). The
    softmax runs over blocks of ``block_rows`` rows (default: about 1 MiB of
    float32), each one read from memory once and finished while in cache, on
    ``threads`` threads (default ``softmax_threads()``): the products around it
    are BLAS's, multi-threaded already, and NumPy's ufuncs release the GIL. The
    numbers do not depend on the thread count (db sums the blocks in order).
    """
    N, V = x.shape[0], w.shape[0]
    buf = np.empty((N, V), np.result_type(x, w))
    np.matmul(x, w.T, out=buf)                                    # (N, V) logits
    rows = block_rows or max(1, (1 << 18) // V)
    starts = range(0, N, rows)
    nll = np.empty(N, buf.dtype)                                  # (N,)
    dbs = np.empty((len(starts), V), buf.dtype) if b is not None else None
    scale = buf.dtype.type(1.0 / N)

    def block(k):
        r0 = starts[k]
        blk, t = buf[r0:r0 + rows], targets[r0:r0 + rows]         # (n, V), (n,)
        at = np.arange(len(blk))
        if b is not None:
            blk += b
        blk -= blk.max(axis=1, keepdims=True)                     # max 0: no overflow
        z = blk[at, t]                                            # target logits, shifted
        np.exp(blk, out=blk)
        total_e = blk.sum(axis=1)                                 # (n,)
        nll[r0:r0 + len(blk)] = np.log(total_e) - z
        blk *= (scale / total_e)[:, None]                         # softmax / N
        blk[at, t] -= scale                                       # dL/dlogits
        if dbs is not None:
            blk.sum(axis=0, out=dbs[k])
    _run_blocks(block, len(starts), threads)
    db = None
    if dbs is not None:
        db = np.zeros(V, buf.dtype)
        for d in dbs:                                             # in block order
            db += d
    loss = float(nll.sum(dtype=np.float64) / N)
    return loss, buf @ w, buf.T @ x, db                           # dx (N, I), dw (V, I)


def softmax_threads():
    """Threads for ``linear_cross_entropy``'s blocks: RNNLAB_THREADS (a positive
    integer, else a ValueError naming it), else OMP_NUM_THREADS where it is one
    count (what an MPI rank or a benchmark set; OpenMP's own forms, such as the
    nested "4,2", are its business), else the CPUs this process may run on."""
    n = env_count("RNNLAB_THREADS")
    if n:
        return n
    v = os.environ.get("OMP_NUM_THREADS", "")
    if v.isdigit() and int(v) > 0:
        return int(v)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _run_blocks(fn, n, threads):
    """fn(0), ..., fn(n - 1), on up to ``threads`` threads (each a contiguous share)."""
    threads = max(1, min(threads or softmax_threads(), n))
    share = max(1, -(-n // threads))                              # blocks per thread

    def run(lo):
        for k in range(lo, min(lo + share, n)):
            fn(k)
    parallel([lambda lo=lo: run(lo) for lo in range(0, n, share)])


# ---------------------------------------------------------------- independent Bernoulli outputs

def sigmoid_cross_entropy(logits, targets, weights=None):
    """Negative log-likelihood of binary targets under independent Bernoullis,
    **summed over the K outputs of a row and averaged over rows**.

    logits (N, K), targets (N, K) in {0, 1} (bool is fine), optional row
    weights (N,) (0 masks a row; the mean is over the weight sum). Per element
    l = -y log s(z) - (1 - y) log(1 - s(z)) = max(z, 0) - z y + log(1 + e^-|z|),
    which never overflows; dl/dz = s(z) - y. Returns (loss, dlogits (N, K)).
    ``torch.nn.BCEWithLogitsLoss(reduction="sum") / N`` is the same loss.
    """
    z = logits
    w = np.ones(z.shape[0], dtype=z.dtype) if weights is None else weights.astype(z.dtype)
    total = max(float(w.sum()), 1e-12)
    loss = float(sigmoid_nll_rows(z, targets) @ w / total)
    dz = sigmoid(z)                                               # (N, K)
    dz -= targets.astype(z.dtype)
    dz *= (w / total)[:, None].astype(z.dtype)
    return loss, dz


def sigmoid_nll_rows(logits, targets):
    """Each row's NLL under independent Bernoullis, summed over its K outputs:
    logits (N, K), targets (N, K) in {0, 1} -> (N,). The per-row form of
    ``sigmoid_cross_entropy`` (no gradient), for metrics that weigh rows
    differently (per piece, without the first frame)."""
    z = logits
    y = targets.astype(z.dtype)
    return (np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))).sum(axis=1)   # (N,)


def sigmoid(z):
    """1 / (1 + e^-z) without overflow for large |z| (either sign)."""
    e = np.exp(-np.abs(z))                                        # in (0, 1]
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def mse(pred, target):
    """Mean squared error over all elements; returns (loss, dpred)."""
    diff = pred - target
    return float(np.mean(diff * diff)), (2.0 / diff.size) * diff
