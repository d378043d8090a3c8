"""rnnlab against torch.nn.RNN/LSTM/GRU holding the same state_dict: outputs,
final states and every gradient, over random shapes and options (issue 2, item 6).

The loss is sum(dout * output) + sum(dS_n * S_n), so rnnlab's backward(dout,
dS_n) and torch's autograd compute the same gradients.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.engine import layers
from rnnlab.lab.gradcheck import variants

try:
    import torch
except ImportError:                        # conftest skips needs_torch tests (fails them in CI)
    torch = None
pytestmark = pytest.mark.needs_torch
VARIANTS = variants()
TORCH_VARIANTS = ("rnn-tanh", "rnn-relu", "lstm", "gru")     # what torch.nn can express


def run_torch(m, cfg, x, state0, dout, dstate_n, lengths=None):
    """torch's forward + autograd, as the same flat dict ``run_layer`` returns."""
    pack = torch.nn.utils.rnn
    x_t = torch.tensor(x, requires_grad=True)
    s0 = [] if state0 is None else [torch.tensor(s, requires_grad=True) for s in state0]
    inp = x_t
    if lengths is not None:
        inp = pack.pack_padded_sequence(x_t, torch.tensor(lengths), batch_first=cfg.batch_first,
                                        enforce_sorted=False)
    hx = (tuple(s0) if cfg.mode == "lstm" else s0[0]) if s0 else None
    out, fin = m(inp, hx)
    if lengths is not None:
        out, _ = pack.pad_packed_sequence(out, batch_first=cfg.batch_first,
                                          total_length=x.shape[1 if cfg.batch_first else 0])
    fin = fin if cfg.mode == "lstm" else (fin,)
    loss = (out * torch.tensor(dout)).sum()
    loss = loss + sum((s * torch.tensor(d)).sum() for s, d in zip(fin, dstate_n))
    loss.backward()
    names = cfg.cell.STATE
    res = {"output": out, "input": x_t.grad, **{k: v.grad for k, v in m.named_parameters()}}
    res.update({f"{n}_n": s for n, s in zip(names, fin)})
    res.update({f"{n}_0": s.grad for n, s in zip(names, s0)})
    return {k: v.detach().numpy() for k, v in res.items()}


@st.composite
def torch_cases(draw):
    """A random config, sizes (T = 1 and B = 1 included), optional lengths,
    and whether to pass an initial state (or use the zero default)."""
    T, B = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    cfg = layers.RNNConfig(
        input_size=draw(st.integers(1, 4)), hidden_size=draw(st.integers(1, 4)),
        num_layers=draw(st.integers(1, 2)), bias=draw(st.booleans()),
        batch_first=draw(st.booleans()), bidirectional=draw(st.booleans()),
        **VARIANTS[draw(st.sampled_from(TORCH_VARIANTS))])
    lengths = None
    if draw(st.booleans()):
        lengths = draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
    return cfg, T, B, lengths, draw(st.booleans()), draw(st.integers(0, 2**16))


@settings(max_examples=80, deadline=None)
@given(torch_cases())
def test_float64_matches_torch(torch_twin, case, run, close, spec):
    cfg, T, B, lengths, with_hx, seed = spec
    params, x, state0, dout, dstate_n = case(cfg, T, B, seed)
    state0 = state0 if with_hx else None
    ours = run(cfg, params, x, state0, dout, dstate_n, lengths)
    theirs = run_torch(torch_twin(cfg, params), cfg, x, state0, dout, dstate_n, lengths)
    if not with_hx:                        # torch has no gradient for its default state
        ours = {k: v for k, v in ours.items() if not k.endswith("_0")}
    close(ours, theirs, 1e-10, f"{cfg} T={T} B={B} lengths={lengths} hx={with_hx}")


@pytest.mark.parametrize("name", TORCH_VARIANTS)
@pytest.mark.parametrize("lengths", [None, [5, 2, 4]], ids=["full", "lengths"])
def test_float32_matches_torch(torch_twin, case, run, close, name, lengths):
    cfg = layers.RNNConfig(input_size=3, hidden_size=4, num_layers=2, bidirectional=True,
                           **VARIANTS[name])
    params, x, state0, dout, dstate_n = case(cfg, 5, 3, seed=11, dtype=np.float32)
    ours = run(cfg, params, x, state0, dout, dstate_n, lengths)
    assert all(v.dtype == np.float32 for v in ours.values())
    theirs = run_torch(torch_twin(cfg, params, torch.float32), cfg, x, state0, dout, dstate_n,
                       lengths)
    close(ours, theirs, 1e-4, f"{name} float32")


def test_state_dict_loads_both_ways(torch_twin):
    """The torch module's own state_dict runs in rnnlab unchanged (same keys, shapes)."""
    cfg = layers.RNNConfig("lstm", 2, 3, num_layers=2, bidirectional=True)
    m = torch_twin(cfg, layers.init_params(cfg, 0, np.float64))
    theirs = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    assert {k: v.shape for k, v in theirs.items()} == layers.param_shapes(cfg)
    x = np.random.default_rng(0).standard_normal((4, 2, 2))
    out, _, _ = layers.forward(cfg, theirs, x)
    np.testing.assert_allclose(out, m(torch.tensor(x))[0].detach().numpy(), rtol=1e-12, atol=1e-14)


# Realistic sizes, both implementations. float32: the worst normwise relative
# error is eps32 (6e-8) times growth over 2 layers x 32 steps x 2 directions of
# H = 64 products, in a different summation order than torch's, plus the fast
# path's float32 tanh (3e-7 relative, see fast/kernels.py). Measured (seed 5):
# at most 1.1e-6, in the weight gradients, which sum over all 32 * 8 rows
# (LSTM weight_hh_l0_reverse, fast path); 1e-5 leaves a ~9x margin and still
# catches any wrong term (one gives errors of 1e-2 and more).
F32_TOL = 1e-5
IMPLS = [pytest.param("reference"), pytest.param("fast", marks=pytest.mark.needs_numba)]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", ("rnn-tanh", "lstm", "gru"))
def test_realistic_sizes_match_torch(torch_twin, case, run, close, name, dtype, impl):
    """H = 64, T = 32, B = 8, 2 layers, bidirectional, lengths, initial states."""
    T, B = 32, 8
    cfg = layers.RNNConfig(input_size=16, hidden_size=64, num_layers=2, bidirectional=True,
                           **VARIANTS[name])
    params, x, state0, dout, dstate_n = case(cfg, T, B, seed=5, dtype=dtype)
    lengths = [32, 31, 17, 32, 1, 9, 25, 30]
    ours = run(cfg, params, x, state0, dout, dstate_n, lengths, impl=impl)
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    theirs = run_torch(torch_twin(cfg, params, tdt), cfg, x, state0, dout, dstate_n, lengths)
    close(ours, theirs, 1e-10 if dtype == np.float64 else F32_TOL, f"{name} {impl}")
