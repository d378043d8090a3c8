"""The recurrent engine: cells (one file each, ``cells/``), the reference BPTT loop
(``sequence``), the choice between it and the compiled fast path (``dispatch``,
``fast/``), stacking, bidirectional layers and variable lengths (``layers``), the
``RNN``/``LSTM``/``GRU`` modules, truncation, input checks and the array namespace."""
