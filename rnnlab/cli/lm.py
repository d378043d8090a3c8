"""``rnnlab train``, ``rnnlab eval`` and ``rnnlab generate``: language models from
the command line.

Every ``train`` option is a field of ``train.TrainConfig``; it can also be set in
a TOML file (``--config run.toml``, keys as the option names with underscores).
Precedence: defaults < TOML file < command line. ``--resume`` takes the
settings from the checkpoint; only options in ``train.RESUMABLE`` may differ.
"""
import argparse
import math
import tomllib
import typing
from dataclasses import fields

from rnnlab.dist import mpi
from rnnlab.io import checkpoint
from rnnlab.lm import corpus as corpus_mod, generate, model as lm, train, vocab as vocab_mod

_HELP = {
    "level": "token level: word, char, or auto (word for PTB/WikiText/CSV, char otherwise)",
    "max_vocab": "keep only the N most frequent tokens; the rest become <unk>",
    "min_count": "tokens seen fewer times become <unk>",
    "mode": "recurrent cell: rnn, lstm or gru",
    "emb_size": "embedding size E",
    "hidden_size": "hidden size H of every recurrent layer",
    "num_layers": "number of stacked recurrent layers",
    "dropout": "dropout on non-recurrent connections (Zaremba et al. 2014)",
    "tie_weights": "share the embedding and decoder matrices (needs E == H)",
    "init_scale": "initialise every weight uniformly in [-s, s]",
    "optimizer": "sgd, adam, rmsprop or adagrad",
    "lr": "learning rate",
    "momentum": "SGD momentum",
    "clip": "clip gradients to this global norm (0: no clipping)",
    "sum_over_time": "take the gradient of the loss summed over the bptt steps (Zaremba et "
                     "al., TensorFlow's PTB tutorial; their lr and clip assume it) instead of "
                     "the per-token mean",
    "schedule": "learning-rate schedule: constant, zaremba (decay after --decay-start "
                "epochs) or plateau (decay when validation stops improving)",
    "lr_decay": "decay factor for the zaremba and plateau schedules",
    "decay_start": "zaremba schedule: epochs at the full learning rate",
    "patience": "plateau schedule: epochs without improvement before decaying",
    "epochs": "number of epochs",
    "batch_size": "B parallel streams per step",
    "bptt": "truncated-BPTT chunk length in steps",
    "max_steps": "cap on steps per epoch (0: whole epoch); for quick runs",
    "early_stop": "stop after N epochs without a better validation perplexity (0: off)",
    "eval_batch_size": "streams used for validation",
    "seed": "random seed; the same seed reproduces a run exactly",
    "out": "output folder: last.npz, best.npz, metrics.jsonl",
    "checkpoint_every": "steps between mid-epoch checkpoints (0: only at epoch ends)",
    "samples": "samples printed after every epoch",
    "sample_len": "maximum length of those samples, in tokens",
    "progress": "show a progress bar with loss, perplexity and tokens/s",
}


def _arg_type(f):
    t = f.type
    if typing.get_origin(t) is typing.Union:                       # Optional[int]
        t = next(a for a in typing.get_args(t) if a is not type(None))
    return t


def _add_train_options(p):
    g = p.add_argument_group("training options (also settable in the --config TOML file)")
    for f in fields(train.TrainConfig):
        if f.name == "corpus":
            continue
        flag, default = "--" + f.name.replace("_", "-"), f.default
        help_ = f"{_HELP[f.name]} (default: {default})"
        if _arg_type(f) is bool:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_)
        else:
            g.add_argument(flag, type=_arg_type(f), metavar=f.name.upper(), help=help_)


