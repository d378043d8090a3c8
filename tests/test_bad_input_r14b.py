"""Round fourteen's second audit: checkpoint metadata a hand edit or another program
could break, for every application that resumes (the optimiser state, fields that
disagree with each other, weights against the model the settings build); the
forecaster file and the backtest folder that ``rnnlab forecast predict`` and
``plot`` read; ``rnnlab tasks`` and ``gradflow`` options a run would ignore; and
the finished trials ``rnnlab dist lm-sweep`` reads back."""
import contextlib
import io
import json
import os
import shutil

import numpy as np
import pytest

from rnnlab.cli.command import main
from rnnlab.translate import train as translate_train

LM = ["--level", "char", "--hidden-size", "4", "--emb-size", "4", "--num-layers", "1",
      "--batch-size", "2", "--bptt", "5", "--epochs", "1", "--max-steps", "3", "--samples",
      "0", "--no-progress", "--optimizer", "adam", "--lr", "0.01"]


def _quiet(argv):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main([str(a) for a in argv]) == 0, argv


def _edited(src, dst, meta=None, arrays=None):
    """A copy of the .npz ``src`` (any application's) at ``dst``: ``meta(m)`` edits
    its metadata in place, ``arrays(a)`` its other arrays ({name: array})."""
    with np.load(src) as z:
        a = {k: z[k] for k in z.files}
    m = json.loads(a.pop("meta").tobytes().decode("utf-8"))
    if meta is not None:
        meta(m)
    if arrays is not None:
        arrays(a)
    np.savez(dst, meta=np.frombuffer(json.dumps(m).encode("utf-8"), np.uint8), **a)
    return dst


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny finished runs of lm, music and caption: {app: last.npz}."""
    root = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(1)
    text = root / "t.txt"
    text.write_text(" ".join(rng.choice(["ab", "ba", "cab", "abc"], 600)) + "\n")
    piece = [[60], [62, 67], [64], [65], [67], [60, 64]]
    music = root / "d.json"
    music.write_text(json.dumps({"train": [piece] * 3, "valid": [piece], "test": [piece]}))
    _quiet(["train", text, *LM, "--out", root / "lm"])
    _quiet(["music", "train", music, "--epochs", "1", "--max-steps", "1", "--hidden-size", "2",
            "--no-progress", "--out", root / "music"])
    _quiet(["caption", "train", "--train-size", "8", "--valid-size", "2", "--epochs", "1",
            "--batch-size", "8", "--channels", "2,2,2", "--hidden", "4", "--embed", "4",
            "--attention-size", "4", "--no-progress", "--out", root / "caption"])
    return {app: root / app / "last.npz" for app in ("lm", "music", "caption")}


def _resume(app, bad, out):
    """``rnnlab [app] train --resume bad`` into the folder ``out``."""
    return ([app] if app != "lm" else []) + ["train", "--resume", bad, "--epochs", "2",
                                             "--out", out, "--no-progress"]


def _array(name, value):
    """An ``arrays=`` edit of ``_edited``: the array ``name`` set to ``value``."""
    return lambda a: a.update({name: value})


def _set(key, value):
    """A ``meta=`` edit of ``_edited``: the dotted ``key`` set to ``value``."""
    def edit(d):
        *path, last = key.split(".")
        for p in path:
            d = d[p]
        d[last] = value
    return edit


@pytest.mark.parametrize("edit, message", [
    (_array("opt/step", np.int64(-5)),
     "optimizer state 'step' should be an integer >= 0, found -5 (int64)"),
    (_array("opt/step", np.float64(2.5)),
     "'step' should be an integer >= 0, found 2.5 (float64)"),
    (_array("opt/step", np.zeros(3, np.int64)),
     "'step' should be an integer >= 0, found [0, 0, 0]"),
    (lambda a: a.pop("opt/v/decoder.bias"),
     "optimizer state does not match --optimizer adam over these weights: missing "
     "['v/decoder.bias']"),
    (_array("opt/v/extra", np.zeros(2)),
     "does not match --optimizer adam over these weights: unexpected ['v/extra']"),
    (_array("opt/m/decoder.bias", np.zeros(3, np.float32)),
     "optimizer state 'm/decoder.bias' is float32 (3,); expected float32"),
    (_array("opt/m/decoder.bias", np.zeros(5, np.float64)),
     "'m/decoder.bias' is float64 (5,); expected float32 (5,), as its weight"),
], ids=["step-negative", "step-float", "step-array", "slot-missing", "slot-extra",
        "slot-shape", "slot-dtype"])
def test_resume_checks_the_optimizer_state(runs, tmp_path, cli_error, edit, message):
    bad = _edited(runs["lm"], tmp_path / "bad.npz", arrays=edit)
    msg = cli_error(_resume("lm", bad, tmp_path / "again"))
    assert msg.startswith(f"{bad}: ") and message in msg, msg
    assert not (tmp_path / "again").exists()


def test_resume_checks_the_optimizer_state_against_the_settings(runs, tmp_path, cli_error):
    # an edited train_config: Adam's slots resumed as SGD's state were silently dropped
    bad = _edited(runs["lm"], tmp_path / "bad.npz", meta=_set("train_config.optimizer", "sgd"))
    assert cli_error(_resume("lm", bad, tmp_path / "again")).startswith(
        f"{bad}: optimizer state does not match --optimizer sgd over these weights: unexpected")
    for app in ("music", "caption"):                     # one check for every application
        bad = _edited(runs[app], tmp_path / f"{app}.npz", arrays=_array("opt/step", np.int64(-1)))
        assert cli_error(_resume(app, bad, tmp_path / "again")) == (
            f"{bad}: optimizer state 'step' should be an integer >= 0, found -1 (int64)")
    assert not (tmp_path / "again").exists()


@pytest.mark.parametrize("key, value, message", [
    ("best", float("inf"), "checkpoint metadata 'best' should be a finite number or null, "
                           "found inf"),
    ("best", None, "checkpoint metadata disagrees with itself: best is null after 1 finished "
                   "epoch(s)"),
    ("bad_epochs", 5, "disagrees with itself: bad_epochs is 5 after 1 finished epoch(s)"),
    ("history.0.epoch", 3, "disagrees with itself: the history's epochs are numbered [3], "
                           "expected 1..1"),
    ("sums.count", 4, "disagrees with itself: position.step is 0 but sums hold loss 0 over 4 "
                      "item(s)"),
    ("position.step", 3, "resumes at step 3 of epoch 2, but --max-steps 3 ends that epoch at "
                         "step 3; its position.step was edited"),
], ids=["best-inf", "best-null", "bad-epochs", "history-numbers", "sums", "step-at-the-end"])
def test_resume_refuses_metadata_that_disagrees_with_itself(runs, tmp_path, cli_error, key,
                                                            value, message):
    def edit(m):
        if key.startswith("history"):
            m["history"][0]["epoch"] = value
        else:
            _set(key, value)(m)
    bad = _edited(runs["lm"], tmp_path / "bad.npz", meta=edit)
    msg = cli_error(_resume("lm", bad, tmp_path / "again"))
    assert msg.startswith(f"{bad}: ") and message in msg, msg
    assert not (tmp_path / "again").exists()


def test_caption_and_music_check_the_weights_they_resume(runs, tmp_path, cli_error):
    out = tmp_path / "again"
    bad = _edited(runs["caption"], tmp_path / "c.npz", arrays=lambda a: a.pop("param/colour.bias"))
    msg = cli_error(_resume("caption", bad, out))           # was an internal KeyError
    assert msg.startswith(f"{bad}: weights ") and "missing ['colour.bias']" in msg
    for app in ("caption", "music"):
        bad = _edited(runs[app], tmp_path / f"{app}.npz", meta=_set("train_config.dtype",
                                                                    "float64"))
        assert cli_error(_resume(app, bad, out)) == (
            f"{bad}: weights are float32 but the checkpoint's settings say --dtype float64")
    # two words swapped: the rows would be read as each other's words
    def swap(m):
        words = m["app"]["vocab"]
        words[4], words[5] = words[5], words[4]
    bad = _edited(runs["caption"], tmp_path / "v.npz", meta=swap)
    msg = cli_error(_resume("caption", bad, out))
    assert msg.startswith(f"{bad}: its vocabulary (") and "differ from word 4 on" in msg
    assert not out.exists()


def test_schedules_refuse_rates_that_would_not_decay():
    from rnnlab.optim import schedules
    with pytest.raises(ValueError, match="decay must be a finite number > 0 and <= 1, got -1"):
        schedules.zaremba(1.0, 10, decay=-1)               # returned -1.0: the sign flipped
    with pytest.raises(ValueError, match="factor must be a finite number > 0 and <= 1, got 2"):
        schedules.plateau_step(schedules.plateau_init(1.0), 2.0, factor=2.0)   # raised the rate
    with pytest.raises(ValueError, match="schedule 'plateau' needs its state"):
        schedules.lr_for_epoch("plateau", 1.0, 0)         # a TypeError inside
    with pytest.raises(ValueError, match="lr0 must be a finite number > 0, got nan"):
        schedules.plateau_init(float("nan"))
    assert schedules.zaremba(1.0, 5) == 0.25 and schedules.plateau_step(
        schedules.plateau_init(1.0), 2.0, factor=0.5)["lr"] == 1.0


def test_translate_checks_the_weights_it_resumes(tmp_path, cli_error):
    cfg = translate_train.TranslateOptions(
        epochs=1, max_steps=1, emb_size=2, enc_hidden=2, dec_hidden=2, bleu_sentences=1,
        max_train=64, batch_size=8, progress=False, out=str(tmp_path / "run"))
    translate_train.run(cfg, log=lambda *a: None)
    last, out = tmp_path / "run" / "last.npz", tmp_path / "again"
    bad = _edited(last, tmp_path / "style.npz", meta=_set("train_config.style", "luong"))
    msg = cli_error(_resume("translate", bad, out))          # was a matmul error
    assert msg.startswith(f"{bad}: weights ") and "missing ['combine.weight']" in msg
    emb = _edited(last, tmp_path / "emb.npz", arrays=lambda a: a.update(
        {"param/src_emb.weight": a["param/src_emb.weight"][1:]}))
    assert cli_error(_resume("translate", emb, out)).startswith(
        f"{emb}: weights['src_emb.weight'] must have shape (")
    assert not out.exists()


@pytest.fixture(scope="module")
def forecast(tmp_path_factory):
    """A tiny forecaster and a backtest of two baselines: (forecaster.npz, backtest folder)."""
    root = tmp_path_factory.mktemp("fc")
    _quiet(["forecast", "train", "--epochs", "1", "--hidden-size", "2", "--input-len", "13",
            "--horizon", "6", "--valid", "6", "--no-refit", "--out", root / "run"])
    _quiet(["forecast", "backtest", "--models", "naive,snaive", "--origins", "2", "--out",
            root / "bt"])
    return root / "run" / "forecaster.npz", root / "bt"


@pytest.mark.parametrize("meta, arrays, message", [
    (_set("members", 0), None, "checkpoint metadata 'members' should be an integer from 1 to "
                               "100, found 0"),
    (_set("members", 1.7), None, "'members' should be an integer from 1 to 100, found 1.7"),
    (_set("input_len", 2.5), None, "'input_len' should be an integer >= max(1, the model's ar "
                                   "0), found 2.5"),
    (lambda m: m["scalings"][0].update(lag=-1), None,
     "checkpoint metadata 'scalings[0].lag' should be an integer >= 0, found -1"),
    (lambda m: m["scalings"][0].update(log="yes"), None,
     "'scalings[0].log' should be true or false, found 'yes'"),
    (lambda m: m["scalings"][0].update(sqrt="yes"), None,
     "'scalings[0].sqrt' should be true or false, found 'yes'"),
    (lambda m: m["scalings"][0].update(log=True, sqrt=True), None,
     "scalings[0] has both log and sqrt true; a scaling has at most one"),
    (lambda m: m["scalings"][0].update(boxcox=0.5), None,
     "scalings[0] has unknown field(s) ['boxcox']; this rnnlab knows ['center', 'drift', "
     "'halflife', 'lag', 'log', 'period', 'scale', 'spread', 'sqrt', 'window']"),
    (lambda m: m["scalings"][0].update(scale=0), None,
     "'scalings[0].scale' should be a finite number > 0, found 0"),
    (_set("ends", []), None, "'ends' should be a list of 1 integers >= 0 (one per scaling), "
                             "found []"),
    (_set("series", 5), None, "'series' should be a list of 1 names (one per scaling), found 5"),
    (_set("calibrate", "false"), None, "'calibrate' should be true or false, found 'false'"),
    (_set("aci", float("inf")), None, "'aci' should be a finite number >= 0, found inf"),
    (None, lambda a: a.update({"param/m1.head.bias": a["param/m0.head.bias"]}),
     "arrays ['m1.head.bias'] belong to none of the 1 member(s)"),
    (None, _array("param/held", np.zeros((6, 6, 3))),
     "'held' (the held-out scores) should have shape (N, 6, 2), found (6, 6, 3)"),
    (None, _array("param/held", -np.ones((6, 6, 2))),
     "'held' (the held-out scores) has 72 negative value(s); scores are >= 0"),
], ids=["members-0", "members-float", "input-len-float", "lag", "log", "sqrt", "log-and-sqrt",
        "unknown-field", "scale", "ends",
        "series", "calibrate", "aci", "extra-member", "held-shape", "held-negative"])
def test_forecast_predict_checks_the_forecaster_file(forecast, tmp_path, cli_error, meta,
                                                     arrays, message):
    bad = _edited(forecast[0], tmp_path / "bad.npz", meta=meta, arrays=arrays)
    msg = cli_error(["forecast", "predict", "--model", bad])
    assert msg.startswith(f"{bad}: ") and message in msg, msg


def test_forecast_predict_loads_a_file_from_before_sqrt(forecast, tmp_path, capsys):
    """Scalings saved before round nineteen have no sqrt field: no transform."""
    old = _edited(forecast[0], tmp_path / "old.npz",
                  meta=lambda m: [sc.pop("sqrt") for sc in m["scalings"]])
    assert main(["forecast", "predict", "--model", str(old)]) == 0
    new = capsys.readouterr().out
    assert main(["forecast", "predict", "--model", str(forecast[0])]) == 0
    assert capsys.readouterr().out == new


@pytest.mark.parametrize("edit, why", [
    (_set("series", "../outside"), "series is '../outside', expected a name (no folder: it "
                                   "names the figures)"),
    (_set("models", {}), "ValueError: models is {}, expected at least one model"),
    (_set("horizon", 12.5), "ValueError: horizon is 12.5, expected an integer >= 1"),
    (_set("raw.period", -1), "ValueError: raw.period is -1, expected an integer >= 1"),
    (lambda d: d["raw"]["time"].reverse(), "ValueError: raw.time is not strictly increasing"),
    (lambda d: d["raw"]["q"]["naive"][0][0].reverse(),
     "ValueError: the quantiles of naive cross (they are sorted when written)"),
], ids=["path-in-name", "no-models", "horizon-float", "period", "time-backwards", "crossing"])
def test_forecast_plot_checks_the_backtest_before_any_figure(forecast, tmp_path, cli_error,
                                                             edit, why):
    folder = tmp_path / "deep" / "bt"
    shutil.copytree(forecast[1], folder)
    for png in folder.glob("*.png"):                  # a folder whose figures went missing
        png.unlink()
    d = json.loads((folder / "backtest.json").read_text())
    edit(d)
    (folder / "backtest.json").write_text(json.dumps(d))
    assert cli_error(["forecast", "plot", folder]) == (
        f"{folder / 'backtest.json'}: not a backtest.json written by rnnlab forecast backtest "
        f"({why}); run the backtest again")
    assert sorted(os.listdir(folder)) == ["backtest.json", "report.html"]  # nothing new
    assert os.listdir(tmp_path / "deep") == ["bt"]                       # nothing outside


def test_forecast_plot_redraws_the_missing_figures(forecast, tmp_path, capsys):
    folder = tmp_path / "bt"
    shutil.copytree(forecast[1], folder)
    for png in folder.glob("*.png"):
        png.unlink()
    assert main(["forecast", "plot", str(folder)]) == 0
    assert len(list(folder.glob("airline-*.png"))) == 4


TASK = ["--steps", "1", "--batch", "2", "--hidden", "2"]
SWEEP = ["tasks", "sweep", *TASK, "--lengths", "4", "--cells", "rnn", "--table"]


def test_tasks_sweep_refuses_the_single_run_flags(tmp_path, cli_error):
    table = tmp_path / "s.md"
    for flag, value in (("--cell", "gru"), ("--json", tmp_path / "r.json"), ("--length", "7")):
        assert cli_error([*SWEEP, table, flag, value, "--plots", tmp_path / "png"]) == (
            f"{flag}: only for a single task (rnnlab tasks adding ...); a sweep takes --cells, "
            "--lengths and --seeds, and writes --table")
    assert not (tmp_path / "png").exists() and not table.exists()


def test_tasks_and_gradflow_refuse_settings_no_run_reads(tmp_path, cli_error):
    assert cli_error(["tasks", "adding", "--cell", "rnn", "--forget-bias", "1", *TASK,
                      "--length", "4"]) == ("--forget-bias 1: the bias of the lstm or gru keep "
                                            "gate; --cell rnn has none, so it would be ignored")
    assert cli_error([*SWEEP, tmp_path / "s.md", "--cells", "rnn,irnn", "--forget-bias",
                      "2"]).startswith("--forget-bias 2: the bias of the lstm or gru keep gate; "
                                       "--cells rnn,irnn has none")
    assert "--cells rnn has none" in cli_error(["gradflow", "--cells", "rnn", "--forget-bias",
                                                "1", "--length", "4", "--batch", "2"])
    # digits is 64 pixels long whatever --length says
    assert cli_error(["tasks", "digits", "--length", "5", *TASK]) == (
        "--length 5: digits has a fixed length (64); drop --length")
    assert cli_error(["gradflow", "--task", "digits", "--length", "5", "--cells", "rnn"]) == (
        "--length 5: digits has a fixed length (64); drop --length")
    assert cli_error(["tasks", "sweep", "--task", "digits", "--lengths", "4,8", *TASK]) == (
        "--lengths 4,8: digits has a fixed length (64); drop --lengths")
    for flag, values, twice in (("--lengths", "4,4", "4"), ("--seeds", "0,1,0", "0"),
                                ("--cells", "rnn,gru,rnn", "rnn")):
        argv = ["tasks", "sweep", *TASK, "--lengths", "4", flag, values]
        assert cli_error(argv) == f"{flag}: {twice} is given twice; expected each value once"
    assert not (tmp_path / "s.md").exists()


def test_a_digits_sweep_runs_its_one_length_once(tmp_path, capsys):
    table = tmp_path / "s.csv"
    assert main(["tasks", "sweep", "--task", "digits", "--cells", "rnn", *TASK, "--table",
                 str(table)]) == 0
    rows = table.read_text().splitlines()[1:]
    assert len(rows) == 1 and rows[0].startswith("digits,rnn,64,0,")      # not 3 times


def test_dist_sweep_reads_its_finished_trials_carefully(runs, tmp_path, cli_error, capsys):
    text, out = runs["lm"].parent.parent / "t.txt", tmp_path / "sweep"
    argv = ["dist", "lm-sweep", text, "--level", "char", "--cells", "gru", "--hidden", "4",
            "--epochs", "1", "--batch-size", "2", "--bptt", "5", "--max-steps", "2",
            "--checkpoint-every", "0", "--out", out]
    _quiet(argv)
    trial = out / "trials" / "gru-h4-lr1-seed0"
    stringly = {**json.loads((trial / "result.json").read_text()), "valid_ppl": "x"}
    again = "remove it to run trial gru-h4-lr1-seed0 again"
    for damaged, why in (("{", "not a trial result (not UTF-8 JSON: "),
                         ("[1, 2]", "not a trial result (a JSON list, expected an object)"),
                         (json.dumps(stringly), "'valid_ppl' should be a number, found 'x'")):
        (trial / "result.json").write_text(damaged)
        msg = cli_error(argv)
        assert msg.startswith(f"{trial / 'result.json'}: {why}") and msg.endswith(again), msg
    # a trial cut short resumes from a checkpoint checked as any resume is
    (trial / "result.json").unlink()
    _edited(trial / "last.npz", trial / "last.npz", meta=_set("position.epoch", 5))
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 1
    assert (f"trial gru-h4-lr1-seed0 failed: CheckpointError: {trial / 'last.npz'}: checkpoint "
            "metadata disagrees with itself: position.epoch is 5 but the history holds 1 "
            "epoch(s)") in capsys.readouterr().out
