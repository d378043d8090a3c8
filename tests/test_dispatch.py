"""impl="auto" | "reference" | "fast": chosen by argument and environment, never
by a module global; "fast" where it cannot run is a clear error."""
import numpy as np
import pytest

from rnnlab import LSTM
from rnnlab.engine import dispatch, layers
from rnnlab.engine.fast import kernels

CFG = layers.RNNConfig("gru", 3, 4)


def _fused_ran(impl="auto", cfg=CFG):
    params = layers.init_params(cfg, 0, np.float32)
    _, _, cache = layers.forward(cfg, params, np.ones((5, 2, 3), np.float32), impl=impl)
    return cache.seq[0][0].fm is not None


def test_reference_is_always_the_loop():
    assert not _fused_ran("reference")


@pytest.mark.parametrize("env", [("RNNLAB_IMPL", "reference"), ("RNNLAB_PURE_NUMPY", "1")])
def test_environment_turns_auto_into_reference(monkeypatch, env):
    monkeypatch.setenv(*env)
    assert not _fused_ran("auto")


def test_unknown_impl_is_a_value_error():
    with pytest.raises(ValueError, match="impl must be one of"):
        _fused_ran("numba")
    with pytest.raises(ValueError, match="impl must be one of"):
        LSTM(2, 3, impl="gpu")


def test_fast_without_the_kernels_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(kernels, "_OPENBLAS", None)               # as without numba
    assert not _fused_ran("auto")
    with pytest.raises(ValueError, match=r"impl='fast' needs numba"):
        _fused_ran("fast")


@pytest.mark.needs_numba
def test_fast_and_auto_run_the_kernels(monkeypatch):
    monkeypatch.delenv("RNNLAB_IMPL", raising=False)
    monkeypatch.delenv("RNNLAB_PURE_NUMPY", raising=False)
    assert _fused_ran("fast") and _fused_ran("auto")
    classic = layers.RNNConfig("gru", 3, 4, reset_after=False)      # no fused variant
    assert not _fused_ran("auto", classic)
    with pytest.raises(ValueError, match="no fused kernels"):
        _fused_ran("fast", classic)


@pytest.mark.needs_numba
def test_module_impl_reaches_the_engine():
    x = np.ones((4, 2, 2), np.float32)
    fast, ref = LSTM(2, 3, seed=0, impl="fast"), LSTM(2, 3, seed=0, impl="reference")
    np.testing.assert_allclose(fast(x)[0], ref(x)[0], atol=1e-6)
    assert fast._cache.seq[0][0].fm is not None and ref._cache.seq[0][0].fm is None
