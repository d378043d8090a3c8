"""Training a language model: B parallel streams, truncated BPTT, exact resume.

The token stream is cut into B equal streams laid side by side, a (N, B) array
(as Zaremba et al. and PyTorch's word_language_model do). Each step takes the
next ``bptt`` rows: inputs ``data[i:i+bptt]``, targets shifted by one. The
recurrent state is carried from chunk to chunk (so the model sees the streams as
continuous text) but no gradient flows back past a chunk start. State is reset
to zeros at every epoch start.

Everything a run depends on lives in ``Run`` and goes into every checkpoint:
weights, optimizer state, the carried recurrent state, the RNG state (dropout
masks), the position (epoch, step), the schedule's state and the running sums.
A run killed at any point and resumed from its last checkpoint therefore ends
with the same weights, bit for bit, as one that never stopped.
"""
import functools
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Optional

import numpy as np

from rnnlab.io import checkpoint
from rnnlab.lm import corpus as corpus_mod, model as lm, vocab as vocab_mod
from rnnlab import optim
from rnnlab.optim import schedules


@dataclass
class TrainConfig:
    """Every ``rnnlab train`` option (each settable from a TOML file too)."""
    corpus: str = corpus_mod.DEFAULT_SOURCE   # file, folder, .csv, or "python-docs"
    level: str = "auto"                 # "word" | "char" | "auto" (from the corpus kind)
    max_vocab: Optional[int] = None     # keep the N most frequent tokens (tutorial: 8000)
    min_count: int = 1                  # rarer tokens become <unk>
    mode: str = "lstm"                  # "rnn" | "lstm" | "gru"
    emb_size: int = 200
    hidden_size: int = 200
    num_layers: int = 2
    dropout: float = 0.0                # non-recurrent connections (Zaremba 2014)
    tie_weights: bool = False
    init_scale: float = 0.1             # U(-s, s) init for every weight
    optimizer: str = "sgd"              # "sgd" | "adam" | "rmsprop" | "adagrad"
    lr: float = 1.0
    momentum: float = 0.0               # SGD only
    clip: float = 5.0                   # max global gradient norm; 0 = no clipping
    # The gradient taken is of the NLL summed over the bptt steps and averaged
    # over the batch, as in Zaremba et al. 2014 and TensorFlow's PTB tutorial
    # (their lr 1 and clip 5 assume it); False: the per-token mean. Perplexity
    # is per token either way.
    sum_over_time: bool = True
    schedule: str = "zaremba"           # "constant" | "zaremba" | "plateau"
    lr_decay: float = 0.5               # zaremba / plateau factor
    decay_start: int = 4                # zaremba: epochs at the full rate
    patience: int = 0                   # plateau: bad epochs tolerated before decaying
    epochs: int = 13
    batch_size: int = 20                # B parallel streams
    bptt: int = 20                      # steps per truncated-BPTT chunk
    max_steps: int = 0                  # cap on steps per epoch (0 = the whole epoch)
    early_stop: int = 0                 # stop after N epochs without a better valid ppl
    eval_batch_size: int = 10
    seed: int = 1234
    out: str = "runs/lm"                # folder for last.npz, best.npz, metrics.jsonl
    checkpoint_every: int = 200         # steps between mid-epoch checkpoints (0 = off)
    samples: int = 3                    # samples printed after each epoch
    sample_len: int = 60
    progress: bool = True               # progress bar on stderr

    def __post_init__(self):
        pos = ("emb_size", "hidden_size", "num_layers", "epochs", "batch_size", "bptt",
               "eval_batch_size")
        for name in pos:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.optimizer not in optim.OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(optim.OPTIMIZERS)}, "
                             f"got {self.optimizer!r}")
        if self.schedule not in schedules.SCHEDULES:
            raise ValueError(f"schedule must be one of {schedules.SCHEDULES}, got {self.schedule!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")


# options that may change when resuming; everything else must match the checkpoint
RESUMABLE = ("epochs", "out", "checkpoint_every", "samples", "sample_len", "progress",
             "early_stop")


def config_from_dict(d, where="config"):
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{where}: unknown option(s) {unknown}")
    return TrainConfig(**d)


def model_config(cfg, vocab_size):
    return lm.LMConfig(vocab_size, cfg.emb_size, cfg.hidden_size, cfg.num_layers, cfg.mode,
                       cfg.dropout, cfg.tie_weights, cfg.init_scale)


