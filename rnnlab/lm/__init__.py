"""Language models: the model (``model``, with ``load_model`` for checkpoints),
corpus readers (``corpus``), vocabularies (``vocab``), training on the shared
trainer (``train``: ``LMTrainConfig``, ``fit``), perplexity (``evaluate``) and
generation (``generate``)."""
