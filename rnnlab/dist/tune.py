"""Sweeps as Ray Tune trials: the long-range tasks sweep and a language-model sweep.

A sweep is an ordered dict ``{trial name: settings}``. Every trial runs the same
function whether it runs here in turn (``ray=False``: the sequential sweep) or
as a Ray Tune trial (``ray=True``: ``ray.init()`` on this machine, or
``address`` for a running cluster, e.g. ``"auto"`` or ``"ray://head:10001"``),
so both give the same numbers for the same seeds. Each trial writes into
``ROOT/trials/<name>/``: ``metrics.jsonl``, its checkpoint(s) and, when it
finishes, ``result.json`` (atomically). Hence:

- a sweep interrupted and started again skips every trial with a
  ``result.json`` (after checking its settings are the ones asked for), and a
  language-model trial cut mid-way continues from its ``last.npz``, exactly;
- a trial that raises is reported (name and error) and the others go on;
- the results come back in the sweep's order, whatever order the trials ran in,
  so the table and figure are those of the sequential sweep.

Language-model trials run one epoch at a time (each a resume of the last, which
is exact) and report the epoch's record to Tune, so ASHA (``asha=True``) can
stop the worst trials early on ``valid_ppl``; a stopped trial is kept with the
epochs it ran. On a cluster, ROOT must be on a file system every node sees.
"""
import json
import math
import os
import time
from dataclasses import asdict, replace

from rnnlab.io import checkpoint, metrics
from rnnlab.io.atomic import atomic_write


def trial_dir(root, name):
    return os.path.join(os.path.abspath(root), "trials", name)


def _load_done(root, name, settings, kind):
    """A finished trial's result (``result.json``), or None when it has none yet;
    an unreadable or damaged file is an error naming it (the sweep's table and
    figure read these fields)."""
    path = os.path.join(trial_dir(root, name), "result.json")
    if not os.path.exists(path):
        return None
    again = f"remove it to run trial {name} again"
    try:
        with open(path, "rb") as f:
            result = json.loads(f.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a trial result (not UTF-8 JSON: {e}); {again}") from None
    if not isinstance(result, dict):
        raise ValueError(f"{path}: not a trial result (a JSON {type(result).__name__}, "
                         f"expected an object); {again}")
    if result.get("settings") != settings:
        raise ValueError(f"{path}: trial {name} finished with other settings than this "
                         "sweep asks for; use another output folder or remove it")

    def check(key, value, rule):
        if not rule[1](value):
            shown = "nothing" if value is None else repr(value)
            raise ValueError(f"{path}: {key!r} should be {rule[0]}, found {shown}; {again}")
    for key, rule in RESULT_FIELDS[kind].items():
        value = result
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        check(key, value, rule)
    for i, record in enumerate(result["history"] if kind == "lm" else ()):
        for key, rule in LM_RECORD.items():
            check(f"history[{i}].{key}", record.get(key), rule)
    return result


# what the table and the figure read of a finished trial, per kind of sweep (a
# score may be NaN or Inf: a trial that diverged still finished)
_TEXT = ("a string", lambda v: isinstance(v, str))
_NUMBER = ("a number", checkpoint.is_number)
RESULT_FIELDS = {
    "tasks": {"task": _TEXT, "cell": _TEXT, "metric": _TEXT, "length": checkpoint.NONNEG_INT,
              "seed": checkpoint.NONNEG_INT, "score": _NUMBER, "baseline": _NUMBER,
              "success": checkpoint.BOOL, "seconds": _NUMBER, "clip.fraction": _NUMBER},
    "lm": {"history": ("a non-empty list of JSON objects",
                       lambda v: bool(v) and checkpoint.TABLES[1](v)),
           "epochs": checkpoint.NONNEG_INT, "train_ppl": _NUMBER, "valid_ppl": _NUMBER,
           "best_valid_ppl": _NUMBER}}
LM_RECORD = {"epoch": checkpoint.NONNEG_INT, "valid_ppl": _NUMBER}


def _finish(root, name, settings, result):
    result = {"name": name, "settings": settings, **result}
    with atomic_write(os.path.join(trial_dir(root, name), "result.json")) as f:
        json.dump(result, f)
    return result


# ---------------------------------------------------------------- the trials

def tasks_trial(name, settings, root, report):
    """One long-range task run (``rnnlab.lab.experiment.train``): result, model, losses."""
    from rnnlab.lab import experiment
    out = trial_dir(root, name)
    res, model = experiment.train(experiment.TrainConfig(**settings), progress=None)
    losses = res["losses"]
    rows = [{"step": s, "train_loss": sum(losses[s - 100:s]) / 100}
            for s in range(100, len(losses) + 1, 100)]
    metrics.write(os.path.join(out, "metrics.jsonl"), rows + [{"score": res["score"]}])
    checkpoint.save(os.path.join(out, "model.npz"), model, meta={"settings": settings},
                    kind="tasks")
    return res


def lm_trial(name, settings, root, report):
    """One language model (``rnnlab.lm.train``), an epoch at a time from its last
    checkpoint; every epoch's record but the last goes to ``report`` (the last
    is reported once ``result.json`` is written, so a scheduler that stops the
    trial then cannot lose it)."""
    from rnnlab.lm import train
    from rnnlab.training import trainer
    out = trial_dir(root, name)
    cfg = train.LMTrainConfig(**{**settings, "out": out, "progress": False, "samples": 0})
    last, start = os.path.join(out, "last.npz"), time.perf_counter()
    done = (trainer.restore(checkpoint.load(last, kind=train.KIND), last).epoch   # checked
            if os.path.exists(last) else 0)
    for epoch in range(done + 1, cfg.epochs + 1):
        resume = last if os.path.exists(last) else None
        r = train.fit(replace(cfg, epochs=epoch) if resume is None else None, resume,
                      {"epochs": epoch}, log=lambda *a: None)
        if cfg.early_stop and r.state.bad_epochs >= cfg.early_stop:
            break
        if epoch < cfg.epochs:
            report(dict(r.history[-1]))
    history = metrics.read(os.path.join(out, "metrics.jsonl"))
    ppl = [r["valid_ppl"] for r in history]
    return {"history": history, "valid_ppl": ppl[-1], "best_valid_ppl": min(ppl),
            "train_ppl": train_ppl(history[-1]), "epochs": len(history),
            "seconds": time.perf_counter() - start}


KINDS = {"tasks": tasks_trial, "lm": lm_trial}


def _run_one(kind, name, settings, root, report):
    os.makedirs(trial_dir(root, name), exist_ok=True)
    return _finish(root, name, settings, KINDS[kind](name, settings, root, report))


# ---------------------------------------------------------------- Ray Tune

def _ray(address):
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ValueError("--ray needs Ray Tune: pip install \"rnnlab[dist]\"") from None
    if not ray.is_initialized():
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1",
                                           "OPENBLAS_NUM_THREADS": "1"}})
    return tune