def build_vocab(cfg, corp):
    return vocab_mod.build(corp.train, corp.level, cfg.max_vocab, cfg.min_count,
                           unk=corp.unk, eos=corp.eos, bos=corp.bos)


def batchify(ids, B, what="corpus"):
    """(N*B,) ids -> (N, B): B contiguous streams side by side; the tail is dropped."""
    N = len(ids) // B
    if N < 2:
        raise ValueError(f"{what} has {len(ids)} tokens: too short for batch size {B} "
                         f"(needs at least {2 * B} tokens)")
    return ids[:N * B].reshape(B, N).T.copy()                     # (N, B)


def chunks(N, bptt):
    return (N - 1 + bptt - 1) // bptt


def evaluate(mcfg, params, data, bptt):
    """Mean cross-entropy (nats/token) over a (N, B) stream, state carried."""
    state, total, count = lm.zero_state(mcfg, data.shape[1], params["decoder.bias"].dtype), 0.0, 0
    for i in range(0, data.shape[0] - 1, bptt):
        x, y = data[i:i + bptt], data[i + 1:i + 1 + bptt]
        x = x[:len(y)]
        logits, state, _ = lm.logits_forward(mcfg, params, x, state)
        T, B, V = logits.shape
        loss, _ = _nll(logits.reshape(T * B, V), y.reshape(-1))
        total, count = total + loss, count + T * B
    return total / count


def _nll(logits, targets):
    """Summed negative log-likelihood (no gradient: evaluation only)."""
    z = logits - logits.max(axis=-1, keepdims=True)                # (N, V)
    logz = np.log(np.exp(z).sum(axis=-1))
    return float((logz - z[np.arange(len(targets)), targets]).sum()), None


@dataclass
class Run:
    """The whole mutable state of a training run (all of it is checkpointed)."""
    params: dict
    opt_state: dict
    hidden: tuple
    rng: np.random.Generator
    epoch: int = 0                      # 0-based epoch in progress
    step: int = 0                       # next chunk within the epoch
    loss_sum: float = 0.0               # this epoch's summed train loss (nats)
    tokens: int = 0                     # and its token count
    plateau: dict = field(default_factory=dict)
    best_val: float = math.inf
    bad_epochs: int = 0
    finished: bool = False


def _meta(cfg, mcfg, vocab, run):
    return {"train_config": asdict(cfg), "model_config": mcfg.to_dict(),
            "vocab": vocab.to_dict(), "rng": run.rng.bit_generator.state,
            "position": {"epoch": run.epoch, "step": run.step},
            "sums": {"loss": run.loss_sum, "tokens": run.tokens},
            "plateau": run.plateau, "best_val": run.best_val, "bad_epochs": run.bad_epochs,
            "finished": run.finished}


def save(path, cfg, mcfg, vocab, run):
    checkpoint.save(path, run.params, run.opt_state, run.hidden, _meta(cfg, mcfg, vocab, run))


def restore(ck, mcfg):
    """A Run from a loaded checkpoint (checks the weights fit the architecture)."""
    m = ck["meta"]
    lm.check_params(mcfg, ck["params"])
    rng = np.random.default_rng()
    rng.bit_generator.state = m["rng"]
    return Run(ck["params"], ck["opt_state"], ck["state"], rng, m["position"]["epoch"],
               m["position"]["step"], m["sums"]["loss"], m["sums"]["tokens"], m["plateau"],
               m["best_val"], m["bad_epochs"], m["finished"])


def resume_config(meta, overrides, path):
    """The checkpoint's config with the allowed overrides; clear error otherwise."""
    saved = dict(meta["train_config"])
    clash = {k: (saved.get(k), v) for k, v in overrides.items()
             if k not in RESUMABLE and saved.get(k) != v}
    if clash:
        diff = ", ".join(f"{k}: checkpoint {a!r} vs given {b!r}" for k, (a, b) in clash.items())
        raise ValueError(f"{path}: cannot resume with different settings ({diff}); "
                         "start a new run instead")
    saved.update(overrides)
    return config_from_dict(saved, path)


def _progress(cfg, total, initial, epoch):
    if not cfg.progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc=f"epoch {epoch + 1}", file=sys.stderr,
                unit="step", dynamic_ncols=True, leave=False)


