"""Row-sparse gradients: the rows of a (V, E) table that a batch touched, and nothing else.

An embedding looked up with N ids sends gradient to at most N of its V rows;
the dense gradient is a (V, E) array of zeros with those rows filled in. For a
word model (V = 10,000, N = 400) building it, measuring its norm and applying
it cost more than everything else about the embedding. ``RowGrad`` keeps only
the touched rows, once each (repeated ids already summed), so

- ``rnnlab.optim.global_norm`` and ``clip_by_global_norm`` read and scale the
  K touched rows only (exact: the other rows are zero);
- plain SGD (``rnnlab.optim.sgd()`` without momentum) updates those rows only,
  with the same result, bit for bit, as the dense update;
- every other rule (momentum, Adam, RMSprop, Adagrad) takes ``to_dense()``
  first: their state decays on every row at every step, so updating touched
  rows only ("lazy" Adam) would be a different rule, not a faster one.

Shapes: N ids, V rows of the table, E its width, K distinct ids (K <= N).
"""
from typing import NamedTuple

import numpy as np


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
