"""Chunked truncated BPTT (issue 2, item 4): a stream in chunks of k steps,
state carried forward, gradient stopped at chunk edges. The brute force is
torch autograd with ``.detach()`` on the carried state.
"""
import numpy as np
import pytest

from rnnlab.engine import layers
from rnnlab.engine.layers import as_hx
from rnnlab.engine.truncation import ChunkedResult, chunk_slices, chunked_forward_backward


def mse_against(y, axis=0):
    """dloss_fn for L = sum((out - y)^2) / 2, y sliced like the chunk."""
    def dloss(out, sl):
        target = y[sl] if axis == 0 else y[:, sl]
        diff = out - target
        return 0.5 * float(np.sum(diff * diff)), diff
    return dloss


def test_chunk_slices_cover_the_stream():
    assert list(chunk_slices(10, 4)) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert list(chunk_slices(3, 5)) == [slice(0, 3)]
    assert list(chunk_slices(4, 1)) == [slice(i, i + 1) for i in range(4)]
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match=f"chunk length k must be a positive integer, got {bad}"):
            list(chunk_slices(4, bad))


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("T,k", [(7, 3), (6, 2), (5, 1)])
def test_chunked_equals_torch_with_detach(torch_twin, case, mode, T, k):
    torch = pytest.importorskip("torch")
    cfg = layers.RNNConfig(mode, 3, 2, num_layers=2)
    params, x, state0, _, _ = case(cfg, T, 2, seed=T)
    y = np.random.default_rng(1).standard_normal((T, 2, 2))
    got = chunked_forward_backward(cfg, params, x, k, mse_against(y), hx=state0)

    m = torch_twin(cfg, params)
    state = tuple(torch.tensor(s) for s in state0)
    loss = 0.0
    for sl in chunk_slices(T, k):
        out, fin = m(torch.tensor(x[sl]), state if mode == "lstm" else state[0])
        chunk_loss = 0.5 * ((out - torch.tensor(y[sl])) ** 2).sum()
        chunk_loss.backward()                          # grads accumulate over chunks
        loss += chunk_loss.item()
        state = tuple(s.detach() for s in (fin if mode == "lstm" else (fin,)))
    assert got.loss == pytest.approx(loss, rel=1e-12)
    for name, p in m.named_parameters():
        np.testing.assert_allclose(got.grads[name], p.grad.numpy(), rtol=1e-10, atol=1e-13)
    for ours, theirs in zip(got.state, state):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12, atol=1e-14)


def test_one_chunk_is_plain_bptt(case):
    cfg = layers.RNNConfig("gru", 3, 2, bidirectional=True)
    params, x, (h0,), dout, _ = case(cfg, 5, 2, seed=3)
    res = chunked_forward_backward(cfg, params, x, 5, lambda out, sl: (np.sum(out * dout), dout),
                                   hx=(h0,))
    out, fin, cache = layers.forward(cfg, params, x, as_hx((h0,)))
    _, _, grads = layers.backward(cfg, params, cache, dout)
    assert isinstance(res, ChunkedResult) and res.loss == pytest.approx(np.sum(out * dout))
    np.testing.assert_array_equal(res.state[0], fin[0])
    for k in params:
        np.testing.assert_allclose(res.grads[k], grads[k], rtol=1e-13, atol=1e-15)


def test_segments_continue_from_the_returned_state(case):
    """A trainer feeding the stream in two calls gets what one call gives."""
    cfg = layers.RNNConfig("lstm", 3, 2)
    params, x, _, _, _ = case(cfg, 8, 2, seed=5)
    y = np.random.default_rng(2).standard_normal((8, 2, 2))
    whole = chunked_forward_backward(cfg, params, x, 2, mse_against(y))
    first = chunked_forward_backward(cfg, params, x[:4], 2, mse_against(y[:4]))
    second = chunked_forward_backward(cfg, params, x[4:], 2, mse_against(y[4:]), hx=first.state)
    assert whole.loss == pytest.approx(first.loss + second.loss, rel=1e-13)
    for k in params:
        np.testing.assert_allclose(whole.grads[k], first.grads[k] + second.grads[k], rtol=1e-12)
    for a, b in zip(whole.state, second.state):
        np.testing.assert_allclose(a, b, rtol=1e-13)


def test_batch_first_stream_is_chunked_along_time(case):
    cfg = layers.RNNConfig("rnn", 3, 2, batch_first=True)
    params, x, _, _, _ = case(cfg, 6, 2, seed=6)                   # x (B, T, I)
    y = np.random.default_rng(3).standard_normal((2, 6, 2))
    got = chunked_forward_backward(cfg, params, x, 4, mse_against(y, axis=1))
    tm = layers.RNNConfig("rnn", 3, 2)
    want = chunked_forward_backward(tm, params, x.transpose(1, 0, 2), 4,
                                    mse_against(y.transpose(1, 0, 2)))
    assert got.loss == pytest.approx(want.loss, rel=1e-13)
    for k in params:
        np.testing.assert_allclose(got.grads[k], want.grads[k], rtol=1e-12)


def test_shorter_chunks_see_less_of_the_past(case):
    """Chunking is a real truncation: k < T changes the recurrent weight gradient."""
    cfg = layers.RNNConfig("rnn", 3, 2)
    params, x, _, _, _ = case(cfg, 6, 2, seed=7)
    y = np.zeros((6, 2, 2))
    full = chunked_forward_backward(cfg, params, x, 6, mse_against(y))
    cut = chunked_forward_backward(cfg, params, x, 2, mse_against(y))
    assert cut.loss == pytest.approx(full.loss, rel=1e-13)          # same forward
    assert not np.allclose(cut.grads["weight_hh_l0"], full.grads["weight_hh_l0"], rtol=1e-3)
