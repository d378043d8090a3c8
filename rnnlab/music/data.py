"""Polyphonic music as piano rolls: readers for the classic sets and for MIDI folders.

A piece is a boolean piano roll ``(T, 88)``: row t is time step t, column j is
MIDI pitch ``21 + j`` (the 88 piano keys, A0 = 21 to C8 = 108). A data set is
``{"train": [roll, ...], "valid": [...], "test": [...]}``.

Sources (``load(source)``):

- ``None`` or ``"bach"``: the embedded default, the JSB Chorales (Bach, public
  domain) as encoded by Boulanger-Lewandowski et al. 2012 (standard 229/76/77
  split, one step per quarter note), shipped inside the package (42 kB).
- ``"jsb"``, ``"nottingham"``, ``"musedata"``, ``"piano-midi"``: the four
  Boulanger-Lewandowski sets in ``shared/data/music/polyphonic/`` (list-of-notes
  JSON; the data folder is ``$RNNLAB_DATA`` or ``../shared/data`` beside the
  repository).
- a ``.json`` file of that form: ``{"train": [[[pitch, ...], ...], ...], ...}``.
- a folder of MIDI files (``.mid``/``.midi``, searched recursively): each file
  one piece, split 80/10/10 in a fixed order (sorted names, seeded shuffle).

Every split must hold at least one piece (``check_sets``): training needs
pieces, and the scores are averages over the frames of valid and test.
"""
import gzip
import json
import os
import sys
from pathlib import Path

import numpy as np

LOWEST, KEYS = 21, 88                      # MIDI pitch of column 0; columns
SPLITS = ("train", "valid", "test")
EMBEDDED = Path(__file__).with_name("jsb_chorales.json.gz")
DATASETS = {"jsb": "jsb_chorales.json", "nottingham": "nottingham.json",
            "musedata": "musedata.json", "piano-midi": "piano_midi.json"}
# the counts the data README gives: sequences and time steps per split
EXPECTED = {"jsb": ((229, 76, 77), (13807, 4602, 4725)),
            "nottingham": ((694, 173, 170), (176561, 45513, 44463)),
            "musedata": ((524, 135, 124), (245202, 82755, 64339)),
            "piano-midi": ((87, 12, 25), (75911, 8540, 19036))}
# steps per quarter note of each set, for MIDI and audio output
STEPS_PER_BEAT = {"bach": 1, "jsb": 1, "nottingham": 2, "musedata": 2, "piano-midi": 2}


