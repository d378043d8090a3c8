"""One diagnostic music run, recorded: ``rnnlab music train`` with the given
arguments, then the train / valid / test NLL of its best-validation weights
appended to ``benchmarks/results/music_nottingham_diagnosis.jsonl`` (the
probes that pick a direction before the full ``music_chung.py`` runs).

    python benchmarks/music_probe.py --note "transpose 3" -- nottingham --mode rnn \\
        --hidden-size 100 --batch-size 8 --weight-noise 0.02 --transpose 3 \\
        --epochs 40 --out runs/p-rnn-t3

``-- --resume runs/p-rnn-t3/last.npz --epochs 300`` continues a probe to early
stopping (a second record). The training NLL is evaluated with clean weights
and untransposed pieces, like validation and test.
"""
import argparse
import json
import os
import shlex
import sys
from datetime import datetime, timezone

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import machine as host                                               # noqa: E402
from rnnlab.cli.command import main as cli                             # noqa: E402
from rnnlab.io import metrics                                          # noqa: E402
from rnnlab.music import train                                         # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RAW = os.path.join(HERE, "results", "music_nottingham_diagnosis.jsonl")
KEYS = ("weight_noise", "lr", "schedule", "patience", "optimizer", "batch_size", "transpose",
        "transpose_step", "dropout", "input_dropout", "input_flip", "window")


def record(out, note, command):
    """The record of the finished run in ``out`` (its best.npz and metrics)."""
    mcfg, params, meta = train.load_model(os.path.join(out, "best.npz"))
    cfg = meta["train_config"]
    sets = train.data_of(meta)[0]
    hist = metrics.read(os.path.join(out, "metrics.jsonl"))
    valid = [r["valid_nll"] for r in hist]
    nll = {s: round(train.evaluate(mcfg, params, sets[s], accuracy=False)["nll"], 4)
           for s in ("train", "valid", "test")}
    return {"set": cfg["data"], "cell": mcfg.mode, "units": mcfg.hidden_size,
            **{k: cfg[k] for k in KEYS}, "epochs_run": len(hist),
            "best_epoch": 1 + int(np.argmin(valid)),
            **{f"{s}_nll": v for s, v in nll.items()}, "note": note,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": host.cpu_model(), "command": command}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--note", default="", help="what the probe is for")
    args = p.parse_args(argv[:split])
    train_args = argv[split + 1:]
    if "--out" in train_args:
        out = train_args[train_args.index("--out") + 1]
    elif "--resume" in train_args:               # a probe continued (e.g. --epochs 300)
        out = os.path.dirname(train_args[train_args.index("--resume") + 1])
    else:
        sys.exit("music_probe.py: give the run's --out folder (or --resume LAST.npz) after --")
    if cli(["music", "train", *train_args, "--no-progress"]) != 0:
        sys.exit(1)
    rec = record(out, args.note, "python benchmarks/music_probe.py " + shlex.join(argv))
    with open(RAW, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
