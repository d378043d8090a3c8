"""rnnlab music train / eval / sample end to end on tiny data: the frequency
model's NLL computed independently, exact resume, the sample outputs."""
import json
import re

import numpy as np
import pytest

from rnnlab.cli.command import main
from rnnlab.io import checkpoint
from rnnlab.music import data, model, train


def _sets(seed=0):
    r = np.random.default_rng(seed)
    def piece(T):
        roll = r.random((T, 88)) < 0.04
        roll[:, 39] |= r.random(T) < 0.7                  # one common note
        return roll
    return {s: [piece(int(r.integers(5, 12))) for _ in range(n)]
            for s, n in (("train", 6), ("valid", 3), ("test", 3))}


def _json(tmp_path, sets):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({s: [data.steps_from_roll(r) for r in v] for s, v in sets.items()}))
    return path


def test_frequency_model_nll_matches_rnnlab_music_eval(tmp_path, capsys):
    sets = _sets()
    path = _json(tmp_path, sets)
    # independently: each note on with its smoothed training frequency, every frame pooled
    on = np.sum([r.sum(0) for r in sets["train"]], axis=0)
    frames = sum(len(r) for r in sets["train"])
    p = (on + 1.0) / (frames + 2.0)
    test = np.concatenate(sets["test"])
    want = -(test * np.log(p) + (~test) * np.log(1 - p)).sum() / len(test)
    # the same model as a checkpoint: every weight zero, output biases logit(p)
    mcfg = model.MusicConfig(mode="gru", hidden_size=3)
    params = {k: np.zeros_like(v) for k, v in model.init_params(mcfg, 0, np.float64).items()}
    params["out.bias"] = np.log(p) - np.log1p(-p)
    ck = tmp_path / "freq.npz"
    checkpoint.save(str(ck), params, meta={"app": {"model": mcfg.to_dict(), "data": str(path)}},
                    kind="music")
    assert main(["music", "eval", str(ck)]) == 0
    got = float(re.search(r"NLL ([0-9.]+) nats", capsys.readouterr().out).group(1))
    assert got == pytest.approx(want, abs=1e-4)


def _train(tmp_path, out, *extra):
    return main(["music", "train", str(_json(tmp_path, _sets())), "--out", str(out),
                 "--mode", "gru", "--hidden-size", "4", "--batch-size", "2", "--no-progress",
                 "--lr", "0.01", *extra])


# round four's regularisers draw from the seed too: a resumed run repeats them
@pytest.mark.parametrize("extra", [(), ("--transpose", "3", "--dropout", "0.3",
                                        "--input-dropout", "0.2", "--input-flip", "0.02",
                                        "--window", "4")])
def test_train_then_resume_matches_an_uninterrupted_run(tmp_path, capsys, extra):
    assert _train(tmp_path, tmp_path / "a", "--epochs", "3", *extra) == 0
    assert _train(tmp_path, tmp_path / "b", "--epochs", "2", *extra) == 0
    assert main(["music", "train", "--resume", str(tmp_path / "b" / "last.npz"),
                 "--epochs", "3", "--no-progress"]) == 0
    a = checkpoint.load(str(tmp_path / "a" / "last.npz"), kind="music")
    b = checkpoint.load(str(tmp_path / "b" / "last.npz"), kind="music")
    for k in a["params"]:
        np.testing.assert_array_equal(a["params"][k], b["params"][k])
    assert "test NLL" in capsys.readouterr().out


def test_nade_run_learns_something(tmp_path):
    sets = _sets(1)
    cfg = train.MusicOptions(data="x", mode="lstm", hidden_size=4, output="nade", nade_hidden=4,
                             epochs=4, lr=0.01, batch_size=2, progress=False,
                             out=str(tmp_path / "n"))
    mcfg, st = train.fit(cfg, sets, log=lambda s: None)
    assert st.history[-1]["valid_nll"] < st.history[0]["valid_nll"]


