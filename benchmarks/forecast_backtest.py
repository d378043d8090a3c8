"""Forecasting targets of issue 10: the airline single split and the rolling-origin
backtests, every model in the same harness.

    python benchmarks/forecast_backtest.py airline-split      # last 36 months, one origin
    python benchmarks/forecast_backtest.py backtest airline co2 sunspots

Writes ``benchmarks/results/forecast_<what>.md`` (the table, with date, machine
and command) and the page with the figures under ``--out``. Same seed, same
numbers. The network's settings per series are in ``SETTINGS``.
"""
import argparse
import datetime
import os
import platform
import sys
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rnnlab.cli import forecast as cli                      # noqa: E402
from rnnlab.forecast import backtest, data, report, train  # noqa: E402
from rnnlab.io.atomic import atomic_write                  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
MODELS = ("naive", "snaive", "drift", "ets", "arima", "rnn")
# per series: the network's options (log is used by ARIMA too) and whether the
# network is trained anew at every origin
SETTINGS = {
    "airline": (dict(log=False, head="quantile"), True),
    "co2": (dict(log=False, head="quantile", ar=12), True),
    "sunspots": (dict(log=False, diff="first", input_len=48, batch_size=64, epochs=60,
                      early_stop=10, ar=24), False),
}


def machine():
    with open("/proc/cpuinfo") as f:
        name = next((line.split(":", 1)[1].strip() for line in f if "model name" in line),
                    platform.processor())
    return f"{name}, {os.cpu_count()} cores"


def run_one(name, horizon, step, count, out, seed):
    extra, retrain = SETTINGS[name]
    opts = train.ForecastOptions(seed=seed, horizon=horizon, out=os.path.join(out, name, "runs"),
                                 **extra)
    fs = cli.forecasters(MODELS, opts, opts.log, retrain)
    t0 = time.perf_counter()
    bt = backtest.run(data.load(name), fs, horizon, step, count)
    for n, lab in cli.labels(fs).items():
        bt.models[n].label = lab
    cli.save_backtest(bt, os.path.join(out, name))
    return bt, time.perf_counter() - t0, opts, retrain


def markdown(bt, seconds, opts, retrain):
    lines = [f"### {bt.series.name}: horizon {bt.horizon}, {len(bt.origins)} origin(s) "
             f"{bt.series.time[bt.origins[0]]} .. {bt.series.time[bt.origins[-1]]} "
             f"({seconds:.0f} s)", "",
             "| model | form | " + " | ".join(report.METRICS) + " |",
             "|---|---|" + "---|" * len(report.METRICS)]
    for name, label, m in bt.table():
        lines.append(f"| {name} | {label} | " + " | ".join(f"{m[k]:.4f}" for k in report.METRICS)
                     + " |")
    net = {k: v for k, v in vars(opts).items() if k in (
        "arch", "mode", "hidden_size", "head", "input_len", "ar", "log", "diff", "epochs", "lr",
        "batch_size", "valid", "refit", "ensemble", "seed")}
    how = "retrained at every origin" if retrain else "trained once at the first origin"
    lines += ["", f"network: {net}, {how}", ""]
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=("airline-split", "backtest"))
    ap.add_argument("series", nargs="*", default=["airline", "co2", "sunspots"])
    ap.add_argument("--origins", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="forecast-bench")
    args = ap.parse_args(argv)
    if args.what == "airline-split":
        runs = [run_one("airline", 36, 12, 1, os.path.join(args.out, "split"), args.seed)]
    else:
        runs = [run_one(s, 12, 12, args.origins, os.path.join(args.out, "backtest"), args.seed)
                for s in args.series]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = f"date: {stamp}; machine: {machine()}; command: " \
        f"`python benchmarks/forecast_backtest.py {' '.join(argv or sys.argv[1:])}`"
    os.makedirs(RESULTS, exist_ok=True)
    for r in runs:                                     # one record per series and protocol
        body = markdown(*r)
        print("\n".join(body))
        name = "forecast_airline_split.md" if args.what == "airline-split" else \
            f"forecast_backtest_{r[0].series.name}.md"
        with atomic_write(os.path.join(RESULTS, name)) as f:
            f.write("\n".join([f"# forecast {args.what}: {r[0].series.name}", "", head, ""]
                              + body) + "\n")
    page = report.write_page([r[0] for r in runs], os.path.join(args.out, args.what),
                             title=f"rnnlab forecast: {args.what}")
    print(f"page: {page}")


if __name__ == "__main__":
    main()
