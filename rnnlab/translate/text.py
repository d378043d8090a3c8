"""From user text to tokens and back, the same way the training data was read.

The tokenizer is stored in the checkpoint (``app["tokenizer"]``):

- ``chars`` (the date task): one token per character, a space is ``_``;
- ``tutorial`` (tatoeba): the PyTorch tutorial's normalisation, then words;
- ``words`` (multi30k, user files): whitespace-separated tokens as given
  (Multi30k's ``tok/`` text is lower-cased and Moses-tokenized: give input in
  that form).
"""
from rnnlab.translate import bleu, data, dates

TOKENIZERS = {"dates": "chars", "tatoeba": "tutorial"}


def tokenizer_for(source):
    return TOKENIZERS.get(source, "words")


def tokenize(line, tokenizer):
    if tokenizer == "chars":
        return dates.chars(line.strip().lower())
    if tokenizer == "tutorial":
        return data.normalize_tutorial(line).split()
    return line.split()


def detokenize(tokens, tokenizer):
    if tokenizer == "chars":
        return "".join(tokens).replace("_", " ")
    return bleu.detokenize(tokens)
