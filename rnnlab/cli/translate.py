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
"""
import sys

import numpy as np

from rnnlab.training import trainer
from rnnlab.translate import bleu, data, decode, text, train


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
    _decoding(e)
    e.set_defaults(func=cmd_eval)
    r = sub.add_parser("translate", help="translate sentences with a checkpoint")
    r.add_argument("checkpoint")
    r.add_argument("--input", help="file of source sentences, one per line (default: stdin)")
    r.add_argument("--nbest", type=int, default=1, help="print the N best translations (N <= --beam)")
    r.add_argument("--score", metavar="FILE", help="score these translations of --input "
                   "(one per line) instead of translating")
    _decoding(r)
    r.set_defaults(func=cmd_translate)
    v = sub.add_parser("average", help="average the weights of checkpoints of one run")
    v.add_argument("checkpoints", nargs="+", help="e.g. OUT/epoch8.npz OUT/epoch9.npz ...")
    v.add_argument("--out", required=True, help="the averaged checkpoint to write")
    v.set_defaults(func=cmd_average)
    g = sub.add_parser("paths", help="gradient through attention vs through the recurrence")
    g.add_argument("with_attention")
    g.add_argument("without_attention")
    g.add_argument("--sentences", type=int, default=100, help="held-out sentences measured")
    g.add_argument("--out", default="runs/paths", help="folder for the figure and page")
    g.set_defaults(func=cmd_paths)


def _decoding(p):
    p.add_argument("--beam", type=int, default=1, help="beam width (1: greedy)")
    p.add_argument("--alpha", type=float, default=0.0,
                   help="length normalisation: rank by score / length**alpha")
    p.add_argument("--max-len-a", type=float, default=1.5, help="output length cap a*|src|+b")
    p.add_argument("--max-len-b", type=float, default=10, help="output length cap a*|src|+b")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    p.add_argument("--src-lang", help="refuse a checkpoint for another source language")
    p.add_argument("--tgt-lang", help="refuse a checkpoint for another target language")


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
    mcfg, params, vocabs, meta = _load(args)
    splits = data.load_pair(meta["data"], meta["src_lang"], meta["tgt_lang"],
                            **_split_args(args.checkpoint))
    pairs = splits[args.split]
    res = train.evaluate(mcfg, params, pairs, vocabs, args.batch_size, 0)
    hyps = train.translate_pairs(mcfg, params, pairs, vocabs, args.batch_size, args.beam,
                                 args.alpha)
    refs = [t for _, t in pairs]
    tok = meta.get("tokenizer", "words")
    s, sig = bleu.sacrebleu_score([text.detokenize(h, tok) for h in hyps],
                                  [text.detokenize(r, tok) for r in refs], lowercase=True)
    how = "greedy" if args.beam == 1 else f"beam {args.beam}, alpha {args.alpha}"
    print(f"{meta['data']} {meta['src_lang']}->{meta['tgt_lang']} {args.split}: "
          f"{len(pairs):,} sentences, {how}")
    print(f"loss {res['loss']:.4f} | ppl {res['ppl']:.2f}")
    print(f"BLEU (lowercased tokens, multi-bleu convention) {bleu.token_bleu(hyps, refs):.2f}")
    print(f"sacreBLEU {s:.2f}  {sig}")
    print(f"exact match {np.mean([h == r for h, r in zip(hyps, refs)]):.4f}")
    return 0


def _split_args(path):
    """The seed and filter the checkpoint's run used (tatoeba's split depends on them)."""
    from rnnlab.io import checkpoint
    tc = checkpoint.load(path, kind=train.KIND)["meta"].get("train_config", {})
    return {"seed": tc.get("seed", 0), "short": tc.get("short", True)}


def _read_input(path):
    if path is None:
        return [line.rstrip("\n") for line in sys.stdin]
    return data.read_lines(path)


def cmd_translate(args):
    mcfg, params, vocabs, meta = _load(args)
    tok = meta.get("tokenizer", "words")
    lines = _read_input(args.input)
    src = [vocabs[0].encode(text.tokenize(line, tok)) for line in lines]
    empty = [i + 1 for i, s in enumerate(src) if not s]
    if empty:
        raise ValueError(f"--input: line {empty[0]} is empty; expected a sentence on every line")
    if args.score:
        return _score(mcfg, params, vocabs, tok, src, data.read_lines(args.score), args)
    for i in range(0, len(src), args.batch_size):
        b = data.pad_batch(src[i:i + args.batch_size])
        nbest = decode.beam_search(mcfg, params, b.src, b.src_len, args.beam,
                                   args.alpha, args.nbest, args.max_len_a, args.max_len_b)
        for k, hyps in enumerate(nbest):
            for h in hyps:
                out = text.detokenize(vocabs[1].decode(h.tokens), tok)
                print(f"{i + k} ||| {out} ||| {h.norm:.4f}" if args.nbest > 1 else out)
    return 0


def _score(mcfg, params, vocabs, tok, src, targets, args):
    if len(targets) != len(src):
        raise ValueError(f"--score {args.score}: {len(targets)} lines, but --input has "
                         f"{len(src)}; expected one translation per source line")
    tgt = [[data.BOS_ID] + vocabs[1].encode(text.tokenize(t, tok)) + [data.EOS_ID]
           for t in targets]
    for i in range(0, len(src), args.batch_size):
        b = data.pad_batch(src[i:i + args.batch_size], tgt[i:i + args.batch_size])
        for k, s in enumerate(decode.score(mcfg, params, b)):
            print(f"{i + k} ||| {targets[i + k]} ||| {s:.4f}")
    return 0


def cmd_average(args):
    train.average(args.checkpoints, args.out)
    print(f"{args.out}: mean of {len(args.checkpoints)} checkpoints")
    return 0


def cmd_paths(args):
    from rnnlab.translate import gradpaths
    page = gradpaths.run(args.with_attention, args.without_attention, args.sentences, args.out)
    print(f"page: {page}")
    return 0
