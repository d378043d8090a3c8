"""rnnlab: recurrent networks with backpropagation through time written out by hand.

Dimension letters used everywhere: T time, B batch, I input, H hidden,
V vocabulary, L layers, D directions, G = gates * H.

Layers of the package, bottom to top (an arrow means "may import"):

    engine  <-  nn, optim, io  <-  lab  <-  applications (lm, ...)  <-  cli

``engine`` holds the cells and BPTT; ``nn`` the non-recurrent pieces; ``optim``
optimisers, schedules and clipping; ``io`` checkpoints, atomic writes, metrics
and progress; ``lab`` the gradient checker and the gradient-flow lab; each
application is its own sub-package; ``cli`` is the ``rnnlab`` command.
"""
from rnnlab.engine.convert import from_torch, to_torch
from rnnlab.engine.layers import RNNConfig, backward, forward, init_params, param_shapes
from rnnlab.engine.modules import GRU, LSTM, RNN

__version__ = "0.2.0"

__all__ = ["RNN", "LSTM", "GRU", "RNNConfig", "forward", "backward", "init_params",
           "param_shapes", "to_torch", "from_torch", "__version__"]
