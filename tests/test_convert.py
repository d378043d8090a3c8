"""rnnlab <-> torch.nn converters: weights move unchanged, outputs agree."""
import sys

import numpy as np
import pytest

from rnnlab import GRU, LSTM, RNN, RNNConfig, init_params
from rnnlab.engine import convert

try:
    import torch
except ImportError:                        # conftest skips needs_torch tests (fails them in CI)
    torch = None
pytestmark = pytest.mark.needs_torch

# (torch class, kwargs): every mode, with layers, directions and batch_first mixed in
TORCH_CASES = [
    ("RNN", dict(nonlinearity="tanh")),
    ("RNN", dict(nonlinearity="relu", num_layers=2, bidirectional=True)),
    ("LSTM", dict(num_layers=2, batch_first=True)),
    ("LSTM", dict(bidirectional=True, bias=False)),
    ("GRU", dict()),
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True, dropout=0.25)),
]


def _torch_module(name, kwargs, dtype=None, I=3, H=4):
    dtype = torch.float64 if dtype is None else dtype
    torch.manual_seed(0)
    return getattr(torch.nn, name)(I, H, dtype=dtype, **kwargs)


def _input(module, T=5, B=2, seed=0):
    shape = (B, T, module.input_size) if module.batch_first else (T, B, module.input_size)
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("name,kwargs", TORCH_CASES)
def test_torch_rnnlab_torch_round_trip(name, kwargs):
    m = _torch_module(name, kwargs)
    layer = convert.from_torch(m)
    back = convert.to_torch(layer)
    assert type(back) is type(m)
    for attr in ("mode", "input_size", "hidden_size", "num_layers", "bias", "batch_first",
                 "dropout", "bidirectional", "training"):
        assert getattr(back, attr) == getattr(m, attr), attr
    sd, sd_back = m.state_dict(), back.state_dict()
    assert list(sd_back) == list(sd)
    for k in sd:
        assert sd_back[k].dtype == torch.float64
        assert torch.equal(sd_back[k], sd[k]), k


@pytest.mark.parametrize("name,kwargs", TORCH_CASES)
def test_converted_layer_matches_torch_outputs_float64(name, kwargs):
    m = _torch_module(name, kwargs).eval()                 # eval: no dropout on either side
    layer = convert.from_torch(m)
    assert not layer.training
    x = _input(m)
    out, fin = layer(x)
    t_out, t_fin = m(torch.from_numpy(x))
    fin = fin if isinstance(fin, tuple) else (fin,)
    t_fin = t_fin if isinstance(t_fin, tuple) else (t_fin,)
    assert np.max(np.abs(out - t_out.detach().numpy())) < 1e-12
    for a, b in zip(fin, t_fin, strict=True):
        assert np.max(np.abs(a - b.detach().numpy())) < 1e-12


@pytest.mark.parametrize("cls,opts", [(RNN, dict(nonlinearity="relu")), (LSTM, {}), (GRU, {})])
def test_rnnlab_torch_rnnlab_keeps_params_and_dtype(cls, opts):
    layer = cls(3, 4, num_layers=2, bidirectional=True, dtype=np.float32, seed=1, **opts)
    back = convert.from_torch(convert.to_torch(layer))
    assert back.config == layer.config
    assert list(back.params) == list(layer.params)
    for k, v in layer.params.items():
        assert back.params[k].dtype == np.float32
        np.testing.assert_array_equal(back.params[k], v)


def test_to_torch_from_config_and_params():
    cfg = RNNConfig("lstm", 2, 3)
    params = init_params(cfg, 0, np.float64)
    m = convert.to_torch(cfg, params)
    assert isinstance(m, torch.nn.LSTM) and m.weight_hh_l0.dtype == torch.float64
    np.testing.assert_array_equal(m.weight_ih_l0.detach().numpy(), params["weight_ih_l0"])
    assert convert.to_torch((cfg.to_dict(), params)).hidden_size == 3


def test_state_dict_helpers_with_prefix():
    model = torch.nn.Sequential()
    model.add_module("rnn", torch.nn.GRU(2, 3))
    params = convert.from_state_dict(model.state_dict(), prefix="rnn.")
    assert sorted(params) == sorted(torch.nn.GRU(2, 3).state_dict())
    assert all(isinstance(v, np.ndarray) for v in params.values())
    sd = convert.to_state_dict(params)
    assert all(torch.equal(sd[k], model.rnn.state_dict()[k]) for k in sd)
    with pytest.raises(ValueError, match="prefix 'encoder.'"):
        convert.from_state_dict(model.state_dict(), prefix="encoder.")


@pytest.mark.parametrize("layer,match", [
    (GRU(2, 3, reset_after=False), "reset_after=False"),
    (RNN(2, 3, nonlinearity="sigmoid"), "sigmoid"),
])
def test_to_torch_refuses_variants_torch_lacks(layer, match):
    with pytest.raises(ValueError, match=match):
        convert.to_torch(layer)


def test_to_torch_rejects_params_that_disagree_with_config():
    cfg = RNNConfig("rnn", 2, 3)
    params = init_params(cfg, 0)
    with pytest.raises(ValueError, match="missing \\['bias_hh_l0'\\]"):
        convert.to_torch(cfg, {k: v for k, v in params.items() if k != "bias_hh_l0"})
    with pytest.raises(ValueError, match="weight_hh_l0.*shape \\(3, 3\\)"):
        convert.to_torch(cfg, {**params, "weight_hh_l0": np.zeros((3, 2), np.float32)})
    with pytest.raises(ValueError, match="all be float32 or all float64"):
        convert.to_torch(cfg, {**params, "bias_ih_l0": params["bias_ih_l0"].astype(np.float64)})
    with pytest.raises(ValueError, match="rnnlab RNN/LSTM/GRU"):
        convert.to_torch(torch.nn.RNN(2, 3))


def test_from_torch_refuses_what_rnnlab_lacks():
    with pytest.raises(ValueError, match="proj_size=2"):
        convert.from_torch(torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(ValueError, match="got Linear"):
        convert.from_torch(torch.nn.Linear(2, 3))
    with pytest.raises(ValueError, match="float32 or all float64"):
        convert.from_torch(torch.nn.GRU(2, 3, dtype=torch.float16))


def test_missing_torch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)       # import torch -> ImportError
    with pytest.raises(ImportError, match="`torch` extra"):
        convert.to_torch(RNN(2, 3))
