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
last hidden state, trained with Adam on MSE by ``rnnlab.lab.experiment`` (the
data from ``rnnlab.lab.tasks``; the model and the loop are the lab's); the
table and the verdicts are one ``rnnlab.lab.gradflow`` measurement per cell.

Shapes: T time, B batch, H hidden; inputs (T, B, 2), targets (B, 1).
Everything is drawn from generators seeded by ``--seed``: same seed, same
numbers (only the timings differ).
"""
import os
import sys
from dataclasses import dataclass, replace

import numpy as np

from rnnlab.engine import layers
from rnnlab.io import atomic
from rnnlab.lab import experiment, gradflow, tasks
from rnnlab.training.options import int_in_range

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


# ---------------------------------------------------------------- training, on lab.experiment

def task_config(cfg, mode):
    """The lab's training config for one cell of the tour (no snapshots in between)."""
    return experiment.TrainConfig(task="adding", cell=mode, length=cfg.length, steps=cfg.steps,
                             batch=cfg.batch, hidden=cfg.hidden, lr=cfg.lr, optimizer="adam",
                             clip=cfg.clip, seed=cfg.seed, eval_batch=cfg.eval_batch,
                             record_every=0)


def seeds(cfg, k):
    """The tour's generators: cell k's own weights; the same batches and test set for all."""
    return experiment.Seeds(np.random.default_rng([cfg.seed, 2, k]), np.random.default_rng(cfg.seed),
                       np.random.default_rng([cfg.seed, 1]))


def train_cell(cfg, k, progress_out=None):
    """Train cell k of CELLS; returns (result dict of ``experiment.train``, rnn config, model)."""
    mode, label = CELLS[k]
    tc = task_config(cfg, mode)
    res, model = experiment.train(tc, sys.stderr if progress_out is None else progress_out,
                             seeds(cfg, k), desc=f"{label:<11}")
    return res, experiment.rnn_config(tc, tasks.get_task("adding")), model


def gradient_flow(cfg, rc, model, x, y):
    """``gradflow.measure`` of the trained layer for the loss at the last step:
    the upstream gradient is the real one, dL/dh_T of the MSE readout."""
    task = tasks.get_task("adding")
    dh_last = experiment.last_step_gradient(task, rc, model, x, y)     # (B, H)
    rnn = {k: model[k] for k in layers.param_shapes(rc)}
    return gradflow.measure(rc, rnn, x, last_only=True, dout=dh_last)[(0, 0)]


def distances(T):
    """0, 1, 2, 5, 10, 20, 50, ... below T, and T-1 last."""
    ds, scale = [0], 1
    while True:
        for m in (1, 2, 5):
            if m * scale >= T - 1:
                return ds + [T - 1] if T > 1 else ds
            ds.append(m * scale)
        scale *= 10


def format_flow_table(flows, T):
    """flows: {label: gradflow.LayerFlow} -> the table as text; its last row is
    ``gradflow.decay_per_step`` of each curve, the rate the verdicts print."""
    labels = list(flows)
    rows = [f"{'d':>11}" + "".join(f"{lab:>13}" for lab in labels)]
    for d in distances(T):
        rows.append(f"{d:>11}" + "".join(f"{flows[lab].curve.mean[d]:>13.3e}" for lab in labels))
    rows.append(f"{'factor/step':>11}" + "".join(
        f"{gradflow.decay_per_step(flows[lab].curve.mean):>13.3f}" for lab in labels))
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


# ---------------------------------------------------------------- command

def run_demo(cfg, progress_out=None):
    """Train, check, tabulate. Prints to stdout; returns the exit code."""
    print(f"Adding problem: T = {cfg.length}, batch {cfg.batch}, hidden {cfg.hidden}, "
          f"{cfg.steps} Adam steps (lr {cfg.lr}, clip {cfg.clip}), seed {cfg.seed}")
    x_test, y_test = tasks.adding(np.random.default_rng([cfg.seed, 1]), cfg.length,
                                  cfg.eval_batch)                 # the set experiment.train scores
    results, flows = [], {}
    for k, (_, label) in enumerate(CELLS):
        res, rc, model = train_cell(cfg, k, progress_out)
        results.append((label, res))
        flows[label] = gradient_flow(cfg, rc, model, x_test, y_test)
    print()
    print(f"{'cell':<11} {'steps/s':>8} {'train loss':>18} {'test MSE':>9}"
          f"   (predicting 1.0 scores {BASELINE_MSE:.3f})")
    for label, r in results:
        print(f"{label:<11} {r['steps_per_s']:>8.1f} {r['losses'][0]:>8.4f} -> "
              f"{r['final_train_loss']:.4f} {r['score']:>9.4f}")
    print()
    ok = gradient_check(cfg)
    print()
    print(f"||dL/dh_(T-d)||: gradient reaching d steps back from a loss at the last step "
          f"(trained weights, mean over {cfg.eval_batch} held-out sequences)")
    print(format_flow_table(flows, cfg.length))
    print("factor/step: the gradient's factor per step back, a log-linear fit to the whole "
          "curve (gradflow.decay_per_step; the verdicts' rate)")
    tour_report(cfg, flows)
    if cfg.lm_steps > 0:
        language_model(cfg)
    return 0 if ok else 1


def tour_report(cfg, flows):
    """Verdicts for the trained cells; with matplotlib, figures and report.html."""
    print("\nverdicts (loss at the last step, trained weights):")
    for label, f in flows.items():
        print(f"  {label:<11} {f.verdict.describe()}")
    if not cfg.report:
        return
    try:
        from rnnlab.io import figures
        from rnnlab.lab import plots, report
        figures.pyplot()
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
    # the lab's own bounds (experiment.TrainConfig): --length 100,000,000 was killed for
    # memory, --steps 1e11 never ends
    for flag, v, lo, hi in (("--steps", cfg.steps, 1, experiment.MAX_STEPS),
                            ("--length", cfg.length, 2, experiment.MAX_LENGTH),
                            ("--lm-steps", cfg.lm_steps, 0, experiment.MAX_STEPS)):
        int_in_range(flag, v, lo, hi, " (0: skip it)" if lo == 0 else "")
    if cfg.seed < 0:
        raise ValueError(f"--seed: expected an integer >= 0, got {cfg.seed}")
    if cfg.report or cfg.lm_steps:                 # before minutes of training, not after
        atomic.check_writable("--out", cfg.out, folder=True)
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