def _tune_trial(config, kind, sweep, root):
    """The Ray Tune trainable: runs ``config['name']`` and reports to Tune."""
    from ray import tune
    name = config["name"]
    result = _run_one(kind, name, sweep[name], root, tune.report)
    last = result["history"][-1] if "history" in result else {}
    tune.report({**last, **{k: v for k, v in result.items()
                            if isinstance(v, (int, float, bool, str))}})


def _run_ray(kind, sweep, names, root, address, asha, cpus):
    tune = _ray(address)
    scheduler = None
    if asha:
        from ray.tune.schedulers import ASHAScheduler
        scheduler = ASHAScheduler(metric="valid_ppl", mode="min", time_attr="epoch",
                                  grace_period=1, max_t=max(s["epochs"] for s in sweep.values()))
    trainable = tune.with_resources(
        tune.with_parameters(_tune_trial, kind=kind, sweep=sweep, root=os.path.abspath(root)),
        {"cpu": cpus})
    tuner = tune.Tuner(trainable, param_space={"name": tune.grid_search(list(names))},
                       tune_config=tune.TuneConfig(scheduler=scheduler),
                       run_config=tune.RunConfig(
                           storage_path=os.path.join(os.path.abspath(root), "ray"),
                           name=f"{kind}-sweep", verbose=0,
                           failure_config=tune.FailureConfig(max_failures=0)))
    failures = {}
    for r in tuner.fit():
        name = r.config["name"]
        if r.error is not None:
            failures[name] = _last_line(r.error)
        elif kind == "lm" and _load_done(root, name, sweep[name], kind) is None:   # by ASHA
            _stopped(root, name, sweep[name])
    return failures


def _last_line(error):
    lines = [s for s in str(error).strip().splitlines() if s.strip()]
    return lines[-1].strip() if lines else type(error).__name__


def _stopped(root, name, settings):
    out = trial_dir(root, name)
    history = metrics.read(os.path.join(out, "metrics.jsonl"))
    ppl = [r["valid_ppl"] for r in history]
    _finish(root, name, settings, {"history": history, "valid_ppl": ppl[-1],
                                   "best_valid_ppl": min(ppl), "epochs": len(history),
                                   "train_ppl": train_ppl(history[-1]), "stopped": "asha"})


# ---------------------------------------------------------------- the sweep

