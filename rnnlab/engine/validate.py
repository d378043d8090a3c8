"""Input checks: a clear ValueError naming the argument, what was expected and
what was given, before any array arithmetic can fail deep inside.

``check_params`` is the one check of a parameter dict against its config
(names, shapes, one float dtype, finite values); the layers, the modules, the
converters and the language model all call it. ``detach`` is the copy the
layers make at their boundary, so that editing an array the caller holds (the
input, the returned output) between ``forward`` and ``backward`` cannot change
the gradients.
"""
import numpy as np

from rnnlab.engine import backend as _backend

FLOAT_DTYPES = ("float32", "float64")


_DTYPE_NAMES = {}


def dtype_name(a):
    """'float32', 'float64', ... for a NumPy array or a torch tensor. Cached by
    dtype object: ``str(dtype)`` takes ~5 us, and a layer's forward and backward
    ask 14 times."""
    dt = a.dtype
    name = _DTYPE_NAMES.get(dt)
    if name is None:
        name = _DTYPE_NAMES[dt] = str(dt).replace("torch.", "")
    return name


def check_finite(name, a):
    if not isinstance(a, np.ndarray):           # on its own device: no copy to the host
        try:
            xp = _backend.namespace(a)
        except TypeError:                       # no namespace known: checked on the host
            xp = None
        if xp is not None and bool(xp.all(xp.isfinite(a))):
            return
    arr = _backend.to_numpy(a)
    if not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or Inf value(s); expected finite numbers")


def check_dtype(name, dtype):
    """A float32 or float64 dtype (anything ``np.dtype`` takes); returns it."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"{name} must be float32 or float64, got {dtype!r}") from None
    if dt.name not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be float32 or float64, got {dt.name}")
    return dt


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


def check_params(config, params, dtype=None, finite=True, what="params"):
    """Check a parameter dict against its config exactly; returns its dtype name.

    ``config`` is an ``RNNConfig`` or a ``{name: shape}`` dict. Every name the
    config has must be present (a missing bias is an error, not a zero), no
    other name, each an array of exactly its shape, all float32 or all float64
    (``dtype`` if given), and (``finite``) free of NaN and Inf.
    """
    if isinstance(config, dict):
        want = config
    else:
        from rnnlab.engine.layers import param_shapes    # layers imports this module
        want = param_shapes(config)
    check_names_shapes(want, params, what)
    dtypes = {k: dtype_name(v) for k, v in params.items()}
    found = sorted(set(dtypes.values()))
    if len(found) != 1 or found[0] not in FLOAT_DTYPES:
        by = ", ".join(f"{k}: {d}" for k, d in list(dtypes.items())[:6])
        raise ValueError(f"{what} must all be float32 or all float64, got {found} ({by})")
    if dtype is not None and found[0] != dtype:
        raise ValueError(f"{what} are {found[0]} but the forward ran in {dtype}; "
                         "keep one dtype between forward and backward")
    if finite:
        for k, v in params.items():
            check_finite(f"{what}[{k!r}]", v)
    return found[0]


def array_kind(a):
    """'numpy array', or another array's library and device ('torch array on cuda:0')."""
    if isinstance(a, np.ndarray):
        return "numpy array"
    lib = type(a).__module__.split(".")[0]
    device = getattr(a, "device", None)
    return f"{lib} array" if device is None else f"{lib} array on {device}"


def check_same_kind(what, a, params):
    """``a`` (an input, a state, a gradient) is of the params' array library, on
    their device: a call runs on one namespace, and a mix failed deep inside
    (torch weights with a NumPy input: "unsupported operand type(s) for @")."""
    if isinstance(a, np.ndarray) and all(isinstance(v, np.ndarray) for v in params.values()):
        return
    want = array_kind(a)
    for k, v in params.items():
        if array_kind(v) != want:
            raise ValueError(
                f"{what} is a {want} but params[{k!r}] is a {array_kind(v)}; "
                "the arrays of a call must come from one array library on one device "
                "(rnnlab.engine.convert moves weights between NumPy and torch)")


def check_dict(name, d):
    """A dict (of arrays, by name), as params, grads and state_dicts are."""
    if not isinstance(d, dict):
        raise ValueError(f"{name} must be a dict of arrays (name -> array), got "
                         f"{type(d).__name__}")


