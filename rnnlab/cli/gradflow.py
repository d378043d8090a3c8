"""``rnnlab gradflow`` and ``rnnlab tasks``: measure gradient flow, train on
long-range tasks, sweep cells x lengths x seeds; write plots and an HTML report.

    rnnlab gradflow --cells rnn,lstm,gru --length 100 --report out.html --plots DIR
    rnnlab tasks adding --cell lstm --length 100 --steps 2000 --clip 1.0 --forget-bias 1.0
    rnnlab tasks sweep --task adding --cells rnn,lstm,gru --lengths 10,50,100 --seeds 0,1

Bad input (unknown cell or task, non-positive sizes, matplotlib missing for
--plots/--report) raises ValueError, which ``rnnlab.cli`` prints as a usage error
(exit 2).
"""
import contextlib
import json
import os
import tempfile
from dataclasses import replace

import numpy as np

from rnnlab.io.atomic import atomic_write, check_writable
from rnnlab.lab import experiment, gradflow, init, tasks
from rnnlab.training.options import int_in_range

SWEEP_OUT = "runs/tasks-sweep"
LABELS = {"rnn": "RNN (tanh)", "lstm": "LSTM", "gru": "GRU", "irnn": "IRNN (relu, identity)"}


def _names(text, allowed, what):
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise ValueError(f"unknown {what} {', '.join(bad) or repr(text)}; "
                         f"choose from {', '.join(allowed)}")
    return _once(names, f"--{what}s")


def _once(values, flag):
    """A sweep's list with every value once: a repeat ran the same trial again and
    gave the table a duplicate row."""
    twice = next((v for k, v in enumerate(values) if v in values[:k]), None)
    if twice is not None:
        raise ValueError(f"{flag}: {twice} is given twice; expected each value once")
    return values


def _ints(text, what, minimum=1):
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--{what} must be comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < minimum:
        raise ValueError(f"--{what} must be integers >= {minimum}, got {text!r}")
    return _once(vals, f"--{what}")


def _reads(task_name, cells, args, cell_flag="--cells"):
    """Refuse what the runs would ignore: --forget-bias when no cell has a keep
    gate (only lstm and gru do), a --length given for a task of fixed length
    (digits: 64 pixels)."""
    if args.forget_bias is not None and not set(cells) & {"lstm", "gru"}:
        raise ValueError(f"--forget-bias {args.forget_bias:g}: the bias of the lstm or gru "
                         f"keep gate; {cell_flag} {','.join(cells)} has none, so it would be "
                         "ignored")
    task = tasks.get_task(task_name)
    if task.fixed_length and args.length != COMMON["length"]:
        raise ValueError(f"--length {args.length}: {task_name} has a fixed length "
                         f"({task.fixed_length}); drop --length")


def _train_config(args, **over):
    """The task's TrainConfig from the flags (checked there: one rule for every front end)."""
    if not args.clip >= 0:
        raise ValueError(f"--clip: expected a number >= 0 (0: off), got {args.clip}")
    kw = dict(task=args.task, cell=getattr(args, "cell", "lstm"), length=args.length,
              steps=args.steps, batch=args.batch, hidden=args.hidden, lr=args.lr,
              optimizer=args.optimizer, clip=None if args.clip == 0 else args.clip,
              init=args.init, forget_bias=args.forget_bias, seed=args.seed,
              record_every=args.record_every)
    kw.update(over)
    if kw["forget_bias"] is not None and kw["cell"] not in ("lstm", "gru"):
        kw["forget_bias"] = None                    # only gated cells have a keep gate
    if kw["init"] == "identity" and kw["cell"] != "irnn":
        raise ValueError("--init identity is the IRNN: use --cell irnn (ReLU RNN)")
    return experiment.TrainConfig(**kw)


def _check_paths(args, files=("report", "json", "table")):
    """Every output path checked before the (long) work: the audit found a --report
    given a folder, or a path under a file, failing only after training."""
    if args.plots:
        check_writable("--plots", args.plots, folder=True)
    for name in files:
        if getattr(args, name, None):
            check_writable(f"--{name}", getattr(args, name))


