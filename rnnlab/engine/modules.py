"""``RNN``, ``LSTM``, ``GRU``: thin classes over the pure functions of ``layers``.

They hold the parameters (a flat dict, torch state_dict names), the last
forward's cache and the last backward's gradients::

    lstm = LSTM(input_size=8, hidden_size=16, num_layers=2, seed=0)
    out, (h_n, c_n) = lstm(x)                 # x: (T, B, 8)
    dx, (dh_0, dc_0) = lstm.backward(dout)    # lstm.grads: same keys as lstm.params

``params=`` is checked against the config exactly (names, shapes, one float
dtype) at construction and at every call, and for NaN or Inf at construction.
``dtype`` (float32 unless given) sets the fresh weights' dtype; with ``params=``
their dtype is the layer's, and a ``dtype`` that disagrees is an error.

Arrays and ``backward``: ``forward`` keeps private copies of what ``backward``
needs, so editing the input array or the returned output in place between
``forward`` and ``backward`` does not change the gradients (they stay those of
the forward that ran). The parameters are not copied: ``backward`` uses
``self.params`` as they are when it runs, so update them after ``backward``,
as every optimiser step does.
"""
import numpy as np

from rnnlab.engine import dispatch, layers, validate


class _Recurrent:
    MODE = None

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, nonlinearity="tanh", reset_after=True,
                 dtype=None, seed=None, params=None, impl="auto"):
        validate.check_module_args(dropout, seed, params)
        self.config = layers.RNNConfig(self.MODE, input_size, hidden_size, num_layers, bias,
                                       batch_first, float(dropout), bidirectional,
                                       nonlinearity, reset_after)
        if dropout > 0 and num_layers == 1:
            import warnings
            warnings.warn("dropout acts between layers; with num_layers=1 it does nothing",
                          stacklevel=2)
        self.rng = np.random.default_rng(seed)
        dt = validate.check_dtype("dtype", np.float32 if dtype is None else dtype)
        self.params = (layers.init_params(self.config, self.rng, dt)
                       if params is None else dict(params))
        found = validate.check_params(self.config, self.params)   # finite too: NaN weights
        if dtype is not None and dt.name != found:       # was silently the params' dtype
            raise ValueError(f"dtype is {dt.name} but params are {found}; leave dtype out "
                             f"(the params' dtype is used) or convert the params")
        self.impl = dispatch.check(impl)   # "auto" | "reference" | "fast"
        self.training = True
        self.grads = None
        self._cache = None

    @classmethod
    def from_config(cls, config, params, impl="auto"):
        """Rebuild a layer from a saved RNNConfig (or its dict) and parameters."""
        c = layers.as_config(config)
        kind = {"rnn": RNN, "lstm": LSTM, "gru": GRU}[c.mode]
        if cls.MODE is not None and cls is not kind:     # LSTM.from_config(a GRU's) was a GRU
            raise ValueError(f"{cls.__name__}.from_config: the config is a {c.mode!r} layer's; "
                             f"use {kind.__name__}.from_config")
        return kind(c.input_size, c.hidden_size, c.num_layers, c.bias, c.batch_first,
                    c.dropout, c.bidirectional, nonlinearity=c.nonlinearity,
                    reset_after=c.reset_after, params=params, impl=impl)

    def train(self, mode=True):
        self.training = validate.check_flag("mode", mode)  # train("no") was truthy (torch refuses)
        return self

    def eval(self):
        return self.train(False)

    def __call__(self, x, hx=None, lengths=None):
        """Forward. Returns (output, h_n), or (output, (h_n, c_n)) for an LSTM."""
        if hx is not None and self.MODE != "lstm":     # an LSTM's (h_0, c_0) goes as given:
            hx = (hx,)                                   # tuple() split a lone array by layer
        out, fin, self._cache = layers.forward(self.config, self.params, x, hx, lengths,
                                               self.training, self.rng, self.impl)
        return out, (fin if self.MODE == "lstm" else fin[0])

    forward = __call__

    def backward(self, doutput=None, dh_n=None, bptt_truncate=None):
        """BPTT from the last forward. Returns (dx, dhx); sets ``self.grads``."""
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() first")
        if dh_n is not None and self.MODE != "lstm":
            dh_n = (dh_n,)
        dx, dhx, self.grads = layers.backward(self.config, self.params, self._cache,
                                              doutput, dh_n, bptt_truncate, impl=self.impl)
        return dx, (dhx if self.MODE == "lstm" else dhx[0])

    def __repr__(self):
        c = self.config
        extra = f", nonlinearity={c.nonlinearity!r}" if c.mode == "rnn" else ""
        return (f"{type(self).__name__}({c.input_size}, {c.hidden_size}, num_layers="
                f"{c.num_layers}, bidirectional={c.bidirectional}{extra})")


class RNN(_Recurrent):
    """Elman RNN (tanh, relu or sigmoid), as torch.nn.RNN."""
    MODE = "rnn"


class LSTM(_Recurrent):
    """LSTM with gate order i, f, g, o, as torch.nn.LSTM."""
    MODE = "lstm"


class GRU(_Recurrent):
    """GRU, r/z/n gates; reset_after=True is torch.nn.GRU, False is Cho et al. 2014."""
    MODE = "gru"
