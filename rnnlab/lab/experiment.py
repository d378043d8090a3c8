"""A small model trained on a long-range task (``rnnlab.lab.tasks``), sweeps
over cells, lengths and seeds, and their tables.

The model is a recurrent stack plus a linear readout of the last step (adding,
temporal order, digits) or of every step (copy); its backward is written out
(``rnnlab.nn`` + ``rnnlab.layers``). Shapes: T time, B batch, I input, H hidden,
V classes.
"""
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple, Optional

import numpy as np

from rnnlab.io.atomic import atomic_write
from rnnlab.io.progress import progress as progress_bar
from rnnlab.lab import gradflow, init
from rnnlab.lab.tasks import TASKS, get_task
from rnnlab.engine import layers
from rnnlab import nn, optim
from rnnlab.training.options import check as check_options, option

CELL_CHOICES = ("rnn", "lstm", "gru", "irnn")    # irnn = ReLU RNN with identity init


# ---------------------------------------------------------------- model

# upper bounds of one run: past them a typo (a length of 100,000,000 was killed for
# memory, 1e11 steps never end), not an experiment (the IRNN's 30,000 steps at T = 100)
MAX_LENGTH, MAX_STEPS, MAX_SIZE = 100_000, 10_000_000, 65_536


@dataclass(frozen=True)
class TrainConfig:
    """One training run on a long-range task (saved in the result dict).

    Every field is declared with its allowed values (``rnnlab.training.options``),
    so the command line, the Python API and a sweep refuse the same bad values
    with the same message.
    """
    task: str = option("adding", "long-range task", choices=tuple(TASKS))
    cell: str = option("lstm", "cell (irnn: ReLU RNN with identity init)", choices=CELL_CHOICES)
    length: int = option(100, "sequence length T (copy: the delay; digits: fixed 64)", lo=1,
                        hi=MAX_LENGTH)
    steps: int = option(1000, "training steps", lo=1, hi=MAX_STEPS)
    batch: int = option(32, "batch size B", lo=1, hi=MAX_SIZE)
    hidden: int = option(64, "hidden size H", lo=1, hi=MAX_SIZE)
    num_layers: int = option(1, "stacked layers", lo=1, hi=64)
    lr: float = option(1e-3, "learning rate", lo=0, lo_open=True)
    optimizer: str = option("adam", "optimiser", choices=tuple(sorted(optim.OPTIMIZERS)))
    clip: Optional[float] = option(1.0, "global-norm clip (None: off)", lo=0, lo_open=True)
    init: Optional[str] = option(None, "initialisation (None: identity for irnn)",
                                 choices=(None,) + tuple(init.SCHEMES))
    forget_bias: Optional[float] = option(None, "keep-gate bias: LSTM forget gate, GRU "
                                          "update gate")
    nonlinearity: str = option("tanh", "RNN nonlinearity (irnn forces relu)",
                               choices=("tanh", "relu", "sigmoid"))
    seed: int = option(0, "seed for data and weights", lo=0)
    eval_batch: int = option(500, "test sequences", lo=1, hi=MAX_SIZE)
    record_every: int = option(100, "gradient-flow snapshot period (0: start and end only)",
                               lo=0)
    record_rows: int = option(8, "rows of the probe batch the snapshot uses", lo=1)

    def __post_init__(self):
        check_options(self)
        if self.nonlinearity != "tanh" and self.cell != "rnn":    # was silently ignored
            raise ValueError(f"--nonlinearity {self.nonlinearity}: read by --cell rnn only "
                             f"(irnn is relu); --cell {self.cell} would ignore it")
        if self.task == "adding" and self.length < 2:
            raise ValueError(f"--length: adding needs length >= 2, got {self.length}")
        if self.task == "temporal_order" and self.length < 10:
            raise ValueError(f"--length: temporal_order needs length >= 10, got {self.length}")

    def check(self):
        """Checked at construction already; kept so callers can chain it."""
        return self


def rnn_config(cfg, task):
    irnn = cfg.cell == "irnn"
    return layers.RNNConfig("rnn" if irnn else cfg.cell, task.input_size, cfg.hidden,
                            cfg.num_layers, nonlinearity="relu" if irnn else cfg.nonlinearity)


def init_model(cfg, task, rng):
    """Recurrent parameters (torch names) and a linear readout H -> O, one flat dict."""
    rc = rnn_config(cfg, task)
    scheme = cfg.init or ("identity" if cfg.cell == "irnn" else "default")
    model = init.initialize(rc, scheme, rng, cfg.forget_bias)
    k = 1.0 / math.sqrt(cfg.hidden)
    model["readout.weight"] = rng.uniform(-k, k, (task.output_size, cfg.hidden)).astype(np.float32)
    model["readout.bias"] = np.zeros(task.output_size, np.float32)
    if task.name == "adding":
        model["readout.bias"][:] = 1.0                            # start at the mean target
    return model


