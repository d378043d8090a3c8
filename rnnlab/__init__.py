"""rnnlab: recurrent networks with backpropagation through time written out by hand.

Dimension letters used everywhere: T time, B batch, I input, H hidden,
V vocabulary, L layers, D directions, G = gates * H.
"""
from .layers import RNNConfig, backward, forward, init_params, param_shapes
from .modules import GRU, LSTM, RNN

__version__ = "0.1.0"

__all__ = ["RNN", "LSTM", "GRU", "RNNConfig", "forward", "backward", "init_params",
           "param_shapes", "__version__"]
