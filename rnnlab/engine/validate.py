"""Input checks: a clear ValueError naming the argument, what was expected and
what was given, before any array arithmetic can fail deep inside."""
import numpy as np

from rnnlab.engine import backend as _backend

FLOAT_DTYPES = ("float32", "float64")


def dtype_name(a):
    return str(a.dtype).replace("torch.", "")


def check_finite(name, a):
    arr = _backend.to_numpy(a)
    if not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or Inf value(s); expected finite numbers")


def check_array(name, a, ndim, dtype=None):
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        raise ValueError(f"{name} must be an array, got {type(a).__name__}")
    if len(a.shape) not in ndim:
        want = " or ".join(f"{n}-D" for n in ndim)
        raise ValueError(f"{name} must be {want}, got {len(a.shape)}-D with shape {tuple(a.shape)}")
    if dtype_name(a) not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be float32 or float64, got {dtype_name(a)}")
    if dtype is not None and dtype_name(a) != dtype:
        raise ValueError(f"{name} has dtype {dtype_name(a)} but the layer's parameters are "
                         f"{dtype}; convert one of them (e.g. x.astype(np.{dtype}))")


def check_shape(name, a, expected, what):
    if tuple(a.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)} ({what}), got {tuple(a.shape)}")


def check_lengths(lengths, B, T):
    """lengths: B integers in 1..T. Returns them as a NumPy int64 array."""
    arr = np.asarray(_backend.to_numpy(lengths))
    if arr.ndim != 1 or arr.shape[0] != B:
        raise ValueError(f"lengths must be 1-D with one entry per batch row ({B}), "
                         f"got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"lengths must be integers, got dtype {arr.dtype}")
    if arr.min() < 1 or arr.max() > T:
        raise ValueError(f"lengths must lie in 1..{T} (the sequence length), "
                         f"got min {arr.min()} and max {arr.max()}")
    return arr.astype(np.int64)
