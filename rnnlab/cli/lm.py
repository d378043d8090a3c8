"""``rnnlab train``, ``rnnlab eval`` and ``rnnlab generate``: language models from
the command line.

Each command's options are the fields of one config class in ``rnnlab.lm``
(``train.LMTrainConfig``, ``evaluate.EvalOptions``, ``generate.GenerateOptions``),
declared once with their ranges: the flags, the TOML file and the Python API
share the same checks. ``train --config run.toml`` reads any training option
(keys as the option names with underscores); precedence: defaults < TOML file <
command line. ``--resume`` takes the settings from the checkpoint; only options
in ``LMTrainConfig.RESUMABLE`` may differ. ``mpiexec -n N python -m rnnlab train
...`` trains one model on N processes (``rnnlab.dist.mpi``; ``--parts``,
``--ordered``, ``--mpi-timeout``).
"""
import argparse
import math
import sys

from rnnlab.dist import mpi
from rnnlab.lm import evaluate, generate, train, vocab as vocab_mod
from rnnlab.training import trainer
from rnnlab.training.options import add_arguments, from_args, settings


def register(subparsers):
    p = subparsers.add_parser(
        "train", help="train a recurrent language model",
        description="Train a word- or character-level language model with truncated BPTT. "
                    "Checkpoints go to OUT/last.npz and OUT/best.npz; --resume continues "
                    "a run exactly where it stopped.", argument_default=argparse.SUPPRESS)
    trainer.add_arguments(p, train.LMTrainConfig,
                          title="training options (also settable in the --config TOML file)")
    p.set_defaults(func=run_train)

    e = subparsers.add_parser("eval", help="perplexity of a trained model on a corpus split",
                              description="Evaluate a checkpoint's perplexity.",
                              argument_default=argparse.SUPPRESS)
    add_arguments(e, evaluate.EvalOptions, title="evaluation options")
    e.set_defaults(func=run_eval)

    g = subparsers.add_parser("generate", help="sample, beam-search or score text",
                              description="Generate text from a checkpoint, or score a sentence.",
                              argument_default=argparse.SUPPRESS)
    add_arguments(g, generate.GenerateOptions, title="generation options")
    g.set_defaults(func=run_generate)


def run_train(args):
    """Train; under ``mpiexec -n N`` every rank runs this, rank 0 alone prints and
    writes, and an error on one rank ends them all (``rnnlab.dist.mpi``)."""
    resume = getattr(args, "resume", None)
    if resume:
        resume = train.load_resume(resume, settings(args))         # (config, checkpoint)
        cfg = resume[0]
    else:
        cfg = from_args(train.LMTrainConfig, args)
    dp = mpi.from_options(cfg.parts, cfg.ordered, cfg.mpi_timeout)
    with dp.fail_together():
        result = train.fit(cfg, resume, dp=None if dp.trivial else dp)
    if not dp.writer:
        return 0
    cfg, corp = result.cfg, result.corpus
    print(f"{result.steps_run:,} training steps in this run")
    if corp.test:
        test = evaluate.batch_streams(vocab_mod.encode(result.vocab, corp.test),
                                      cfg.eval_batch_size, "test split")
        loss = evaluate.evaluate(result.mcfg, result.state.params, test, cfg.bptt,
                                 cfg.max_eval_tokens, cfg.progress, "test split")
        part = ""
        if cfg.max_eval_tokens and test.size - test.shape[1] > cfg.max_eval_tokens:
            part = (f" on the first {cfg.max_eval_tokens:,} of {test.size - test.shape[1]:,} "
                    "test tokens (rnnlab eval for all)")
        print(f"test ppl {math.exp(min(loss, 700)):.2f}{part} (final weights; best and last "
              f"in {cfg.out}/)")
    return 0


def run_eval(args):
    opts = from_args(evaluate.EvalOptions, args)
    r = evaluate.evaluate_checkpoint(opts)
    part = f" (the first {r['tokens']:,} of {r['of']:,})" if r["tokens"] < r["of"] else ""
    print(f"{r['source']} {r['split']}: {r['tokens']:,} tokens{part}, loss {r['loss']:.4f} "
          f"nats/token, perplexity {r['perplexity']:.2f}")
    unscored = r["split_tokens"] - r["of"]          # each stream's first token, the tail
    if unscored > 0.01 * r["split_tokens"]:
        print(f"note: {unscored:,} of the split's {r['split_tokens']:,} tokens are never "
              f"scored: each of the {r['streams']:,} streams (--batch-size) starts with a "
              "token that has no prediction, and the tail that does not fill a row is "
              "dropped; a smaller --batch-size scores more", file=sys.stderr)
    if r["unknown"]:
        print(f"note: {r['unknown']:,} tokens ({100 * r['unknown_fraction']:.1f}%) are outside the "
              f"model's vocabulary and were scored as its unknown token"
              + ("; the perplexity says little about this text" if r["unknown_fraction"] > 0.1
                 else ""), file=sys.stderr)
    return 0


def run_generate(args):
    generate.run(from_args(generate.GenerateOptions, args))
    return 0
