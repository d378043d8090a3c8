"""Zaremba et al. 2014 "small" LSTM on Penn Treebank, through ``rnnlab.train``.

Setup (the paper's and TensorFlow's PTB tutorial "small" config): 2 layers x 200,
embedding 200, bptt 20, batch 20, init U(-0.1, 0.1), SGD lr 1 halved each epoch
after epoch 4, 13 epochs, clip 5, no dropout. Paper: test perplexity 114.5;
TensorFlow's reproduction: 115.91. The defaults of ``rnnlab train`` are this
config, so the same run is ``rnnlab train ../shared/data/ptb --out runs/zaremba``.

    python benchmarks/zaremba_small.py                    # the full 13 epochs
    python benchmarks/zaremba_small.py --epochs 1 --max-steps 600   # a timing probe
"""
import argparse
import math
import os
import platform
import time

import numpy as np

from rnnlab.lm import evaluate, train, vocab as vocab_mod

HERE = os.path.dirname(os.path.abspath(__file__))
PTB = os.path.join(HERE, "..", "..", "shared", "data", "ptb")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("RNNLAB_PTB", PTB), help="PTB folder")
    p.add_argument("--epochs", type=int, default=13, help="epochs (paper: 13)")
    p.add_argument("--max-steps", type=int, default=0, help="cap steps per epoch (0: all)")
    p.add_argument("--out", default="runs/zaremba_small", help="checkpoint folder")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="progress bar")
    a = p.parse_args(argv)
    cfg = train.LMTrainConfig(corpus=a.data, epochs=a.epochs, max_steps=a.max_steps,
                              out=a.out, samples=1, sample_len=20, progress=a.progress,
                              checkpoint_every=500)
    t0 = time.perf_counter()
    r = train.fit(cfg)
    cfg, corp, vocab, mcfg, run, hist = r.cfg, r.corpus, r.vocab, r.mcfg, r.state, r.history
    wall = time.perf_counter() - t0
    test = train.batchify(vocab_mod.encode(vocab, corp.test), 1, "test")
    t1 = time.perf_counter()
    test_ppl = math.exp(evaluate.evaluate(mcfg, run.params, test, cfg.bptt))
    steps = train.chunks(len(corp.train) // cfg.batch_size, cfg.bptt)
    done = min(steps, a.max_steps or steps)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"numpy {np.__version__}")
    print(f"epochs {len(hist)} x {done}/{steps} steps: {wall:.0f} s training "
          f"({wall / len(hist) / done * 1000:.0f} ms/step, projected "
          f"{wall / len(hist) / done * steps / 60:.1f} min per full epoch)")
    print(f"valid ppl by epoch: {[round(h['valid_ppl'], 2) for h in hist]}")
    print(f"test ppl {test_ppl:.2f} (batch 1, {time.perf_counter() - t1:.0f} s; "
          "paper 114.5, TensorFlow 115.91, target <= 116)")


if __name__ == "__main__":
    main()