@contextlib.contextmanager
def _outputs(args):
    """Directory for the PNGs: --plots, else a temporary one when only --report is
    asked (removed afterwards: the report embeds its figures), else None."""
    report = getattr(args, "report", None)
    if not (args.plots or report):
        yield None
        return
    from rnnlab.io import figures
    figures.pyplot()                                       # fail early if matplotlib is missing
    if args.plots:
        os.makedirs(args.plots, exist_ok=True)
        yield args.plots
        return
    with tempfile.TemporaryDirectory(prefix="rnnlab-plots-") as d:
        yield d


def _print_flows(flows, header):
    print(header)
    for label, f in flows.items():
        print(f"  {label:<24} {f.verdict.describe()}")


# ---------------------------------------------------------------- gradflow

def _measure_cells(args, cells, trained=None):
    """{label: LayerFlow} of the top layer for each cell, at init or trained."""
    task = tasks.get_task(args.task)
    T = task.fixed_length or args.length
    x, _ = task.sample(np.random.default_rng([args.seed, 3]), T, args.batch, "test")
    flows = {}
    for cell in cells:
        cfg = _train_config(args, cell=cell, steps=max(args.steps, 1))
        rc = experiment.rnn_config(cfg, task)
        model = (trained[cell] if trained else
                 experiment.init_model(cfg, task, np.random.default_rng([args.seed, 1])))
        params = experiment.rnn_part(rc, model)
        flow = gradflow.measure(rc, params, x, last_only=task.readout == "last", rng=args.seed)
        flows[LABELS[cell]] = flow[(rc.num_layers - 1, 0)]
    return flows


def _checkpoint_flows(args):
    """{label: LayerFlow} for every layer of a language-model checkpoint's stack.

    Inputs are the embeddings of random token ids (T, B, E); the LM's loss sits at
    every step, so the every-step measurement is used.
    """
    from rnnlab.lm import model as lm
    cfg, params, _ = lm.load_weights(args.model)      # clear errors for non-checkpoints
    ids = np.random.default_rng(args.seed).integers(0, cfg.vocab_size, (args.length, args.batch))
    x = params["encoder.weight"][ids]                                      # (T, B, E)
    flow = gradflow.measure(cfg.rnn, lm.rnn_params(params), x, rng=args.seed)
    return {f"{cfg.mode.upper()} checkpoint layer {l}" + (" reverse" if d else ""): f
            for (l, d), f in flow.items()}


# the defaults of the flags both commands share (_common), and of gradflow's own
COMMON = dict(length=100, batch=32, hidden=64, lr=1e-3, optimizer="adam", clip=1.0, init=None,
              forget_bias=None, seed=0, record_every=100)
GRADFLOW = dict(COMMON, cells="rnn,lstm,gru", task="adding", steps=0)
TRAINING = ("lr", "optimizer", "clip", "record_every")      # read by --steps > 0 only


def _gradflow_reads(args):
    """A flag --model or --steps 0 would ignore is an error, not a silent no-op
    (``--model X --cells rnn --steps 100`` measured the checkpoint alone, and its
    report said task adding, hidden 64)."""
    def given(names):
        return [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) != GRADFLOW[n]]
    if args.model:
        extra = given(("cells", "task", "steps", "hidden", "init", "forget_bias") + TRAINING)
        if extra:
            raise ValueError(f"{', '.join(extra)}: not used with --model (the checkpoint is "
                             "measured as trained; --length, --batch and --seed set its inputs)")
    elif not args.steps and given(TRAINING):
        raise ValueError(f"{', '.join(given(TRAINING))}: only with --steps N > 0 (they set "
                         "the training; without it the cells are measured at initialisation)")


def run_gradflow(args):
    _gradflow_reads(args)
    if args.length < 2:
        raise ValueError(f"--length must be at least 2, got {args.length}")
    if args.steps < 0:
        raise ValueError(f"--steps: expected an integer >= 0 (0: measure at initialisation "
                         f"only), got {args.steps}")
    if args.batch < 1:
        raise ValueError(f"--batch: expected an integer >= 1, got {args.batch}")
    if args.seed < 0:
        raise ValueError(f"--seed: expected an integer >= 0, got {args.seed}")
    int_in_range("--length", args.length, 2, experiment.MAX_LENGTH)
    if not args.model:
        _reads(args.task, _names(args.cells, experiment.CELL_CHOICES, "cell"), args)
    _check_paths(args)
    with _outputs(args) as out:
        return _gradflow(args, out)