def _part(cfg, mcfg, run, x, y, cols, rng):
    """Loss, token count, gradients and final state of the streams ``cols`` (a slice)."""
    hidden = tuple(h[:, cols] for h in run.hidden)                 # (L, B', H) each
    loss, hidden, cache = lm.loss_forward(mcfg, run.params, x[:, cols], y[:, cols], hidden,
                                          training=True, rng=rng)
    grads = lm.backward(mcfg, run.params, cache)                   # of the per-token mean
    if cfg.sum_over_time:
        grads = {k: g * g.dtype.type(y.shape[0]) for k, g in grads.items()}
    return loss, int(y[:, cols].size), grads, hidden


def _step(cfg, mcfg, opt, run, x, y, lr, dp=None):
    """One truncated-BPTT chunk: forward, backward, clip, update; state carried.
    ``dp`` (``rnnlab.dist.mpi``): this rank computes its share of the streams."""
    part = functools.partial(_part, cfg, mcfg, run, x, y)
    loss, count, grads, run.hidden = (part(slice(None), run.rng) if dp is None else
                                      dp.step(part, x.shape[1], "--batch-size", run.rng))
    grads, norm, _ = optim.clip_by_global_norm(grads, cfg.clip or None)
    if not (np.isfinite(loss) and np.isfinite(norm)):
        raise ValueError(f"training diverged at epoch {run.epoch + 1}, step {run.step + 1} "
                         f"(loss {loss}, gradient norm {norm}); lower --lr or set --clip")
    run.params, run.opt_state = opt.update(run.params, grads, run.opt_state, lr)
    run.loss_sum += loss * count
    run.tokens += count
    return loss


def train_epoch(cfg, mcfg, vocab, opt, run, data, lr, dp=None):
    """Run the rest of the current epoch from ``run.step``; checkpoints mid-way."""
    n = chunks(data.shape[0], cfg.bptt)
    if cfg.max_steps:
        n = min(n, cfg.max_steps)
    bar, t0, tok0 = _progress(cfg, n, run.step, run.epoch), time.perf_counter(), run.tokens
    while run.step < n:
        i = run.step * cfg.bptt
        y = data[i + 1:i + 1 + cfg.bptt]                           # (T, B) targets
        loss = _step(cfg, mcfg, opt, run, data[i:i + len(y)], y, lr, dp)
        run.step += 1
        if (cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0 and run.step < n
                and (dp is None or dp.writer)):
            save(os.path.join(cfg.out, "last.npz"), cfg, mcfg, vocab, run)
        if bar is not None:
            rate = (run.tokens - tok0) / max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix(loss=f"{loss:.3f}", ppl=f"{math.exp(min(loss, 50)):.1f}",
                            tok_s=f"{rate:.0f}", lr=f"{lr:.3g}", refresh=False)
            bar.update(1)
    if bar is not None:
        bar.close()
    return (run.tokens - tok0) / max(time.perf_counter() - t0, 1e-9)


def _samples(cfg, mcfg, vocab, params, epoch):
    from rnnlab.lm import generate
    rng = np.random.default_rng([cfg.seed, epoch])   # own stream: training RNG untouched
    return generate.sample(mcfg, params, vocab, n=cfg.samples, max_len=cfg.sample_len,
                           rng=rng)


