"""Array namespaces: the engine takes its array library from its inputs.

NumPy arrays run on NumPy (with the fused kernels of ``fast`` when numba is
installed); any other array (a torch tensor, later a GPU array) runs through
``array_api_compat``'s standard namespace, on the same engine code. Everything
that only works on NumPy lives here and in ``fast``.
"""
import numpy as np


def namespace(*arrays):
    """The array namespace shared by ``arrays`` (None entries are skipped)."""
    arrays = [a for a in arrays if a is not None]
    if all(isinstance(a, np.ndarray) for a in arrays):
        return np
    try:
        import array_api_compat
    except ImportError as e:  # pragma: no cover - depends on the environment
        kinds = sorted({type(a).__module__ + "." + type(a).__name__ for a in arrays})
        raise TypeError(
            f"rnnlab runs on NumPy arrays; for {kinds} install array-api-compat "
            "(pip install 'rnnlab[torch]')") from e
    return array_api_compat.array_namespace(*arrays)


def zeros(xp, shape, like):
    if xp is np:
        return np.zeros(shape, dtype=like.dtype)
    import array_api_compat
    return xp.zeros(shape, dtype=like.dtype, device=array_api_compat.device(like))


def empty(xp, shape, like):
    if xp is np:
        return np.empty(shape, dtype=like.dtype)
    return zeros(xp, shape, like)


def asarray(xp, host, like):
    """``host`` (a NumPy array the engine computed: an index, a mask) on the
    device of ``like``: a CUDA tensor's indices must live on the GPU too."""
    if xp is np:
        return host
    import array_api_compat
    return xp.asarray(host, device=array_api_compat.device(like))


def to_numpy(a):
    """A NumPy copy of any array (torch tensors via .detach().cpu(), CuPy's
    via .get(): neither converts to NumPy implicitly from a GPU)."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    if hasattr(a, "__cuda_array_interface__") and hasattr(a, "get"):
        return a.get()
    return np.asarray(a)