def test_sample_writes_midi_png_wav_and_page(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("mido")
    assert _train(tmp_path, tmp_path / "a", "--epochs", "1") == 0
    out = tmp_path / "s"
    assert main(["music", "sample", str(tmp_path / "a" / "best.npz"), "--out", str(out),
                 "-n", "1", "--length", "6", "--primer-steps", "2"]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"sample_0.mid", "sample_0.png", "sample_0.wav", "real_0.png", "report.html"} <= names
    page = (out / "report.html").read_text()
    assert page.count("<audio") == 2 and "NLL" in page
    from rnnlab.music import midi
    sample = midi.read_midi(out / "sample_0.mid", 2)
    assert (sample[:2] == _sets()["test"][0][:2]).all()   # the primer is kept as given


def test_sample_rejects_a_bad_temperature(tmp_path, capsys):
    assert _train(tmp_path, tmp_path / "a", "--epochs", "1") == 0
    capsys.readouterr()
    assert main(["music", "sample", str(tmp_path / "a" / "best.npz"), "--temperature", "0",
                 "--out", str(tmp_path / "s")]) == 2
    assert "--temperature: expected a number > 0" in capsys.readouterr().err


def test_chung_recipe_from_a_toml_file(tmp_path):
    from rnnlab.cli.command import build_parser
    from rnnlab.training import trainer
    toml = tmp_path / "chung.toml"
    toml.write_text('mode = "rnn"\nhidden-size = 100\noptimizer = "rmsprop"\nlr = 3e-3\n'
                    'clip = 1.0\nweight-noise = 0.075\nschedule = "plateau"\nlr-decay = 0.5\n'
                    'patience = 2\nearly-stop = 10\nbatch-size = 1\n')
    args = build_parser().parse_args(["music", "train", "jsb", "--config", str(toml),
                                      "--epochs", "200"])
    del args.music_command
    cfg, _ = trainer.config_from_args(train.MusicOptions, args, train.KIND)
    assert (cfg.data, cfg.mode, cfg.hidden_size, cfg.optimizer, cfg.lr, cfg.clip,
            cfg.weight_noise, cfg.schedule, cfg.lr_decay, cfg.patience, cfg.early_stop,
            cfg.epochs, cfg.monitor) == (
        "jsb", "rnn", 100, "rmsprop", 3e-3, 1.0, 0.075, "plateau", 0.5, 2, 10, 200, "valid_nll")
    # the file holds exactly the defaults: the command line alone gives the same recipe
    plain = build_parser().parse_args(["music", "train", "jsb", "--mode", "rnn",
                                       "--hidden-size", "100", "--epochs", "200"])
    del plain.music_command
    assert trainer.config_from_args(train.MusicOptions, plain, train.KIND)[0] == cfg


def test_init_from_starts_at_the_given_weights(tmp_path, capsys):
    assert _train(tmp_path, tmp_path / "a", "--epochs", "1") == 0
    start = str(tmp_path / "a" / "best.npz")
    assert _train(tmp_path, tmp_path / "b", "--epochs", "1", "--init-from", start,
                  "--lr", "1e-12") == 0
    a = checkpoint.load(start, kind="music")["params"]
    b = checkpoint.load(str(tmp_path / "b" / "last.npz"), kind="music")["params"]
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-9)
    capsys.readouterr()
    assert _train(tmp_path, tmp_path / "c", "--epochs", "1", "--init-from", start,
                  "--hidden-size", "5") == 2
    assert "--init-from" in capsys.readouterr().err


def test_transposition_moves_the_training_pieces_only(tmp_path):
    sets = _sets(2)
    cfg = train.MusicOptions(data="x", mode="gru", hidden_size=3, transpose=3, seed=5)
    task = train.MusicTask(cfg, cfg.model_config(), sets)
    pick = list(range(len(sets["train"])))
    first = task._pieces(4, pick)
    assert all((a == b).all() for a, b in zip(first, task._pieces(4, pick)))   # same epoch
    moved = [next(s for s in range(-3, 4) if (np.roll(r, s, axis=1) == m).all())
             for r, m in zip(sets["train"], first)]
    assert any(moved) and moved != [0] * len(moved)
    later = task._pieces(5, pick)
    assert any((a != b).any() for a, b in zip(first, later))                   # a new draw
    assert task.valid is sets["valid"]


def test_windows_cover_every_training_frame_once_per_epoch():
    sets = _sets(3)
    cfg = train.MusicOptions(data="x", mode="gru", hidden_size=3, window=4, batch_size=3)
    task = train.MusicTask(cfg, cfg.model_config(), sets)
    for epoch in (1, 2):
        seen = [np.zeros(len(r), int) for r in sets["train"]]
        for j, s, e in task._plan(epoch):
            assert 0 < e - s <= 4
            seen[j][s:e] += 1
        assert all((c == 1).all() for c in seen)
    assert task._plan(1) != task._plan(2)                         # a new cut each epoch
    assert task.steps(1) == -(-len(task._plan(1)) // 3)
    # a window's first input is the frame before it in the piece
    j, s, e = next(w for w in task._plan(1) if w[1] > 0)
    b = model.make_batch([sets["train"][j][s:e]], np.float64, sets["train"][j][s - 1][None])
    np.testing.assert_array_equal(b.x[0, 0], sets["train"][j][s - 1])
    np.testing.assert_array_equal(b.x[1:, 0], sets["train"][j][s:e - 1])