def end_epoch(cfg, mcfg, vocab, run, valid, lr, rate, log, writer=True):
    """Validation, schedule, early stopping, metrics, samples, checkpoints."""
    val = evaluate(mcfg, run.params, valid, cfg.bptt)
    record = {"epoch": run.epoch + 1, "lr": lr, "train_loss": run.loss_sum / max(run.tokens, 1),
              "valid_loss": val, "valid_ppl": math.exp(min(val, 700)), "tokens_per_s": rate}
    record["train_ppl"] = math.exp(min(record["train_loss"], 700))
    if cfg.schedule == "plateau":
        run.plateau = schedules.plateau_step(run.plateau, val, cfg.lr_decay, cfg.patience)
    improved = val < run.best_val
    run.best_val, run.bad_epochs = (val, 0) if improved else (run.best_val, run.bad_epochs + 1)
    run.epoch, run.step, run.loss_sum, run.tokens = run.epoch + 1, 0, 0.0, 0
    run.hidden = lm.zero_state(mcfg, cfg.batch_size, run.params["decoder.bias"].dtype)
    stop = bool(cfg.early_stop) and run.bad_epochs >= cfg.early_stop
    run.finished = run.epoch >= cfg.epochs or stop
    log(f"epoch {record['epoch']:3d} | lr {lr:.4g} | train ppl {record['train_ppl']:8.2f} | "
        f"valid ppl {record['valid_ppl']:8.2f} | {rate:,.0f} tokens/s")
    for s in (_samples(cfg, mcfg, vocab, run.params, run.epoch) if cfg.samples else []):
        log(f"  sample: {s}")
    if not writer:                                 # data parallel: rank 0 writes
        return record
    with open(os.path.join(cfg.out, "metrics.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    if improved:
        save(os.path.join(cfg.out, "best.npz"), cfg, mcfg, vocab, run)
    save(os.path.join(cfg.out, "last.npz"), cfg, mcfg, vocab, run)
    if stop:
        log(f"early stop: no better validation perplexity for {cfg.early_stop} epochs")
    return record


def prepare(cfg, resume=None, overrides=None):
    """Corpus, vocabulary, model config, data and the Run (fresh or resumed)."""
    ck = None
    if resume is not None:
        ck = checkpoint.load(resume)
        cfg = resume_config(ck["meta"], overrides or {}, resume)
    corp = corpus_mod.load(cfg.corpus, cfg.level)
    vocab = build_vocab(cfg, corp)
    if ck is not None and vocab.to_dict() != ck["meta"]["vocab"]:
        raise ValueError(f"{resume}: checkpoint's vocabulary ({len(ck['meta']['vocab']['itos'])} "
                         f"tokens) differs from the one corpus {cfg.corpus} gives ({len(vocab)})")
    mcfg = model_config(cfg, len(vocab))
    name = f"corpus {cfg.corpus}"
    train = batchify(vocab_mod.encode(vocab, corp.train), cfg.batch_size, f"{name} (train split)")
    nval = len(corp.valid)
    valid = batchify(vocab_mod.encode(vocab, corp.valid),
                     max(1, min(cfg.eval_batch_size, nval // 2)), f"{name} (valid split)")
    if ck is not None:
        run = restore(ck, mcfg)
        # recomputed, so a finished run can be extended with a larger --epochs
        run.finished = run.epoch >= cfg.epochs or (
            bool(cfg.early_stop) and run.bad_epochs >= cfg.early_stop)
        return cfg, corp, vocab, mcfg, train, valid, run
    rng = np.random.default_rng(cfg.seed)
    params = lm.init_params(mcfg, rng)
    opt = make_optimizer(cfg)
    run = Run(params, opt.init(params), lm.zero_state(mcfg, cfg.batch_size), rng,
              plateau=schedules.plateau_init(cfg.lr))
    return cfg, corp, vocab, mcfg, train, valid, run


def make_optimizer(cfg):
    return optim.make(cfg.optimizer, **({"momentum": cfg.momentum} if cfg.optimizer == "sgd" else {}))


def fit(cfg, resume=None, overrides=None, log=print, dp=None):
    """Train (or continue) a run; returns (cfg, vocab, mcfg, run, history).

    ``dp``: a ``rnnlab.dist.mpi.DataParallel`` (mpiexec): rank 0's weights on
    every rank, each computes its share of the streams, rank 0 logs and writes.
    """
    cfg, corp, vocab, mcfg, train, valid, run = prepare(cfg, resume, overrides)
    writer = dp is None or dp.writer
    if dp is not None:
        dp.broadcast(run.params)
        log = log if writer else (lambda *a, **k: None)
        cfg = cfg if writer else replace(cfg, progress=False)
    if writer:
        os.makedirs(cfg.out, exist_ok=True)
    opt = make_optimizer(cfg)
    log(f"corpus {corp.name}: {len(corp.train):,} train tokens, vocabulary {len(vocab):,} "
        f"({vocab.level}); {cfg.mode} {cfg.num_layers}x{cfg.hidden_size}, "
        f"{sum(p.size for p in run.params.values()):,} parameters")
    if resume:
        log(f"resumed from {resume} at epoch {run.epoch + 1}, step {run.step}")
    history = []
    while not run.finished and run.epoch < cfg.epochs:
        lr = schedules.lr_for_epoch(cfg.schedule, cfg.lr, run.epoch, run.plateau,
                                    cfg.lr_decay, cfg.decay_start)
        rate = train_epoch(cfg, mcfg, vocab, opt, run, train, lr, dp)
        history.append(end_epoch(cfg, mcfg, vocab, run, valid, lr, rate, log, writer))
    return cfg, corp, vocab, mcfg, run, history