def _gradflow(args, out):
    if args.model:
        flows = _checkpoint_flows(args)
        _print_flows(flows, f"gradient flow of {args.model} (T={args.length}):")
        if out:
            _figures_and_report(args, out, flows, {}, [])
        return 0
    cells = _names(args.cells, experiment.CELL_CHOICES, "cell")
    tasks.get_task(args.task)
    flows = _measure_cells(args, cells)
    _print_flows(flows, f"gradient flow at initialisation ({args.task}, T={args.length}):")
    results, after, trained = [], {}, {}
    if args.steps > 0:
        for cell in cells:
            res, trained[cell] = experiment.train(_train_config(args, cell=cell))
            results.append(res)
            print(f"  trained {cell}: {res['metric']} {res['score']:.4f} "
                  f"(baseline {res['baseline']:.4f}) {'solved' if res['success'] else 'not solved'}")
        after = _measure_cells(args, cells, trained)
        _print_flows(after, f"gradient flow after {args.steps} training steps:")
    if out:
        _figures_and_report(args, out, flows, after, results)
    return 0


def _figures_and_report(args, out, flows, after, results):
    from rnnlab.lab import plots, report
    when = "of the checkpoint" if args.model else "at initialisation"
    figs = {f"Gradient norm against distance {when} (dashed: theory bound)":
            plots.distance(flows, os.path.join(out, "distance_init.png"),
                           f"{when.capitalize()}: gradient reaching d steps back "
                           f"(T={args.length})"),
            f"Step Jacobian spectral norms {when}":
            plots.jacobians(flows, os.path.join(out, "jacobians_init.png"))}
    if after:
        figs["Gradient norm against distance after training"] = plots.distance(
            after, os.path.join(out, "distance_trained.png"),
            f"After {args.steps} steps: gradient reaching d steps back")
        figs["Step Jacobian norms after training"] = plots.jacobians(
            after, os.path.join(out, "jacobians_trained.png"))
        figs["How gradient flow changes during training"] = plots.training(
            results, os.path.join(out, "training.png"))
        figs["Gradient clipping events"] = plots.clipping(results, os.path.join(out, "clipping.png"))
    if args.plots:                         # not the temporary folder only --report uses
        print("plots:", ", ".join(figs.values()))
    if args.report:
        allflows = {f"{k} (init)" if not args.model else k: v for k, v in flows.items()}
        allflows.update({f"{k} (trained)": v for k, v in after.items()})
        meta = ({"checkpoint": args.model} if args.model else
                {"task": args.task, "hidden": args.hidden, "init": args.init or "default",
                 "forget bias": args.forget_bias, "training steps": args.steps})
        meta.update({"T": args.length, "batch": args.batch, "seed": args.seed})
        print("report:", report.write(args.report, allflows, figs, results, meta))


# ---------------------------------------------------------------- tasks

# sweep-only flags: None unless given (their defaults are applied in _run_sweep)
SWEEP_DEFAULTS = {"sweep_task": "adding", "cells": "rnn,lstm,gru", "lengths": "10,20,50",
                  "seeds": "0", "table": "sweep.md"}


def _not_ignored(args):
    """A flag that the chosen mode would ignore is an error, not a silent no-op
    (``tasks adding --task copy`` ran adding; ``tasks sweep --out X`` without --ray
    wrote nothing there)."""
    ray_only = [f for f, given in (("--address", args.address is not None),
                                   ("--trial-cpus", args.trial_cpus != 1.0),
                                   ("--out", args.out != SWEEP_OUT)) if given]
    if args.task != "sweep":
        given = [f"--{k.replace('sweep_', '')}" for k in SWEEP_DEFAULTS
                 if getattr(args, k) is not None]
        given += ["--ray"] * args.ray + ray_only
        if given:
            raise ValueError(f"{', '.join(given)}: only for 'rnnlab tasks sweep'; a single "
                             f"task ({args.task}) takes --cell, --length, --seed ...")
    elif not args.ray and ray_only:
        raise ValueError(f"{', '.join(ray_only)}: only with --ray (the trials' folder and "
                         "resources); without it the sweep runs here and writes --table")


