"""Language models: the model, corpus readers, vocabularies, training, generation."""
