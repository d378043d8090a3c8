"""``rnnlab caption train|eval|describe|gallery``: image captioning from the command line.

    rnnlab caption train                          # generated scenes, about a minute
    rnnlab caption train --decoder show-tell --epochs 20 --out runs/st
    rnnlab caption eval runs/caption/best.npz --split heldout --beam 3
    rnnlab caption describe runs/caption/best.npz drawing.png
    rnnlab caption gallery runs/caption/best.npz --out gallery.html

Every ``train`` option is a field of ``train.CaptionOptions`` (also settable in a
``--config`` TOML file); ``--resume`` continues a run exactly.
"""
import argparse
import json
import os

import numpy as np

from rnnlab.caption import data, evaluate, scenes, train
from rnnlab.io.atomic import check_writable
from rnnlab.training.options import int_in_range
from rnnlab.training import trainer


def register(subparsers):
    p = subparsers.add_parser("caption", help="image captioning: CNN encoder, attention decoder",
                              description="Caption generated scenes (shapes, colours, sizes, "
                                          "relations) or scikit-learn digit composites.")
    sub = p.add_subparsers(dest="action", metavar="<action>", required=True)
    t = sub.add_parser("train", help="train a captioner on generated images",
                       description="Train on images generated from --seed (no download); "
                                   "OUT/best.npz, OUT/last.npz, OUT/metrics.jsonl.")
    trainer.add_arguments(t, train.CaptionOptions)
    t.set_defaults(func=run_train)

    e = sub.add_parser("eval", help="every metric and control on a split",
                       description="Exact match, per-slot accuracy, BLEU-4, attention hit "
                                   "rate, shuffled-image and colour-edit controls.")
    _checkpoint_args(e)
    e.add_argument("--json", action="store_true", help="print the results as JSON")
    e.set_defaults(func=run_eval)

    d = sub.add_parser("describe", help="caption a PNG image",
                       description=f"Caption a {scenes.SIZE}x{scenes.SIZE} RGB PNG drawn in the "
                                   "generator's style (black background, shapes in 16-pixel "
                                   "grid cells).")
    d.add_argument("checkpoint", help="checkpoint file (.npz)")
    d.add_argument("image", nargs="+", help="PNG file(s)")
    d.add_argument("--beam", type=int, default=3, help="beam width (0: greedy; default 3)")
    d.set_defaults(func=run_describe)

    g = sub.add_parser("gallery", help="HTML page: images, captions, attention overlays")
    _checkpoint_args(g, n=8)
    g.add_argument("--out", default="caption-gallery.html", help="HTML file to write")
    g.set_defaults(func=run_gallery)


def _checkpoint_args(p, n=500):
    p.add_argument("checkpoint", help="checkpoint file (.npz)")
    p.add_argument("--split", default="test", choices=scenes.SPLITS,
                   help="generated split (default: test; heldout: unseen colour-shape pairs)")
    p.add_argument("--source", choices=data.SOURCES,
                   help="data source (default: the one trained on)")
    p.add_argument("-n", "--images", type=int, default=n, help=f"images (default {n})")
    p.add_argument("--seed", type=int, default=12345, help="data seed (default 12345)")
    p.add_argument("--beam", type=int, default=0, help="beam width (0: greedy)")


# one page or one evaluation: past these, a typo (gallery -n 100000 and eval on
# 100,000,000 images ran until stopped), not a measurement
MAX_IMAGES, MAX_GALLERY, MAX_BEAM = 100_000, 1_000, 100


def run_train(args):
    args = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "action"})
    cfg, ck = trainer.config_from_args(train.CaptionOptions, args, train.KIND)
    st, mcfg, vocab = train.fit(cfg, ck)
    test = data.make_split(cfg.source, 200, "test", cfg.seed + 1, cfg.max_objects)
    r, _, _ = evaluate.report(mcfg, st.params, vocab, test, controls=False)
    print(f"test exact match {100 * r['exact']:.1f}% on 200 generated images (final weights; "
          f"best and last in {cfg.out}/); more: rnnlab caption eval {cfg.out}/best.npz")
    return 0


def _load_split(args, max_images=MAX_IMAGES):
    int_in_range("--images", args.images, 1, max_images)
    int_in_range("--beam", args.beam, 0, MAX_BEAM)
    int_in_range("--seed", args.seed, 0)
    mcfg, params, vocab, meta = train.load(args.checkpoint)
    source = args.source or (meta.get("app") or {}).get("source", "scenes")
    split = data.make_split(source, args.images, args.split, args.seed)
    return mcfg, params, vocab, split


def run_eval(args):
    mcfg, params, vocab, split = _load_split(args)
    r, _, _ = evaluate.report(mcfg, params, vocab, split, args.beam, args.seed)
    if args.json:
        print(json.dumps(r, indent=1))
    else:
        print(f"{args.checkpoint}: {mcfg.decoder} decoder, {args.split} split, "
              + (f"beam {args.beam}" if args.beam else "greedy"))
        print(evaluate.format_report(r))
    return 0


def read_png(path):
    """uint8 (SIZE, SIZE, 3) from a PNG; clear errors for another size or mode."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ValueError("reading PNG files needs Pillow: pip install 'rnnlab[caption]'") from None
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a folder; expected a PNG file")
    try:
        with Image.open(path) as im:
            mode, size = im.mode, im.size
            if mode != "RGB":
                raise ValueError(f"{path}: expected an RGB image, got mode {mode} "
                                 "(convert it, e.g. with Pillow's .convert('RGB'))")
            if size != (scenes.SIZE, scenes.SIZE):
                raise ValueError(f"{path}: expected {scenes.SIZE}x{scenes.SIZE} pixels, got "
                                 f"{size[0]}x{size[1]}")
            return np.asarray(im, dtype=np.uint8)
    except OSError as e:                # Pillow's "image file is truncated" names no file
        if isinstance(e, FileNotFoundError):
            raise FileNotFoundError(f"{path}: no such image") from None
        if isinstance(e, UnidentifiedImageError):
            raise ValueError(f"{path}: not an image Pillow can read (expected a PNG)") from None
        raise ValueError(f"{path}: cannot read the image ({e})") from None


def run_describe(args):
    int_in_range("--beam", args.beam, 0, MAX_BEAM)
    mcfg, params, vocab, _ = train.load(args.checkpoint)
    for path in args.image:
        x = data.as_input(read_png(path), where=path).astype(params["out.weight"].dtype)
        caps, _ = evaluate.decode(mcfg, params, vocab, x, args.beam)
        print(f"{path}: {caps[0]}")
    return 0


def run_gallery(args):
    from rnnlab.caption import gallery
    check_writable("--out", args.out)                 # before decoding, not after
    mcfg, params, vocab, split = _load_split(args, MAX_GALLERY)
    gallery.write(args.out, mcfg, params, vocab, split, args.beam, args.checkpoint)
    print(f"wrote {args.out}")
    return 0