def run_tasks(args):
    _not_ignored(args)
    if args.task == "sweep":
        lengths_given = args.lengths is not None
        for k, v in SWEEP_DEFAULTS.items():
            if getattr(args, k) is None:
                setattr(args, k, v)
        if os.path.splitext(args.table)[1].lower() not in (".csv", ".md"):
            raise ValueError(f"--table {args.table}: expected a .csv or .md file (the format "
                             "follows the name)")
        plan = _sweep_plan(args, lengths_given)
        _check_paths(args)
        with _outputs(args) as out:
            return _run_sweep(args, plan, out)
    tasks.get_task(args.task)
    cfg = _train_config(args)
    _reads(args.task, [args.cell], args, "--cell")
    _check_paths(args)
    with _outputs(args) as out:
        return _run_task(args, cfg, out)


def _run_task(args, cfg, out):
    res, _ = experiment.train(cfg)
    c = res["clip"]
    print(f"{res['task']} {res['cell']} T={res['length']} seed={res['seed']}: {res['metric']} "
          f"{res['score']:.4f} (baseline {res['baseline']:.4f}) -> "
          f"{'SOLVED' if res['success'] else 'not solved'} in {res['seconds']:.1f}s "
          f"({res['steps_per_s']:.1f} steps/s)")
    print(f"clipping: {c['events']} of {cfg.steps} steps ({100 * c['fraction']:.0f}%), "
          f"mean factor {c['mean_ratio']:.2f}, max {c['max_ratio']:.2f}; "
          f"non-finite steps skipped: {c['nonfinite_steps']}")
    g = res["gradflow"]
    print(f"gradient flow: {g[0]['kind']} x{g[0]['rate']:.3f}/step at start, "
          f"{g[-1]['kind']} x{g[-1]['rate']:.3f}/step at the end")
    if args.json:
        with atomic_write(args.json) as f:
            json.dump(res, f)
    if out:
        from rnnlab.lab import plots
        print("plots:", plots.training([res], os.path.join(out, "training.png")),
              plots.clipping([res], os.path.join(out, "clipping.png")))
    return 0


def _sweep_plan(args, lengths_given):
    """(base TrainConfig, cells, lengths, seeds) of a sweep, every value checked and
    every flag it would ignore refused, before any output or run."""
    task = tasks.get_task(args.sweep_task)
    cells = _names(args.cells, experiment.CELL_CHOICES, "cell")
    if task.fixed_length:               # one length: the default three ran one run thrice
        if lengths_given:
            raise ValueError(f"--lengths {args.lengths}: {task.name} has a fixed length "
                             f"({task.fixed_length}); drop --lengths")
        args.lengths = str(task.fixed_length)
    lengths, seeds = _ints(args.lengths, "lengths"), _ints(args.seeds, "seeds", 0)
    base = _train_config(args, task=args.sweep_task, cell=cells[0], length=lengths[0])
    for T in lengths[1:]:                                  # every length, checked before any run
        replace(base, length=T)
    single = [f for f, given in (("--cell", args.cell != "lstm"), ("--json", args.json),
                                 ("--length", args.length != COMMON["length"])) if given]
    if single:
        raise ValueError(f"{', '.join(single)}: only for a single task (rnnlab tasks adding "
                         "...); a sweep takes --cells, --lengths and --seeds, and writes "
                         "--table")
    _reads(args.sweep_task, cells, args)
    return base, cells, lengths, seeds


