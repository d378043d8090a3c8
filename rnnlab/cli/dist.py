"""``rnnlab dist``: beyond one machine.

    rnnlab dist lm-sweep [CORPUS] --cells lstm,gru --hidden 32,64 --lrs 1,0.5 --seeds 0,1
        [--ray [--address HOST:PORT] [--asha]] [--out DIR] [training options]

trains one language model per cell x hidden size x learning rate x seed, in
turn or as Ray Tune trials (``rnnlab.dist.tune``), and writes the table
``OUT/sweep.md``, the figure ``OUT/sweep.png`` and every trial's metrics and
checkpoints under ``OUT/trials/``. Started again, it skips the finished trials.
Data parallelism needs no command of its own: ``mpiexec -n N python -m rnnlab
train ...`` (``rnnlab.dist.mpi``).
"""
import math
import os

from rnnlab.dist import tune
from rnnlab.io.atomic import check_writable


def _list(text, kind, what):
    try:
        vals = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--{what} must be comma-separated {kind.__name__}s, "
                         f"got {text!r}") from None
    if not vals:
        raise ValueError(f"--{what} is empty")
    return vals


def _check(args):
    """What every trial would refuse, refused once here with this command's flag names
    (the trials' own checks say --emb-size, --lr, --num-layers), before any trial
    starts: the audit saw each trial fail alone and the sweep exit 1."""
    from rnnlab.lm import model as lm
    ray_only = [f for f, given in (("--address", args.address is not None),
                                   ("--asha", args.asha), ("--trial-cpus", args.trial_cpus != 1.0))
                if given]
    if ray_only and not args.ray:
        raise ValueError(f"{', '.join(ray_only)}: only with --ray")
    for flag, vals, ok, want in (
            ("--hidden", _list(args.hidden, int, "hidden"), lambda v: 1 <= v <= lm.MAX_SIZE,
             f"integers from 1 to {lm.MAX_SIZE:,}"),
            ("--lrs", _list(args.lrs, float, "lrs"), lambda v: math.isfinite(v) and v > 0,
             "finite numbers > 0"),
            ("--seeds", _list(args.seeds, int, "seeds"), lambda v: v >= 0, "integers >= 0"),
            ("--layers", [args.layers], lambda v: 1 <= v <= lm.MAX_LAYERS,
             f"an integer from 1 to {lm.MAX_LAYERS}")):
        bad = [v for v in vals if not ok(v)]
        if bad:
            raise ValueError(f"{flag}: expected {want}, got {', '.join(map(str, bad))}")
    check_writable("--out", args.out, folder=True)


def _corpus(args):
    """The corpus as every trial will read it: read once here (a missing, empty or
    undecodable file is one clear error, not a failure per trial), and with --ray a
    path made absolute (Ray's workers do not run in this folder; in turn, the path
    stays as given, so a sweep started before resumes with the same settings)."""
    from rnnlab.lm import corpus as corpus_mod
    corpus_mod.load(args.corpus, args.level)
    return os.path.abspath(args.corpus) if args.ray and os.path.exists(args.corpus) else args.corpus


def run_lm_sweep(args):
    from rnnlab.lm import train
    cells = _list(args.cells, str, "cells")
    bad = [c for c in cells if c not in ("rnn", "lstm", "gru")]
    if bad:
        raise ValueError(f"--cells: unknown cell(s) {bad}; choose from rnn, lstm, gru")
    _check(args)
    base = train.LMTrainConfig(corpus=_corpus(args), level=args.level, num_layers=args.layers,
                               epochs=args.epochs, batch_size=args.batch_size, bptt=args.bptt,
                               max_steps=args.max_steps, optimizer=args.optimizer,
                               dropout=args.dropout, checkpoint_every=args.checkpoint_every)
    sweep = tune.lm_sweep(base, cells, _list(args.hidden, int, "hidden"),
                          _list(args.lrs, float, "lrs"), _list(args.seeds, int, "seeds"))
    results, failures, _ = tune.run("lm", sweep, args.out, ray=args.ray,
                                    address=args.address, asha=args.asha, cpus=args.trial_cpus)
    if results:
        table = tune.write_lm_table(results, os.path.join(args.out, "sweep.md"))
        with open(table, encoding="utf-8") as f:
            print(f.read())
        figure = tune.lm_figure(results, os.path.join(args.out, "sweep.png"))
        print("page:", _page(args, results, failures, figure))
    return 1 if failures else 0


def _page(args, results, failures, figure):
    from rnnlab.io.page import Page
    where = f"Ray Tune ({args.address or 'local ray.init()'})" if args.ray else "in turn"
    page = Page("Language-model sweep").text(
        f"Corpus {args.corpus}; {len(results)} trial(s) finished, run {where}; every "
        f"trial's metrics.jsonl and checkpoints are in {args.out}/trials/.")
    page.table(tune.lm_rows(results), header=tune.LM_COLUMNS).figure(
        figure, "Validation perplexity after each epoch, one line per trial")
    if failures:
        page.heading("Failed trials").table(sorted(failures.items()), header=("trial", "error"))
    return page.write(os.path.join(args.out, "sweep.html"))


def register(subparsers):
    p = subparsers.add_parser("dist", help="sweeps on Ray Tune (data parallelism: mpiexec "
                              "-n N python -m rnnlab train ...)",
                              description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="dist_command", metavar="<subcommand>", required=True)
    s = sub.add_parser("lm-sweep", help="language models: cell x hidden x lr x seed",
                       description="Train a language model for every cell x hidden size x "
                                   "learning rate x seed; table, figure, every trial kept.")
    s.add_argument("corpus", nargs="?", default="python-docs",
                   help="corpus as for 'rnnlab train' (default: python-docs)")
    s.add_argument("--cells", default="lstm,gru", help="cells (default lstm,gru)")
    s.add_argument("--hidden", default="64", help="hidden sizes (= embedding sizes)")
    s.add_argument("--lrs", default="1.0", help="learning rates (default 1.0, SGD)")
    s.add_argument("--seeds", default="0", help="seeds (default 0)")
    g = s.add_argument_group("training options shared by every trial (see 'rnnlab train')")
    g.add_argument("--level", default="auto", choices=("auto", "word", "char"),
                   help="word, char or auto")
    g.add_argument("--layers", type=int, default=1, help="recurrent layers (default 1)")
    g.add_argument("--epochs", type=int, default=2, help="epochs (default 2)")
    g.add_argument("--batch-size", type=int, default=20, help="parallel streams (default 20)")
    g.add_argument("--bptt", type=int, default=35, help="truncated-BPTT length (default 35)")
    g.add_argument("--max-steps", type=int, default=100,
                   help="cap on steps per epoch (default 100; 0: whole epochs)")
    g.add_argument("--optimizer", default="sgd", help="sgd, adam, rmsprop or adagrad")
    g.add_argument("--dropout", type=float, default=0.0, help="dropout (default 0)")
    g.add_argument("--checkpoint-every", type=int, default=50,
                   help="steps between mid-epoch checkpoints (default 50)")
    tune.add_arguments(s, "runs/lm-sweep", asha=True)
    s.set_defaults(func=run_lm_sweep)
