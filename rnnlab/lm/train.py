"""Training a language model: B parallel streams, truncated BPTT, exact resume.

The token stream is cut into B equal streams laid side by side, a (N, B) array
(as Zaremba et al. and PyTorch's word_language_model do). Each step takes the
next ``bptt`` rows (``rnnlab.engine.truncation.chunk_slices``): inputs
``data[i:i+bptt]``, targets shifted by one. The recurrent state is carried from
chunk to chunk (so the model sees the streams as continuous text) but no
gradient flows back past a chunk start. State is reset to zeros at every epoch
start.

The epochs themselves are the shared trainer's (``rnnlab.training.trainer``):
options checked once (``LMTrainConfig``), clipping, schedules, early stopping,
``best.npz``/``last.npz`` written atomically with the carried state, the
optimiser and RNG state and the position inside the epoch, ``metrics.jsonl``
rewritten from the checkpointed history, the one progress bar, and the
"training diverged ... lower --lr" message. A run killed at any point and
resumed from its last checkpoint ends with the same weights, bit for bit, as
one that never stopped. This module adds what is particular to language
models: the corpus, the vocabulary, the model, the chunked task, validation
perplexity and samples.

Under ``mpiexec -n N`` (``rnnlab.dist.mpi``) every rank reads the same corpus
and computes its parts of the B streams each step; the task sums them across
ranks with the carried state (``DataParallel.step``), so every rank ends each
step with the state one process would have, and rank 0 alone logs and writes.
"""
import functools
import math
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from rnnlab.engine.truncation import chunk_slices
from rnnlab.io import checkpoint
from rnnlab.lm import corpus as corpus_mod, model as lm, vocab as vocab_mod
from rnnlab.lm.corpus import batchify
from rnnlab.lm.evaluate import batch_streams, evaluate
from rnnlab.training import trainer
from rnnlab.training.limits import check_memory
from rnnlab.training.options import check, option
from rnnlab.training.trainer import TrainOptions

KIND = "lm"
MAX_SAMPLE_LEN, MAX_SAMPLES = 10_000, 100


