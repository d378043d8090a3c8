"""The same engine on torch CPU tensors, through the array namespace it takes
from its inputs (issue 2, item 6): results equal the NumPy run's, and come
back as torch tensors. Nothing here uses torch's autograd.
"""
import numpy as np
import pytest

from rnnlab.engine import layers
from rnnlab.engine.layers import as_hx
from rnnlab.engine.truncation import chunked_forward_backward

try:
    import torch
except ImportError:                        # conftest skips needs_torch tests (fails them in CI)
    torch = None
pytestmark = pytest.mark.needs_torch
pytest.importorskip("array_api_compat")


def to_torch(tree):
    if isinstance(tree, dict):
        return {k: torch.tensor(v) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(torch.tensor(v) for v in tree)
    return None if tree is None else torch.tensor(tree)


SETUPS = {   # (num_layers, bidirectional, batch_first, lengths, bptt_truncate)
    "plain": (1, False, False, None, None),
    "stacked-bi-lengths": (2, True, False, [4, 1, 3], None),
    "batch-first-truncated": (2, False, True, None, 1),
    "bi-lengths-truncated": (1, True, False, [2, 4, 3], 0),
}


@pytest.mark.parametrize("setup", list(SETUPS))
def test_torch_tensors_run_the_same_engine(variant, setup, case, run, close):
    L, bi, bf, lengths, k = SETUPS[setup]
    cfg = layers.RNNConfig(input_size=3, hidden_size=2, num_layers=L, bidirectional=bi,
                           batch_first=bf, **variant)
    params, x, state0, dout, dstate_n = case(cfg, 4, 3, seed=2)
    want = run(cfg, params, x, state0, dout, dstate_n, lengths, k)
    got = run(cfg, to_torch(params), to_torch(x), to_torch(state0), to_torch(dout),
              to_torch(dstate_n), lengths, k)
    assert all(isinstance(v, torch.Tensor) and v.dtype == torch.float64 for v in got.values())
    close(got, want, 1e-12, f"{variant} {setup}")


def test_torch_lengths_tensor_and_unbatched_input(case):
    cfg = layers.RNNConfig("lstm", 3, 2, bidirectional=True)
    params, x, _, _, _ = case(cfg, 4, 2, seed=3)
    pt = to_torch(params)
    out, fin, _ = layers.forward(cfg, pt, torch.tensor(x), lengths=torch.tensor([2, 4]))
    want, want_fin, _ = layers.forward(cfg, params, x, lengths=[2, 4])
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fin[1].numpy(), want_fin[1], rtol=1e-12, atol=1e-15)
    out1, fin1, _ = layers.forward(cfg, pt, torch.tensor(x[:, 0]))        # (T, I): no batch
    want1, _, _ = layers.forward(cfg, params, x[:, 0])
    np.testing.assert_allclose(out1.numpy(), want1, rtol=1e-12, atol=1e-15)
    assert tuple(fin1[0].shape) == (2, 2)


def test_torch_float32_stays_float32(case):
    cfg = layers.RNNConfig("gru", 3, 2)
    params, x, state0, _, _ = case(cfg, 3, 2, dtype=np.float32)
    out, fin, cache = layers.forward(cfg, to_torch(params), to_torch(x), as_hx(to_torch(state0)))
    dx, ds0, grads = layers.backward(cfg, to_torch(params), cache, torch.ones_like(out))
    assert {t.dtype for t in (out, fin[0], dx, ds0[0], *grads.values())} == {torch.float32}


def test_chunked_truncation_on_torch_tensors(case):
    cfg = layers.RNNConfig("lstm", 3, 2, num_layers=2)
    params, x, _, _, _ = case(cfg, 7, 2, seed=4)

    def dloss(out, sl):                       # L = sum(out^2) / 2, same code for both
        return float((out * out).sum()) / 2, out

    want = chunked_forward_backward(cfg, params, x, 3, dloss)
    got = chunked_forward_backward(cfg, to_torch(params), torch.tensor(x), 3, dloss)
    assert got.loss == pytest.approx(want.loss, rel=1e-12)
    for k in params:
        np.testing.assert_allclose(got.grads[k].numpy(), want.grads[k], rtol=1e-11, atol=1e-14)
