"""``rnnlab music train | eval | sample``: polyphonic music models from the command line.

Every ``train`` option is a field of ``music.train.MusicOptions``, settable in a
TOML file too (``--config run.toml``); precedence: defaults < TOML < command
line. ``--resume OUT/last.npz`` continues a run exactly.
"""
import os

from rnnlab.music import data, report, train
from rnnlab.training import trainer


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
    s.add_argument("checkpoint", help="checkpoint file (.npz)")
    s.add_argument("--out", help="output folder (default: CHECKPOINT's folder/samples)")
    s.add_argument("-n", "--num", type=int, default=2, help="pieces to sample (default 2)")
    s.add_argument("--length", type=int, default=64, help="time steps per piece (default 64)")
    s.add_argument("--temperature", type=float, default=1.0,
                   help="divide the logits by this (< 1: safer, > 1: wilder; default 1)")
    s.add_argument("--primer", default="test",
                   help="test (the first steps of test piece K for sample K), a MIDI file, "
                   "or none (default: test)")
    s.add_argument("--primer-steps", type=int, default=8,
                   help="time steps of the primer to keep (default 8)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.set_defaults(func=run_sample)


def run_train(args):
    del args.music_command                                   # not an option
    cfg, ck = trainer.config_from_args(train.MusicOptions, args, train.KIND)
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
    for name in ("num", "length", "primer_steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected an integer >= 1, got "
                             f"{getattr(args, name)}")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "samples")
    page = report.sample_run(args.checkpoint, out, args.num, args.length, args.temperature,
                             args.primer, args.primer_steps, args.seed)
    print(f"wrote {args.num} sample(s) (MIDI, PNG, WAV) and {page}")
    return 0