@dataclass
class LMTrainConfig(TrainOptions):
    """Every ``rnnlab train`` option (each settable from a TOML file and the Python
    API too, with the same checks). The defaults are Zaremba et al.'s "small"
    setup."""
    corpus: str = option(corpus_mod.DEFAULT_SOURCE,
                         "text file, folder (PTB/WikiText layout or text files), .csv with a "
                         "'body' column, or 'python-docs' (the Python language reference "
                         "shipped with CPython)", positional=True)
    level: str = option("auto", "token level: word, char, or auto (word for PTB/WikiText/CSV, "
                        "char otherwise)", choices=("auto", "word", "char"))
    max_vocab: Optional[int] = option(None, "keep only the N most frequent tokens; the rest "
                                      "become <unk>", lo=2)
    min_count: int = option(1, "tokens seen fewer times become <unk>", lo=1)
    mode: str = option("lstm", "recurrent cell: rnn, lstm or gru", choices=("rnn", "lstm", "gru"))
    emb_size: int = option(200, "embedding size E", lo=1, hi=lm.MAX_SIZE)
    hidden_size: int = option(200, "hidden size H of every recurrent layer", lo=1, hi=lm.MAX_SIZE)
    num_layers: int = option(2, "number of stacked recurrent layers", lo=1, hi=lm.MAX_LAYERS)
    dropout: float = option(0.0, "dropout on non-recurrent connections (Zaremba et al. 2014)",
                            lo=0, hi=1, hi_open=True)
    tie_weights: bool = option(False, "share the embedding and decoder matrices (needs E == H)")
    init_scale: float = option(0.1, "initialise every weight uniformly in [-s, s]", lo=0,
                               lo_open=True)
    optimizer: str = option("sgd", "sgd, adam, rmsprop or adagrad",
                            choices=("adagrad", "adam", "rmsprop", "sgd"))
    lr: float = option(1.0, "learning rate", lo=0, lo_open=True)
    # The gradient taken is of the NLL summed over the bptt steps and averaged
    # over the batch, as in Zaremba et al. 2014 and TensorFlow's PTB tutorial
    # (their lr 1 and clip 5 assume it); False: the per-token mean. Perplexity
    # is per token either way.
    sum_over_time: bool = option(True, "take the gradient of the loss summed over the bptt "
                                 "steps (Zaremba et al., TensorFlow's PTB tutorial; their lr "
                                 "and clip assume it) instead of the per-token mean")
    schedule: str = option("zaremba", "learning-rate schedule: constant, zaremba (decay each "
                           "epoch after --decay-start epochs) or plateau (decay when "
                           "validation stops improving)", choices=("constant", "zaremba",
                                                                   "plateau"))
    epochs: int = option(13, "number of epochs", lo=1, hi=100_000)      # 1e20 ran on, lr at 0
    batch_size: int = option(20, "B parallel streams per step", lo=1, hi=100_000)
    bptt: int = option(20, "truncated-BPTT chunk length in steps", lo=1, hi=100_000)
    monitor: str = option("valid_loss", "validation metric for best.npz and early stopping",
                          choices=("valid_loss", "valid_ppl"))
    eval_batch_size: int = option(10, "streams used for validation", lo=1, hi=100_000)
    max_eval_tokens: int = option(100_000, "validate on at most the first N tokens of the "
                                  "valid split each epoch (0: all of it); bounds the time a "
                                  "huge corpus spends evaluating", lo=0)
    seed: int = option(1234, "random seed; the same seed reproduces a run exactly", lo=0)
    out: str = option("runs/lm", "output folder: last.npz, best.npz, metrics.jsonl")
    checkpoint_every: int = option(200, "steps between mid-epoch checkpoints (0: only at "
                                   "epoch ends)", lo=0)
    samples: int = option(3, "samples printed after every epoch", lo=0, hi=MAX_SAMPLES)
    sample_len: int = option(60, "maximum length of those samples, in tokens", lo=1,
                             hi=MAX_SAMPLE_LEN)
    # data parallelism under mpiexec -n N (rnnlab.dist.mpi)
    parts: int = option(0, "cut each step's B streams into K equal parts (0: one per MPI "
                        "rank); one process with --parts K --ordered gives the bits N ranks "
                        "give", lo=0, hi=100_000)
    ordered: bool = option(False, "deterministic reduction under MPI: every part's gradients "
                           "summed on rank 0 in part order (the same bits for any N)")
    mpi_timeout: float = option(300.0, "under MPI: abort the job when the other ranks do not "
                                "answer within this many seconds", lo=0, lo_open=True)

    # options that may change when resuming; everything else must match the checkpoint
    # (how a step is shared out too: a run may resume on any number of ranks)
    RESUMABLE = trainer.RESUMABLE + ("samples", "sample_len", "parts", "ordered", "mpi_timeout")

    def __post_init__(self):
        check(self)
        if self.tie_weights and self.emb_size != self.hidden_size:
            raise ValueError(f"--tie-weights needs --emb-size == --hidden-size, got "
                             f"{self.emb_size} and {self.hidden_size}")


def model_config(cfg, vocab_size):
    return lm.LMConfig(vocab_size, cfg.emb_size, cfg.hidden_size, cfg.num_layers, cfg.mode,
                       cfg.dropout, cfg.tie_weights, cfg.init_scale)


def build_vocab(cfg, corp):
    vocab = vocab_mod.build(corp.train, corp.level, cfg.max_vocab, cfg.min_count,
                            unk=corp.unk, eos=corp.eos, bos=corp.bos)
    specials = {corp.unk, corp.eos, corp.bos} - {None}
    if len(vocab) <= len(specials):                  # every text token would be <unk>
        top = max((c for t, c in Counter(corp.train).items() if t not in specials), default=0)
        raise ValueError(f"--min-count: expected at most {top} (the count of the most "
                         f"frequent token in the training split of corpus {cfg.corpus}), got "
                         f"{cfg.min_count}; every token would be {corp.unk}")
    return vocab


