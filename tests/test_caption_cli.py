"""rnnlab caption: a tiny run end to end, decoding, and clear errors for bad input."""
import numpy as np
import pytest

from rnnlab.caption import data, metrics, model, scenes, search
from rnnlab.cli.command import main

TINY = ["--train-size", "24", "--valid-size", "6", "--epochs", "1", "--batch-size", "8",
        "--channels", "2,2,2", "--hidden", "8", "--embed", "4", "--attention-size", "4",
        "--no-progress"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("cap") / "run"
    assert main(["caption", "train", "--out", str(out), *TINY]) == 0
    return str(out / "best.npz")


def _png(path, shape=(48, 48, 3), mode="RGB"):
    from PIL import Image
    img = scenes.generate(1, "test", seed=0)[0].image
    Image.fromarray(img[:shape[0], :shape[1]]).convert(mode).save(path)
    return str(path)


def test_train_eval_describe_gallery(ckpt, tmp_path, capsys):
    pytest.importorskip("PIL")
    assert main(["caption", "eval", ckpt, "-n", "6", "--json"]) == 0
    assert '"exact"' in capsys.readouterr().out
    assert main(["caption", "describe", ckpt, _png(tmp_path / "a.png")]) == 0
    line = capsys.readouterr().out
    assert line.startswith(str(tmp_path / "a.png") + ": ")
    assert set(line.split(": ", 1)[1].split()) <= set(scenes.vocabulary())
    pytest.importorskip("matplotlib")
    assert main(["caption", "gallery", ckpt, "-n", "2", "--out", str(tmp_path / "g.html")]) == 0
    assert (tmp_path / "g.html").read_text().count("<img") == 2


@pytest.mark.parametrize("argv_tail, message", [
    (["--source", "digits"], "vocabulary mismatch"),
    (["--beam", "-1"], "--beam: expected an integer from 0 to 100, got -1"),
    (["-n", "0"], "--images: expected an integer from 1 to 100,000, got 0"),
])
def test_eval_refuses_bad_input(ckpt, capsys, argv_tail, message):
    pytest.importorskip("sklearn")
    assert main(["caption", "eval", ckpt, "-n", "4", *argv_tail]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("shape, mode, message", [
    ((32, 32, 3), "RGB", "expected 48x48 pixels, got 32x32"),
    ((48, 48, 3), "L", "expected an RGB image, got mode L"),
    ((48, 48, 3), "RGBA", "got mode RGBA"),
])
def test_describe_names_the_wrong_size_or_mode(ckpt, tmp_path, capsys, shape, mode, message):
    pytest.importorskip("PIL")
    assert main(["caption", "describe", ckpt, _png(tmp_path / "b.png", shape, mode)]) == 2
    assert message in capsys.readouterr().err
    assert main(["caption", "describe", ckpt, str(tmp_path / "none.png")]) == 2
    assert "no such image" in capsys.readouterr().err


def test_checkpoint_errors(tmp_path, capsys):
    assert main(["caption", "eval", str(tmp_path / "x.npz")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert main(["caption", "train", "--channels", "8,x", "--out", str(tmp_path)]) == 2
    assert "--channels: expected" in capsys.readouterr().err


def test_auto_channels_pick_the_grid_per_source():
    from rnnlab.caption import train
    assert train.channels_of(train.CaptionOptions(source="scenes")) == (16, 32, 32, 32)
    assert train.channels_of(train.CaptionOptions(source="digits")) == (16, 32, 32)
    assert train.channels_of(train.CaptionOptions(source="digits", channels="8,8")) == (8, 8)


def test_images_and_captions_are_checked():
    v = data.source_vocab("scenes")
    with pytest.raises(ValueError, match="empty caption"):
        v.encode("   ")
    with pytest.raises(ValueError, match=r"vocabulary mismatch: \['7'\]"):
        v.encode("a 7 above a small red circle")
    with pytest.raises(ValueError, match="expected uint8 RGB pixels"):
        data.as_input(np.zeros((2, 48, 48, 3), np.float32))
    with pytest.raises(ValueError, match=r"expected RGB images of shape \(N, 48, 48, 3\), got \(2, 48, 40, 3\)"):
        data.as_input(np.zeros((2, 48, 40, 3), np.uint8))
    assert v.decode(v.encode("a small red circle")) == "a small red circle"


def test_beam_of_one_is_greedy_and_returns_attention_maps():
    cfg = model.ModelConfig("attend", 20, channels=(2, 2, 2), embed=4, hidden=8, attention=4)
    params = model.init_params(cfg, 3, np.float64)
    x = data.as_input(np.stack([s.image for s in scenes.generate(3, "test", 0)])).astype(np.float64)
    ids, maps = search.greedy(cfg, params, x, max_len=6)
    for i in range(3):
        b_ids, lp, a = search.beam(cfg, params, x[i:i + 1], k=1, max_len=6)
        assert b_ids == ids[i] and lp <= 0
        assert a.shape == maps[i].shape == (len(ids[i]), cfg.grid ** 2)
        np.testing.assert_allclose(a.sum(axis=1), 1.0)
    b3, lp3, a3 = search.beam(cfg, params, x[:1], k=3, max_len=6)
    assert lp3 >= search.beam(cfg, params, x[:1], k=1, max_len=6)[1] - 1e-9 or len(b3) != len(ids[0])


def test_metrics_on_known_answers():
    s = scenes.generate(1, "test", seed=5, counts=[2])[0]
    good, bad = s.captions[0], s.captions[0].replace(s.objects[0].colour, "COLOUR")
    assert metrics.exact([good, bad], [s, s]) == 0.5
    sl = metrics.slots([bad], [s])
    assert sl["shape"] == sl["size"] == sl["relation"] == 1.0 and sl["colour"] < 1.0
    o = metrics.ordering(s, good)
    grid = 6
    alphas = np.zeros((len(good.split()), grid * grid))
    nouns = [t for t, w in enumerate(good.split()) if w in scenes.SHAPES]
    for t, obj in zip(nouns, o):                        # the peak on the object named at t
        y0, x0, y1, x1 = obj.box
        r, c = int((y0 + y1) / 2 // 8), int((x0 + x1) / 2 // 8)
        alphas[t, r * grid + c] = 1.0
    h = metrics.hit_rate([good], [alphas], [s], grid)
    assert h["hit"] == h["centre"] == h["phrase"] == 1.0 and h["n"] == 2
    assert metrics.hit_rate([good], [alphas[:, ::-1]], [s], grid)["hit"] < 1.0   # mirrored


def test_digits_source_trains_and_has_no_heldout_split(tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = tmp_path / "d"
    assert main(["caption", "train", "--source", "digits", "--out", str(out), *TINY]) == 0
    assert "test exact match" in capsys.readouterr().out
    assert main(["caption", "eval", str(out / "best.npz"), "-n", "4", "--split", "heldout"]) == 2
    assert "no held-out composition split" in capsys.readouterr().err


def test_resume_continues_to_the_same_weights(tmp_path):
    from rnnlab.io import checkpoint
    a, b = tmp_path / "a", tmp_path / "b"
    two = [*TINY[:4], "--epochs", "2", *TINY[6:]]
    assert main(["caption", "train", "--out", str(a), *two]) == 0
    assert main(["caption", "train", "--out", str(b), *TINY]) == 0
    assert main(["caption", "train", "--resume", str(b / "last.npz"), "--epochs", "2"]) == 0
    wa = checkpoint.load(str(a / "last.npz"), kind="caption")["params"]
    wb = checkpoint.load(str(b / "last.npz"), kind="caption")["params"]
    assert all((wa[k] == wb[k]).all() for k in wa)
