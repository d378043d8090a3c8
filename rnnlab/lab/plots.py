"""PNG figures of gradient flow, training and sweeps (matplotlib, Agg backend).

matplotlib is imported only when a figure is drawn, so the rest of rnnlab runs
without it; a missing matplotlib is a ValueError naming the extra to install.
Every function takes plain measurements (``gradflow.LayerFlow`` or the result
dicts of ``experiment.train``) and a path, writes one PNG and returns the path.
Non-finite values are never drawn as lines: they are masked and the exploding
point is written on the figure.
"""
import numpy as np

from rnnlab.io.figures import pyplot as _plt, save_png as _save

COLORS = {"rnn": "tab:red", "lstm": "tab:blue", "gru": "tab:green", "irnn": "tab:orange"}


def _color(label, k):
    key = label.lower().split()[0]
    return COLORS.get(key, f"C{k}")


def _positive(v):
    """Values fit for a log axis: non-finite and non-positive become NaN (gaps)."""
    v = np.asarray(v, float)
    return np.where(np.isfinite(v) & (v > 0), v, np.nan)


def distance(flows, path, title="Gradient reaching d steps back"):
    """||dL_t/dh_{t-d}|| / d=0 value against d, log scale; flows: {label: LayerFlow}."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5.2))
    top = 1.0
    for k, (label, f) in enumerate(flows.items()):
        c, m = _color(label, k), f.curve.mean
        ref = m[0] if np.isfinite(m[0]) and m[0] > 0 else 1.0
        m, qs = _positive(m), _positive(f.curve.quantiles)
        d = np.arange(len(m))
        ax.plot(d, _positive(m / ref), color=c, lw=2, label=f"{label}: {f.verdict.kind}, "
                f"x{f.verdict.rate:.3f}/step")
        lo, hi = qs[0] / ref, qs[-1] / ref
        ax.fill_between(d, _positive(lo), _positive(hi), color=c, alpha=0.15, lw=0)
        if len(f.products):
            ax.plot(d, _positive(f.products), color=c, ls=":", lw=1.2,
                    label=f"{label}: ||J_t...J_(t-d+1)|| (Jacobian product)")
        if f.bound.get("bound"):
            with np.errstate(over="ignore"):
                line = f.bound["bound"] ** d.astype(float)
            ax.plot(d, _positive(line), color=c, ls="--", lw=1,
                    label=f"{label}: bound (γσ_max)^d, γσ={f.bound['bound']:.2f}")
        top = max(top, np.nanmax(np.r_[m / ref, hi, 1.0]))
        if f.verdict.nonfinite_step is not None or not np.isfinite(f.verdict.rate):
            ax.text(0.02, 0.05 + 0.07 * k, f"{label}: non-finite gradient (exploding) "
                    f"from step {f.verdict.nonfinite_step}", color=c, transform=ax.transAxes)
    ax.axhline(1e-6, color="grey", ls=":", lw=1)
    ax.text(0, 1.3e-6, "1e-6 of d = 0", color="grey", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(top=top * 100)                # a bound above 1 would otherwise squash the data
    ax.set(xlabel="distance d (steps back)", title=title,
           ylabel="||dL_t/dh_(t-d)|| relative to d = 0 (mean, 10-90% band)")
    ax.legend(fontsize=7, loc="lower left")
    return _save(fig, path)


def jacobians(flows, path):
    """Histogram of the step Jacobians' spectral norms per cell (and the bound)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for k, (label, f) in enumerate(flows.items()):
        v = np.asarray(f.jac_norms, float).ravel()
        v = v[np.isfinite(v) & (v > 0)]
        if v.size == 0:
            continue
        bins = np.geomspace(max(v.min(), 1e-6) * 0.9, v.max() * 1.1, 40)
        ax.hist(v, bins=bins, color=_color(label, k), alpha=0.55,
                label=f"{label}: median {np.median(v):.3f}")
        if f.bound.get("bound"):
            ax.axvline(f.bound["bound"], color=_color(label, k), ls="--",
                       label=f"{label}: bound γσ_max = {f.bound['bound']:.3f}")
    ax.axvline(1.0, color="black", lw=1, ls=":")
    ax.set(xscale="log", xlabel="spectral norm of the step Jacobian ∂state_t/∂state_(t-1)",
           ylabel="steps x rows", title="Step Jacobian norms (below 1 shrinks, above 1 grows)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def training(results, path):
    """Over training: fitted decay rate, Jacobian norms, and the loss (one line per run)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for k, r in enumerate(results):
        label, c = r["cell"], _color(r["cell"], k)
        steps = [s["step"] for s in r["gradflow"]]
        rates = [s["rate"] if np.isfinite(s["rate"]) else np.nan for s in r["gradflow"]]
        axes[0].plot(steps, rates, "o-", color=c, label=label)
        q = np.array([np.quantile(_finite(s["jac_norms"]), [0.1, 0.5, 0.9])
                      if _finite(s["jac_norms"]).size else [np.nan] * 3 for s in r["gradflow"]])
        axes[1].plot(steps, q[:, 1], "o-", color=c, label=label)
        axes[1].fill_between(steps, q[:, 0], q[:, 2], color=c, alpha=0.15)
        sm = _smooth(np.asarray(r["losses"], float))
        axes[2].plot(np.arange(len(r["losses"]) - len(sm) + 1, len(r["losses"]) + 1),
                     _positive(sm), color=c, label=label)
    axes[0].axhline(1.0, color="grey", ls=":")
    axes[0].set(xlabel="training step", ylabel="gradient factor per step back (fit)",
                title="Decay rate of the gradient")
    axes[1].axhline(1.0, color="grey", ls=":")
    axes[1].set(xlabel="training step", ylabel="spectral norm (median, 10-90%)",
                title="Step Jacobian norms", yscale="log")
    if results:
        axes[2].axhline(results[0]["baseline"], color="black", ls="--", label="trivial baseline")
    axes[2].set(xlabel="training step", ylabel="training loss (smoothed)", yscale="log",
                title="Loss")
    for ax in axes:
        ax.legend(fontsize=8)
    return _save(fig, path)


def _finite(v):
    v = np.asarray(v, float)
    return v[np.isfinite(v)]


def _smooth(v, k=20):
    """Running mean over k steps (fully inside the data: no edge artefacts)."""
    if len(v) < k:
        return v
    return np.convolve(v, np.ones(k) / k, mode="valid")


def clipping(results, path):
    """Gradient norm before clipping per training step, the threshold and the events."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for k, r in enumerate(results):
        n = np.asarray(r["grad_norms"], float)
        c, clip = _color(r["cell"], k), r["config"].get("clip")
        ax.plot(np.arange(1, len(n) + 1), _positive(n), color=c, lw=0.8,
                label=f"{r['cell']}: clipped {r['clip']['events']}x "
                      f"({100 * r['clip']['fraction']:.0f}%), max x{r['clip']['max_ratio']:.1f}")
        if clip:
            ax.axhline(clip, color=c, ls="--", lw=1)
        bad = np.nonzero(~np.isfinite(n))[0]
        if bad.size:
            ax.plot(bad + 1, np.full(bad.size, np.nanmax(_positive(n))), "x", color=c,
                    label=f"{r['cell']}: {bad.size} non-finite (update skipped)")
    ax.set(yscale="log", xlabel="training step", ylabel="global gradient norm before clipping",
           title="Gradient clipping (dashed: threshold)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def sweep(results, path):
    """Success fraction (over seeds) and score against sequence length, per cell."""
    from rnnlab.lab.experiment import success_by_length
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for k, (cell, by_len) in enumerate(success_by_length(results).items()):
        axes[0].plot(list(by_len), list(by_len.values()), "o-", color=_color(cell, k), label=cell)
        rs = [r for r in results if r["cell"] == cell]
        lengths = sorted({r["length"] for r in rs})
        score = [np.mean([r["score"] for r in rs if r["length"] == T]) for T in lengths]
        axes[1].plot(lengths, score, "o-", color=_color(cell, k), label=cell)
    if results:
        lengths = sorted({r["length"] for r in results})
        base = [next(r["baseline"] for r in results if r["length"] == T) for T in lengths]
        axes[1].plot(lengths, base, "k--", label="trivial baseline")
        axes[1].set(ylabel=results[0]["metric"], title=f"{results[0]['task']}: test score")
    axes[0].set(xlabel="sequence length T", ylabel="fraction of seeds solved", ylim=(-0.05, 1.05),
                title="Success against length")
    axes[1].set(xlabel="sequence length T")
    for ax in axes:
        ax.legend(fontsize=8)
    return _save(fig, path)