def rnn_part(rc, model):
    return {k: model[k] for k in layers.param_shapes(rc)}


def _readout(task, model, out, y):
    """Loss of the readout over the stack's output (T, B, H), its predictions,
    and the upstream pieces: (loss, pred, h, dpred)."""
    w, b = model["readout.weight"], model["readout.bias"]
    h = out[-1] if task.readout == "last" else out                # (B, H) | (T, B, H)
    pred = nn.linear_forward(h, w, b)                             # (B, O) | (T, B, V)
    if task.loss == "mse":
        loss, dpred = nn.mse(pred, y)
    else:
        loss, dpred = nn.softmax_cross_entropy(pred.reshape(-1, pred.shape[-1]), y.reshape(-1))
        dpred = dpred.reshape(pred.shape)
    return loss, pred, h, dpred


def loss_and_grads(task, rc, model, x, y, need_grads=True):
    """(loss, grads or None, predictions). Readout of the last step or of every step."""
    rnn = rnn_part(rc, model)
    out, _, cache = layers.forward(rc, rnn, x)                    # (T, B, H)
    loss, pred, h, dpred = _readout(task, model, out, y)
    if not need_grads:
        return loss, None, pred
    if not math.isfinite(loss):
        return loss, None, pred                                   # diverged: no backward
    dh, dw, db = nn.linear_backward(dpred, h, model["readout.weight"])
    dout = dh if task.readout == "every" else np.zeros_like(out)
    if task.readout == "last":
        dout[-1] = dh
    _, _, grads = layers.backward(rc, rnn, cache, dout)
    grads.update({"readout.weight": dw, "readout.bias": db})
    return loss, grads, pred


def last_step_gradient(task, rc, model, x, y):
    """dL/d(output at the last step), (B, H): what a last-step readout sends into
    the stack; ``gradflow.measure(..., last_only=True, dout=...)`` takes it."""
    if task.readout != "last":
        raise ValueError(f"task {task.name!r} reads out every step, not the last")
    out, _, _ = layers.forward(rc, rnn_part(rc, model), x)
    _, _, h, dpred = _readout(task, model, out, y)
    return nn.linear_backward(dpred, h, model["readout.weight"])[0]


def evaluate(task, rc, model, x, y, chunk=256):
    """The task's metric on a held-out set, in chunks of rows."""
    scores, n = [], y.shape[-1] if task.readout == "every" else len(y)
    for lo in range(0, n, chunk):
        xs = x[:, lo:lo + chunk]
        ys = y[:, lo:lo + chunk] if task.readout == "every" else y[lo:lo + chunk]
        loss, _, pred = loss_and_grads(task, rc, model, xs, ys, need_grads=False)
        score = float(np.mean(pred.argmax(-1) == ys)) if task.metric == "accuracy" else loss
        scores.append((score, xs.shape[1]))
    return sum(s * w for s, w in scores) / sum(w for _, w in scores)


def snapshot(task, rc, model, x, step, rows):
    """Cheap gradient-flow record: the curve on a few probe rows, and the step
    Jacobian norms of one row at every 8th step (their SVDs are the costly part)."""
    rnn = rnn_part(rc, model)
    with np.errstate(all="ignore"):
        flow = gradflow.measure(rc, rnn, x[:, :rows], last_only=task.readout == "last",
                                jacobians=False)
        jac = gradflow.step_jacobians(rc, rnn, x[:, :1], rc.num_layers - 1, 0, rows=1)
        norms = gradflow.spectral_norms(jac[::8]).ravel()
    top = flow[(rc.num_layers - 1, 0)]
    return {"step": step, "kind": top.verdict.kind, "rate": top.verdict.rate,
            "below_at": top.verdict.below_at, "curve": top.curve.mean.tolist(),
            "jac_norms": norms.tolist()}


# ---------------------------------------------------------------- training

def _step(opt, model, state, grads, cfg, clip_log):
    """Clip (recording the event) and update; non-finite gradients skip the update."""
    grads, norm, clipped = optim.clip_by_global_norm(grads, cfg.clip)
    clip_log["norms"].append(norm)
    if not math.isfinite(norm):
        clip_log["nonfinite"] += 1
        return model, state
    if clipped:
        clip_log["events"] += 1
        clip_log["ratios"].append(norm / cfg.clip)
    return opt.update(model, grads, state, cfg.lr)


class Seeds(NamedTuple):
    """The three generators of a run: initial weights, training batches, test set."""
    init: np.random.Generator
    data: np.random.Generator
    test: np.random.Generator

    @classmethod
    def of(cls, seed):
        return cls(*(np.random.default_rng([seed, k]) for k in (1, 2, 3)))


