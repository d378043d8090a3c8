"""The cell registry: one module per cell, forward and backward side by side.

A cell module declares everything the rest of rnnlab needs to know about it:

- ``GATE_NAMES``: the row blocks of weight_ih / weight_hh, H rows each, in
  order; ``GATES = len(GATE_NAMES)``. ``KEEP_GATE``: the name of the gate that
  keeps the old state (LSTM ``"f"``, GRU ``"z"``) or None; ``lab.init``'s
  keep-gate bias reads it.
- ``STATE``: names of the recurrent state tensors; ``act_width(H, **opts)``:
  the per-step activation record.
- ``step_forward``, ``step_backward``, ``hh_grads``: the reference BPTT
  (``rnnlab.engine.sequence`` runs them).
- ``step_jacobian(w_hh, states, acts, **opts)``: d state_s / d state_{s-1}
  for every step, for the gradient-flow lab (``lab.gradflow``).
- optionally ``OPTIONS``: the ``RNNConfig`` fields its step functions take
  (``nonlinearity``, ``reset_after``), and ``VARIANTS``: {label: options} for
  the variants whose backward differs, each enrolled in the tests.
- optionally ``fast_kernels()``: its fused kernels (``engine.fast.fused``);
  without it the cell runs on the reference loop. Optionally ``max_slope(**opts)``:
  gamma in the bound ||J_s|| <= gamma sigma_max(W_hh), for cells of that form.

Adding a cell is one module and one line in ``CELLS``: it is then enrolled in the
gradient-check, torch-equivalence (where torch has it) and gradient-flow tests.
"""
from . import gru, lstm, rnn

CELLS = {"rnn": rnn, "lstm": lstm, "gru": gru}


def gate_rows(cell, name, hidden_size):
    """The rows of ``name``'s block in weight_ih / weight_hh / the biases: a slice."""
    k = cell.GATE_NAMES.index(name)
    return slice(k * hidden_size, (k + 1) * hidden_size)


__all__ = ["CELLS", "gate_rows", "rnn", "lstm", "gru"]
