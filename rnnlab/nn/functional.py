"""The non-recurrent pieces around a recurrent stack, forward and backward side
by side: linear layer, embedding, dropout, softmax cross-entropy, sigmoid
(Bernoulli) cross-entropy, squared error.

Shapes: N rows (N = T*B when time is flattened), I in, O out, V vocabulary.
Each ``*_backward`` takes the upstream gradient and returns gradients for every
input and parameter of its forward.
"""
import numpy as np


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
    y = targets.astype(z.dtype)
    nll = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))  # (N, K)
    w = np.ones(z.shape[0], dtype=z.dtype) if weights is None else weights.astype(z.dtype)
    total = max(float(w.sum()), 1e-12)
    loss = float(nll.sum(axis=1) @ w / total)
    dz = sigmoid(z)                                               # (N, K)
    dz -= y
    dz *= (w / total)[:, None].astype(z.dtype)
    return loss, dz


def sigmoid(z):
    """1 / (1 + e^-z) without overflow for large |z| (either sign)."""
    e = np.exp(-np.abs(z))                                        # in (0, 1]
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def mse(pred, target):
    """Mean squared error over all elements; returns (loss, dpred)."""
    diff = pred - target
    return float(np.mean(diff * diff)), (2.0 / diff.size) * diff