def data_dir():
    """The shared data folder: ``$RNNLAB_DATA`` or ``shared/data`` next to the repository."""
    env = os.environ.get("RNNLAB_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


def roll_from_steps(steps, where):
    """A list of time steps, each a list of MIDI pitches, as a (T, 88) bool roll."""
    if not isinstance(steps, list) or not steps:
        raise ValueError(f"{where}: expected a non-empty list of time steps, got "
                         f"{_what(steps)}")
    roll = np.zeros((len(steps), KEYS), dtype=bool)               # (T, 88)
    for t, chord in enumerate(steps):
        if not isinstance(chord, list):
            raise ValueError(f"{where}, step {t}: expected a list of MIDI pitches, got "
                             f"{_what(chord)}")
        for p in chord:
            if not isinstance(p, int) or isinstance(p, bool) or not LOWEST <= p < LOWEST + KEYS:
                raise ValueError(f"{where}, step {t}: expected MIDI pitches 21-108 (piano "
                                 f"keys), got {p!r}")
            roll[t, p - LOWEST] = True
    return roll


def steps_from_roll(roll):
    """The inverse: a list of ascending pitch lists."""
    return [[int(j) + LOWEST for j in np.flatnonzero(row)] for row in roll]


def shift_ranges(rolls):
    """(n, 2) int: for each piece the lowest and highest transposition in
    semitones that keeps every one of its notes on the 88 keys (an empty piece:
    any shift up to a full keyboard)."""
    out = np.empty((len(rolls), 2), dtype=np.int64)
    for i, roll in enumerate(rolls):
        cols = np.flatnonzero(roll.any(axis=0))
        lo, hi = (int(cols[0]), int(cols[-1])) if len(cols) else (KEYS - 1, 0)
        out[i] = -lo, KEYS - 1 - hi
    return out


def random_shifts(ranges, k, rng, step=1):
    """One shift per piece, uniform over the multiples of ``step`` in [-k, k]
    that keep the piece on the keys (``ranges`` from ``shift_ranges``; k = 0:
    all zero; step 12: octaves only, the key kept)."""
    lo = -(-np.maximum(ranges[:, 0], -k) // step)                     # ceil
    hi = np.minimum(ranges[:, 1], k) // step
    return step * rng.integers(lo, hi + 1)


def windows(T, L, rng):
    """The (start, stop) frames of a T-frame piece cut every L frames from a
    random phase p: [0, p), [p, p + L), ..., so every frame is in one window."""
    cuts = [0] + list(range(int(rng.integers(0, L)) or L, T, L)) + [T]
    return list(zip(cuts[:-1], cuts[1:]))


def transpose(roll, shift):
    """``roll`` (T, 88) moved up by ``shift`` semitones (down if negative)."""
    cols = np.flatnonzero(roll.any(axis=0))
    if len(cols) and not -cols[0] <= shift <= KEYS - 1 - cols[-1]:
        raise ValueError(f"transpose: a shift of {shift} semitones takes notes "
                         f"{cols[0] + LOWEST}-{cols[-1] + LOWEST} off the piano keys 21-108")
    return np.roll(roll, shift, axis=1)          # in range: no note wraps around


def _what(v):
    return f"{type(v).__name__} {v!r}"[:60]


def parse_sets(d, where):
    """{"train", "valid", "test"} -> lists of rolls, with errors naming the place."""
    if not isinstance(d, dict) or not set(SPLITS) <= set(d):
        keys = sorted(d) if isinstance(d, dict) else _what(d)
        raise ValueError(f"{where}: expected an object with keys train, valid, test (each a "
                         f"list of pieces), got {keys}")
    out = {}
    for split in SPLITS:
        pieces = d[split]
        if not isinstance(pieces, list):
            raise ValueError(f"{where}: {split} must be a list of pieces, got {_what(pieces)}")
        out[split] = [roll_from_steps(p, f"{where}: {split} piece {i}")
                      for i, p in enumerate(pieces)]
    return check_sets(out, where)


def check_sets(sets, where):
    """``sets``, or a ValueError naming ``where`` and the first empty split: an
    empty train split trains nothing (and its note frequencies are 0/0), an empty
    valid or test split has no frames to average a score over."""
    for split in SPLITS:
        if not sets[split]:
            raise ValueError(f"{where}: the {split} split is empty; expected at least one "
                             f"piece in each of {', '.join(SPLITS)}")
    return sets


def load_json(path):
    """A list-of-notes JSON file (optionally gzipped) as {split: [roll, ...]}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            d = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError, EOFError, OSError) as e:
        raise ValueError(f"{path}: not a readable JSON file ({type(e).__name__}: {e})") from None
    return parse_sets(d, str(path))


def shared_file(name):
    folder = data_dir() / "music" / "polyphonic"
    path = folder / DATASETS[name]
    if not path.is_file():
        raise FileNotFoundError(
            f"data set {name!r}: {path} is missing (the Boulanger-Lewandowski sets live in "
            f"shared/data/music/polyphonic/; set RNNLAB_DATA to the folder holding music/)")
    return path


def check_counts(name, sets):
    """Compare sequences and steps per split with the data README; ValueError if off."""
    want = EXPECTED[name]
    got = (tuple(len(sets[s]) for s in SPLITS), tuple(sum(len(r) for r in sets[s]) for s in SPLITS))
    if got != want:
        raise ValueError(f"data set {name!r}: expected {want[0]} sequences and {want[1]} time "
                         f"steps (train/valid/test), found {got[0]} and {got[1]}")


def load(source=None, steps_per_beat=2, seed=0):
    """{split: [roll (T, 88) bool, ...]} from a name, a JSON file or a MIDI folder."""
    if source in (None, "bach"):
        return load_json(EMBEDDED)
    if source in DATASETS:
        sets = load_json(shared_file(source))
        check_counts(source, sets)
        return sets
    path = Path(source)
    if path.is_dir():
        from rnnlab.music import midi
        pieces = midi.read_folder(path, steps_per_beat)
        if len(pieces) < 10:      # said where every command reads it, not in a docstring only
            print(f"warning: {source}: {len(pieces)} MIDI file(s), fewer than 10, so valid "
                  "and test reuse a training piece: their scores are training scores",
                  file=sys.stderr)
        return split_pieces(pieces, seed)
    if path.suffix in (".json", ".gz"):
        return load_json(path)
    if not path.exists():
        raise FileNotFoundError(f"{source}: no such file or folder (expected a MIDI folder, a "
                                f"JSON file, or one of bach, {', '.join(DATASETS)})")
    raise ValueError(f"{source}: expected a MIDI folder, a .json file, or one of bach, "
                     f"{', '.join(DATASETS)}")


def split_pieces(pieces, seed=0):
    """80/10/10 train/valid/test in a seeded order. With fewer than 10 pieces
    valid or test would be empty; they then reuse the first training piece, so
    a tiny folder still trains (its scores are then training scores; ``load``
    prints a warning saying so)."""
    order = np.random.default_rng(seed).permutation(len(pieces))
    n = len(pieces)
    n_test = n // 10
    n_valid = n // 10
    test = [pieces[i] for i in order[:n_test]]
    valid = [pieces[i] for i in order[n_test:n_test + n_valid]]
    train = [pieces[i] for i in order[n_test + n_valid:]]
    return {"train": train, "valid": valid or train[:1], "test": test or train[:1]}


def steps_per_beat_of(source, default=2):
    return STEPS_PER_BEAT.get(source if source is not None else "bach", default)
