"""Perplexity: a model's mean cross-entropy over a token stream, with progress.

``evaluate`` runs the (N, B) streams in chunks (the state carried, as in
training) and can stop after ``max_tokens`` tokens, so a huge validation split
costs a bounded time each epoch. ``EvalOptions`` and ``evaluate_checkpoint``
are ``rnnlab eval``: the options, checked once, and the work.
"""
import math
from dataclasses import dataclass
from typing import Optional

from rnnlab import nn
from rnnlab.engine.truncation import chunk_slices
from rnnlab.io import checkpoint
from rnnlab.io.progress import progress as progress_bar
from rnnlab.lm import corpus as corpus_mod, model as lm, vocab as vocab_mod
from rnnlab.training.options import check, option


def evaluate(mcfg, params, data, bptt, max_tokens=0, progress=False, desc="evaluation"):
    """Mean cross-entropy (nats/token) over a (N, B) stream, state carried.

    ``max_tokens`` > 0: only the first ceil(max_tokens / B) rows of every stream.
    """
    if not isinstance(bptt, int) or bptt < 1:
        raise ValueError(f"--bptt: expected an integer >= 1, got {bptt!r}")
    N, B = data.shape
    if max_tokens:
        N = min(N, -(-max_tokens // B) + 1)
    slices = list(chunk_slices(N - 1, bptt))
    state, total, count = lm.zero_state(mcfg, B, params["decoder.bias"].dtype), 0.0, 0
    with progress_bar(len(slices), desc, enabled=progress, unit="chunk") as bar:
        for sl in slices:
            x, y = data[sl], data[sl.start + 1:sl.stop + 1]
            logits, state, _ = lm.logits_forward(mcfg, params, x, state)
            T, _, V = logits.shape
            logp = nn.log_softmax(logits.reshape(T * B, V))
            total -= float(logp[range(T * B), y.reshape(-1)].sum())
            count += T * B
            bar.set_postfix(ppl=f"{math.exp(min(total / count, 700)):.2f}", refresh=False)
            bar.update(1)
    return total / count


@dataclass
class EvalOptions:
    """``rnnlab eval``'s options (the Python API takes the same, with the same checks)."""
    checkpoint: str = option("", "checkpoint file (.npz)", positional="required")
    corpus: Optional[str] = option(None, "corpus to evaluate on (None: the one trained on)")
    split: str = option("test", "which split: train, valid or test",
                        choices=("train", "valid", "test"))
    batch_size: int = option(10, "parallel streams", lo=1, hi=100_000)
    bptt: int = option(35, "chunk length in steps", lo=1, hi=100_000)
    max_tokens: int = option(0, "evaluate at most the first N tokens (0: the whole split)",
                             lo=0)
    progress: bool = option(True, "show a progress bar on stderr")

    def __post_init__(self):
        check(self)


def evaluate_checkpoint(opts):
    """{"source", "split", "tokens", "loss", "perplexity"} for ``EvalOptions``."""
    saved = lm.load_model(opts.checkpoint)
    source = opts.corpus
    if source is None:
        source = checkpoint.expect(saved.meta, "train_config.corpus",
                                   ("a corpus name", lambda v: isinstance(v, str)),
                                   opts.checkpoint)
        try:
            corp = corpus_mod.load(source, saved.vocab.level)
        except FileNotFoundError as e:          # a path relative to where training ran
            raise FileNotFoundError(f"{e} (the corpus {opts.checkpoint} was trained on, as "
                                    "recorded there; give --corpus)") from None
    else:
        corp = corpus_mod.load(source, saved.vocab.level)
    tokens = corp.split(opts.split)
    data = batch_streams(vocab_mod.encode(saved.vocab, tokens), opts.batch_size,
                         f"{source} ({opts.split} split)")
    loss = evaluate(saved.config, saved.params, data, opts.bptt, opts.max_tokens,
                    opts.progress, f"{opts.split} split")
    rows = data.shape[0] if not opts.max_tokens else min(
        data.shape[0], -(-opts.max_tokens // data.shape[1]) + 1)
    # a corpus the vocabulary does not cover scores mostly <unk>, a perplexity that
    # looks fine and means nothing (the audit: Chinese text on an English model, 78.6)
    unknown = sum(1 for t in tokens if t not in saved.vocab.stoi)
    return {"source": source, "split": opts.split, "tokens": (rows - 1) * data.shape[1],
            "of": data.size - data.shape[1], "split_tokens": len(tokens),
            "streams": data.shape[1], "loss": loss,
            "perplexity": math.exp(min(loss, 700)), "unknown": unknown,
            "unknown_fraction": unknown / max(len(tokens), 1)}


def batch_streams(ids, batch_size, what):
    """(N, B) streams for evaluating ``ids``: at most ``batch_size`` streams of at
    least 2 tokens each."""
    return corpus_mod.batchify(ids, max(1, min(batch_size, len(ids) // 2)), what)
