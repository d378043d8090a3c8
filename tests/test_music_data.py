"""Music data: list-of-notes JSON, MIDI round trip, the shared sets' counts, and
bad input as one clear error line with exit code 2."""
import json
from pathlib import Path

import numpy as np
import pytest

from rnnlab.cli.command import main
from rnnlab.music import data

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "music" / "polyphonic"


def _piece(seed=0, T=12):
    r = np.random.default_rng(seed)
    roll = r.random((T, 88)) < 0.05
    roll[-1] = False                                      # a trailing rest survives too
    roll[0, [0, 87]] = True                               # both ends of the keyboard
    return roll


def test_steps_and_rolls_are_inverse():
    roll = _piece()
    assert (data.roll_from_steps(data.steps_from_roll(roll), "x") == roll).all()


def test_embedded_default_is_the_jsb_split():
    sets = data.load()
    assert [len(sets[s]) for s in data.SPLITS] == [229, 76, 77]
    assert all(r.shape[1] == 88 and r.dtype == bool for r in sets["test"])


def test_midi_round_trip_is_the_identity(tmp_path):
    pytest.importorskip("mido")
    from rnnlab.music import midi
    roll = _piece(1, 40)
    path = midi.write_midi(roll, tmp_path / "piece.mid", steps_per_beat=2)
    back = midi.read_midi(path, steps_per_beat=2)
    assert back.shape == roll.shape and (back == roll).all()


def test_midi_round_trip_of_a_test_chorale(tmp_path):
    pytest.importorskip("mido")
    from rnnlab.music import midi
    roll = data.load()["test"][0]
    back = midi.read_midi(midi.write_midi(roll, tmp_path / "c.mid", 1), 1)
    assert (back == roll).all()


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not present: {SHARED}")
@pytest.mark.parametrize("name", ["jsb", "nottingham"])
def test_shared_sets_have_the_readme_counts(name):
    sets = data.load(name)                                # check_counts raises when off
    assert len(sets["train"]) == data.EXPECTED[name][0][0]


def test_missing_shared_file_is_named(tmp_path, monkeypatch, cli_error):
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path))
    err = cli_error(["music", "train", "jsb", "--out", str(tmp_path / "r")])
    assert "jsb_chorales.json is missing" in err


def _midi_with(tmp_path, name, notes):
    mido = pytest.importorskip("mido")
    mf = mido.MidiFile()
    track = mido.MidiTrack()
    for n in notes:
        track += [mido.Message("note_on", note=n, velocity=64, time=0),
                  mido.Message("note_off", note=n, velocity=0, time=480)]
    mf.tracks.append(track)
    path = tmp_path / "midi" / name
    path.parent.mkdir(exist_ok=True)
    mf.save(str(path))
    return path


@pytest.mark.parametrize("case, words", [
    ("empty", "empty file, expected a standard MIDI file"),
    ("corrupt", "not a readable standard MIDI file"),
    ("low note", "note 12 at beat 1 is outside the piano range 21-108"),
    ("no midi", "no MIDI files (.mid, .midi) in this folder"),
    ("json shape", "expected an object with keys train, valid, test"),
    ("json pitch", "train piece 0, step 1: expected MIDI pitches 21-108 (piano keys), got 200"),
])
def test_bad_input_is_one_clear_line(tmp_path, cli_error, case, words):
    folder = tmp_path / "midi"
    folder.mkdir()
    if case == "empty":
        (folder / "a.mid").write_bytes(b"")
    elif case == "corrupt":
        (folder / "a.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    elif case == "low note":
        _midi_with(tmp_path, "a.mid", [60, 12])
    elif case == "no midi":
        (folder / "notes.txt").write_text("nothing")
    elif case.startswith("json"):
        folder = tmp_path / "d.json"
        bad = [[[60]]] if case == "json shape" else {"train": [[[60], [200]]], "valid": [],
                                                     "test": []}
        folder.write_text(json.dumps(bad))
    err = cli_error(["music", "train", str(folder), "--out", str(tmp_path / "r"),
                     "--epochs", "1", "--no-progress"])
    assert words in err, err


def test_a_folder_of_midi_files_trains(tmp_path, capsys):
    pytest.importorskip("mido")
    from rnnlab.music import midi
    for k in range(3):
        midi.write_midi(_piece(k, 10), tmp_path / "in" / f"sub{k % 2}" / f"p{k}.mid", 2)
    sets = data.load(str(tmp_path / "in"), steps_per_beat=2)
    assert sum(len(v) for v in sets.values()) == 5           # 3 to train; valid, test reuse one
    assert main(["music", "train", str(tmp_path / "in"), "--out", str(tmp_path / "r"),
                 "--epochs", "1", "--hidden-size", "3", "--no-progress"]) == 0
    assert "test NLL" in capsys.readouterr().out


def _narrow(seed, lo, hi, T=6):
    """A piece whose notes span MIDI pitches lo..hi (both present)."""
    roll = np.zeros((T, 88), dtype=bool)
    roll[0, lo - data.LOWEST] = roll[-1, hi - data.LOWEST] = True
    roll[1:-1, lo - data.LOWEST:hi - data.LOWEST + 1] = (
        np.random.default_rng(seed).random((T - 2, hi - lo + 1)) < 0.3)
    return roll


def test_transposition_keeps_every_piece_on_the_keys_and_repeats_with_the_seed():
    # near the bottom, near the top, mid-range, and a piece of rests only
    rolls = [_narrow(0, 22, 60), _narrow(1, 70, 106), _narrow(2, 50, 70),
             np.zeros((4, 88), dtype=bool)]
    ranges = data.shift_ranges(rolls)
    assert ranges[:3].tolist() == [[-1, 48], [-49, 2], [-29, 38]]
    draws = [data.random_shifts(ranges, 5, np.random.default_rng([7, e])) for e in range(200)]
    shifts = np.array(draws)                                           # (epochs, pieces)
    assert shifts[:, 0].min() == -1 and shifts[:, 1].max() == 2       # the keys' ends hold
    assert shifts.min() == -5 and shifts.max() == 5 and len(np.unique(shifts[:, 2])) == 11
    again = data.random_shifts(ranges, 5, np.random.default_rng([7, 3]))
    np.testing.assert_array_equal(again, draws[3])
    for roll, s in zip(rolls, draws[3]):
        moved = data.transpose(roll, s)
        assert moved.sum() == roll.sum()                               # no note lost
        np.testing.assert_array_equal(data.transpose(moved, -s), roll)
    assert not data.random_shifts(ranges, 0, np.random.default_rng(0)).any()
    octaves = np.array([data.random_shifts(ranges, 12, np.random.default_rng(e), 12)
                        for e in range(50)])
    assert set(octaves[:, 0]) == {0, 12} and set(octaves[:, 1]) == {-12, 0}
    assert set(octaves[:, 2]) == {-12, 0, 12}


def test_a_shift_off_the_keys_is_refused():
    with pytest.raises(ValueError, match="shift of 3 semitones takes notes 70-106 off the piano"):
        data.transpose(_narrow(1, 70, 106), 3)