def run(kind, sweep, root, ray=False, address=None, asha=False, cpus=1, log=print):
    """Run the trials of ``sweep`` ({name: settings}) that have no result yet.

    Returns (results in the sweep's order, {name: error} of the trials that
    failed, names of the trials run now).
    """
    done = {n: _load_done(root, n, s, kind) for n, s in sweep.items()}
    todo = [n for n in sweep if done[n] is None]
    if len(todo) < len(sweep):
        log(f"{len(sweep) - len(todo)} of {len(sweep)} trials already finished in {root}: "
            "skipped")
    failures = {}
    if todo and ray:
        failures = _run_ray(kind, sweep, todo, root, address, asha, cpus)
    elif todo:
        for name in todo:
            try:
                _run_one(kind, name, sweep[name], root, lambda record: None)
            except Exception as e:                   # reported; the others go on
                failures[name] = f"{type(e).__name__}: {e}"
    for name, why in failures.items():
        log(f"trial {name} failed: {why}")
    results = [_load_done(root, n, s, kind) for n, s in sweep.items()]
    return [r for r in results if r is not None], failures, todo


def tasks_sweep(configs):
    """{name: settings} for a list of ``experiment.TrainConfig``, in their order."""
    return {f"{c.task}-{c.cell}-T{c.length}-seed{c.seed}": asdict(c) for c in configs}


def train_ppl(record):
    """The training perplexity of an epoch's record (its mean train loss, in nats)."""
    return math.exp(min(record["train_loss"], 700))


def lm_sweep(base, cells, hiddens, lrs, seeds):
    """{name: settings}: every cell x hidden size x learning rate x seed over ``base``
    (a ``rnnlab.lm.train.LMTrainConfig``); the embedding follows the hidden size."""
    out = {}
    for cell in cells:
        for h in hiddens:
            for lr in lrs:
                for seed in seeds:
                    cfg = replace(base, mode=cell, hidden_size=h, emb_size=h, lr=lr, seed=seed)
                    out[f"{cell}-h{h}-lr{lr:g}-seed{seed}"] = asdict(cfg)
    return out


def add_arguments(p, out, asha):
    """The sweep's output folder and the Ray Tune flags (``rnnlab tasks sweep``,
    ``rnnlab dist lm-sweep``)."""
    g = p.add_argument_group("sweep output and Ray Tune (the dist extra)")
    g.add_argument("--out", dest="out", default=out,
                   help=f"folder for every trial's result, metrics and checkpoint "
                        f"(default {out}; 'tasks sweep': with --ray); finished trials "
                        "found there are skipped")
    g.add_argument("--ray", action="store_true",
                   help="run the trials as Ray Tune trials (ray.init() on this machine)")
    g.add_argument("--address", default=None,
                   help="with --ray: a running Ray cluster, 'auto' or 'ray://HOST:10001'")
    if asha:
        g.add_argument("--asha", action="store_true",
                       help="with --ray: ASHA early stopping on validation perplexity")
    g.add_argument("--trial-cpus", type=float, default=1.0,
                   help="with --ray: CPUs per trial (default 1)")


# ---------------------------------------------------------------- LM sweep outputs

LM_COLUMNS = ("trial", "cell", "hidden", "lr", "seed", "epochs", "train_ppl", "valid_ppl",
              "best_valid_ppl", "status")


def lm_rows(results):
    return [[r["name"], r["settings"]["mode"], r["settings"]["hidden_size"],
             f"{r['settings']['lr']:g}", r["settings"]["seed"], r["epochs"],
             f"{r['train_ppl']:.2f}", f"{r['valid_ppl']:.2f}", f"{r['best_valid_ppl']:.2f}",
             "stopped (ASHA)" if r.get("stopped") else "finished"] for r in results]


def write_lm_table(results, path):
    """Markdown table of an LM sweep (CSV when ``path`` ends in .csv)."""
    rows, csv = lm_rows(results), str(path).endswith(".csv")
    with atomic_write(path) as f:
        if csv:
            f.write(",".join(LM_COLUMNS) + "\n")
            f.writelines(",".join(map(str, r)) + "\n" for r in rows)
        else:
            f.write("| " + " | ".join(LM_COLUMNS) + " |\n|" + "---|" * len(LM_COLUMNS) + "\n")
            f.writelines("| " + " | ".join(map(str, r)) + " |\n" for r in rows)
    return path


def lm_figure(results, path):
    """Validation perplexity against epoch, one line per trial (matplotlib)."""
    from rnnlab.io import figures
    fig, ax = figures.pyplot().subplots(figsize=(7, 4.5))
    for r in results:
        h = r["history"]
        ax.plot([x["epoch"] for x in h], [x["valid_ppl"] for x in h], marker="o", label=r["name"])
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set(xlabel="epoch", ylabel="validation perplexity", yscale="log",
           title="Language-model sweep: validation perplexity per trial")
    ax.legend(fontsize=7, ncol=2)
    return figures.save_png(fig, path)
