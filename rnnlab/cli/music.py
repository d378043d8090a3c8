"""``rnnlab music train | eval | sample``: polyphonic music models from the command line.

Every ``train`` option is a field of ``music.train.MusicOptions``, settable in a
TOML file too (``--config run.toml``); precedence: defaults < TOML < command
line. ``--resume OUT/last.npz`` continues a run exactly.
"""
import argparse
import os

from rnnlab.music import data, generate, report, train
from rnnlab.training import trainer
from rnnlab.training.options import add_arguments, from_args


def register(subparsers):
    p = subparsers.add_parser("music", help="polyphonic music: train, evaluate, sample",
                              description="Frame-level polyphonic music models (RNN, LSTM, "
                              "GRU with Bernoulli or RNN-NADE outputs) on piano rolls.")
    sub = p.add_subparsers(dest="music_command", metavar="<subcommand>", required=True)
    t = sub.add_parser("train", help="train a model",
                       description="Train on a data set (default: the embedded JSB chorales). "
                       "Writes OUT/best.npz, OUT/last.npz, OUT/metrics.jsonl, then prints "
                       "the test NLL of best.npz.")
    trainer.add_arguments(t, train.MusicOptions)
    t.set_defaults(func=run_train)

    e = sub.add_parser("eval", help="NLL per time step and frame accuracy of a checkpoint",
                       description="Evaluate a checkpoint on a split: negative log-likelihood "
                       "per time step (nats, summed over notes, pooled over frames) and "
                       "frame accuracy (Bay et al.).")
    e.add_argument("checkpoint", help="checkpoint file (.npz)")
    e.add_argument("--data", help="data set (default: the one trained on)")
    e.add_argument("--split", default="test", choices=data.SPLITS, help="split (default: test)")
    e.set_defaults(func=run_eval)

    s = sub.add_parser("sample", help="generate MIDI, piano rolls, WAV and an HTML page",
                       description="Sample pieces from a checkpoint. Writes OUT/sample_K.mid, "
                       ".png and .wav (built-in synthesiser), the real primer piece, the "
                       "training curves and OUT/report.html.")
    add_arguments(s, generate.SampleOptions, title="sampling options")
    s.set_defaults(func=run_sample)


def run_train(args):
    # music_command is not an option; args keep it (main's out-of-memory line names it)
    given = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "music_command"})
    cfg, ck = trainer.config_from_args(train.MusicOptions, given, train.KIND)
    sets = train.load_sets(cfg)
    print(f"{cfg.data}: {len(sets['train'])}/{len(sets['valid'])}/{len(sets['test'])} pieces, "
          f"{sum(len(r) for r in sets['train']):,} training frames; {cfg.mode} "
          f"H={cfg.hidden_size} x{cfg.num_layers}, {cfg.output} output")
    mcfg, st = train.fit(cfg, sets, ck)
    best = os.path.join(cfg.out, "best.npz")
    r = train.evaluate(mcfg, train.load_model(best)[1], sets["test"], cfg.eval_batch)
    print(f"test NLL {r['nll']:.3f} nats per time step, frame accuracy {r['acc']:.3f} "
          f"({r['frames']:,} frames; {best})")
    return 0


def run_eval(args):
    mcfg, params, meta = train.load_model(args.checkpoint)
    sets, source = train.data_of(meta, args.data)
    r = train.evaluate(mcfg, params, sets[args.split])
    print(f"{source} {args.split}: {r['frames']:,} frames, NLL {r['nll']:.4f} nats per time "
          f"step, frame accuracy {r['acc']:.4f}")
    return 0


def run_sample(args):
    opts = from_args(generate.SampleOptions, args, drop=("func", "command", "music_command"))
    out = opts.out or os.path.join(os.path.dirname(os.path.abspath(opts.checkpoint)), "samples")
    page = report.sample_run(opts.checkpoint, out, opts.num, opts.length, opts.temperature,
                             opts.primer, opts.primer_steps, opts.seed)
    print(f"wrote {opts.num} sample(s) (MIDI, PNG, WAV) and {page}")
    return 0
