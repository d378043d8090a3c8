"""Why our Nottingham and MuseData NLLs sit above Chung et al. 2014: the checks
that need no training, recorded.

1. Data: each JSON set against its ``.mat`` original (same pieces, same
   rolls, steps per split as the data README), needs scipy.
2. References that need no network: the frequency model (each note on with its
   training frequency) and a per-note Markov chain (p(on | the same note on or
   off one step before), counted on train, add-one smoothed).
3. Keys: the key of every piece, estimated by the Krumhansl-Schmuckler method
   (pitch-class counts correlated with the 24 rotated Krumhansl-Kessler
   profiles), counted per split: a set already transposed to a common key
   gains nothing from transposition augmentation (round four).
4. Counting: for the best checkpoint of every (set, cell) under ``--runs``,
   the NLL per time step as issue 8 defines it (every frame of a split pooled,
   the first frame of each piece included: ``pooled``), and as others count it:
   without the first frame of each piece (``no_first``: locuslab/TCN's
   ``x = piece[:-1], y = piece[1:]``), the mean of per-piece means
   (``per_piece``), and both. The headline metric stays ``pooled``.

    python benchmarks/music_diagnosis.py [--sets nottingham musedata jsb piano-midi]
        [--runs runs/music_r2]

Appends to ``benchmarks/results/music_diagnosis.jsonl`` and rewrites
``benchmarks/results/music_diagnosis.md`` from the latest record of each kind.
"""
import argparse
import json
import os
import sys
from datetime import datetime, timezone

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import machine as host                                               # noqa: E402
from rnnlab.io import metrics                                          # noqa: E402
from rnnlab.io.atomic import atomic_write                              # noqa: E402
from rnnlab.music import data, model, train                            # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RAW = os.path.join(HERE, "results", "music_diagnosis.jsonl")
TABLE = os.path.join(HERE, "results", "music_diagnosis.md")
MAT = {"jsb": "JSB_Chorales.mat", "nottingham": "Nottingham.mat", "musedata": "MuseData.mat",
       "piano-midi": "Piano_midi.mat"}
MAT_SPLITS = {"train": "traindata", "valid": "validdata", "test": "testdata"}


def check_mat(name, sets):
    """{"same": bool, "steps": [train, valid, test]} against the .mat file, or None."""
    try:
        from scipy.io import loadmat
    except ImportError:
        return None
    m = loadmat(data.data_dir() / "music" / "polyphonic" / MAT[name])
    same = all(len(m[MAT_SPLITS[s]][0]) == len(sets[s]) and
               all(np.array_equal(a.astype(bool), b) for a, b in zip(m[MAT_SPLITS[s]][0], sets[s]))
               for s in data.SPLITS)
    return {"same": bool(same), "steps": [int(sum(len(r) for r in sets[s])) for s in data.SPLITS]}


def _previous(roll):
    return np.vstack([np.zeros((1, data.KEYS), bool), roll[:-1]])        # (T, 88)


def _bernoulli_nll(p, y):
    return float(-np.where(y, np.log(p), np.log1p(-p)).sum(axis=1).mean())


def references(sets):
    """{"freq": {split: nll}, "markov": {split: nll}} per time step, pooled."""
    freq = model.note_frequencies(sets["train"])                         # (88,)
    prev = np.concatenate([_previous(r) for r in sets["train"]])
    cur = np.concatenate(sets["train"])
    on_after_on = ((prev & cur).sum(0) + 1) / (prev.sum(0) + 2)           # (88,)
    on_after_off = ((~prev & cur).sum(0) + 1) / ((~prev).sum(0) + 2)
    out = {"freq": {}, "markov": {}}
    for s in data.SPLITS:
        y = np.concatenate(sets[s])
        prev = np.concatenate([_previous(r) for r in sets[s]])
        out["freq"][s] = _bernoulli_nll(np.broadcast_to(freq, y.shape), y)
        out["markov"][s] = _bernoulli_nll(np.where(prev, on_after_on, on_after_off), y)
    return out


# Krumhansl-Kessler key profiles, from C (pitch classes C, C#, ..., B)
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
NAMES = "C C# D Eb E F F# G Ab A Bb B".split()


def key_of(roll):
    """The best-correlated of the 24 keys for a (T, 88) roll, e.g. "C major"."""
    pc = np.bincount((np.arange(data.KEYS) + data.LOWEST) % 12, roll.sum(axis=0), 12)  # (12,)
    scores = [(np.corrcoef(np.roll(prof, k), pc)[0, 1], f"{NAMES[k]} {mode}")
              for prof, mode in ((MAJOR, "major"), (MINOR, "minor")) for k in range(12)]
    return max(scores)[1]


def keys(sets):
    """{split: {key: pieces}}, most frequent first."""
    out = {}
    for s in data.SPLITS:
        names, counts = np.unique([key_of(r) for r in sets[s] if r.any()], return_counts=True)
        out[s] = {str(names[i]): int(counts[i]) for i in np.argsort(-counts, kind="stable")}
    return out


COUNTINGS = ("pooled", "no_first", "per_piece", "per_piece_no_first", "first_frame")