def chunks(N, bptt):
    """Truncated-BPTT steps in an epoch over N rows (each chunk needs its targets)."""
    return sum(1 for _ in chunk_slices(N - 1, bptt)) if N > 1 else 0


def _chunk(data, i, bptt):
    """Inputs and targets (T, B) of chunk i."""
    sl = slice(i * bptt, min((i + 1) * bptt, data.shape[0] - 1))
    return data[sl], data[sl.start + 1:sl.stop + 1]


class LMTask:
    """The language model as a task of the shared trainer (see its docstring).

    ``carry`` is the recurrent state between chunks; the trainer checkpoints it.
    ``dp`` (a ``rnnlab.dist.mpi.DataParallel``, or None: the whole batch here)
    shares every step out: this process computes its parts of the B streams
    (``_part``) and ``dp.step`` sums them with every rank's, the carried state
    included, so every rank holds the whole step's result.
    """

    def __init__(self, cfg, mcfg, train, valid, progress=False, log=print, dp=None):
        self.cfg, self.mcfg, self.train, self.valid = cfg, mcfg, train, valid
        self.progress, self.log, self.steps_run, self.dp = progress, log, 0, dp
        # a uniform guess scores log V nats per token; 20 times that is a broken model
        self.max_loss = 20 * max(math.log(mcfg.vocab_size), 1.0)
        self._carry = lm.zero_state(mcfg, cfg.batch_size)

    @property
    def carry(self):
        return self._carry

    @carry.setter
    def carry(self, state):
        want = lm.zero_state(self.mcfg, self.cfg.batch_size)
        if len(state) != len(want) or any(
                tuple(s.shape) != w.shape or s.dtype != w.dtype for s, w in zip(state, want)):
            raise ValueError(
                f"carried state is {[(tuple(s.shape), str(s.dtype)) for s in state]}; the "
                f"model needs {[(w.shape, str(w.dtype)) for w in want]}")
        self._carry = tuple(state)

    def steps(self, epoch):
        return chunks(self.train.shape[0], self.cfg.bptt)

    def loss_and_grads(self, params, epoch, i, rng):
        if i == 0:                                          # every epoch starts from zeros
            self._carry = lm.zero_state(self.mcfg, self.cfg.batch_size,
                                        params["decoder.bias"].dtype)
        x, y = _chunk(self.train, i, self.cfg.bptt)
        # alone, the untied embedding's gradient is its touched rows (nn.RowGrad);
        # data-parallel parts are summed as flat dense buffers
        part = functools.partial(self._part, params, x, y, sparse=self.dp is None)
        loss, count, grads, state = (part(slice(None), rng) if self.dp is None else
                                     self.dp.step(part, x.shape[1], "--batch-size", rng))
        self.steps_run += 1
        if grads is None or not math.isfinite(loss):
            return loss, count, None                        # the trainer reports it
        self._carry = state
        return loss, count, grads

    def _part(self, params, x, y, cols, rng, sparse=False):
        """Mean loss, token count, gradients (None when not finite) and final state
        of the streams ``cols`` (a slice of the B)."""
        carry = tuple(h[:, cols] for h in self._carry)                # (L, B', H) each
        x, y = x[:, cols], y[:, cols]
        loss, state, cache = lm.loss_forward(self.mcfg, params, x, y, carry,
                                             training=True, rng=rng)
        grads = None
        if math.isfinite(loss):
            try:
                grads = lm.backward(self.mcfg, params, cache, sparse=sparse)   # per-token mean
            except FloatingPointError:
                pass
        if grads is not None and self.cfg.sum_over_time:
            grads = {k: g * g.dtype.type(y.shape[0]) for k, g in grads.items()}
        if grads is None and self.dp is not None and not self.dp.trivial:
            # NaN keeps every rank in the collective; the sum is NaN on all of them
            grads = {k: np.full_like(v, np.nan) for k, v in params.items()}
        return loss, int(y.size), grads, state

    def evaluate(self, params):
        val = evaluate(self.mcfg, params, self.valid, self.cfg.bptt, self.cfg.max_eval_tokens,
                       self.progress, "validation")
        return {"valid_loss": val, "valid_ppl": math.exp(min(val, 700))}


