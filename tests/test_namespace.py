"""The same engine on other array libraries, through the array namespace it
takes from its inputs (issue 2, item 6): torch CPU tensors here, and, where a
GPU is there, torch CUDA tensors and CuPy arrays. Results equal the NumPy
run's in float64, and come back as the same library's arrays on the same
device. Nothing here uses torch's autograd.
"""
import numpy as np
import pytest

import rnnlab
from rnnlab.engine import backend, layers
from rnnlab.engine.layers import as_hx
from rnnlab.engine.truncation import chunked_forward_backward

try:
    import torch
except ImportError:                        # conftest skips needs_torch tests (fails them in CI)
    torch = None
pytestmark = pytest.mark.needs_torch
array_api_compat = pytest.importorskip("array_api_compat")


def _cupy():
    try:
        import cupy
        return cupy if cupy.cuda.runtime.getDeviceCount() > 0 else None
    except Exception:                      # not installed, or no driver / no GPU
        return None


def _kinds():
    """(library, device) pairs; the GPU ones skip, with the reason, on a machine without."""
    cuda = torch is not None and torch.cuda.is_available()
    return [pytest.param(("torch", "cpu"), id="torch-cpu"),
            pytest.param(("torch", "cuda"), id="torch-cuda",
                         marks=[pytest.mark.gpu,
                                pytest.mark.skipif(not cuda, reason="no CUDA GPU for torch")]),
            pytest.param(("cupy", "cuda"), id="cupy",
                         marks=[pytest.mark.gpu,
                                pytest.mark.skipif(_cupy() is None, reason="no CuPy with a GPU")])]


@pytest.fixture(params=_kinds())
def kind(request):
    return request.param


