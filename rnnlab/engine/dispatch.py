"""Which implementation runs a layer-direction: the reference loop or the fused kernels.

``impl`` is an argument, threaded from the modules and ``layers.forward`` /
``layers.backward`` (and truncation) down to here:

- ``"reference"``: the NumPy loop of ``rnnlab.engine.sequence``, always.
- ``"fast"``: the cell's fused kernels (``rnnlab.engine.fast``); a ValueError
  when numba (or a BLAS ``cblas_?gemm``) is missing, when the cell declares no
  ``fast_kernels()``, or when its options or the arrays are not covered.
- ``"auto"`` (default): fast when it can run, else reference; the environment
  variable ``RNNLAB_IMPL=reference`` (or ``RNNLAB_PURE_NUMPY=1``, its older
  spelling) makes ``"auto"`` mean reference for a whole run, as CI does.

The fused kernels cover full BPTT. A truncated or hooked backward
(``bptt_truncate``, ``on_step``) runs the reference loop on the fast forward's
cache, whatever ``impl`` says: its states and activations are the same arrays.
"""
import os

from rnnlab.engine import sequence
from rnnlab.engine.fast import fused as _fused, kernels as _kernels

IMPLS = ("auto", "reference", "fast")


def check(impl):
    """Raise a ValueError unless impl is one of ``IMPLS``."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return impl


def env_forces_reference():
    """True when the environment asks ``"auto"`` for the reference loop."""
    return (os.environ.get("RNNLAB_IMPL", "auto") == "reference"
            or os.environ.get("RNNLAB_PURE_NUMPY", "") not in ("", "0"))


def kernels_for(cell, opts):
    """The cell's ``Fused`` kernels for these options, or None."""
    declared = getattr(cell, "fast_kernels", None)
    k = declared() if declared is not None else None
    return k if k is not None and k.supports(opts) else None


def choose(impl, cell, opts, *arrays):
    """The Fused kernels to run, or None for the reference loop."""
    check(impl)
    if impl == "reference" or (impl == "auto" and env_forces_reference()):
        return None
    k = kernels_for(cell, opts) if _kernels.available() else None
    if k is not None and _kernels.usable(*arrays):
        return k
    if impl == "auto":
        return None
    if not _kernels.available():
        raise ValueError("impl='fast' needs numba and NumPy's OpenBLAS (pip install "
                         "'rnnlab[fast]'); use impl='auto' or 'reference'")
    if k is None:
        raise ValueError(f"impl='fast': cell {cell.__name__!r} has no fused kernels for "
                         f"{opts}; use impl='auto' or 'reference'")
    raise ValueError("impl='fast' takes NumPy float32 or float64 arrays of one dtype")


def forward(cell, p, x, state0, batch_sizes=None, impl="auto", **opts):
    """One layer-direction's forward by the chosen implementation: (states, SeqCache)."""
    k = choose(impl, cell, opts, x, p.w_ih, p.w_hh, p.b_ih, p.b_hh, *state0)
    if k is None:
        return sequence.forward(cell, p, x, state0, batch_sizes, **opts)
    states, acts, fm = _fused.forward(k, p, x, state0, batch_sizes, **opts)
    return states, sequence.SeqCache(x, states, acts, batch_sizes, fm)


def backward(cell, p, cache, dout, dstate_n, bptt_truncate=None, on_step=None, impl="auto",
             **opts):
    """One layer-direction's backward: fused when the forward ran fused, BPTT is
    full and ``impl`` allows it; else the reference loop. See ``sequence.backward``."""
    check(impl)
    if (cache.fm is not None and bptt_truncate is None and on_step is None
            and impl != "reference"):
        k = choose(impl, cell, opts, dout, p.w_ih, p.w_hh, *dstate_n)
        if k is not None:
            dx, dstate0, grads = _fused.backward(k, p, cache, dout, dstate_n, **opts)
            return dx, dstate0, sequence.DirParams(*grads)
    return sequence.backward(cell, p, cache, dout, dstate_n, bptt_truncate, on_step, **opts)
