"""The recurrent engine: cells (one file each), the reference BPTT loop, stacking,
bidirectional layers and variable lengths, the ``RNN``/``LSTM``/``GRU`` modules,
truncation, input checks, the array namespace and the compiled fast path."""