def check_names_shapes(want, arrays, what, against="the config"):
    """``arrays`` is a dict with exactly ``want``'s names (``{name: shape}``), each
    an array (anything with ``shape`` and ``dtype``) of exactly its shape."""
    check_dict(what, arrays)
    missing = [k for k in want if k not in arrays]
    extra = [k for k in arrays if k not in want]
    if missing or extra:
        verb = "do" if what.endswith("s") else "does"                 # params do, state does
        raise ValueError(f"{what} {verb} not match {against}: missing {missing}, "
                         f"unexpected {extra}")
    for k, shape in want.items():
        v = arrays[k]
        if not hasattr(v, "shape") or not hasattr(v, "dtype"):
            raise ValueError(f"{what}[{k!r}] must be an array, got {type(v).__name__}")
        got = tuple(v.shape)
        if got != tuple(shape):
            hint = " (transposed?)" if len(got) == 2 and got == tuple(shape)[::-1] else ""
            raise ValueError(f"{what}[{k!r}] must have shape {tuple(shape)}, got {got}{hint}")


def check_state_grads(names, dstate_n):
    """``dh_n`` for backward: None, or a tuple with one entry (array or None) per
    state (``("h",)`` or ``("h", "c")``)."""
    if dstate_n is None:
        return None
    want = ", ".join(f"d{n}_n" for n in names)
    if not isinstance(dstate_n, (tuple, list)):
        if len(names) == 1:
            return (dstate_n,)
        raise ValueError(f"dh_n must be a tuple ({want}) of {len(names)} arrays or None, "
                         f"got {type(dstate_n).__name__}")
    if len(dstate_n) != len(names):
        raise ValueError(f"dh_n must be a tuple ({want}) of {len(names)} arrays or None, "
                         f"got a tuple of {len(dstate_n)}")
    return tuple(dstate_n)


def detach(a):
    """A private copy of an array crossing the layers' boundary (NumPy or any
    array-API namespace), so later in-place edits by the caller cannot reach
    what ``backward`` uses."""
    if isinstance(a, np.ndarray):
        return a.copy()
    if hasattr(a, "clone"):                                        # torch
        return a.clone()
    return _backend.namespace(a).asarray(a, copy=True)


def _real(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def check_number(name, v, lo=None, hi=None, lo_open=False, hi_open=False, note=""):
    """A finite real number (not a bool) within lo..hi (either may be None: no
    bound; ``*_open``: the bound itself is excluded); returns it as a float.
    ``note`` ends the message (e.g. ", or None for no clipping")."""
    below = lo is not None and (v <= lo if lo_open else v < lo) if _real(v) else False
    above = hi is not None and (v >= hi if hi_open else v > hi) if _real(v) else False
    if _real(v) and np.isfinite(v) and not below and not above:
        return float(v)
    bounds = ([f"{'>' if lo_open else '>='} {lo}"] if lo is not None else []) + (
        [f"{'<' if hi_open else '<='} {hi}"] if hi is not None else [])
    want = " ".join(["a finite number"] + [" and ".join(bounds)] * bool(bounds))
    raise ValueError(f"{name} must be {want}{note}, got {v!r}")


def check_count(name, v):
    """An integer >= 0 (not a bool); returns it."""
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
    return int(v)


def check_flag(name, v):
    """True or False (NumPy's too), else a ValueError naming it: "no" and 0 are
    not flags, though Python would take the one as true and the other as false."""
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {v!r}")
    return bool(v)


def check_config_args(cfg):
    """The flags of an RNNConfig are bools and dropout a number (sizes and choices
    are checked by the config itself)."""
    for name in ("bias", "batch_first", "bidirectional", "reset_after"):
        check_flag(name, getattr(cfg, name))
    if not _real(cfg.dropout) or not 0.0 <= cfg.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {cfg.dropout!r}")


def check_seed(name, seed):
    """What ``np.random.default_rng`` takes: None, an integer >= 0 or a numpy
    Generator (SeedSequence, BitGenerator); returns it."""
    if seed is not None and not isinstance(seed, (np.random.Generator, np.random.SeedSequence,
                                                  np.random.BitGenerator)):
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"{name} must be None, an integer >= 0 or a numpy Generator, "
                             f"got {seed!r}")
    return seed


def check_module_args(dropout, seed, params):
    """What a module's constructor takes before it builds its config."""
    if not _real(dropout):
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
    check_seed("seed", seed)
    if params is not None:
        check_dict("params", params)


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
