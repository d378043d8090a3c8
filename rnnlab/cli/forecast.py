"""``rnnlab forecast train | predict | backtest | plot``: recurrent forecasters and
the classical baselines from the command line.

DATA is ``airline`` (embedded, the default), ``co2``, ``sunspots``,
``sunspots-yearly`` (the shared data folder) or a CSV path (time column first,
value column last unless --time-col / --value-col say otherwise).
"""
import json
import os
from dataclasses import replace

import numpy as np

from rnnlab.forecast import (backtest as bt_mod, classical, data, heads, metrics, report, train,
                             transform)
from rnnlab.io import checkpoint
from rnnlab.io.atomic import atomic_write
from rnnlab.training import options, trainer

MODELS = ("naive", "snaive", "drift", "ets", "arima", "rnn")
BUILTIN = set(data.DATASETS) | {"", "airline-embedded"}      # data.load's names, no CSV


def _data_args(p, many=False, default="airline"):
    p.add_argument("data", nargs="*" if many else "?", default=[default] if many else default,
                   help="airline (embedded), co2, sunspots, sunspots-yearly or a CSV file"
                   + (f" (default: {default})" if default else " (default: the data set the "
                      "model was trained on)"))
    p.add_argument("--time-col", help="name of the time column (default: the first)")
    p.add_argument("--value-col", help="name of the value column (default: the last)")
    p.add_argument("--interpolate", action="store_true",
                   help="fill missing values inside a series linearly (default: an error)")


def _check_columns(args, names):
    """--time-col / --value-col name a CSV's columns: refused, not ignored, when
    every DATA is a built-in data set."""
    if all(n in BUILTIN for n in names):
        for key in ("time_col", "value_col"):
            if getattr(args, key) is not None:
                raise ValueError(f"{options.flag(key)} {getattr(args, key)}: expected a CSV "
                                 f"file as DATA (the option names one of its columns), got "
                                 f"the built-in data set {names[0]}")


def _load(args, name):
    """A named data set (co2 is averaged by month, never interpolated) or a CSV file."""
    if name in data.DATASETS:
        return data.load(name, **({} if name == "co2" else {"interpolate": args.interpolate}))
    return data.load(name, time_col=args.time_col, value_col=args.value_col,
                     interpolate=args.interpolate)


def register(subparsers):
    p = subparsers.add_parser("forecast", help="time-series forecasting with prediction "
                              "intervals, backtested against classical baselines")
    sub = p.add_subparsers(dest="forecast_command", metavar="<subcommand>", required=True)

    t = sub.add_parser("train", help="train a forecaster (several DATA: one global model)")
    _data_args(t, many=True)
    t.add_argument("--test", type=int, default=0,
                   help="hold out the last N observations of each series and score their "
                   "forecast; N is then the horizon (a different --horizon is an error)")
    t.add_argument("--config", help="TOML file with options")
    options.add_arguments(t, train.ForecastOptions)
    t.set_defaults(func=run_train)

    pr = sub.add_parser("predict", help="forecast the next horizon with a trained model")
    _data_args(pr, default=None)
    pr.add_argument("--model", required=True, help="forecaster.npz written by train")
    pr.set_defaults(func=run_predict)

    b = sub.add_parser("backtest", help="rolling-origin backtest of networks and baselines")
    _data_args(b)
    b.add_argument("--origins", type=int, default=3, help="number of forecast origins")
    b.add_argument("--step", type=int, default=12, help="observations between origins")
    b.add_argument("--models", default="naive,snaive,drift,ets,arima,rnn",
                   help=f"comma-separated, from {', '.join(MODELS)}")
    b.add_argument("--retrain", action="store_true",
                   help="train the network anew at every origin (default: once, at the first, "
                   "recalibrated at every later origin)")
    # default None, not 0: so that --retrain with an explicit --retrain-every is refused
    b.add_argument("--retrain-every", type=int, default=None, metavar="K",
                   help="train the network anew at every K-th origin (0, the default: only at "
                   "the first)")
    b.add_argument("--config", help="TOML file with the network's options")
    options.add_arguments(b, train.ForecastOptions)
    b.set_defaults(func=run_backtest)

    pl = sub.add_parser("plot", help="figures and report.html from a backtest folder")
    pl.add_argument("folder", help="a folder holding backtest.json")
    pl.set_defaults(func=run_plot)


