"""``rnnlab demo``, the tour: train a tanh RNN, an LSTM and a GRU on the adding
problem, check their gradients, show how far back in time each one's gradient
reaches (table, verdicts, figures and an HTML report), then train a small
character-level language model on the embedded corpus and sample from it.

The adding problem (Hochreiter & Schmidhuber 1997, section 5.4; Le et al. 2015):
each step of a sequence of length T carries two inputs, a value drawn from
U(0, 1) and a marker; exactly two steps are marked, one in each half of the
sequence, and the target is the sum of the two marked values. Predicting the
mean (1.0) scores MSE 1/6 ~ 0.167; doing better needs memory reaching back at
least T/2 steps. The model is one recurrent layer and a linear readout of the
last hidden state, trained with Adam on MSE; both backwards are written out by
hand (``rnnlab.nn``, ``rnnlab.layers``).

Shapes: T time, B batch, H hidden; inputs (T, B, 2), targets (B, 1).
Everything is drawn from generators seeded by ``--seed``: same seed, same
numbers (only the timings differ).
"""
import os
import sys
import time
from dataclasses import dataclass, replace

import numpy as np

from rnnlab.engine import layers
from rnnlab import nn, optim

CELLS = (("rnn", "RNN (tanh)"), ("lstm", "LSTM"), ("gru", "GRU"))
BASELINE_MSE = 1.0 / 6.0          # Var(u1 + u2) for u ~ U(0, 1): always predicting 1


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 0
    steps: int = 600              # Adam steps per cell
    length: int = 40              # T
    batch: int = 32               # B
    hidden: int = 32              # H
    lr: float = 1e-2
    clip: float = 1.0             # global gradient-norm clip
    eval_batch: int = 256         # held-out sequences for the test MSE and the gradient table
    out: str = "rnnlab-demo"      # report.html, figures and the language model's run
    report: bool = True           # figures and report.html (needs matplotlib)
    lm_steps: int = 1000          # language-model steps per epoch, at most (0 = skip it)
    lm_epochs: int = 4            # epochs over the embedded corpus (204 steps each)
    lm_hidden: int = 128


QUICK = dict(steps=5, length=8, batch=4, hidden=4, eval_batch=8, lm_steps=3, lm_epochs=1,
             lm_hidden=8)


# ---------------------------------------------------------------- task