def register(subparsers):
    p = subparsers.add_parser(
        "train", help="train a recurrent language model",
        description="Train a word- or character-level language model with truncated BPTT. "
                    "Checkpoints go to OUT/last.npz and OUT/best.npz; --resume continues "
                    "a run exactly where it stopped.", argument_default=argparse.SUPPRESS)
    p.add_argument("corpus", nargs="?", help="text file, folder (PTB/WikiText layout or "
                   "text files), .csv with a 'body' column, or 'python-docs' (default: the "
                   "Python language reference shipped with CPython)")
    p.add_argument("--config", help="TOML file with training options")
    p.add_argument("--resume", help="checkpoint to continue from (e.g. OUT/last.npz)")
    _add_train_options(p)
    mpi.add_arguments(p)
    p.set_defaults(func=run_train)

    e = subparsers.add_parser("eval", help="perplexity of a trained model on a corpus split",
                              description="Evaluate a checkpoint's perplexity.")
    e.add_argument("checkpoint", help="checkpoint file (.npz)")
    e.add_argument("--corpus", help="corpus to evaluate on (default: the one trained on)")
    e.add_argument("--split", default="test", choices=("train", "valid", "test"),
                   help="which split (default: test)")
    e.add_argument("--batch-size", type=int, default=10, help="parallel streams (default 10)")
    e.add_argument("--bptt", type=int, default=35, help="chunk length (default 35)")
    e.set_defaults(func=run_eval)

    g = subparsers.add_parser("generate", help="sample, beam-search or score text",
                              description="Generate text from a checkpoint, or score a sentence.")
    g.add_argument("checkpoint", help="checkpoint file (.npz)")
    g.add_argument("--prime", default="", help="text the samples start with")
    g.add_argument("-n", "--num-samples", type=int, default=3, help="samples (default 3)")
    g.add_argument("--max-len", type=int, default=60, help="max tokens per sample (default 60)")
    g.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (1.0)")
    g.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest (0: all)")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1.0: off)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--beam", type=int, default=0,
                   help="beam width: print the most likely continuation instead of samples")
    g.add_argument("--score", help="print this sentence's log-probability and perplexity")
    g.set_defaults(func=run_generate)


def _load_toml(path):
    try:
        with open(path, "rb") as f:
            d = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: invalid TOML ({e})") from None
    return {k.replace("-", "_"): v for k, v in d.items()}


def run_train(args):
    opts = vars(args).copy()
    for k in ("func", "command"):
        opts.pop(k, None)
    resume = opts.pop("resume", None)
    dp = mpi.pop_options(opts)
    settings = _load_toml(opts.pop("config")) if "config" in opts else {}
    settings.update(opts)
    if resume is None:
        cfg = train.config_from_dict(settings, "options")
    else:
        cfg = None
    with dp.fail_together():
        cfg, corp, vocab, mcfg, run, _ = train.fit(cfg, resume, settings if resume else None,
                                                   dp=None if dp.trivial else dp)
    if corp.test and dp.writer:
        test = train.batchify(vocab_mod.encode(vocab, corp.test),
                              max(1, min(cfg.eval_batch_size, len(corp.test) // 2)), "test split")
        loss = train.evaluate(mcfg, run.params, test, cfg.bptt)
        print(f"test ppl {math.exp(loss):.2f} (final weights; best and last in {cfg.out}/)")
    return 0


def load_model(path):
    """(model config, params, vocabulary, metadata) from a checkpoint, checked."""
    ck = checkpoint.load(path)
    m = ck["meta"]
    try:
        mcfg = lm.LMConfig(**m["model_config"])
        vocab = vocab_mod.Vocab.from_dict(m["vocab"])
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: checkpoint metadata is incomplete ({e})") from None
    if len(vocab) != mcfg.vocab_size:
        raise ValueError(f"{path}: vocabulary has {len(vocab)} tokens but the model "
                         f"expects {mcfg.vocab_size}")
    try:
        lm.check_params(mcfg, ck["params"])
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return mcfg, ck["params"], vocab, m


def run_eval(args):
    mcfg, params, vocab, meta = load_model(args.checkpoint)
    source = args.corpus or meta["train_config"]["corpus"]
    corp = corpus_mod.load(source, vocab.level)
    tokens = corp.split(args.split)
    data = train.batchify(vocab_mod.encode(vocab, tokens),
                          max(1, min(args.batch_size, len(tokens) // 2)),
                          f"{source} ({args.split} split)")
    loss = train.evaluate(mcfg, params, data, args.bptt)
    print(f"{source} {args.split}: {data.size - data.shape[1]:,} tokens, loss {loss:.4f} "
          f"nats/token, perplexity {math.exp(loss):.2f}")
    return 0


def run_generate(args):
    mcfg, params, vocab, _ = load_model(args.checkpoint)
    if args.score is not None:
        s = generate.score(mcfg, params, vocab, args.score)
        print(f"log-probability {s['log_prob']:.3f} nats over {s['tokens']} tokens, "
              f"perplexity {s['perplexity']:.2f}"
              + (f" ({s['unknown']} unknown word(s) scored as {vocab.unk})" if s["unknown"] else ""))
        return 0
    if args.beam:
        text, lp = generate.beam_search(mcfg, params, vocab, args.prime, args.beam, args.max_len)
        print(f"{text}\n(log-probability {lp:.3f})")
        return 0
    for s in generate.sample(mcfg, params, vocab, args.num_samples, args.max_len,
                             args.temperature, args.top_k, args.top_p, args.prime, args.seed):
        print(s if vocab.level == "word" else s + "\n" + "-" * 40)
    return 0