def show(record):
    """The epoch line, as ``rnnlab train`` has always printed it."""
    return (f"epoch {record['epoch']:3d} | lr {record['lr']:.4g} | train ppl "
            f"{math.exp(min(record['train_loss'], 700)):8.2f} | valid ppl "
            f"{record['valid_ppl']:8.2f} | {record['tokens_per_s']:,.0f} tokens/s")


def _samples(cfg, mcfg, vocab, params, epoch):
    from rnnlab.lm import generate
    rng = np.random.default_rng([cfg.seed, epoch])   # own stream: training RNG untouched
    return generate.sample(mcfg, params, vocab, n=cfg.samples, max_len=cfg.sample_len,
                           rng=rng)


class Trained(NamedTuple):
    """What ``fit`` returns; ``steps_run``: the steps this call ran (fewer than the
    whole run's after a resume)."""
    cfg: LMTrainConfig
    corpus: object
    vocab: object
    mcfg: lm.LMConfig
    state: trainer.State
    steps_run: int
    history: list


class Prepared(NamedTuple):
    cfg: LMTrainConfig
    corpus: object
    vocab: object
    mcfg: lm.LMConfig
    train: np.ndarray
    valid: np.ndarray
    params: Optional[dict]          # fresh weights (None when resuming)
    rng: Optional[np.random.Generator]
    resume: Optional[dict]          # the loaded checkpoint, with "path"


def load_resume(path, overrides=None):
    """(config, checkpoint) to continue from: the checkpoint's settings with the
    allowed overrides (``LMTrainConfig.RESUMABLE``)."""
    ck = checkpoint.load(path, kind=KIND)
    ck["path"] = path
    if "history" not in ck["meta"] and "model_config" in ck["meta"]:
        raise checkpoint.CheckpointError(
            f"{path}: written by an older rnnlab, before training kept its history in the "
            "checkpoint; it can still be evaluated and sampled, but not resumed")
    return trainer.resume_config(LMTrainConfig, ck["meta"], dict(overrides or {}), path), ck


def prepare(cfg, resume=None, overrides=None, log=print):
    """Check the output folder, read the corpus, build vocabulary, model and data.

    ``resume``: a checkpoint path, or the (config, checkpoint) ``load_resume`` gave.
    """
    ck = None
    if resume is not None:
        cfg, ck = resume if isinstance(resume, tuple) else load_resume(resume, overrides)
    elif not isinstance(cfg, LMTrainConfig):
        raise ValueError(f"expected an LMTrainConfig, got {type(cfg).__name__}")
    if ck is None:                                   # before the (slow) corpus; a resumed
        trainer.check_read(cfg)                      # run keeps the settings it started with
    trainer.check_out(cfg.out)
    corp = corpus_mod.load(cfg.corpus, cfg.level)
    vocab = build_vocab(cfg, corp)
    if ck is not None:
        saved = checkpoint.expect(_app(ck), "vocab", checkpoint.TABLE, ck["path"])
        if vocab.to_dict() != saved:
            n = len(saved["itos"]) if isinstance(saved.get("itos"), list) else "?"
            raise ValueError(f"{ck['path']}: checkpoint's vocabulary ({n} tokens) differs "
                             f"from the one corpus {cfg.corpus} gives ({len(vocab)})")
    mcfg = model_config(cfg, len(vocab))
    name = f"corpus {cfg.corpus}"
    train = batchify(vocab_mod.encode(vocab, corp.train), cfg.batch_size, f"{name} (train split)")
    valid = batch_streams(vocab_mod.encode(vocab, corp.valid), cfg.eval_batch_size,
                          f"{name} (valid split)")
    check_memory(_bytes_needed(cfg, mcfg), f"a {cfg.mode} {cfg.num_layers}x{cfg.hidden_size} "
                 f"model over {len(vocab):,} tokens at batch {cfg.batch_size} x bptt {cfg.bptt}",
                 "lower --hidden-size, --batch-size or --bptt, or set --max-vocab")
    if len(vocab) > 50_000 and cfg.max_vocab is None:
        log(f"note: the vocabulary has {len(vocab):,} tokens; every step and every evaluation "
            "costs in proportion: --max-vocab 50000 keeps the frequent ones")
    if ck is not None:
        try:
            lm.check_params(mcfg, ck["params"], finite=True)
        except ValueError as e:
            raise checkpoint.CheckpointError(f"{ck['path']}: {e}") from None
        return Prepared(cfg, corp, vocab, mcfg, train, valid, None, None, ck)
    rng = np.random.default_rng(cfg.seed)
    return Prepared(cfg, corp, vocab, mcfg, train, valid, lm.init_params(mcfg, rng), rng, None)