def adding_batch(rng, T, B, dtype=np.float32):
    """x (T, B, 2): [value, marker]; y (B, 1): the sum of the two marked values."""
    if T < 2:
        raise ValueError(f"--length must be at least 2 (one marker in each half), got {T}")
    values = rng.uniform(0.0, 1.0, size=(T, B))
    first = rng.integers(0, T // 2, size=B)                      # one marker in each half
    second = rng.integers(T // 2, T, size=B)
    marks = np.zeros((T, B))
    marks[first, np.arange(B)] = 1.0
    marks[second, np.arange(B)] = 1.0
    x = np.stack([values, marks], axis=-1).astype(dtype)        # (T, B, 2)
    y = (values * marks).sum(axis=0)[:, None].astype(dtype)      # (B, 1)
    return x, y


# ---------------------------------------------------------------- model

def init_model(rnn_cfg, rng, dtype=np.float32):
    """Recurrent parameters (torch names) plus a linear readout H -> 1, one flat dict."""
    model = layers.init_params(rnn_cfg, rng, dtype)
    k = 1.0 / np.sqrt(rnn_cfg.hidden_size)
    model["readout.weight"] = rng.uniform(-k, k, size=(1, rnn_cfg.hidden_size)).astype(dtype)
    model["readout.bias"] = np.ones(1, dtype)                    # start at the mean target
    return model


def loss_and_grads(rnn_cfg, model, x, y, on_step=None):
    """MSE of the readout of the last hidden state, and dL/d(every entry of model).

    on_step is passed to ``layers.backward``: it sees dL/dstate entering each step.
    """
    rnn = {k: model[k] for k in layers.param_shapes(rnn_cfg)}
    out, _, cache = layers.forward(rnn_cfg, rnn, x)               # (T, B, H)
    w, b = model["readout.weight"], model["readout.bias"]
    pred = nn.linear_forward(out[-1], w, b)                       # (B, 1)
    loss, dpred = nn.mse(pred, y)
    dh_last, dw, db = nn.linear_backward(dpred, out[-1], w)       # (B, H), (1, H), (1,)
    dout = np.zeros_like(out)                                     # loss only at the last step
    dout[-1] = dh_last
    _, _, grads = layers.backward(rnn_cfg, rnn, cache, dout, on_step=on_step)
    grads.update({"readout.weight": dw, "readout.bias": db})
    return loss, grads


def train(rnn_cfg, cfg, label, init_rng, out=None):
    """Adam with global-norm clipping on fresh batches. Returns (model, stats)."""
    model = init_model(rnn_cfg, init_rng)
    opt = optim.adam()
    state = opt.init(model)
    data = np.random.default_rng(cfg.seed)        # the same batches for every cell
    bar = _progress(cfg.steps, label, sys.stderr if out is None else out)
    start, losses = time.perf_counter(), []
    for _ in range(cfg.steps):
        x, y = adding_batch(data, cfg.length, cfg.batch)
        loss, grads = loss_and_grads(rnn_cfg, model, x, y)
        grads, _, _ = optim.clip_by_global_norm(grads, cfg.clip)
        model, state = opt.update(model, grads, state, cfg.lr)
        losses.append(loss)
        bar.update(loss)
    bar.close()
    seconds = time.perf_counter() - start
    return model, {"seconds": seconds, "first": losses[0] if losses else float("nan"),
                   "last": float(np.mean(losses[-20:])) if losses else float("nan")}


# ---------------------------------------------------------------- gradient flow

def gradient_flow(rnn_cfg, model, x, y):
    """||dL/dh_{T-d}|| for d = 0 .. T-1, the loss taken at the last step only.

    One backward pass gives them all: ``layers.backward`` calls ``on_step(layer,
    direction, s, ds)`` with ds = dL/d(state after step s), the total gradient
    arriving from every later step, just before it is pushed through step s. With
    the loss at the last output only, ds[0] at step s is exactly dL/dh_{s+1}, at
    distance d = T-1-s. Computed in float64 so tiny norms are not rounded away.
    The norm is over the whole (B, H) gradient of the batch-mean loss.
    """
    T = x.shape[0]
    model64 = {k: v.astype(np.float64) for k, v in model.items()}
    norms = np.zeros(T)

    def record(layer, direction, s, ds):
        norms[T - 1 - s] = np.linalg.norm(ds[0])                  # ds[0]: dL/dh, (B, H)

    loss_and_grads(rnn_cfg, model64, x.astype(np.float64), y.astype(np.float64), record)
    return norms


def distances(T):
    """0, 1, 2, 5, 10, 20, 50, ... below T, and T-1 last."""
    ds, scale = [0], 1
    while True:
        for m in (1, 2, 5):
            if m * scale >= T - 1:
                return ds + [T - 1] if T > 1 else ds
            ds.append(m * scale)
        scale *= 10


def decay_factor(norms):
    """Geometric mean of ||dh_{T-d-1}|| / ||dh_{T-d}|| over the sequence."""
    T = len(norms)
    if T < 2 or norms[0] == 0 or norms[-1] == 0:
        return float("nan")
    return float((norms[-1] / norms[0]) ** (1.0 / (T - 1)))


def format_flow_table(flows, T):
    """flows: {label: norms (T,)} -> the table as text."""
    labels = list(flows)
    head = f"{'d':>11}" + "".join(f"{lab:>13}" for lab in labels)
    rows = [head]
    for d in distances(T):
        rows.append(f"{d:>11}" + "".join(f"{flows[lab][d]:>13.3e}" for lab in labels))
    rows.append(f"{'factor/step':>11}" + "".join(f"{decay_factor(flows[lab]):>13.3f}"
                                                for lab in labels))
    return "\n".join(rows)


# ---------------------------------------------------------------- gradient check

def gradient_check(cfg):
    """Run ``rnnlab.lab.gradcheck.check_layer`` on each cell; True when all pass."""
    from rnnlab.lab import gradcheck
    sizes = dict(T=4, B=2, I=3, H=3)
    print("gradient check: analytic BPTT vs central differences, float64, every "
          "parameter, input and initial state ({})".format(
              ", ".join(f"{k}={v}" for k, v in sizes.items())))
    ok = True
    for mode, label in CELLS:
        report = gradcheck.check_layer(mode, seed=cfg.seed, **sizes)
        worst = max(report.errors, key=report.errors.get)
        print(f"  {label:<11} worst relative error {report.errors[worst]:.1e} ({worst})  "
              f"{'ok' if report else 'FAILED'} (tol {report.tol:.0e})")
        ok = ok and bool(report)
    return ok


# ---------------------------------------------------------------- progress

class _Line:
    """A carriage-return progress line: steps, rate and loss (when tqdm is absent)."""

    def __init__(self, total, label, out):
        self.total, self.label, self.out = total, label, out
        self.n, self.start, self.shown = 0, time.perf_counter(), 0.0

    def update(self, loss):
        self.n += 1
        now = time.perf_counter()
        if now - self.shown > 0.1 or self.n == self.total:
            rate = self.n / max(now - self.start, 1e-9)
            self.out.write(f"\r{self.label:<11} {self.n:>5}/{self.total}  "
                           f"{rate:6.1f} steps/s  loss {loss:.4f}")
            self.out.flush()
            self.shown = now

    def close(self):
        self.out.write("\n")
        self.out.flush()


class _Tqdm:
    def __init__(self, total, label, out):
        from tqdm import tqdm
        self.bar = tqdm(total=total, desc=f"{label:<11}", unit="step", file=out,
                        leave=True, dynamic_ncols=True)

    def update(self, loss):
        self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        self.bar.update()

    def close(self):
        self.bar.close()


def _progress(total, label, out):
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return _Line(total, label, out)
    return _Tqdm(total, label, out)


# ---------------------------------------------------------------- command

def run_demo(cfg, progress_out=None):
    """Train, check, tabulate. Prints to stdout; returns the exit code."""
    print(f"Adding problem: T = {cfg.length}, batch {cfg.batch}, hidden {cfg.hidden}, "
          f"{cfg.steps} Adam steps (lr {cfg.lr}, clip {cfg.clip}), seed {cfg.seed}")
    held_out = np.random.default_rng([cfg.seed, 1])
    x_test, y_test = adding_batch(held_out, cfg.length, cfg.eval_batch)
    results, flows, trained = [], {}, {}
    for k, (mode, label) in enumerate(CELLS):
        rnn_cfg = layers.RNNConfig(mode, input_size=2, hidden_size=cfg.hidden)
        model, stats = train(rnn_cfg, cfg, label, np.random.default_rng([cfg.seed, 2, k]),
                             progress_out)
        test, _ = loss_and_grads(rnn_cfg, model, x_test, y_test)
        results.append((label, stats, test))
        flows[label] = gradient_flow(rnn_cfg, model, x_test, y_test)
        trained[label] = (rnn_cfg, model)
    print()
    print(f"{'cell':<11} {'steps/s':>8} {'train loss':>18} {'test MSE':>9}"
          f"   (predicting 1.0 scores {BASELINE_MSE:.3f})")
    for label, st, test in results:
        rate = cfg.steps / max(st["seconds"], 1e-9)
        print(f"{label:<11} {rate:>8.1f} {st['first']:>8.4f} -> {st['last']:.4f} {test:>9.4f}")
    print()
    ok = gradient_check(cfg)
    print()
    print(f"||dL/dh_(T-d)||: gradient reaching d steps back from a loss at the last step "
          f"(trained weights, {cfg.eval_batch} held-out sequences)")
    print(format_flow_table(flows, cfg.length))
    print("factor/step: the geometric-mean shrink per step back, "
          "(row d=T-1 / row d=0) ** (1/(T-1))")
    tour_report(cfg, trained, x_test)
    if cfg.lm_steps > 0:
        language_model(cfg)
    return 0 if ok else 1


def tour_report(cfg, trained, x_test):
    """Verdicts for the trained cells; with matplotlib, figures and report.html."""
    from rnnlab.lab import gradflow
    x = x_test[:, :32]
    flows = {label: gradflow.measure(rc, {k: m[k] for k in layers.param_shapes(rc)}, x,
                                     last_only=True)[(0, 0)] for label, (rc, m) in trained.items()}
    print("\nverdicts (loss at the last step, trained weights):")
    for label, f in flows.items():
        print(f"  {label:<11} {f.verdict.describe()}")
    if not cfg.report:
        return
    try:
        from rnnlab.lab import plots, report
        plots._plt()
    except ValueError as e:                                       # matplotlib missing
        print(f"figures and report skipped: {e}")
        return
    os.makedirs(cfg.out, exist_ok=True)
    figs = {"Gradient norm against distance, trained on the adding problem": plots.distance(
                flows, os.path.join(cfg.out, "distance.png"),
                title=f"Adding problem, T = {cfg.length}: gradient reaching d steps back"),
            "Step Jacobian norms": plots.jacobians(flows, os.path.join(cfg.out, "jacobians.png"))}
    meta = {"task": f"adding, T = {cfg.length}", "hidden": cfg.hidden, "steps": cfg.steps,
            "seed": cfg.seed}
    print("report:", report.write(os.path.join(cfg.out, "report.html"), flows, figs, meta=meta))


def language_model(cfg):
    """A character-level LSTM on the embedded corpus: perplexity and samples."""
    from rnnlab.lm import train as lm_train
    print(f"\nLanguage model: a 1-layer {cfg.lm_hidden}-unit character LSTM on the Python "
          f"language reference (it ships with CPython), {cfg.lm_epochs} epoch(s) of Adam")
    tc = lm_train.LMTrainConfig(
        corpus="python-docs", level="char", emb_size=min(64, cfg.lm_hidden),
        hidden_size=cfg.lm_hidden, num_layers=1, optimizer="adam", lr=3e-3, clip=1.0,
        schedule="constant", epochs=cfg.lm_epochs, max_steps=cfg.lm_steps, batch_size=32, bptt=64,
        seed=cfg.seed, out=os.path.join(cfg.out, "lm"), checkpoint_every=0,
        samples=1, sample_len=160, progress=True)
    *_, history = lm_train.fit(tc)
    print(f"validation perplexity {history[-1]['valid_ppl']:.2f} per character; "
          f"continue with: rnnlab train --resume {os.path.join(tc.out, 'last.npz')} "
          f"--epochs {cfg.lm_epochs + 4}")


def _run(args):
    cfg = DemoConfig(seed=args.seed, out=args.out, report=not args.no_report)
    if args.quick:
        cfg = replace(cfg, **QUICK)
    given = {k: v for k, v in (("steps", args.steps), ("length", args.length),
                               ("lm_steps", args.lm_steps)) if v is not None}
    cfg = replace(cfg, **given)
    if cfg.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {cfg.steps}")
    if cfg.length < 2:
        raise ValueError(f"--length must be at least 2, got {cfg.length}")
    if cfg.lm_steps < 0:
        raise ValueError(f"--lm-steps must be 0 (skip) or more, got {cfg.lm_steps}")
    return run_demo(cfg)


def register(subparsers):
    p = subparsers.add_parser(
        "demo", help="train RNN, LSTM and GRU on the adding problem and show gradient flow",
        description="Train a tanh RNN, an LSTM and a GRU briefly on the adding problem, "
                    "run the gradient check, and print how the gradient norm falls with "
                    "distance in time for each.")
    d = DemoConfig()
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument("--steps", type=int, default=None,
                   help=f"Adam steps per cell (default {d.steps}; {QUICK['steps']} with --quick)")
    p.add_argument("--length", type=int, default=None,
                   help=f"sequence length T (default {d.length}; {QUICK['length']} with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and a few steps: a smoke test in seconds")
    p.add_argument("--out", default=d.out,
                   help=f"folder for report.html, the figures and the language model (default {d.out})")
    p.add_argument("--no-report", action="store_true", help="skip the figures and report.html")
    p.add_argument("--lm-steps", type=int, default=None,
                   help=f"language-model training steps (default {d.lm_steps}; 0 skips it)")
    p.set_defaults(func=_run)
