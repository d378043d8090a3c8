"""Standard MIDI files in and out of (T, 88) piano rolls, through ``mido``.

Why mido (the ``music`` extra): it is small, pure Python, maintained, and reads
and writes the raw messages of any standard MIDI file, which is all a piano
roll needs; pretty_midi is built on mido and adds an object model (instruments,
pitch bends, its own synthesis) that we do not use.

Reading quantises time to ``steps_per_beat`` steps per quarter note: a note
sounding from tick a to tick b covers steps round(a/s) .. round(b/s) - 1 (at
least one step), with s ticks per step; the roll lasts until the last note
or the end of the longest track, whichever is later. Percussion (channel 10)
is skipped.
Writing turns every run of consecutive on-steps of a pitch into one note, so
piano roll -> MIDI -> piano roll is the identity (held and repeated notes are
not distinguished by a piano roll in the first place).
"""
from pathlib import Path

import numpy as np

from rnnlab.io.atomic import atomic_path
from rnnlab.music.data import KEYS, LOWEST

TICKS_PER_BEAT = 480
MIDI_SUFFIXES = (".mid", ".midi")


def _mido():
    try:
        import mido
    except ImportError:
        raise ValueError("MIDI needs mido: pip install 'rnnlab[music]'") from None
    return mido


def _open(path):
    mido = _mido()
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, expected a MIDI file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such MIDI file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file, expected a standard MIDI file")
    try:
        return mido.MidiFile(str(path), clip=True)
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as e:
        raise ValueError(f"{path}: not a readable standard MIDI file ({type(e).__name__}: "
                         f"{e})") from None


def _notes(mf):
    """(pitch, start tick, end tick) for every note, all tracks merged; and the
    last tick of the longest track."""
    notes, sounding, end = [], {}, 0
    for track in mf.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type not in ("note_on", "note_off") or msg.channel == 9:
                continue
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                sounding.setdefault(key, []).append(tick)
            elif sounding.get(key):
                notes.append((msg.note, sounding[key].pop(0), tick))
        for (_, pitch), starts in sounding.items():          # never released: to track end
            notes.extend((pitch, s, tick) for s in starts)
        sounding, end = {}, max(end, tick)
    return notes, end


def read_midi(path, steps_per_beat=2):
    """A MIDI file as a (T, 88) bool piano roll at ``steps_per_beat`` steps per beat."""
    mf = _open(path)
    if mf.type == 2:
        raise ValueError(f"{path}: MIDI type 2 (independent sequences) is not supported")
    notes, end = _notes(mf)
    if not notes:
        raise ValueError(f"{path}: the MIDI file has no notes")
    step = mf.ticks_per_beat / steps_per_beat
    for pitch, start, _ in notes:
        if not LOWEST <= pitch < LOWEST + KEYS:
            raise ValueError(f"{path}: note {pitch} at beat {start / mf.ticks_per_beat:g} is "
                             f"outside the piano range 21-108 (A0-C8)")
    spans = [(p, int(round(a / step)), max(int(round(b / step)), int(round(a / step)) + 1))
             for p, a, b in notes]
    T = max(max(e for _, _, e in spans), int(round(end / step)))
    roll = np.zeros((T, KEYS), dtype=bool)                        # (T, 88)
    for p, s, e in spans:
        roll[s:e, p - LOWEST] = True
    return roll


def read_folder(folder, steps_per_beat=2):
    """Every MIDI file under ``folder`` (sorted by path) as a list of rolls."""
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in MIDI_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no MIDI files (.mid, .midi) in this folder")
    return [read_midi(p, steps_per_beat) for p in files]


def write_midi(roll, path, steps_per_beat=2, bpm=100, velocity=80, program=0):
    """Write a (T, 88) roll as a one-track MIDI file (atomic); returns the path."""
    mido = _mido()
    roll = np.asarray(roll, dtype=bool)
    if roll.ndim != 2 or roll.shape[1] != KEYS:
        raise ValueError(f"piano roll: expected shape (T, {KEYS}), got {roll.shape}")
    step = TICKS_PER_BEAT // steps_per_beat
    padded = np.zeros((roll.shape[0] + 2, KEYS), dtype=np.int8)
    padded[1:-1] = roll
    edges = np.diff(padded, axis=0)                               # (T+1, 88): +1 on, -1 off
    events = [(t * step, 0 if d < 0 else 1, j + LOWEST) for t, j in zip(*np.nonzero(edges))
              for d in [edges[t, j]]]
    events.sort()                                                 # offs before ons at a tick
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0),
                            mido.Message("program_change", program=program, time=0)])
    now = 0
    for tick, on, pitch in events:
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, note=int(pitch), velocity=velocity if on else 0,
                                  time=int(tick - now)))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=int(roll.shape[0] * step - now)))
    mf = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    mf.tracks.append(track)
    with atomic_path(path) as tmp:
        mf.save(tmp)
    return path
