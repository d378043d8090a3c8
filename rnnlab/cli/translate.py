"""``rnnlab translate train|eval|translate|paths``: translation from the command line.

- ``train``: every option of ``translate.train.TranslateOptions`` (also from a
  ``--config`` TOML file; ``--resume OUT/last.npz`` continues a run exactly).
  Without ``--data`` it trains on the generated date task (no download, about a
  minute) and writes ``OUT/report.html`` with attention pictures.
- ``eval CHECKPOINT``: loss, perplexity, BLEU on lowercased tokens (labelled),
  sacreBLEU with its signature, exact match; greedy or ``--beam K``.
- ``translate CHECKPOINT``: source lines from ``--input`` (or stdin), one
  translation per line; ``--nbest N`` prints ``i ||| translation ||| score``
  (fairseq/OpenNMT style); ``--score FILE`` scores given translations instead.
- ``average CK.npz ... --out AVG.npz``: one model with the mean weights of
  several checkpoints of one run (e.g. ``OUT/epoch*.npz`` of ``--keep-epochs``).
- ``paths WITH.npz WITHOUT.npz``: the attention-vs-recurrence gradient study
  (``translate.gradpaths``), a figure and a page.

Decoding options are ``decode.DecodeOptions`` and ``paths``' are
``gradpaths.PathsOptions``, declared once with their ranges; an option that would
have no effect (``--score`` with the search options) is refused, not ignored.
"""
import sys
from dataclasses import fields

import numpy as np

from rnnlab.training import trainer
from rnnlab.training.options import add_arguments, flag, from_args, from_mapping
from rnnlab.translate import bleu, data, decode, gradpaths, text, train


def register(subparsers):
    p = subparsers.add_parser("translate", help="sequence-to-sequence translation with attention",
                              description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="action", metavar="<action>", required=True)
    t = sub.add_parser("train", help="train a model (default: the date task, about a minute)")
    trainer.add_arguments(t, train.TranslateOptions)
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("eval", help="score a checkpoint on a split")
    e.add_argument("checkpoint")
    e.add_argument("--split", default="test", choices=("train", "valid", "test"))
    _decoding(e, skip=("nbest",))
    e.set_defaults(func=cmd_eval)
    r = sub.add_parser("translate", help="translate sentences with a checkpoint")
    r.add_argument("checkpoint")
    r.add_argument("--input", help="file of source sentences, one per line (default: stdin)")
    r.add_argument("--score", metavar="FILE", help="score these translations of --input "
                   "(one per line) instead of translating")
    _decoding(r)
    r.set_defaults(func=cmd_translate)
    v = sub.add_parser("average", help="average the weights of checkpoints of one run")
    v.add_argument("checkpoints", nargs="+", help="e.g. OUT/epoch8.npz OUT/epoch9.npz ...")
    v.add_argument("--out", required=True, help="the averaged checkpoint to write")
    v.set_defaults(func=cmd_average)
    g = sub.add_parser("paths", help="gradient through attention vs through the recurrence")
    add_arguments(g, gradpaths.PathsOptions, title="measurement options")
    g.set_defaults(func=cmd_paths)


def _decoding(p, skip=()):
    add_arguments(p, decode.DecodeOptions, skip=skip, title="decoding options")
    p.add_argument("--src-lang", help="refuse a checkpoint for another source language")
    p.add_argument("--tgt-lang", help="refuse a checkpoint for another target language")


def _decode_options(args):
    """DecodeOptions from the flags given (the others keep its defaults)."""
    names = {f.name for f in fields(decode.DecodeOptions)}
    return from_mapping(decode.DecodeOptions,
                        {k: v for k, v in vars(args).items() if k in names}, None)


def _load(args):
    """The checkpoint's model, refusing one trained for another language pair."""
    mcfg, params, vocabs, meta = train.load_model(args.checkpoint)
    if args.src_lang or args.tgt_lang:
        train.check_pair(meta, args.src_lang or meta["src_lang"],
                         args.tgt_lang or meta["tgt_lang"], args.checkpoint)
    return mcfg, params, vocabs, meta


def cmd_train(args):
    del args.action                                   # not an option of the run
    cfg, ck = trainer.config_from_args(train.TranslateOptions, args, train.KIND)
    st, task = train.run(cfg, resume=ck)
    from rnnlab.translate import demo
    demo.finish(cfg, st, task)
    return 0