def countings(per_piece):
    """The four ways of averaging per-frame NLLs (a list of (T_i,) arrays)."""
    return {"pooled": float(np.concatenate(per_piece).mean()),
            "no_first": float(np.concatenate([x[1:] for x in per_piece]).mean()),
            "per_piece": float(np.mean([x.mean() for x in per_piece])),
            "per_piece_no_first": float(np.mean([x[1:].mean() for x in per_piece])),
            "first_frame": float(np.mean([x[0] for x in per_piece]))}


def checkpoint_record(name, cell, path, sets):
    mcfg, params, meta = train.load_model(path)
    params = {k: v.astype(np.float64) for k, v in params.items()}
    cfg = meta.get("train_config", {})
    rec = {"kind": "counting", "set": name, "cell": cell, "units": mcfg.hidden_size,
           "checkpoint": path, "recipe": {k: cfg.get(k) for k in (
               "optimizer", "lr", "batch_size", "weight_noise", "schedule", "epochs")}}
    for s in data.SPLITS:
        rec[s] = countings(train.piece_nlls(mcfg, params, sets[s]))
    return rec


def stamp(rec, command):
    rec.update(date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               machine=host.cpu_model(), command=command)
    with open(RAW, "a") as f:
        f.write(json.dumps(rec) + "\n")


def latest():
    recs = {}
    for r in metrics.read(RAW):
        recs[(r["kind"], r["set"], r.get("cell", ""), r.get("checkpoint", ""))] = r
    return [recs[k] for k in sorted(recs)]


def _row(*cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _three(d, fmt=".3f"):
    return " / ".join(format(d[s], fmt) for s in data.SPLITS)


def write_table():
    recs = latest()
    lines = ["# Music: checks that need no training (data, references, counting)", "",
             "Generated by `benchmarks/music_diagnosis.py` from `music_diagnosis.jsonl` (latest",
             "record of each kind). NLL per time step in nats, summed over the 88 notes.", "",
             "## Data: JSON against the `.mat` originals", "",
             _row("set", "JSON = .mat (every piece, every roll)", "steps train / valid / test",
                  "date", "command"), _row(*["---"] * 5)]
    lines += [_row(r["set"], r["same"], " / ".join(f"{n:,}" for n in r["steps"]), r["date"],
                   f"`{r['command']}`") for r in recs if r["kind"] == "data"]
    lines += ["", "## References without a network (pooled, first frame counted)", "",
              "Frequency model: each note on with its training frequency. Markov: each note",
              "on with p(on | that note on / off one step before), counted on train.", "",
              _row("set", "freq train / valid / test", "Markov train / valid / test", "date"),
              _row(*["---"] * 4)]
    lines += [_row(r["set"], _three(r["freq"]), _three(r["markov"]), r["date"])
              for r in recs if r["kind"] == "reference"]
    lines += ["", "## Keys (Krumhansl-Schmuckler estimate, pieces per key)", "",
              _row("set", "split", "pieces per key (most frequent first)", "date"),
              _row(*["---"] * 4)]
    lines += [_row(r["set"], s, ", ".join(f"{k} {n}" for k, n in r[s].items()), r["date"])
              for r in recs if r["kind"] == "keys" for s in data.SPLITS]
    lines += ["", "## Counting: one checkpoint, four averages", "",
              "`pooled` is issue 8's definition (all frames of the split pooled, the first",
              "frame of each piece predicted from the zero state and counted) and the only",
              "figure we report as ours; `no_first` drops the first frame of each piece",
              "(locuslab/TCN), `per_piece` averages per-piece means; `first` is the mean NLL",
              "of the first frames alone.", "", _row("set", "cell", "checkpoint", "recipe",
                                                     "split", *COUNTINGS, "date"),
              _row(*["---"] * (6 + len(COUNTINGS)))]
    for r in recs:
        if r["kind"] == "counting":
            c = r["recipe"]
            recipe = (f"{c['optimizer']} {c['lr']:g}, batch {c['batch_size']}, "
                      f"noise {c['weight_noise']:g}")
            lines += [_row(r["set"], f"{r['cell']} {r['units']}", f"`{r['checkpoint']}`", recipe,
                           s, *(f"{r[s][k]:.3f}" for k in COUNTINGS), r["date"])
                      for s in ("train", "test")]
    with atomic_write(TABLE) as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", nargs="+", default=["nottingham", "musedata", "jsb", "piano-midi"],
                   choices=sorted(data.DATASETS))
    p.add_argument("--cells", nargs="+", default=["rnn", "gru", "lstm"])
    p.add_argument("--runs", default="runs/music_r2",
                   help="folder of <set>-<cell>-bernoulli/best.npz (music_chung.py --out)")
    p.add_argument("--no-data", action="store_true", help="skip the data and reference checks")
    args = p.parse_args(argv)
    command = "python benchmarks/music_diagnosis.py " + " ".join(argv or sys.argv[1:])
    for name in args.sets:
        sets = data.load(name)
        if not args.no_data:
            mat = check_mat(name, sets)
            if mat is not None:
                stamp({"kind": "data", "set": name, **mat}, command)
            stamp({"kind": "reference", "set": name, **references(sets)}, command)
            stamp({"kind": "keys", "set": name, **keys(sets)}, command)
        for cell in args.cells:
            path = os.path.join(args.runs, f"{name}-{cell}-bernoulli", "best.npz")
            if os.path.exists(path):
                stamp(checkpoint_record(name, cell, path, sets), command)
        write_table()
        print(f"{name}: done", flush=True)


if __name__ == "__main__":
    main()
