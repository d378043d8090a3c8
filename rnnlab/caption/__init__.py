"""Image captioning on generated scenes: a CNN encoder and an LSTM decoder (show and
tell, or show, attend and tell), all with hand-written backward passes.

Modules: ``scenes`` (the seeded scene generator and its grammar), ``digits``
(scikit-learn digit composites), ``data`` (vocabulary, image checks), ``model``
(encoder, decoders, loss and backward), ``search`` (greedy and beam decoding
with attention maps), ``metrics`` and ``evaluate`` (exact match, slots, BLEU-4,
attention hit rate, controls), ``train`` (the shared trainer), ``gallery``
(the HTML page). The command line is ``rnnlab caption train|eval|describe|gallery``.
"""