def _run_sweep(args, plan, out):
    base, cells, lengths, seeds = plan
    results, configs, failed = [], [], {}
    for cell in cells:
        b = replace(base, forget_bias=args.forget_bias if cell in ("lstm", "gru") else None)
        if args.ray:                                   # the same runs, as Ray Tune trials
            configs += [replace(b, cell=cell, length=T, seed=s) for T in lengths for s in seeds]
        else:
            results += experiment.sweep(b, [cell], lengths, seeds)
    if args.ray:
        from rnnlab.dist import tune
        results, failed, _ = tune.run("tasks", tune.tasks_sweep(configs), args.out,
                                      ray=True, address=args.address, cpus=args.trial_cpus)
    table = args.table
    experiment.write_table(results, table)
    with open(table) as f:
        print(f.read())
    if out:
        from rnnlab.lab import plots
        print("figure:", plots.sweep(results, os.path.join(out, "sweep.png")))
    return 1 if failed else 0


# ---------------------------------------------------------------- argparse

def _common(p, steps, report=True):
    g = p.add_argument_group("model and training")
    g.set_defaults(**COMMON)
    g.add_argument("--length", type=int, help="sequence length T (copy: the delay)")
    g.add_argument("--steps", type=int, default=steps, help="training steps")
    g.add_argument("--batch", type=int, help="batch size B")
    g.add_argument("--hidden", type=int, help="hidden size H")
    g.add_argument("--lr", type=float, help="learning rate")
    g.add_argument("--optimizer", help="adam | sgd | rmsprop | adagrad")
    g.add_argument("--clip", type=float, help="global-norm clip; 0 = off")
    g.add_argument("--init", choices=init.SCHEMES,
                   help="recurrent initialisation (default: torch's; identity for irnn)")
    g.add_argument("--forget-bias", type=float,
                   help="bias of the gate that keeps the old state: LSTM forget gate, "
                        "GRU update gate")
    g.add_argument("--seed", type=int, help="seed for data and weights")
    g.add_argument("--record-every", type=int,
                   help="record gradient flow every N training steps")
    o = p.add_argument_group("output")
    o.add_argument("--plots", default=None, help="directory for PNG figures")
    if report:                                     # gradflow only: tasks has no report page
        o.add_argument("--report", default=None, help="write a self-contained HTML report here")


def register(subparsers):
    p = subparsers.add_parser(
        "gradflow", help="measure how far gradients travel back in time in RNN/LSTM/GRU",
        description="Measure ||dL_t/dh_(t-d)|| against distance d, the step Jacobians and "
                    "their theoretical bound, and give a verdict per cell; optionally train "
                    "briefly and measure again.")
    p.add_argument("--cells", default=GRADFLOW["cells"],
                   help="comma-separated: rnn,lstm,gru,irnn")
    p.add_argument("--model", default=None,
                   help="measure a trained language-model checkpoint (.npz) instead")
    p.add_argument("--task", default=GRADFLOW["task"], help="task whose inputs (and loss "
                   f"position) are used: {', '.join(tasks.TASKS)}")
    _common(p, steps=GRADFLOW["steps"])
    p.set_defaults(func=run_gradflow)
    t = subparsers.add_parser(
        "tasks", help="train on a long-range task (adding, copy, ...) or sweep",
        description="Train one model on a long-range task and report score, baseline and "
                    "success; or 'sweep' over cells x lengths x seeds.")
    t.add_argument("task", help=f"{', '.join(tasks.TASKS)} or sweep")
    t.add_argument("--cell", default="lstm", help="rnn | lstm | gru | irnn")
    t.add_argument("--json", default=None, help="write the result dict as JSON here")
    s = t.add_argument_group("sweep")
    d = SWEEP_DEFAULTS
    s.add_argument("--task", dest="sweep_task", default=None,
                   help=f"task to sweep (default {d['sweep_task']})")
    s.add_argument("--cells", default=None, help=f"cells to sweep (default {d['cells']})")
    s.add_argument("--lengths", default=None,
                   help=f"sequence lengths to sweep (default {d['lengths']})")
    s.add_argument("--seeds", default=None, help=f"seeds to sweep (default {d['seeds']})")
    s.add_argument("--table", default=None,
                   help=f"table path (.csv or .md; default {d['table']})")
    _common(t, steps=1000, report=False)
    from rnnlab.dist import tune
    tune.add_arguments(t, SWEEP_OUT, asha=False)
    t.set_defaults(func=run_tasks)
