"""Round twelve's audit of ``rnnlab music``: every bad input is one line naming the
argument or file, exit code 2, and nothing written; tiny data, H = 2, one step."""
import argparse
import json

import numpy as np
import pytest

from rnnlab.cli import music as music_cli
from rnnlab.cli.command import build_parser, main
from rnnlab.music import data, generate, model, train

TRAIN = ["--epochs", "1", "--max-steps", "1", "--hidden-size", "2", "--no-progress"]


def _json(folder, train=3, valid=1, test=1, name="d.json"):
    """A list-of-notes file with that many six-step pieces per split."""
    piece = [[60], [62, 67], [64], [65], [67], [60, 64]]
    path = folder / name
    path.write_text(json.dumps({"train": [piece] * train, "valid": [piece] * valid,
                                "test": [piece] * test}))
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A music checkpoint trained one step on the tiny data (its test pieces: 6 steps)."""
    folder = tmp_path_factory.mktemp("ck")
    assert main(["music", "train", str(_json(folder)), "--out", str(folder / "run"),
                 *TRAIN]) == 0
    return str(folder / "run" / "best.npz")


# 1, 2: an empty split is refused where the data is read, for every command
@pytest.mark.parametrize("sizes, split", [((3, 0, 1), "valid"), ((3, 1, 0), "test"),
                                          ((0, 1, 1), "train"), ((0, 0, 0), "train")],
                         ids=["novalid", "notest", "notrain", "all-empty"])
def test_empty_split_is_named_by_train_and_eval(tmp_path, cli_error, ckpt, sizes, split):
    path = _json(tmp_path, *sizes)
    out = tmp_path / "run"
    err = cli_error(["music", "train", str(path), "--out", str(out), *TRAIN])
    assert f"{path}: the {split} split is empty" in err and "expected at least one" in err
    assert not out.exists()                               # no (unloadable) checkpoint
    err = cli_error(["music", "eval", ckpt, "--data", str(path)])
    assert f"{path}: the {split} split is empty" in err


def test_no_weights_of_a_wrong_shape_reach_a_checkpoint(tmp_path):
    # the 0-d out.bias came from sum() over no pieces: the int 0, not 88 zeros
    assert model.note_frequencies([]).shape == (88,)
    sets = {"train": [], "valid": [np.ones((2, 88), bool)], "test": [np.ones((2, 88), bool)]}
    cfg = train.MusicOptions(data="x", hidden_size=2, epochs=1, max_steps=1, progress=False,
                             out=str(tmp_path / "api"))
    with pytest.raises(ValueError, match="sets: the train split is empty"):
        train.fit(cfg, sets, log=lambda s: None)
    assert not (tmp_path / "api").exists()
    with pytest.raises(ValueError, match="expected at least one piece"):
        train.evaluate(cfg.model_config(), model.init_params(cfg.model_config()), [])


def test_resume_from_weights_of_a_wrong_shape_is_refused(tmp_path, cli_error, ckpt):
    bad = tmp_path / "bad.npz"
    with np.load(ckpt.replace("best.npz", "last.npz")) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["param/out.bias"] = np.float32(0.0)            # shape (), as the audit found
    np.savez(bad, **arrays)
    out = tmp_path / "again"
    err = cli_error(["music", "train", "--resume", str(bad), "--epochs", "2",
                     "--out", str(out), "--no-progress"])
    assert f"{bad}: weights['out.bias'] must have shape (88,), got ()" in err
    assert not out.exists()


# 3, 5, 6: sample's options are declared with their ranges (generate.SampleOptions)
@pytest.mark.parametrize("flags, words", [
    (["--temperature", "nan"], "--temperature: expected a number > 0, got nan"),
    (["--temperature", "inf"], "--temperature: expected a number > 0, got inf"),
    (["--seed", "-1"], "--seed: expected an integer >= 0, got -1"),
    (["--length", "100000000"], "--length: expected an integer >= 1 and <= 10000, got 100000000"),
    (["-n", "100000"], "--num: expected an integer >= 1 and <= 100, got 100000"),
    (["--primer-steps", "100000"], "--primer-steps: expected an integer >= 1 and <= 10000"),
], ids=["nan", "inf", "seed", "length", "num", "primer-steps"])
def test_sample_options_are_checked_and_named(tmp_path, cli_error, ckpt, flags, words):
    out = tmp_path / "s"
    err = cli_error(["music", "sample", ckpt, "--out", str(out), "--primer", "none",
                     "--length", "12", *flags])
    assert words in err
    assert not out.exists()


def test_sample_api_refuses_a_temperature_that_is_not_finite():
    mcfg = model.MusicConfig(mode="gru", hidden_size=2)
    params = model.init_params(mcfg, 0)
    for t in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="--temperature: expected a number > 0"):
            generate.sample(mcfg, params, 4, temperature=t)


def test_train_seed_is_named(tmp_path, cli_error):
    err = cli_error(["music", "train", str(_json(tmp_path)), "--out", str(tmp_path / "r"),
                     *TRAIN, "--seed", "-1"])
    assert "--seed: expected an integer >= 0, got -1" in err


# 4: a primer longer than --length is found before anything is written
def test_sample_checks_the_primer_length_before_writing(tmp_path, cli_error, ckpt):
    out = tmp_path / "s"
    err = cli_error(["music", "sample", ckpt, "-n", "1", "--length", "4",
                     "--out", str(out)])
    assert not out.exists()                                  # no curves.png
    assert "--length: expected at least the primer's 6 steps" in err and "got 4" in err


# 7: --out under a file, --primer a folder
def test_sample_out_and_primer_are_named(tmp_path, cli_error, ckpt):
    afile = tmp_path / "afile"
    afile.write_text("x")
    err = cli_error(["music", "sample", ckpt, "--length", "12", "--out",
                     str(afile / "x")])
    assert f"--out {afile / 'x'}: " in err and "is a file, so no folder can be made" in err
    adir = tmp_path / "adir"
    adir.mkdir()
    out = tmp_path / "s"
    err = cli_error(["music", "sample", ckpt, "--length", "12", "--out", str(out),
                     "--primer", str(adir)])
    assert f"--primer {adir}: is a folder, expected a MIDI file" in err
    err = cli_error(["music", "sample", ckpt, "--length", "12", "--out", str(out),
                     "--primer", str(tmp_path / "nothing.mid")])
    assert f"--primer {tmp_path / 'nothing.mid'}: no such file" in err
    assert not out.exists()


# 8: valid and test reusing a training piece is said on the command line
def test_a_small_midi_folder_warns_that_scores_are_training_scores(tmp_path, capsys):
    pytest.importorskip("mido")
    from rnnlab.music import midi
    folder = tmp_path / "midi"
    midi.write_midi(np.eye(6, 88, 39, dtype=bool), folder / "a.mid", 2)
    assert main(["music", "train", str(folder), "--out", str(tmp_path / "r"), *TRAIN]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "fewer than 10" in err and "training scores" in err
    assert main(["music", "eval", str(tmp_path / "r" / "best.npz")]) == 0
    assert "training scores" in capsys.readouterr().err
    # ten pieces or more: a real split, no warning
    for k in range(1, 10):
        midi.write_midi(np.eye(6, 88, 39 + k, dtype=bool), folder / f"p{k}.mid", 2)
    data.load(str(folder))
    assert "warning" not in capsys.readouterr().err


# 9: run_train keeps args.music_command, which main's out-of-memory line can name
def test_train_leaves_the_subcommand_in_args(tmp_path, monkeypatch):
    def no_memory(*a, **k):
        raise MemoryError
    monkeypatch.setattr(train, "fit", no_memory)
    args = build_parser().parse_args(["music", "train", str(_json(tmp_path)),
                                      "--out", str(tmp_path / "r"), *TRAIN])
    with pytest.raises(MemoryError):
        music_cli.run_train(args)
    assert isinstance(args, argparse.Namespace) and args.music_command == "train"


def test_sample_bounds_pieces_times_steps():
    """-n and --length are each bounded, and so is their product: 100 pieces of
    10,000 steps would write about 45 GB of page, MIDI and audio."""
    from rnnlab.music import generate
    generate.SampleOptions(checkpoint="x.npz", num=2, length=10_000)
    with pytest.raises(ValueError, match=r"-n 100 x --length 10000: expected at most 20,000"):
        generate.SampleOptions(checkpoint="x.npz", num=100, length=10_000)
