"""2-D convolution (im2col), ReLU and pooling, forward and backward side by side.

Layout as ``torch.nn.functional``: images (B, C, H, W), weights (O, C, K, K),
bias (O,). Shapes: B batch, C in channels, O out channels, K kernel size,
Ho/Wo output height/width, P = C*K*K patch length.

Convolution as one matrix product (im2col): every K x K patch of the padded
input becomes a row of ``cols`` (B*Ho*Wo, P), and y = cols W^T + b with W
reshaped to (O, P). Backward:

    dW = dy^T cols;   db = sum dy;   dcols = dy W
    dx = col2im(dcols): each patch row is added back where it was read from
         (K*K strided slice additions, so overlapping patches add up)

Pooling windows are k x k with stride k (no overlap); H and W must be
multiples of k. Max pooling sends the gradient to the first maximum of each
window (torch does the same), average pooling spreads it evenly.
"""
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def init_params(C, O, K, rng=None, dtype=np.float32, prefix="conv."):
    """He-uniform weights (ReLU follows) and zero bias: ``weight`` (O, C, K, K), ``bias`` (O,)."""
    rng = np.random.default_rng(rng)
    bound = np.sqrt(6.0 / (C * K * K))
    return {prefix + "weight": rng.uniform(-bound, bound, (O, C, K, K)).astype(dtype),
            prefix + "bias": np.zeros(O, dtype)}


class ConvCache(NamedTuple):
    cols: np.ndarray       # (B*Ho*Wo, P) patches
    x_shape: tuple         # (B, C, H, W)
    pad: int
    stride: int


def _check(x, w):
    if x.ndim != 4:
        raise ValueError(f"conv2d: expected images (B, C, H, W), got shape {x.shape}")
    if w.ndim != 4 or w.shape[1] != x.shape[1] or w.shape[2] != w.shape[3]:
        raise ValueError(f"conv2d: weight {w.shape} does not fit {x.shape[1]} input channels "
                         "(expected (O, C, K, K))")


def conv2d_forward(x, w, b=None, stride=1, pad=0):
    """y (B, O, Ho, Wo) for x (B, C, H, W), w (O, C, K, K); zero padding ``pad``."""
    _check(x, w)
    B, C, _, _ = x.shape
    O, _, K, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    win = sliding_window_view(xp, (K, K), axis=(2, 3))[:, :, ::stride, ::stride]  # (B,C,Ho,Wo,K,K)
    Ho, Wo = win.shape[2], win.shape[3]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(B * Ho * Wo, C * K * K)         # (N, P)
    y = cols @ w.reshape(O, -1).T                                                   # (N, O)
    if b is not None:
        y += b
    y = y.reshape(B, Ho, Wo, O).transpose(0, 3, 1, 2)                               # (B, O, Ho, Wo)
    return np.ascontiguousarray(y), ConvCache(cols, x.shape, pad, stride)


def conv2d_backward(dy, w, cache, with_bias=True, need_dx=True):
    """(dx (B, C, H, W) or None, dw (O, C, K, K), db (O,) or None) for dy (B, O, Ho, Wo).

    ``need_dx=False`` skips the input gradient (the first layer's input is the image).
    """
    cols, (B, C, H, W), pad, s = cache
    O, _, K, _ = w.shape
    Ho, Wo = dy.shape[2], dy.shape[3]
    dy2 = dy.transpose(0, 2, 3, 1).reshape(B * Ho * Wo, O)                          # (N, O)
    dw = (dy2.T @ cols).reshape(w.shape)
    db = dy2.sum(axis=0) if with_bias else None
    if not need_dx:
        return None, dw, db
    # dcols^T, laid out (C, K, K, B, Ho, Wo) so that each (i, j) slice is contiguous
    dcols = (w.reshape(O, -1).T @ dy2.T).reshape(C, K, K, B, Ho, Wo)
    dxp = np.zeros((C, B, H + 2 * pad, W + 2 * pad), dy.dtype)
    for i in range(K):                    # col2im: patch element (i, j) came from here
        for j in range(K):
            dxp[:, :, i:i + s * Ho:s, j:j + s * Wo:s] += dcols[:, i, j]
    dx = dxp[:, :, pad:pad + H, pad:pad + W] if pad else dxp
    return np.ascontiguousarray(dx.transpose(1, 0, 2, 3)), dw, db


def relu_forward(x):
    return np.maximum(x, 0)


def relu_backward(dy, y):
    """dx from dy and the ReLU's own output y (the gradient passes where y > 0)."""
    return dy * (y > 0)


def _windows(x, k):
    B, C, H, W = x.shape
    if H % k or W % k:
        raise ValueError(f"pool: image size {H}x{W} is not a multiple of the window {k}")
    return x.reshape(B, C, H // k, k, W // k, k)


def maxpool_forward(x, k=2):
    """y (B, C, H/k, W/k): the maximum of each k x k window; cache: the argmax one-hot."""
    win = _windows(x, k).transpose(0, 1, 2, 4, 3, 5)                  # (B, C, Ho, Wo, k, k)
    flat = win.reshape(*win.shape[:4], k * k)
    idx = flat.argmax(axis=-1)                                        # first maximum
    y = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
    return y, (idx, x.shape, k)


def maxpool_backward(dy, cache):
    idx, (B, C, H, W), k = cache
    flat = np.zeros((*dy.shape, k * k), dy.dtype)
    np.put_along_axis(flat, idx[..., None], dy[..., None], axis=-1)
    win = flat.reshape(B, C, H // k, W // k, k, k).transpose(0, 1, 2, 4, 3, 5)
    return win.reshape(B, C, H, W)


def avgpool_forward(x, k=2):
    return _windows(x, k).mean(axis=(3, 5)), (x.shape, k)


def avgpool_backward(dy, cache):
    (B, C, H, W), k = cache
    d = np.repeat(np.repeat(dy, k, axis=2), k, axis=3)
    return d / (k * k)