def _opts(args):
    # options.from_args names the --config file when a wrong or unknown key came from it
    return options.from_args(train.ForecastOptions, _only_options(args))


def _only_options(args):
    import argparse
    from dataclasses import fields
    keep = {f.name for f in fields(train.ForecastOptions)} | {"config"}
    return argparse.Namespace(**{k: v for k, v in vars(args).items() if k in keep})


def _print_scores(name, scores):
    print(f"{name}: " + "  ".join(f"{k} {v:.4f}" for k, v in scores.items()))


def _test_horizon(args, opts, series):
    """The options with --test N as the horizon (it forecasts the N held-out values);
    a different --horizon, on the command line or in --config, is refused, and so
    is a series too short to train on after holding out N."""
    N = args.test
    given = "--horizon" if "horizon" in vars(args) else \
        f"--config {args.config}: horizon" if args.config and \
        "horizon" in options.load_toml(args.config) else None
    if given and opts.horizon != N:
        raise ValueError(f"--test {N} and {given} {opts.horizon} conflict: --test forecasts "
                         f"the {N} held-out observations, so it sets the horizon to {N}; drop "
                         f"the horizon or make it {N}")
    opts = replace(opts, horizon=N)
    for s in series:
        need = train.min_length(opts, s)[0]
        if len(s) - N < need:
            raise ValueError(f"--test {N}: {s.name} has {len(s)} observations, but holding "
                             f"out {N} and training on the rest to forecast {N} ahead with "
                             f"--input-len {opts.input_len}, --valid {opts.valid} and "
                             f"differencing at lag {train.lag_of(opts, s)} needs at least "
                             f"{N + need}")
    return opts


def run_train(args):
    opts = _opts(args)
    if args.test < 0:
        raise ValueError(f"--test: expected an integer >= 0, got {args.test}")
    _check_columns(args, args.data)
    series = [_load(args, d) for d in args.data]
    if args.test:
        opts = _test_horizon(args, opts, series)
    hist = [s.head(len(s) - args.test) for s in series]
    f = train.fit(opts, hist)
    path = os.path.join(opts.out, "forecaster.npz")
    train.save_forecaster(path, f, [s.name for s in series])
    for k, (s, h) in enumerate(zip(series, hist)):
        if args.test:
            q = f.predict(h, k)
            _print_scores(f"{s.name} last {args.test}", metrics.score(
                s.values[len(h):], q, h.values, s.period))
    print(f"forecaster: {path}")
    return 0


def _trained_on(model, names):
    """predict's DATA when none is given: the built-in data set the model was
    trained on (not the default airline: a model of sunspots would forecast
    airline's next year with sunspots' scaling, silently wrong)."""
    if len(names) > 1:
        raise ValueError(f"DATA: --model {model} is one model of {len(names)} series "
                         f"({', '.join(names)}); name the one to forecast")
    if names[0] not in data.DATASETS:
        raise ValueError(f"DATA: --model {model} was trained on {names[0]!r}, not a built-in "
                         "data set; give the CSV file to forecast")
    return names[0]


def run_predict(args):
    if args.data is not None:                          # the flags before the model file
        _check_columns(args, [args.data])
    f, names = train.load_forecaster(args.model)
    if args.data is None:
        args.data = _trained_on(args.model, names)
        _check_columns(args, [args.data])
    s = _load(args, args.data)
    which = names.index(s.name) if s.name in names else 0
    f.check_series(s, which, model=f"--model {args.model}")
    q = f.predict(s, which)
    future = np.datetime_as_string(transform.future_time(s.time, len(q)))
    print("time," + ",".join(f"q{t:g}" for t in heads.QUANTILES))
    for t, row in zip(future, q):
        print(t + "," + ",".join(f"{v:.6g}" for v in row))
    return 0


