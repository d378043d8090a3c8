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
from rnnlab.io.atomic import atomic_write
from rnnlab.training import options, trainer

MODELS = ("naive", "snaive", "drift", "ets", "arima", "rnn")


def _data_args(p, many=False):
    p.add_argument("data", nargs="*" if many else "?", default=["airline"] if many else "airline",
                   help="airline (embedded), co2, sunspots, sunspots-yearly or a CSV file")
    p.add_argument("--time-col", help="name of the time column (default: the first)")
    p.add_argument("--value-col", help="name of the value column (default: the last)")
    p.add_argument("--interpolate", action="store_true",
                   help="fill missing values inside a series linearly (default: an error)")


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
                   help="hold out the last N observations of each series and score them")
    t.add_argument("--config", help="TOML file with options")
    options.add_arguments(t, train.ForecastOptions)
    t.set_defaults(func=run_train)

    pr = sub.add_parser("predict", help="forecast the next horizon with a trained model")
    _data_args(pr)
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
    b.add_argument("--retrain-every", type=int, default=0, metavar="K",
                   help="train the network anew at every K-th origin (0: only at the first)")
    b.add_argument("--config", help="TOML file with the network's options")
    options.add_arguments(b, train.ForecastOptions)
    b.set_defaults(func=run_backtest)

    pl = sub.add_parser("plot", help="figures and report.html from a backtest folder")
    pl.add_argument("folder", help="a folder holding backtest.json")
    pl.set_defaults(func=run_plot)


def _opts(args):
    cfg, _ = trainer.config_from_args(train.ForecastOptions, _only_options(args), train.KIND)
    return cfg


def _only_options(args):
    import argparse
    from dataclasses import fields
    keep = {f.name for f in fields(train.ForecastOptions)} | {"config"}
    return argparse.Namespace(**{k: v for k, v in vars(args).items() if k in keep})


def _print_scores(name, scores):
    print(f"{name}: " + "  ".join(f"{k} {v:.4f}" for k, v in scores.items()))


def run_train(args):
    opts = _opts(args)
    series = [_load(args, d) for d in args.data]
    if args.test < 0:
        raise ValueError(f"--test: expected an integer >= 0, got {args.test}")
    hist = [s.head(len(s) - args.test) for s in series]
    if args.test:
        opts = replace(opts, horizon=args.test)
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


def run_predict(args):
    f, names = train.load_forecaster(args.model)
    s = _load(args, args.data)
    which = names.index(s.name) if s.name in names else 0
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


def run_backtest(args):
    opts = _opts(args)
    s = _load(args, args.data)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.retrain_every < 0:
        raise ValueError(f"--retrain-every: expected an integer >= 0, got {args.retrain_every}")
    fs = forecasters(names, opts, opts.log, 1 if args.retrain else args.retrain_every)
    bt = bt_mod.run(s, fs, opts.horizon, args.step, args.origins, show=opts.progress)
    for n, lab in labels(fs).items():
        bt.models[n].label = lab
    save_backtest(bt, opts.out)
    for name, label, m in bt.table():
        _print_scores(f"{name:7s} {label}", {k: m[k] for k in report.METRICS})
    print(f"report: {report.write_page([bt], opts.out)}")
    return 0


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
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    raw = d["raw"]
    s = data.Series(d["series"], np.array(raw["time"], dtype="datetime64"),
                    np.array(raw["values"]), raw["period"])
    fs = {n: (lambda q: (lambda h, horizon, it=iter(q): np.array(next(it))))(raw["q"][n])
          for n in d["models"]}
    bt = bt_mod.run(s, fs, d["horizon"], _step(raw["origin_index"]), len(raw["origin_index"]))
    for n, m in d["models"].items():
        bt.models[n].label = m["label"]
    return bt


def _step(idx):
    return idx[1] - idx[0] if len(idx) > 1 else 1


def run_plot(args):
    bt = load_backtest(args.folder)
    print(f"report: {report.write_page([bt], args.folder)}")
    return 0
