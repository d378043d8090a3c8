"""Figures (matplotlib, imported lazily: the ``plot`` extra) and the HTML page of
a backtest, built with the shared ``rnnlab.io.page.Page``.

- the series with the origins marked;
- the forecast fan of each model from the last origin: median, 80% and 95%
  intervals, against the actuals;
- the backtest error per horizon step (mean absolute scaled error) for every model;
- the share of actuals inside the 80% and 95% intervals per horizon step.
"""
import os

import numpy as np

from rnnlab.forecast import heads
from rnnlab.io.figures import pyplot as _plt, save_png
from rnnlab.io.page import Page

METRICS = ("mase", "smape", "mape", "rmse", "pinball", "coverage_80", "coverage_95",
           "width_80", "width_95")


def plot_series(bt, path):
    plt = _plt()
    s = bt.series
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.plot(s.time, s.values, lw=1, color="k")
    for o in bt.origins:
        ax.axvline(s.time[o], color="tab:red", lw=0.7, alpha=0.6)
    ax.set_title(f"{s.name}: {len(s)} observations; red lines: the {len(bt.origins)} "
                 "forecast origins")
    return save_png(fig, path, dpi=90)


def plot_fans(bt, path, context=48):
    """One panel per model: the forecast from the last origin with its intervals."""
    plt = _plt()
    s, o = bt.series, bt.origins[-1]
    names = list(bt.models)
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3 * rows), squeeze=False,
                             sharey=True)
    t_hist = s.time[max(0, o + 1 - context):o + 1]
    t_fut = s.time[o + 1:o + 1 + bt.horizon]
    for ax, name in zip(axes.flat, names):
        q = bt.models[name].q[-1]
        ax.plot(t_hist, s.values[max(0, o + 1 - context):o + 1], color="k", lw=1)
        ax.fill_between(t_fut, q[:, 0], q[:, 4], color="tab:blue", alpha=0.2, label="95%")
        ax.fill_between(t_fut, q[:, 1], q[:, 3], color="tab:blue", alpha=0.35, label="80%")
        ax.plot(t_fut, q[:, heads.MEDIAN], color="tab:blue", lw=1.5, label="median")
        ax.plot(t_fut, bt.actual[-1], color="k", lw=1, ls="--", label="actual")
        ax.set_title(bt.models[name].label, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{s.name}: forecasts from {s.time[o]}")
    return save_png(fig, path, dpi=90)


def plot_horizon_errors(bt, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    h = np.arange(1, bt.horizon + 1)
    for name, r in bt.models.items():
        ax.plot(h, r.per_horizon(bt.actual, bt.scales), marker="o", ms=3, label=r.label)
    ax.set_xlabel("horizon step")
    ax.set_ylabel("mean absolute scaled error")
    ax.set_title(f"{bt.series.name}: error per horizon, mean over {len(bt.origins)} origins")
    ax.legend(fontsize=7)
    return save_png(fig, path, dpi=90)


def coverage_per_horizon(bt, name):
    """{level: (Hz,)} share of actuals inside the model's central intervals, per
    horizon step, over the origins."""
    q, a = np.asarray(bt.models[name].q), np.asarray(bt.actual)             # (O, Hz, P), (O, Hz)
    return {level: np.mean((q[..., lo] <= a) & (a <= q[..., hi]), axis=0)
            for level, (lo, hi) in heads.LEVELS.items()}


def plot_coverage(bt, path):
    """One panel per interval level: coverage per horizon step of every model."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(heads.LEVELS), figsize=(11, 3.5), sharey=True)
    h = np.arange(1, bt.horizon + 1)
    cover = {n: coverage_per_horizon(bt, n) for n in bt.models}
    for ax, level in zip(axes, heads.LEVELS):
        for name, r in bt.models.items():
            ax.plot(h, cover[name][level], marker="o", ms=3, label=r.label)
        ax.axhline(level, color="k", ls="--", lw=1)
        ax.set_title(f"{int(round(level * 100))}% intervals (dashed: nominal)", fontsize=9)
        ax.set_xlabel("horizon step")
    axes[0].set_ylabel(f"coverage over {len(bt.origins)} origins")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{bt.series.name}: interval coverage per horizon step")
    return save_png(fig, path, dpi=90)


def table_rows(bt):
    return [[name, label] + [m[k] for k in METRICS] for name, label, m in bt.table()]


def write_page(backtests, out, title="rnnlab forecast backtest", notes=()):
    """Every backtest's table and figures on one page; returns its path."""
    os.makedirs(out, exist_ok=True)
    page = Page(title)
    for n in notes:
        page.text(n)
    for bt in backtests:
        name = bt.series.name
        page.heading(f"{name}: horizon {bt.horizon}, {len(bt.origins)} origin(s) "
                     f"{bt.series.time[bt.origins[0]]} .. {bt.series.time[bt.origins[-1]]}")
        page.table(table_rows(bt), header=["model", "form"] + list(METRICS))
        page.text("MASE is scaled by the in-sample seasonal naive error (m = "
                  f"{bt.series.period}); sMAPE and MAPE are fractions; coverage is the share "
                  "of actuals inside the interval (nominal 0.80 and 0.95); means over origins.")
        page.figure(plot_series(bt, os.path.join(out, f"{name}-series.png")),
                    f"{name}: the series and the origins")
        page.figure(plot_fans(bt, os.path.join(out, f"{name}-fans.png")),
                    "median, 80% and 95% intervals from the last origin; dashed: actual")
        page.figure(plot_horizon_errors(bt, os.path.join(out, f"{name}-horizon.png")),
                    "backtest error per horizon step for every model")
        page.text("coverage ± standard error (Newey-West over the per-origin values, "
                  f"correlated up to {bt.overlap} origins apart): " + "; ".join(
                      f"{n} " + ", ".join(f"{r.mean()[k]:.2f} ± {r.se(k, bt.overlap):.2f}"
                                          for k in ("coverage_80", "coverage_95"))
                      for n, r in bt.models.items()))
        page.figure(plot_coverage(bt, os.path.join(out, f"{name}-coverage.png")),
                    "interval coverage per horizon step for every model")
    return page.write(os.path.join(out, "report.html"))