def forecasters(names, opts, log_values, retrain):
    out = {}
    simple = bt_mod.baseline_forecasters()
    for n in names:
        if n in simple:
            out[n] = simple[n]
        elif n in ("ets", "arima"):
            c = classical.Classical(n, log=log_values)
            out[n] = lambda s, h, c=c: c(s.values, h, s.period)
            out[n].owner = c
        elif n == "rnn":
            out[n] = train.Network(opts, retrain=retrain)
        else:
            raise ValueError(f"--models: unknown model {n!r}; expected some of {', '.join(MODELS)}")
    return out


def labels(fs):
    return {n: (f.owner.label if hasattr(f, "owner") else getattr(f, "label", n))
            for n, f in fs.items()}


def model_names(text):
    """--models' names, each known and given once."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    for k, n in enumerate(names):
        if n not in MODELS:
            raise ValueError(f"--models: unknown model {n!r}; expected some of {', '.join(MODELS)}")
        if n in names[:k]:
            raise ValueError(f"--models: {n} is named twice; expected each model once")
    if not names:
        raise ValueError(f"--models: expected at least one of {', '.join(MODELS)}, "
                         f"got {text!r}")
    return names


def run_backtest(args):
    # the command's own flags first, then the options and --out: all before any work
    # (--origins and --step: backtest.origins, before any model runs)
    names = model_names(args.models)
    if args.retrain_every is not None and args.retrain_every < 0:
        raise ValueError(f"--retrain-every: expected an integer >= 0, got {args.retrain_every}")
    if args.retrain and args.retrain_every is not None:
        raise ValueError(f"--retrain and --retrain-every {args.retrain_every} conflict: "
                         "--retrain trains anew at every origin (as --retrain-every 1); "
                         "give one of them")
    opts = _opts(args)
    if "rnn" not in names:
        _refuse_network_options(args)
    trainer.check_out(opts.out)
    _check_columns(args, [args.data])
    s = _load(args, args.data)
    fs = forecasters(names, opts, opts.log, 1 if args.retrain else args.retrain_every or 0)
    bt = bt_mod.run(s, fs, opts.horizon, args.step, args.origins, show=opts.progress)
    for n, lab in labels(fs).items():
        bt.models[n].label = lab
    save_backtest(bt, opts.out)
    for name, label, m in bt.table():
        _print_scores(f"{name:7s} {label}", {k: m[k] for k in report.METRICS})
    print(f"report: {report.write_page([bt], opts.out)}")
    return 0


# the options every model of a backtest reads; the rest configure the network only
_SHARED_OPTIONS = ("horizon", "log", "out", "progress")


def _refuse_network_options(args):
    """A backtest without rnn in --models refuses the network's options, given on
    the command line or in --config: it would run without them, silently."""
    from dataclasses import fields
    net = [f.name for f in fields(train.ForecastOptions) if f.name not in _SHARED_OPTIONS]
    given = [options.flag(k) for k in net if k in vars(args)]
    given += (["--retrain"] * bool(args.retrain)
              + ["--retrain-every"] * (args.retrain_every is not None))
    in_file = [k for k in net if args.config and k in options.load_toml(args.config)]
    if given or in_file:
        where = given[0] if given else f"--config {args.config}: {in_file[0]}"
        raise ValueError(f"{where} configures the network, but --models {args.models} does "
                         "not run it; add rnn to --models or drop the option")


def save_backtest(bt, out):
    os.makedirs(out, exist_ok=True)
    d = bt.to_dict()
    d["raw"] = {"time": [str(t) for t in bt.series.time], "values": bt.series.values.tolist(),
                "period": bt.series.period, "origin_index": list(map(int, bt.origins)),
                "q": {n: np.asarray(r.q).tolist() for n, r in bt.models.items()}}
    with atomic_write(os.path.join(out, "backtest.json")) as f:
        json.dump(d, f)


def load_backtest(folder):
    path = os.path.join(folder, "backtest.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file (run rnnlab forecast backtest --out "
                                f"{folder} first)")

    def bad(why):
        return ValueError(f"{path}: not a backtest.json written by rnnlab forecast backtest "
                          f"({why}); run the backtest again")

    with open(path, "rb") as f:
        text = f.read()
    try:
        d = json.loads(text.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise bad(f"byte 0x{text[e.start]:02x} at offset {e.start} is not UTF-8") from None
    except json.JSONDecodeError as e:
        raise bad(f"invalid JSON: {e}") from None
    if not isinstance(d, dict):
        raise bad(f"expected a JSON object, found {type(d).__name__}")
    missing = [k for k in ("series", "horizon", "models", "raw") if k not in d]
    if missing:
        raise bad(f"missing {', '.join(missing)}")
    name = d["series"]
    if not isinstance(name, str) or name in ("", ".", "..") or os.path.basename(name) != name:
        # it names the figures' files: "../x" wrote them outside the folder
        raise bad(f"series is {name!r}, expected a name (no folder: it names the figures)")
    # rebuilt by rerunning the harness on the saved forecasts: any damage to the
    # saved fields surfaces as one of these
    try:
        raw = d["raw"]
        s = data.Series(d["series"], np.array(raw["time"], dtype="datetime64"),
                        np.array(raw["values"], dtype=np.float64), raw["period"])
        if not np.isfinite(s.values).all() or not all(
                np.isfinite(np.asarray(q, dtype=np.float64)).all() for q in raw["q"].values()):
            raise ValueError("values or forecasts that are not finite")
        _check_fields(d)
        if (np.diff(s.time).astype(np.int64) <= 0).any():
            raise ValueError("raw.time is not strictly increasing")
        crossing = [n for n, q in raw["q"].items()
                    if (np.diff(np.asarray(q, dtype=np.float64), axis=-1) < 0).any()]
        if crossing:
            raise ValueError(f"the quantiles of {crossing[0]} cross (they are sorted when "
                             "written)")
        fs = {n: (lambda q: (lambda h, horizon, it=iter(q): np.array(next(it))))(raw["q"][n])
              for n in d["models"]}
        at = [int(o) for o in raw["origin_index"]]
        if not at or _step(at) < 1:
            raise ValueError(f"origin_index is {at}, expected increasing indices")
        bt = bt_mod.run(s, fs, d["horizon"], _step(at), len(at))
        if list(bt.origins) != at:
            raise ValueError(f"origin_index {at} does not match the horizon {d['horizon']} "
                             f"and the {len(s)} observations")
        for n, m in d["models"].items():
            bt.models[n].label = m["label"]
    except KeyError as e:
        raise bad(f"no {e} entry") from None
    except (TypeError, ValueError, IndexError, AttributeError, StopIteration) as e:
        raise bad(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from None
    return bt


def _check_fields(d):
    """backtest.json's numbers and names of the right kind: a ValueError naming the
    first that is not (the horizon 12.5 or True, the period -1 were used as they
    were; no model at all failed after the first figure)."""
    is_int = checkpoint.is_int
    if not is_int(d["horizon"]) or d["horizon"] < 1:
        raise ValueError(f"horizon is {d['horizon']!r}, expected an integer >= 1")
    if not is_int(d["raw"]["period"]) or d["raw"]["period"] < 1:
        raise ValueError(f"raw.period is {d['raw']['period']!r}, expected an integer >= 1")
    models = d["models"]
    if not isinstance(models, dict) or not models:
        raise ValueError(f"models is {models!r}, expected at least one model")
    for n, m in models.items():
        if not isinstance(m, dict) or not isinstance(m.get("label"), str):
            raise ValueError(f"model {n!r} has no label (a string)")


def _step(idx):
    return idx[1] - idx[0] if len(idx) > 1 else 1


def run_plot(args):
    bt = load_backtest(args.folder)
    print(f"report: {report.write_page([bt], args.folder)}")
    return 0