def to_kind(tree, kind):
    """NumPy arrays (a dict, a tuple, one array or None) as ``kind``'s arrays."""
    lib, device = kind
    if isinstance(tree, dict):
        return {k: to_kind(v, kind) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(to_kind(v, kind) for v in tree)
    if tree is None:
        return None
    return torch.tensor(tree, device=device) if lib == "torch" else _cupy().asarray(tree)


def assert_kind(arrays, kind, dtype):
    """Every array is ``kind``'s, on its device, of ``dtype``."""
    lib, device = kind
    for a in arrays:
        if lib == "torch":
            assert isinstance(a, torch.Tensor) and a.device.type == device, type(a)
        else:
            assert isinstance(a, _cupy().ndarray), type(a)
        assert backend.to_numpy(a).dtype == dtype


SETUPS = {   # (num_layers, bidirectional, batch_first, lengths, bptt_truncate)
    "plain": (1, False, False, None, None),
    "stacked-bi-lengths": (2, True, False, [4, 1, 3], None),
    "batch-first-truncated": (2, False, True, None, 1),
    "bi-lengths-truncated": (1, True, False, [2, 4, 3], 0),
}


@pytest.mark.parametrize("setup", list(SETUPS))
def test_other_arrays_run_the_same_engine(variant, setup, kind, case, run, close):
    L, bi, bf, lengths, k = SETUPS[setup]
    cfg = layers.RNNConfig(input_size=3, hidden_size=2, num_layers=L, bidirectional=bi,
                           batch_first=bf, **variant)
    params, x, state0, dout, dstate_n = case(cfg, 4, 3, seed=2)
    want = run(cfg, params, x, state0, dout, dstate_n, lengths, k)
    got = run(cfg, *(to_kind(a, kind) for a in (params, x, state0, dout, dstate_n)),
              lengths, k)
    assert_kind(got.values(), kind, np.float64)
    close(got, want, 1e-12, f"{variant} {setup}")


def test_lengths_on_the_device_and_unbatched_input(kind, case):
    cfg = layers.RNNConfig("lstm", 3, 2, bidirectional=True)
    params, x, _, _, _ = case(cfg, 4, 2, seed=3)
    pk = to_kind(params, kind)
    lengths = to_kind(np.array([2, 4]), kind)
    out, fin, _ = layers.forward(cfg, pk, to_kind(x, kind), lengths=lengths)
    want, want_fin, _ = layers.forward(cfg, params, x, lengths=[2, 4])
    assert_kind([out, *fin], kind, np.float64)
    np.testing.assert_allclose(backend.to_numpy(out), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(backend.to_numpy(fin[1]), want_fin[1], rtol=1e-12, atol=1e-15)
    out1, fin1, _ = layers.forward(cfg, pk, to_kind(x[:, 0], kind))      # (T, I): no batch
    want1, _, _ = layers.forward(cfg, params, x[:, 0])
    np.testing.assert_allclose(backend.to_numpy(out1), want1, rtol=1e-12, atol=1e-15)
    assert tuple(fin1[0].shape) == (2, 2)


def test_float32_stays_float32(kind, case):
    cfg = layers.RNNConfig("gru", 3, 2)
    params, x, state0, _, _ = case(cfg, 3, 2, dtype=np.float32)
    out, fin, cache = layers.forward(cfg, to_kind(params, kind), to_kind(x, kind),
                                     as_hx(to_kind(state0, kind)))
    ones = array_api_compat.array_namespace(out).ones_like(out)
    dx, ds0, grads = layers.backward(cfg, to_kind(params, kind), cache, ones)
    assert_kind([out, fin[0], dx, ds0[0], *grads.values()], kind, np.float32)


def test_dropout_masks_land_on_the_device(kind, case):
    cfg = layers.RNNConfig("lstm", 3, 4, num_layers=2, dropout=0.5)
    params, x, _, dout, _ = case(cfg, 5, 3, seed=6)
    want = layers.forward(cfg, params, x, rng=7, training=True)[0]
    out, _, cache = layers.forward(cfg, to_kind(params, kind), to_kind(x, kind), rng=7,
                                   training=True)
    assert_kind([out], kind, np.float64)
    np.testing.assert_allclose(backend.to_numpy(out), want, rtol=1e-12, atol=1e-15)
    dx, _, grads = layers.backward(cfg, to_kind(params, kind), cache, to_kind(dout, kind))
    assert_kind([dx, *grads.values()], kind, np.float64)


def test_chunked_truncation_on_other_arrays(kind, case):
    cfg = layers.RNNConfig("lstm", 3, 2, num_layers=2)
    params, x, _, _, _ = case(cfg, 7, 2, seed=4)

    def dloss(out, sl):                       # L = sum(out^2) / 2, same code for both
        return float((out * out).sum()) / 2, out

    want = chunked_forward_backward(cfg, params, x, 3, dloss)
    got = chunked_forward_backward(cfg, to_kind(params, kind), to_kind(x, kind), 3, dloss)
    assert got.loss == pytest.approx(want.loss, rel=1e-12)
    assert_kind(got.grads.values(), kind, np.float64)
    for k in params:
        np.testing.assert_allclose(backend.to_numpy(got.grads[k]), want.grads[k],
                                   rtol=1e-11, atol=1e-15)


@pytest.mark.skipif(torch is not None and torch.cuda.is_available(), reason="a GPU is here")
def test_gpu_benchmark_says_when_there_is_no_gpu(capsys):
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).parents[1] / "benchmarks" / "gpu_namespace.py"
    spec = importlib.util.spec_from_file_location("gpu_namespace", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main([]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_arrays_of_two_libraries_in_one_call_are_named(kind, case):
    """NumPy weights with another library's input, and the other way round, are one
    clear error naming both (before: torch weights with a NumPy input failed inside
    with "unsupported operand type(s) for @"; NumPy weights with a torch CPU input
    ran on torch by accident)."""
    cfg = layers.RNNConfig("lstm", 3, 2)
    params, x, state0, dout, _ = case(cfg, 4, 2, seed=5)
    other = to_kind(params, kind)
    lib = kind[0]
    with pytest.raises(ValueError, match=rf"input is a numpy array but params\['weight_ih_l0'\] "
                                         rf"is a {lib} array on .*one array library on one device"):
        layers.forward(cfg, other, x)
    with pytest.raises(ValueError, match=rf"input is a {lib} array on .* but params\['weight_ih_l0'\] "
                                         r"is a numpy array"):
        layers.forward(cfg, params, to_kind(x, kind))
    with pytest.raises(ValueError, match=r"c_0 is a numpy array"):
        layers.forward(cfg, other, to_kind(x, kind), (to_kind(state0[0], kind), state0[1]))
    out, _, cache = layers.forward(cfg, other, to_kind(x, kind))
    with pytest.raises(ValueError, match=r"doutput is a numpy array"):
        layers.backward(cfg, other, cache, dout)
    with pytest.raises(ValueError, match=r"the forward's input is a .* but params\['weight_ih_l0'\] "
                                         r"is a numpy array"):
        layers.backward(cfg, params, cache, to_kind(dout, kind))


def test_modules_hold_other_arrays_and_refuse_a_mix():
    """An ``rnnlab.LSTM`` built on torch weights runs on torch tensors; given a
    NumPy input it says so."""
    m = rnnlab.LSTM(3, 4, seed=0)
    tm = rnnlab.LSTM(3, 4, params={k: torch.tensor(v) for k, v in m.params.items()})
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    out, _ = tm(torch.tensor(x))
    want, _ = m(x)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-5, atol=1e-6)
    dx, _ = tm.backward(torch.ones_like(out))
    assert isinstance(dx, torch.Tensor) and all(isinstance(g, torch.Tensor) for g in tm.grads.values())
    with pytest.raises(ValueError, match="input is a numpy array but params"):
        tm(x)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_generation_step_on_other_arrays(mode, kind, case):
    """``layers.step`` (the sampling loop's one step) on the kind's arrays equals
    the forward's last step on NumPy, and stays on the device."""
    cfg = layers.RNNConfig(mode, 3, 4, num_layers=2)
    params, x, state0, _, _ = case(cfg, 1, 2, seed=8)
    want, want_fin, _ = layers.forward(cfg, params, x, as_hx(state0))
    out, states = layers.step(cfg, to_kind(params, kind), to_kind(x[0], kind),
                              to_kind(state0, kind))
    assert_kind([out, *states], kind, np.float64)
    np.testing.assert_allclose(backend.to_numpy(out), want[0], rtol=1e-12, atol=1e-15)
    for got, w in zip(states, want_fin):
        np.testing.assert_allclose(backend.to_numpy(got), w, rtol=1e-12, atol=1e-15)
