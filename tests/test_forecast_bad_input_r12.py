"""``rnnlab forecast``: the round-12 audit's bad inputs each end in one line
``rnnlab forecast: error: ...`` with exit code 2, naming the flag or the file,
before any work (no internal error, no option ignored or silently changed)."""
import json

import numpy as np
import pytest

from rnnlab.cli import forecast as cli
from rnnlab.cli.command import main
from rnnlab.forecast import data, train

TINY = ["--epochs", "1", "--hidden-size", "2", "--input-len", "13", "--horizon", "6",
        "--valid", "6", "--no-refit"]


def write_csv(path, times, values, header="t,v"):
    path.write_text(header + "\n" + "".join(f"{t},{v}\n" for t, v in zip(times, values)),
                    encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny forecaster trained on the (monthly) airline series: its folder."""
    out = tmp_path_factory.mktemp("fc") / "run"
    assert main(["forecast", "train", "--out", str(out)] + TINY) == 0
    return out


# 1. --origins, --step, --models
def test_backtest_origins_step_and_models_are_checked_first(tmp_path, cli_error):
    bt = ["forecast", "backtest", "--models", "naive,snaive", "--out", str(tmp_path / "bt")]
    for flag in ("--origins", "--step"):
        for v in ("0", "-1"):
            assert cli_error(bt + [flag, v]) == f"{flag}: expected an integer >= 1, got {v}"
    msg = cli_error(bt + ["--models", ""])
    assert msg == "--models: expected at least one of naive, snaive, drift, ets, arima, rnn, got ''"
    assert cli_error(bt + ["--models", " , "]).startswith("--models: expected at least one")
    assert "--models: unknown model 'foo'; expected some of naive" in cli_error(
        bt + ["--models", "naive,foo"])
    assert cli_error(bt + ["--models", "naive,naive"]) == \
        "--models: naive is named twice; expected each model once"
    assert not (tmp_path / "bt").exists()


# 2. plot on a damaged backtest.json
def test_plot_names_a_backtest_json_it_cannot_read(tmp_path, cli_error):
    good = tmp_path / "good"
    assert main(["forecast", "backtest", "--models", "naive", "--origins", "2",
                 "--out", str(good)]) == 0
    d = json.loads((good / "backtest.json").read_text())
    short = dict(d, raw=dict(d["raw"], q={"naive": d["raw"]["q"]["naive"][:1]}))
    cases = {"list": (b"[1,2]", "expected a JSON object, found list"),
             "partial": (b'{"foo": 1}', "missing series, horizon, models, raw"),
             "empty": (b"", "invalid JSON: Expecting value"),
             "trunc": ((good / "backtest.json").read_bytes()[:500], "invalid JSON"),
             "latin": (b'{"a":"\xe9"}', "byte 0xe9 at offset 6 is not UTF-8"),
             "noraw": (json.dumps(dict(d, raw={})).encode(), "no 'time' entry"),
             "short": (json.dumps(short).encode(), "StopIteration"),
             "values": (json.dumps(dict(d, raw=dict(d["raw"], values="x"))).encode(),
                        "ValueError")}
    for name, (text, why) in cases.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "backtest.json").write_bytes(text)
        msg = cli_error(["forecast", "plot", str(tmp_path / name)])
        assert msg.startswith(f"{tmp_path / name / 'backtest.json'}: not a backtest.json "
                              "written by rnnlab forecast backtest ("), msg
        assert why in msg, msg
        assert not (tmp_path / name / "report.html").exists()


# 3. a CSV that is not UTF-8
def test_a_data_file_that_is_not_utf8_is_named(tmp_path, cli_error):
    latin = tmp_path / "x.csv"
    latin.write_bytes(b"Date,Passengers\n1949-01,112\n1949-02,caf\xe9\n")
    binary = tmp_path / "garbage.bin"
    binary.write_bytes(bytes([0x9a, 0x00, 0xff]) * 10)
    npz = tmp_path / "w.npz"
    np.savez(npz, a=np.arange(1000.0))
    for path, line in ((latin, 3), (binary, 1), (npz, 1)):
        msg = cli_error(["forecast", "train", str(path)] + TINY)
        assert msg.startswith(f"{path}, line {line}: expected a UTF-8 CSV, found byte 0x"), msg
    # a UTF-8 byte-order mark (spreadsheet exports) is not part of the first column's name
    air = data.airline()
    bom = tmp_path / "bom.csv"
    write_csv(bom, air.time, air.values, header="\ufeffDate,Passengers")
    assert main(["forecast", "backtest", str(bom), "--time-col", "Date", "--models", "naive",
                 "--out", str(tmp_path / "bt")]) == 0


# 4. predict: data of another frequency, a training checkpoint as --model
def test_predict_refuses_other_frequencies_and_training_checkpoints(trained, tmp_path, cli_error):
    model = str(trained / "forecaster.npz")
    yearly = write_csv(tmp_path / "yearly.csv", range(1900, 1960), np.arange(60.0) + 1)
    msg = cli_error(["forecast", "predict", yearly, "--model", model])
    assert msg == (f"yearly: yearly data (period 1), but --model {model} was trained on "
                   "monthly data (period 12); forecast it with a model trained on yearly data")
    days = np.arange("2000-01-01", "2000-03-01", dtype="datetime64[D]")
    daily = write_csv(tmp_path / "daily.csv", days, np.arange(len(days)) + 1.0)
    assert "daily data (period 1), but --model" in cli_error(
        ["forecast", "predict", daily, "--model", model])
    for ck in ("best.npz", "last.npz"):
        msg = cli_error(["forecast", "predict", "--model", str(trained / ck)])
        assert msg == (f"{trained / ck}: a training checkpoint (best.npz / last.npz), not a "
                       "forecaster; --model expects the forecaster.npz that rnnlab forecast "
                       "train writes in its --out folder")
    # a file saved before the units were: told apart by the calendar covariates
    f, _ = train.load_forecaster(model)
    f.units = None
    with pytest.raises(ValueError, match=r"yearly data \(period 1\), but the model was trained "
                                         r"on monthly data \(month-of-year covariates\)"):
        f.predict(data.read_csv(yearly))


def test_one_global_model_needs_one_frequency(tmp_path, cli_error):
    yearly = write_csv(tmp_path / "yearly.csv", range(1900, 1960), np.arange(60.0) + 1)
    assert cli_error(["forecast", "train", "airline", yearly] + TINY) == (
        "yearly: yearly data, but airline is monthly; one global model needs series of one "
        "frequency (train one model per frequency)")


# 5. --test: against the series' length; a different --horizon conflicts
def test_test_is_checked_against_the_length_and_the_horizon(tmp_path, cli_error):
    out = ["--out", str(tmp_path / "r"), "--epochs", "1", "--hidden-size", "2", "--no-refit"]
    msg = cli_error(["forecast", "train", "--test", "200"] + out)
    assert msg == ("--test 200: airline has 144 observations, but holding out 200 and training "
                   "on the rest to forecast 200 ahead with --input-len 24, --valid 12 and "
                   "differencing at lag 12 needs at least 449")
    assert cli_error(["forecast", "train", "--test", "12", "--horizon", "6"] + out) == (
        "--test 12 and --horizon 6 conflict: --test forecasts the 12 held-out observations, "
        "so it sets the horizon to 12; drop the horizon or make it 12")
    toml = tmp_path / "h.toml"
    toml.write_text("horizon = 6\n")
    assert cli_error(["forecast", "train", "--test", "12", "--config", str(toml)] + out) \
        .startswith(f"--test 12 and --config {toml}: horizon 6 conflict")
    assert not (tmp_path / "r").exists()


# 6. options that would be ignored
def test_options_that_would_be_ignored_are_refused(tmp_path, cli_error):
    out = ["--out", str(tmp_path / "r")]
    for flag in ("--value-col", "--time-col"):
        assert cli_error(["forecast", "train", "airline", flag, "foo"] + out + TINY) == (
            f"{flag} foo: expected a CSV file as DATA (the option names one of its columns), "
            "got the built-in data set airline")
        assert cli_error(["forecast", "predict", "co2", flag, "foo", "--model", "x.npz"]) \
            .startswith(f"{flag} foo: expected a CSV file as DATA")
    assert cli_error(["forecast", "train", "--ar", "100", "--input-len", "24"] + out) == (
        "--ar: expected an integer <= --input-len 24 (the highway reads the input window's "
        "last values), got 100")
    assert cli_error(["forecast", "train", "--halflife", "3", "--diff", "seasonal"]
                     + out) == ("--halflife: expected 0 unless --diff window (it weights the "
                                "window's own fit), got 3 with --diff seasonal")
    assert cli_error(["forecast", "backtest", "--models", "naive", "--retrain",
                      "--retrain-every", "3"] + out) == (
        "--retrain and --retrain-every 3 conflict: --retrain trains anew at every origin "
        "(as --retrain-every 1); give one of them")
    # the network's options where no network runs: on the command line or in --config
    for extra in (["--hidden-size", "64"], ["--retrain"], ["--retrain-every", "2"]):
        assert cli_error(["forecast", "backtest", "--models", "naive,snaive"] + extra
                         + out) == (f"{extra[0]} configures the network, but --models "
                                    "naive,snaive does not run it; add rnn to --models or "
                                    "drop the option")
    toml = tmp_path / "net.toml"
    toml.write_text("horizon = 6\nepochs = 3\n")
    assert cli_error(["forecast", "backtest", "--models", "naive", "--config", str(toml)]
                     + out) == (f"--config {toml}: epochs configures the network, but "
                                "--models naive does not run it; add rnn to --models or drop "
                                "the option")
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="--ar: expected an integer <= --input-len 24"):
        train.ForecastOptions(ar=25)
    train.ForecastOptions(ar=24, diff="window", halflife=6.0)          # both allowed


# 7. an unknown key in --config names the file
def test_config_errors_name_the_file(tmp_path, cli_error):
    toml = tmp_path / "c.toml"
    toml.write_text("foo = 1\n")
    for cmd in ("train", "backtest"):
        assert cli_error(["forecast", cmd, "--config", str(toml), "--models", "naive"]
                         if cmd == "backtest" else ["forecast", cmd, "--config", str(toml)]) \
            == f"--config {toml}: unknown option(s) foo"
    toml.write_text("ar = 30\n")
    assert cli_error(["forecast", "train", "--config", str(toml)]).startswith(
        f"--config {toml}: --ar: expected an integer <= --input-len 24")


# 8. backtest --out is checked before any forecast
def test_backtest_checks_out_first(tmp_path, cli_error, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")

    def never(*a, **k):
        raise AssertionError("the backtest ran before --out was checked")
    monkeypatch.setattr(cli.bt_mod, "run", never)
    assert cli_error(["forecast", "backtest", "--models", "naive", "--out", str(afile)]) \
        == f"--out {afile}: exists and is not a folder"
    assert cli_error(["forecast", "backtest", "--models", "naive",
                      "--out", str(afile / "x")]).startswith(f"--out {afile / 'x'}: ")


# 9. --ensemble has a ceiling
def test_ensemble_is_capped(tmp_path, cli_error):
    with pytest.raises(ValueError, match=r"--ensemble: expected an integer >= 1 and <= 100, "
                                         r"got 100000"):
        train.ForecastOptions(ensemble=100000)
    # checked with the options, before the series' length (which would fail next)
    assert cli_error(["forecast", "train", "--ensemble", "101", "--input-len", "1000",
                      "--out", str(tmp_path / "r")]) == \
        "--ensemble: expected an integer >= 1 and <= 100, got 101"


def test_plot_refuses_a_backtest_json_with_values_that_are_not_finite(tmp_path, cli_error):
    out = tmp_path / "bt"
    assert main(["forecast", "backtest", "airline", "--models", "naive,snaive", "--origins", "2",
                 "--out", str(out)]) == 0
    d = json.loads((out / "backtest.json").read_text())
    d["raw"]["values"][3] = float("nan")
    (out / "backtest.json").write_text(json.dumps(d))
    err = cli_error(["forecast", "plot", out])
    assert "not a backtest.json written by rnnlab forecast backtest" in err and "not finite" in err


def test_predict_without_data_forecasts_the_series_the_model_was_trained_on(
        trained, tmp_path, cli_error, capsys):
    """Not the default airline: a model of another series would forecast airline's
    next year with that series' scaling. A model of a CSV, or of several series,
    needs DATA named."""
    model = str(trained / "forecaster.npz")
    assert main(["forecast", "predict", "--model", model]) == 0          # trained on airline
    assert capsys.readouterr().out.splitlines()[1].startswith("1961-01,")
    times = np.arange("1950-01", "1960-01", dtype="datetime64[M]")
    csv = write_csv(tmp_path / "shop.csv", times, 100 + np.arange(len(times)) % 12)
    assert main(["forecast", "train", csv, "--out", str(tmp_path / "shop")] + TINY) == 0
    shop = str(tmp_path / "shop" / "forecaster.npz")
    assert cli_error(["forecast", "predict", "--model", shop]) == (
        f"DATA: --model {shop} was trained on 'shop', not a built-in data set; give the CSV "
        "file to forecast")
    capsys.readouterr()
    assert main(["forecast", "predict", csv, "--model", shop]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("1960-01,")
    f, _ = train.load_forecaster(shop)                 # a model whose file names co2
    monkey = tmp_path / "co2.npz"
    train.save_forecaster(str(monkey), f, ["co2"])
    if (data.SHARED / data.DATASETS["co2"]).exists():
        assert main(["forecast", "predict", "--model", str(monkey)]) == 0
        first = capsys.readouterr().out.splitlines()[1]
        assert first.split(",")[0] == str(data.load("co2").time[-1] + 1)
    assert main(["forecast", "train", "airline", csv, "--out", str(tmp_path / "g")] + TINY) == 0
    both = tmp_path / "g" / "forecaster.npz"
    assert cli_error(["forecast", "predict", "--model", str(both)]) == (
        f"DATA: --model {both} is one model of 2 series (airline, shop); name the one to "
        "forecast")
