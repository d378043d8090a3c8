"""Converters between rnnlab layers and ``torch.nn.RNN`` / ``LSTM`` / ``GRU``.

rnnlab stores parameters exactly as torch does: the same state_dict keys
(``weight_ih_l0``, ``bias_hh_l1_reverse``, ...), the same ``(gates*H, in)``
layout, the same gate order (LSTM i, f, g, o; GRU r, z, n) and the same GRU
variant (reset gate applied after the recurrent product). Converting is
therefore copying arrays; no transposes, no reordering.

Two rnnlab options have no torch counterpart and are refused with a
ValueError: ``RNN(nonlinearity="sigmoid")`` and ``GRU(reset_after=False)``.
torch's LSTM ``proj_size`` has no rnnlab counterpart and is refused the other way.

torch is imported only when a converter runs; without it they raise an
ImportError that names the ``torch`` extra.
"""
import numpy as np

from rnnlab.engine import backend as _backend, layers, modules, validate

_TORCH_CLASSES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
_TORCH_MODES = {"RNN_TANH": ("rnn", "tanh"), "RNN_RELU": ("rnn", "relu"),
                "LSTM": ("lstm", "tanh"), "GRU": ("gru", "tanh")}

__all__ = ["to_torch", "from_torch", "to_state_dict", "from_state_dict"]


def _torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError("rnnlab.convert needs PyTorch: install the `torch` extra "
                          "(pip install -e \".[torch]\" or pip install 'rnnlab[torch]')",
                          name="torch") from e
    return torch


def _check_convertible(cfg):
    if cfg.mode == "gru" and not cfg.reset_after:
        raise ValueError("GRU(reset_after=False) (reset gate applied before the recurrent "
                         "product, Cho et al. 2014) has no torch.nn.GRU equivalent; torch "
                         "only has reset_after=True")
    if cfg.mode == "rnn" and cfg.nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"torch.nn.RNN supports nonlinearity 'tanh' or 'relu', "
                         f"got {cfg.nonlinearity!r}")


def _check_params(cfg, params):
    """Every key of the config present with its shape, nothing extra, one float dtype
    (the one check every entry point shares: ``validate.check_params``)."""
    return validate.check_params(cfg, params, finite=False)


def to_state_dict(params):
    """rnnlab params -> {name: torch.Tensor} (copies), for ``load_state_dict``."""
    validate.check_dict("params", params)
    torch = _torch()
    return {k: torch.from_numpy(np.array(_backend.to_numpy(v), copy=True))
            for k, v in params.items()}


def from_state_dict(state_dict, prefix=""):
    """{name: tensor} -> rnnlab params {name: np.ndarray} (copies).

    prefix selects one recurrent module inside a larger model's state_dict, e.g.
    ``from_state_dict(model.state_dict(), "encoder.rnn.")``; it is stripped. It
    names a module: "encoder.rnn" is "encoder.rnn." (not also "encoder.rnn2.").
    """
    validate.check_dict("state_dict", state_dict)
    if not isinstance(prefix, str):
        raise ValueError(f"prefix must be a string such as 'encoder.rnn.', got {prefix!r}")
    if prefix and not prefix.endswith("."):
        prefix += "."
    out = {}
    for k, v in state_dict.items():
        if isinstance(k, str) and k.startswith(prefix):
            try:
                out[k[len(prefix):]] = np.array(_backend.to_numpy(v), copy=True)
            except (TypeError, RuntimeError, NotImplementedError) as e:   # bfloat16, meta
                raise ValueError(f"state_dict[{k!r}] cannot become a NumPy array "
                                 f"({getattr(v, 'dtype', type(v).__name__)}: {e}); convert "
                                 "the module first, e.g. module.double().cpu()") from None
    if not out:
        raise ValueError(f"no entries with prefix {prefix!r} in the state_dict")
    return out


def to_torch(layer, params=None):
    """An rnnlab layer as an equivalent ``torch.nn.RNN`` / ``LSTM`` / ``GRU``.

    ``to_torch(layer)`` takes an ``rnnlab.RNN/LSTM/GRU`` (its training mode is
    copied too); ``to_torch(config, params)`` takes an ``RNNConfig`` (or its dict)
    and a params dict. The torch module gets the params' dtype; weights are copies.
    """
    if params is None and isinstance(layer, tuple):
        layer, params = layer
    if params is None:
        if not isinstance(layer, modules._Recurrent):
            raise ValueError("to_torch takes an rnnlab RNN/LSTM/GRU, or (config, params); "
                             f"got {type(layer).__name__}")
        cfg, params, training = layer.config, layer.params, layer.training
    else:
        if isinstance(layer, modules._Recurrent):
            raise ValueError("to_torch takes a layer alone (its own params), or (config, "
                             "params); got a layer and params")
        cfg = layers.as_config(layer)
        training = True
    _check_convertible(cfg)
    dtype = _check_params(cfg, params)
    torch = _torch()
    kwargs = dict(num_layers=cfg.num_layers, bias=cfg.bias, batch_first=cfg.batch_first,
                  dropout=cfg.dropout, bidirectional=cfg.bidirectional,
                  dtype=getattr(torch, dtype))
    if cfg.mode == "rnn":
        kwargs["nonlinearity"] = cfg.nonlinearity
    module = getattr(torch.nn, _TORCH_CLASSES[cfg.mode])(cfg.input_size, cfg.hidden_size,
                                                         **kwargs)
    module.load_state_dict(to_state_dict(params))
    return module.train(training)


def from_torch(module):
    """A ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` as an rnnlab layer (weights copied).

    Reads mode, sizes, nonlinearity, bias, batch_first, dropout, bidirectional
    and the training mode from the module; the dtype from its weights
    (float32 or float64).
    """
    torch = _torch()
    if not isinstance(module, torch.nn.RNNBase) or module.mode not in _TORCH_MODES:
        raise ValueError("from_torch takes a torch.nn.RNN, LSTM or GRU, "
                         f"got {type(module).__name__}")
    if getattr(module, "proj_size", 0):
        raise ValueError(f"LSTM with proj_size={module.proj_size} has no rnnlab "
                         "equivalent (rnnlab's LSTM has no projection)")
    mode, nonlinearity = _TORCH_MODES[module.mode]
    cfg = layers.RNNConfig(mode, module.input_size, module.hidden_size, module.num_layers,
                           module.bias, module.batch_first, float(module.dropout),
                           module.bidirectional, nonlinearity)
    params = from_state_dict(module.state_dict())
    _check_params(cfg, params)
    layer = modules._Recurrent.from_config(cfg, {k: params[k] for k in layers.param_shapes(cfg)})
    return layer.train(module.training)
