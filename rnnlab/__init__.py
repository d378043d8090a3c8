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
import os

# OpenBLAS's idle workers spin for 2^28 cycles (~0.1 s) after each call; the fast
# path's own row-slice threads (``rnnlab.engine.fast.kernels``) then wait for a core
# while one spins: the language model's LSTM layers, right after its decoder's
# product, took 12 + 19 ms a step instead of 8 + 12. 2^4 cycles: they sleep at
# once. Read when NumPy loads OpenBLAS, so it counts where rnnlab is imported
# first (the ``rnnlab`` command, the benchmarks); a value set by the user stays.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from rnnlab.engine.convert import from_torch, to_torch  # noqa: E402
from rnnlab.engine.layers import (RNNConfig, backward, forward, init_params,  # noqa: E402
                                  param_shapes)
from rnnlab.engine.modules import GRU, LSTM, RNN  # noqa: E402

__version__ = "0.2.0"

__all__ = ["RNN", "LSTM", "GRU", "RNNConfig", "forward", "backward", "init_params",
           "param_shapes", "to_torch", "from_torch", "__version__"]