def cmd_eval(args):
    opts = _decode_options(args)
    mcfg, params, vocabs, meta = _load(args)
    decode.check_beam(opts.beam, mcfg.tgt_vocab)
    splits = data.load_pair(meta["data"], meta["src_lang"], meta["tgt_lang"],
                            **train.split_args(args.checkpoint))
    pairs = splits.get(args.split)
    if not pairs:                      # user data: the .test. files are optional
        raise ValueError(f"--split {args.split}: {meta['data']} has no {args.split} pairs; "
                         f"choose --split {' or '.join(k for k, v in splits.items() if v)}")
    res = train.evaluate(mcfg, params, pairs, vocabs, opts.batch_size, 0)
    hyps = train.translate_pairs(mcfg, params, pairs, vocabs, opts.batch_size, opts.beam,
                                 opts.alpha, opts.max_len_a, opts.max_len_b)
    refs = [t for _, t in pairs]
    tok = meta.get("tokenizer", "words")
    s, sig = bleu.sacrebleu_score([text.detokenize(h, tok) for h in hyps],
                                  [text.detokenize(r, tok) for r in refs], lowercase=True)
    how = "greedy" if opts.beam == 1 else f"beam {opts.beam}, alpha {opts.alpha}"
    print(f"{meta['data']} {meta['src_lang']}->{meta['tgt_lang']} {args.split}: "
          f"{len(pairs):,} sentences, {how}")
    print(f"loss {res['loss']:.4f} | ppl {res['ppl']:.2f}")
    print(f"BLEU (lowercased tokens, multi-bleu convention) {bleu.token_bleu(hyps, refs):.2f}")
    print(f"sacreBLEU {s:.2f}  {sig}")
    print(f"exact match {np.mean([h == r for h, r in zip(hyps, refs)]):.4f}")
    return 0


def _read_input(path):
    if path is None:
        lines = [line.rstrip("\n") for line in sys.stdin]
        if not lines:
            raise ValueError("--input: standard input is empty; expected source sentences, "
                             "one per line (or --input FILE)")
        return lines
    lines = data.read_lines(path, "--input")
    if not lines:
        raise ValueError(f"--input {path}: file is empty; expected source sentences, one "
                         "per line")
    return lines


# scoring reads the given translations, it searches nothing: these would do nothing
SEARCH_OPTIONS = ("beam", "nbest", "alpha", "max_len_a", "max_len_b")


def cmd_translate(args):
    given = [flag(k) for k in SEARCH_OPTIONS if hasattr(args, k)]    # defaults: SUPPRESSed
    if args.score and given:
        raise ValueError(f"--score: scores the given translations without a search, so "
                         f"{', '.join(given)} would have no effect; drop "
                         f"{'it' if len(given) == 1 else 'them'}")
    opts = _decode_options(args)
    mcfg, params, vocabs, meta = _load(args)
    decode.check_beam(opts.beam, mcfg.tgt_vocab)
    tok = meta.get("tokenizer", "words")
    lines = _read_input(args.input)
    src = [vocabs[0].encode(text.tokenize(line, tok)) for line in lines]
    empty = [i + 1 for i, s in enumerate(src) if not s]
    if empty:
        raise ValueError(f"--input: line {empty[0]} is empty; expected a sentence on every line")
    if args.score:
        return _score(mcfg, params, vocabs, tok, src,
                      data.read_lines(args.score, "--score"), args, opts.batch_size)
    for i in range(0, len(src), opts.batch_size):
        b = data.pad_batch(src[i:i + opts.batch_size])
        nbest = decode.beam_search(mcfg, params, b.src, b.src_len, opts.beam,
                                   opts.alpha, opts.nbest, opts.max_len_a, opts.max_len_b)
        for k, hyps in enumerate(nbest):
            for h in hyps:
                out = text.detokenize(vocabs[1].decode(h.tokens), tok)
                print(f"{i + k} ||| {out} ||| {h.norm:.4f}" if opts.nbest > 1 else out)
    return 0


def _score(mcfg, params, vocabs, tok, src, targets, args, batch_size):
    if len(targets) != len(src):
        raise ValueError(f"--score {args.score}: {len(targets)} lines, but --input has "
                         f"{len(src)}; expected one translation per source line")
    tgt = [[data.BOS_ID] + vocabs[1].encode(text.tokenize(t, tok)) + [data.EOS_ID]
           for t in targets]
    for i in range(0, len(src), batch_size):
        b = data.pad_batch(src[i:i + batch_size], tgt[i:i + batch_size])
        for k, s in enumerate(decode.score(mcfg, params, b)):
            print(f"{i + k} ||| {targets[i + k]} ||| {s:.4f}")
    return 0


def cmd_average(args):
    train.average(args.checkpoints, args.out)
    print(f"{args.out}: mean of {len(args.checkpoints)} checkpoints")
    return 0


def cmd_paths(args):
    opts = from_args(gradpaths.PathsOptions, args, drop=("func", "command", "action"))
    page = gradpaths.run(opts.with_attention, opts.without_attention, opts.sentences, opts.out)
    print(f"page: {page}")
    return 0