def train(cfg, progress=sys.stderr, seeds=None, desc=None):
    """Train one model on fresh batches; returns the result dict (and the model).

    progress: a stream for the progress bar (stderr), or None for none.
    seeds: a ``Seeds`` (default ``Seeds.of(cfg.seed)``). desc: the bar's label.
    """
    cfg.check()
    task = get_task(cfg.task)
    T = task.fixed_length or cfg.length
    rc = rnn_config(cfg, task)
    seeds = Seeds.of(cfg.seed) if seeds is None else seeds
    model = init_model(cfg, task, seeds.init)
    opt = optim.make(cfg.optimizer)
    state = opt.init(model)
    x_test, y_test = task.sample(seeds.test, T, None if task.fixed_length else cfg.eval_batch,
                                 "test")
    clip_log = {"events": 0, "ratios": [], "norms": [], "nonfinite": 0}
    flows, losses = [snapshot(task, rc, model, x_test, 0, cfg.record_rows)], []
    start = time.perf_counter()
    with progress_bar(cfg.steps, desc or f"{cfg.task} {cfg.cell} T={T}",
                      enabled=progress is not None, file=progress) as bar:
        for step in range(1, cfg.steps + 1):
            x, y = task.sample(seeds.data, T, cfg.batch)
            with np.errstate(all="ignore"):
                loss, grads, _ = loss_and_grads(task, rc, model, x, y)
            if grads is None:
                raise ValueError(f"training diverged at step {step} (loss {loss}): the weights "
                                 f"are no longer finite; lower --lr (now {cfg.lr:g}) or set "
                                 "--clip")
            model, state = _step(opt, model, state, grads, cfg, clip_log)
            losses.append(loss)
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            bar.update(1)
            if (cfg.record_every and step % cfg.record_every == 0) or step == cfg.steps:
                flows.append(snapshot(task, rc, model, x_test, step, cfg.record_rows))
    seconds = time.perf_counter() - start
    with np.errstate(all="ignore"):
        score = evaluate(task, rc, model, x_test, y_test)
    return _result(cfg, task, T, score, seconds, losses, clip_log, flows), model


def _result(cfg, task, T, score, seconds, losses, clip_log, flows):
    ok = math.isfinite(score) and bool(task.success(score, T))
    ratios = clip_log["ratios"]
    return {"config": asdict(cfg), "task": cfg.task, "cell": cfg.cell, "length": T,
            "seed": cfg.seed, "metric": task.metric, "score": score,
            "baseline": task.baseline(T), "success": ok, "seconds": seconds,
            "steps_per_s": cfg.steps / max(seconds, 1e-9),
            "final_train_loss": float(np.mean(losses[-20:])),
            "losses": losses, "grad_norms": clip_log["norms"],
            "clip": {"events": clip_log["events"], "fraction": clip_log["events"] / cfg.steps,
                     "mean_ratio": float(np.mean(ratios)) if ratios else 1.0,
                     "max_ratio": float(np.max(ratios)) if ratios else 1.0,
                     "nonfinite_steps": clip_log["nonfinite"]},
            "gradflow": flows}


# ---------------------------------------------------------------- sweep

def sweep(base, cells, lengths, seeds, progress=sys.stderr):
    """Train every cell x length x seed (other settings from ``base``): list of results."""
    results = []
    for cell in cells:
        for T in lengths:
            for seed in seeds:
                cfg = replace(base, cell=cell, length=T, seed=seed)
                res, _ = train(cfg, progress)
                results.append(res)
    return results


COLUMNS = ("task", "cell", "length", "seed", "metric", "score", "baseline", "success",
           "seconds", "clip_fraction")


def table_rows(results):
    return [[r["task"], r["cell"], r["length"], r["seed"], r["metric"], f"{r['score']:.4g}",
             f"{r['baseline']:.4g}", "yes" if r["success"] else "no", f"{r['seconds']:.1f}",
             f"{r['clip']['fraction']:.2f}"] for r in results]


def write_table(results, path):
    """CSV (``.csv``) or markdown (anything else) table of a sweep."""
    rows = table_rows(results)
    with atomic_write(path) as f:
        if str(path).endswith(".csv"):
            f.write(",".join(COLUMNS) + "\n")
            f.writelines(",".join(map(str, r)) + "\n" for r in rows)
        else:
            f.write("| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n")
            f.writelines("| " + " | ".join(map(str, r)) + " |\n" for r in rows)


def success_by_length(results):
    """{cell: {length: fraction of seeds that succeeded}}."""
    out = {}
    for r in results:
        out.setdefault(r["cell"], {}).setdefault(r["length"], []).append(r["success"])
    return {c: {T: float(np.mean(v)) for T, v in sorted(d.items())} for c, d in out.items()}
