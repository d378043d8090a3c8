"""One self-contained HTML page: figures (base64 PNG), the numbers, the verdicts,
and a short plain-language reading written from the measured numbers.

``write(path, flows, figures, results=None, meta=None)``: flows is
{label: gradflow.LayerFlow} (one per model/layer), figures {caption: png path},
results optional ``experiment.train`` result dicts. Nothing is fetched from the
network when the page is opened: styles inline, images embedded.
"""
import base64
import html
import math

import numpy as np

from rnnlab.io.atomic import atomic_write

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;
color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #ddd}
.vanishing{color:#b00}.exploding{color:#b60}.healthy{color:#070}
figure{margin:1.5em 0}figcaption{color:#555;font-size:90%}"""


def _fmt(v, spec=".3g"):
    if v is None:
        return "–"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return format(v, spec)


def _img(path):
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(str(path))}">'


def _flow_table(flows):
    head = ("<tr><th>model / layer</th><th>verdict</th><th>factor per step</th>"
            "<th>d where &lt; 1e-6 (measured)</th><th>d where &lt; 1e-6 (fit)</th>"
            "<th>norm at d = T-1</th><th>median ‖J_t‖</th><th>‖J product‖ at T-1</th>"
            "<th>σ_max(W_hh)</th><th>γ σ_max</th></tr>")
    rows = []
    for label, f in flows.items():
        v, m = f.verdict, f.curve.mean
        rel = m[-1] / m[0] if m[0] > 0 else float("nan")
        jac = np.asarray(f.jac_norms, float)
        rows.append(
            f"<tr><td>{html.escape(label)}</td><td class='{v.kind}'>{v.kind}</td>"
            f"<td>{_fmt(v.rate, '.4f')}</td><td>{_fmt(v.below_at, 'd')}</td>"
            f"<td>{_fmt(v.below_fit, '.0f')}</td><td>{_fmt(float(rel), '.2e')}</td>"
            f"<td>{_fmt(float(np.median(jac)) if jac.size else None, '.3f')}</td>"
            f"<td>{_fmt(float(f.products[-1]) if len(f.products) else None, '.2e')}</td>"
            f"<td>{_fmt(f.bound['sigma_max'], '.3f')}</td>"
            f"<td>{_fmt(f.bound['bound'], '.3f')}</td></tr>")
    return "<table>" + head + "".join(rows) + "</table>"


def _results_table(results):
    head = ("<tr><th>task</th><th>cell</th><th>T</th><th>seed</th><th>metric</th><th>score</th>"
            "<th>baseline</th><th>solved</th><th>clipped</th><th>seconds</th></tr>")
    rows = [f"<tr><td>{r['task']}</td><td>{r['cell']}</td><td>{r['length']}</td>"
            f"<td>{r['seed']}</td><td>{r['metric']}</td><td>{_fmt(r['score'], '.4f')}</td>"
            f"<td>{_fmt(r['baseline'], '.4f')}</td><td>{'yes' if r['success'] else 'no'}</td>"
            f"<td>{100 * r['clip']['fraction']:.0f}%</td><td>{r['seconds']:.1f}</td></tr>"
            for r in results]
    return "<table>" + head + "".join(rows) + "</table>"


def _one_reading(label, f):
    v, T = f.verdict, len(f.curve.mean)
    if not math.isfinite(v.rate):
        step = "" if v.nonfinite_step is None else f" at step {v.nonfinite_step}"
        return (f"{label}: the gradient overflowed to infinity or NaN{step}: it explodes. "
                "Clipping the gradient norm, smaller recurrent weights or a gated cell fix this.")
    s = f"{label}: each step back multiplies the gradient by about {v.rate:.3f} on average"
    if v.below_at is not None:
        s += (f"; {v.below_at} steps back it is below a millionth of its value at the loss, "
              f"so a dependency longer than that sends almost no learning signal.")
    elif v.rate < 1:
        s += (f"; it stays above a millionth over all {T} steps measured "
              f"(the trend would reach it after about {v.below_fit:.0f} steps).")
    else:
        s += f"; it does not shrink over the {T} steps measured."
    b = f.bound
    if b.get("bound") is not None:
        med = float(np.median(f.jac_norms)) if np.size(f.jac_norms) else float("nan")
        s += (f" Theory: every step Jacobian diag(f′)W_hh has norm at most "
              f"γσ_max = {b['bound']:.3f} (measured median {med:.3f})")
        s += (", and since that is below 1 the gradient must vanish." if b["bound"] < 1 else
              "; the bound is above 1, so theory alone does not force vanishing: "
              "saturated units (f′ &lt; 1) and the direction of the gradient do the rest.")
    return s


def _group(label):
    """'LSTM (trained)' -> 'trained': compare models measured in the same state."""
    tail = label.rsplit(" (", 1)[-1].rstrip(")") if label.endswith(")") else ""
    return tail if tail in ("init", "trained") else ""


def reading(flows):
    """Plain-language paragraphs generated from the measured numbers."""
    out = [_one_reading(html.escape(label), f) for label, f in flows.items()]
    for group in dict.fromkeys(_group(k) for k in flows):
        finite = {k: f for k, f in flows.items() if _group(k) == group
                  and math.isfinite(f.verdict.rate) and f.curve.mean[0] > 0
                  and f.curve.mean[-1] > 0}
        if len(finite) < 2:
            continue
        end = {k: f.curve.mean[-1] / f.curve.mean[0] for k, f in finite.items()}
        lo, hi = min(end, key=end.get), max(end, key=end.get)
        T = len(finite[hi].curve.mean)
        out.append(f"At the far end ({T - 1} steps back) {html.escape(hi)} keeps "
                   f"{end[hi]:.1e} of the gradient and {html.escape(lo)} {end[lo]:.1e}: "
                   f"{math.log10(end[hi] / end[lo]):.1f} orders of magnitude apart. That is "
                   "the difference between being able to learn a dependency that long and not.")
    return out


def _results_reading(results):
    out = []
    for r in results:
        better = r["score"] > r["baseline"] if r["metric"] == "accuracy" else r["score"] < r["baseline"]
        out.append(f"{r['cell']} on {r['task']} (T = {r['length']}): {r['metric']} "
                   f"{r['score']:.4f} against the trivial baseline {r['baseline']:.4f}: "
                   + ("solved." if r["success"] else
                      "better than the baseline but not solved." if better else
                      "no better than the baseline: it did not learn the long-range dependency."))
    return out


def write(path, flows, figures, results=None, meta=None, title="rnnlab gradient-flow report"):
    """Write the page; returns the path."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    if meta:
        parts.append("<p>" + ", ".join(f"{html.escape(str(k))}: {html.escape(str(v))}"
                                       for k, v in meta.items()) + "</p>")
    parts.append("<h2>Reading</h2>" + "".join(f"<p>{p}</p>" for p in reading(flows)))
    if results:
        parts.append("".join(f"<p>{html.escape(p)}</p>" for p in _results_reading(results)))
    parts.append("<h2>Gradient flow: numbers and verdicts</h2>" + _flow_table(flows))
    parts.append("<p>factor per step: exp of the slope of a least-squares line through "
                 "log ‖∂L_t/∂h_(t−d)‖ against d. Vanishing: below 1e-6 of the d = 0 value "
                 "within the window; exploding: above 1e6 or non-finite.</p>")
    if results:
        parts.append("<h2>Training</h2>" + _results_table(results))
    parts.append("<h2>Figures</h2>")
    for caption, png in figures.items():
        parts.append(f"<figure>{_img(png)}<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    with atomic_write(path) as f:
        f.write("\n".join(parts))
    return str(path)
