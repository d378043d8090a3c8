"""``rnnlab forecast``: train, predict, backtest and plot end to end on tiny
settings; bad input exits 2 with a one-line message."""
import json

import numpy as np

from rnnlab.cli.command import main

TINY = ["--epochs", "2", "--hidden-size", "4", "--input-len", "13", "--horizon", "6",
        "--valid", "6"]


def test_train_then_predict(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["forecast", "train", "--test", "12", "--out", out] + TINY + ["--horizon", "12"]) == 0
    text = capsys.readouterr().out
    assert "airline last 12: mase" in text and "forecaster:" in text
    assert main(["forecast", "predict", "--model", f"{out}/forecaster.npz"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "time,q0.025,q0.1,q0.5,q0.9,q0.975"
    assert len(lines) == 13 and lines[1].startswith("1961-01,")
    q = np.array([[float(v) for v in r.split(",")[1:]] for r in lines[1:]])
    assert np.all(np.diff(q, axis=1) >= 0)


def test_backtest_writes_results_and_page_and_plot_rebuilds_it(tmp_path, capsys):
    out = str(tmp_path / "bt")
    assert main(["forecast", "backtest", "--models", "naive,snaive,drift", "--origins", "2",
                 "--out", out]) == 0
    text = capsys.readouterr().out
    assert "snaive" in text and "report:" in text
    d = json.loads((tmp_path / "bt" / "backtest.json").read_text())
    assert set(d["models"]) == {"naive", "snaive", "drift"}
    assert d["origins"] == ["1958-12", "1959-12"]
    (tmp_path / "bt" / "report.html").unlink()
    assert main(["forecast", "plot", out]) == 0
    html = (tmp_path / "bt" / "report.html").read_text()
    assert "<table>" in html and html.count("<img") == 4


def test_bad_input_exits_2_with_a_message(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("t,v\n2000-01,1\n2000-02,\n2000-03,2\n")
    assert main(["forecast", "backtest", str(bad), "--models", "naive"]) == 2
    err = capsys.readouterr().err
    assert "rnnlab forecast: error:" in err and "--interpolate" in err
    assert main(["forecast", "backtest", "--models", "prophet"]) == 2
    assert "unknown model 'prophet'" in capsys.readouterr().err
    assert main(["forecast", "train", "--input-len", "200"] + TINY[:4]) == 2
    assert "needs at least" in capsys.readouterr().err
    assert main(["forecast", "backtest", "--models", "naive", "--retrain-every", "-1"]) == 2
    assert "--retrain-every: expected an integer >= 0, got -1" in capsys.readouterr().err
    assert main(["forecast", "plot", str(tmp_path)]) == 2
    assert "backtest.json: no such file" in capsys.readouterr().err
    assert main(["forecast", "train", "--ar-init", "ls", "--out", str(tmp_path / "r")]
                + TINY) == 2
    err = capsys.readouterr().err
    assert "--ar-init ls: expected a highway to start (--ar p > 0), got --ar 0" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_least_squares_start_trains_from_the_command_line(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["forecast", "train", "--test", "12", "--ar", "12", "--ar-init", "ls",
                 "--out", out] + TINY + ["--horizon", "12"]) == 0
    assert "airline last 12: mase" in capsys.readouterr().out
