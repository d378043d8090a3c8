"""The cell registry: one module per cell, forward and backward side by side.

Every cell module defines ``GATES`` (weight rows in units of H), ``STATE`` (names
of the recurrent state tensors), ``act_width``, ``step_forward``,
``step_backward`` and ``hh_grads``. Adding a module here enrols it in the
gradient-check and torch-equivalence tests.
"""
from . import gru, lstm, rnn

CELLS = {"rnn": rnn, "lstm": lstm, "gru": gru}

__all__ = ["CELLS", "rnn", "lstm", "gru"]