def _app(ck):
    m = ck["meta"]
    return m["app"] if isinstance(m.get("app"), dict) else {}


def _bytes_needed(cfg, mcfg):
    """A rough upper estimate of one training step's memory (float32)."""
    n = sum(math.prod(s) for s in lm.param_shapes(mcfg).values())
    slots = {"adam": 2, "sgd": 1, "rmsprop": 1, "adagrad": 1}[cfg.optimizer]
    per_token = 3 * mcfg.vocab_size + 3 * cfg.emb_size + 14 * cfg.num_layers * cfg.hidden_size
    rows = max(cfg.batch_size, cfg.eval_batch_size)
    return 4 * (n * (4 + slots) + per_token * rows * cfg.bptt)


def fit(cfg=None, resume=None, overrides=None, log=print, dp=None):
    """Train (or continue) a run; returns a ``Trained`` (its last field: the history).

    ``cfg``: an ``LMTrainConfig``; ``resume``: a checkpoint path (its settings,
    with ``overrides`` where ``LMTrainConfig.RESUMABLE`` allows), or the pair
    ``load_resume`` returns. ``dp``: a ``rnnlab.dist.mpi.DataParallel`` (``rnnlab
    train`` makes it from ``--parts``, ``--ordered`` and ``--mpi-timeout``): rank
    0's initial weights go to every rank, each computes its parts of every step,
    rank 0 alone logs and writes. Without it one process takes the whole batch.
    """
    p = prepare(cfg, resume, overrides, log)
    cfg = p.cfg
    if dp is None and cfg.parts > 1:
        raise ValueError(f"--parts {cfg.parts}: needs a DataParallel (dp=rnnlab.dist.mpi."
                         "from_options(cfg.parts, cfg.ordered, cfg.mpi_timeout))")
    writer = dp is None or dp.writer
    if dp is not None and p.params is not None:
        dp.broadcast(p.params)                       # rank 0's initial weights everywhere
    log = log if writer else (lambda *a, **k: None)
    task = LMTask(cfg, p.mcfg, p.train, p.valid, cfg.progress and writer, log, dp)
    nparams = sum(v.size for v in (p.params or p.resume["params"]).values())
    log(f"corpus {p.corpus.name}: {len(p.corpus.train):,} train tokens, vocabulary "
        f"{len(p.vocab):,} ({p.vocab.level}); {cfg.mode} {cfg.num_layers}x{cfg.hidden_size}, "
        f"{nparams:,} parameters")
    if cfg.max_eval_tokens and p.valid.size - p.valid.shape[1] > cfg.max_eval_tokens:
        log(f"validation: the first {cfg.max_eval_tokens:,} of "
            f"{p.valid.size - p.valid.shape[1]:,} valid tokens each epoch (--max-eval-tokens)")

    def on_epoch(st, record):
        for s in (_samples(cfg, p.mcfg, p.vocab, st.params, st.epoch) if cfg.samples else []):
            log(f"  sample: {s}")

    app_meta = {"model_config": p.mcfg.to_dict(), "vocab": p.vocab.to_dict()}
    hooks = {} if dp is None else dp.fit_hooks(reduced=True)    # the task sums its steps
    st = trainer.fit(cfg, task, p.params, kind=KIND, app_meta=app_meta, resume=p.resume,
                     log=log, unit="tokens", on_epoch=on_epoch, rng=p.rng, show=show, **hooks)
    return Trained(cfg, p.corpus, p.vocab, p.mcfg, st, task.steps_run, st.history)
