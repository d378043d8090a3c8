"""Whole-file outputs are replaced atomically: a failure leaves the old file."""
import os

import pytest

from rnnlab.io.atomic import atomic_write


def test_success_replaces_the_file(tmp_path):
    p = tmp_path / "report.html"
    p.write_text("old")
    with atomic_write(p) as f:
        f.write("new")
    assert p.read_text() == "new" and os.listdir(tmp_path) == ["report.html"]


def test_failure_midway_keeps_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "table.md"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(p) as f:
            f.write("half")
            raise RuntimeError("disk full")
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["table.md"]


def test_binary_mode_and_new_folder(tmp_path):
    p = tmp_path / "figs" / "x.png"
    with atomic_write(p, "wb") as f:
        f.write(b"\x89PNG")
    assert p.read_bytes() == b"\x89PNG"


# ---------------------------------------------------------------- checkpoints trust nothing

import io as _io                                                     # noqa: E402
import json                                                           # noqa: E402
import zipfile                                                        # noqa: E402

import numpy as np                                                    # noqa: E402

from rnnlab.io import atomic, checkpoint, metrics                     # noqa: E402


def _save(path, **kw):
    params = kw.pop("params", {"w": np.ones((2, 3), np.float32)})
    checkpoint.save(path, params, {"step": np.zeros((), np.int64)},
                    (np.zeros((1, 2, 3), np.float32),), {"x": 1}, kind="test", **kw)
    return path


def _members(path, **replace):
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members.update(replace)
    with zipfile.ZipFile(path, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    return path


def _npy(a):
    buf = _io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


def test_round_trip(tmp_path):
    ck = checkpoint.load(_save(tmp_path / "c.npz"), kind="test")
    assert ck["meta"]["x"] == 1 and ck["params"]["w"].shape == (2, 3)
    assert len(ck["state"]) == 1 and int(ck["opt_state"]["step"]) == 0


@pytest.mark.parametrize("replace, words", [
    ({"readme.txt": b"hi"}, ["not .npy", "readme.txt"]),
    ({"param/w.npy": b"raw bytes"}, ["param/w.npy", "not a .npy array"]),
    ({"param/w.npy": _npy(np.array([None], object))}, ["pickled"]),
    ({"param/w.npy": _npy(np.array([1.0, np.inf], np.float32))}, ["weight 'w'", "1 NaN or Inf"]),
    ({"param/w.npy": _npy(np.array(["a"]))}, ["weight 'w'", "expected floats"]),
    ({"opt/step.npy": _npy(np.array(np.nan))}, ["optimizer state 'step'", "NaN"]),
    ({"state/x.npy": _npy(np.zeros(2))}, ["state/x", "state/<index>"]),
    ({"state/3.npy": _npy(np.zeros(2))}, ["numbered 0..1", "[0, 3]"]),
    ({"other/w.npy": _npy(np.zeros(2))}, ["unexpected array 'other/w'"]),
    ({"meta.npy": _npy(np.frombuffer(b"{not json", np.uint8))}, ["not UTF-8 JSON"]),
    ({"meta.npy": _npy(np.frombuffer(json.dumps({"format": "rnnlab-test", "version": "1"})
                                     .encode(), np.uint8))}, ["'version'", "found '1'"]),
], ids=["txt", "no-header", "pickle", "inf", "strings", "opt-nan", "state-name", "state-gap",
        "other", "meta-json", "version-str"])
def test_load_names_what_is_wrong(tmp_path, replace, words):
    path = _members(_save(tmp_path / "c.npz"), **replace)
    with pytest.raises(checkpoint.CheckpointError) as e:
        checkpoint.load(path, kind="test")
    for w in [str(path), *words]:
        assert w in str(e.value), (w, str(e.value))


def test_load_a_folder_or_garbage(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="is a folder"):
        checkpoint.load(tmp_path, kind="test")
    (tmp_path / "g.npz").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    with pytest.raises(checkpoint.CheckpointError, match="truncated or corrupt"):
        checkpoint.load(tmp_path / "g.npz", kind="test")
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        checkpoint.load(tmp_path / "none.npz", kind="test")


def test_random_damage_is_always_a_checkpoint_error(tmp_path):
    good = _save(tmp_path / "c.npz").read_bytes()
    rng = np.random.default_rng(0)
    for trial in range(200):
        data = bytearray(good)
        for i in rng.integers(0, len(data), rng.integers(1, 4)):
            data[i] = rng.integers(0, 256)
        if trial % 5 == 0:
            data = data[:rng.integers(0, len(data))]
        (tmp_path / "d.npz").write_bytes(bytes(data))
        try:
            checkpoint.load(tmp_path / "d.npz", kind="test")
        except checkpoint.CheckpointError as e:
            assert str(tmp_path / "d.npz") in str(e)


def test_expect_checks_one_field():
    meta = {"position": {"epoch": 2, "step": "3"}}
    assert checkpoint.expect(meta, "position.epoch", checkpoint.NONNEG_INT, "c.npz") == 2
    with pytest.raises(checkpoint.CheckpointError, match="'position.step' should be an "
                                                         "integer >= 0, found '3'"):
        checkpoint.expect(meta, "position.step", checkpoint.NONNEG_INT, "c.npz")
    with pytest.raises(checkpoint.CheckpointError, match="c.npz: checkpoint metadata has no "
                                                         "'rng'"):
        checkpoint.expect(meta, "rng", checkpoint.TABLE, "c.npz")


def test_remove_stale_keeps_live_processes_files(tmp_path):
    import os
    target = tmp_path / "last.npz"
    dead, live = 2 ** 22 + 7, os.getppid()
    for pid in (dead, live):
        (tmp_path / f".last.npz.tmp-{pid}").write_text("x")
    atomic.remove_stale(target)
    assert sorted(os.listdir(tmp_path)) == [f".last.npz.tmp-{live}"]


def test_metrics_text_and_non_finite_values(tmp_path):
    rows = [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": float("inf")}]
    assert metrics.text(rows).count("\n") == 2
    metrics.write(tmp_path / "m.jsonl", rows)
    assert metrics.read(tmp_path / "m.jsonl") == [rows[0], {"epoch": 2, "loss": "inf"}]


def test_load_model_checks_the_app_metadata_and_the_weights(tmp_path):
    path = str(tmp_path / "m.npz")
    build = lambda app: int(app["model"]["n"])                       # noqa: E731
    shapes = lambda n: {"w": (n,), "b": ()}                          # noqa: E731
    params = {"w": np.zeros(3, np.float32), "b": np.zeros((), np.float32)}
    checkpoint.save(path, params, meta={"app": {"model": {"n": 3}}}, kind="x")
    n, got, meta = checkpoint.load_model(path, "x", build, shapes)
    assert n == 3 and sorted(got) == ["b", "w"] and meta["app"]["model"]["n"] == 3
    checkpoint.save(path, params, meta={"app": {"model": {"n": 4}}}, kind="x")
    with pytest.raises(checkpoint.CheckpointError, match=r"m\.npz: weights\['w'\] must have "
                                                          r"shape \(4,\), got \(3,\)"):
        checkpoint.load_model(path, "x", build, shapes)
    checkpoint.save(path, params, meta={"app": {}}, kind="x")
    with pytest.raises(checkpoint.CheckpointError, match=r"m\.npz: checkpoint metadata is "
                                                          r"incomplete.*'model'"):
        checkpoint.load_model(path, "x", build, shapes)
