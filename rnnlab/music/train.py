"""Training and evaluating the frame models on the shared trainer.

One step = a minibatch of whole pieces (full BPTT, no truncation), in an order
that is a function of (seed, epoch). With ``weight_noise`` σ > 0 the gradient
of each step is taken at parameters + N(0, σ²) noise (every tensor, biases
too), drawn afresh for the step from the trainer's RNG (Graves 2011; Chung et
al. 2014 use σ = 0.075), and applied to the clean parameters. Validation after
every epoch: ``valid_nll`` (the early-stopping and best-checkpoint metric by
default) and ``valid_acc``.

Default recipe: Chung et al.'s (RMSProp, clip 1, σ = 0.075, one piece per
update, early stopping on ``valid_nll``) with a faster rate that decays: lr
3e-3, halved after 3 epochs in a row without a better ``valid_nll`` (the plateau
schedule, ``--patience 2``), stop after 10 such epochs. On Nottingham this
reaches the level of lr 1e-3 constant in about a third of the epochs, and on
JSB the same test NLL. On the larger sets (Nottingham, MuseData, Piano-midi)
it underfits: ``--batch-size 8 --weight-noise 0`` does better there on validation
and test (Nottingham: ``--weight-noise 0 --input-flip 0.0025`` to ``0.01``
better still; see ``benchmarks/results/music.md``).

Regularisers that act on the data (round four; all off by default, chosen on
validation in ``benchmarks/results/music.md``): ``--transpose K`` moves each
training piece by a random number of semitones in [-K, K] each epoch (only the
shifts that keep its notes on the keys; a function of (seed, epoch));
``--window L`` trains on windows of about L frames instead of whole pieces;
``--dropout`` drops the recurrent outputs where they enter the output layer,
``--input-dropout`` and ``--input-flip`` drop or flip notes of the input frames
(never of the targets). Validation and test always see the clean pieces.

Metrics (``evaluate``):

- ``nll``: negative log-likelihood per time step in nats, summed over the 88
  notes, averaged over every frame of the split pooled (Boulanger-Lewandowski
  2012; Chung et al. 2014).
- ``acc``: frame-level accuracy of Bay et al. 2009, TP / (TP + FP + FN) summed
  over all frames and notes, where a frame's prediction is made from the true
  frames before it. Decision rule: a note is predicted on when its probability
  is >= 0.5 (Bernoulli); for NADE, pitches are decided in ascending order, each
  on when p(v_i = 1 | the pitches already decided) >= 0.5.
"""
import math
from dataclasses import dataclass

import numpy as np

from rnnlab import nn
from rnnlab.engine import validate
from rnnlab.io import checkpoint
from rnnlab.music import data, model
from rnnlab.training import trainer
from rnnlab.training.options import changed, option, redefault

KIND = "music"


@dataclass
class MusicOptions(trainer.TrainOptions):
    """``rnnlab music train`` options; defaults: the recipe of the module docstring."""
    data: str = option("bach", "bach (embedded JSB chorales), jsb, nottingham, musedata, "
                       "piano-midi, a list-of-notes .json file or a folder of MIDI files",
                       positional=True)
    mode: str = option("lstm", "recurrent cell: rnn (tanh), lstm or gru",
                       choices=("rnn", "lstm", "gru"))
    hidden_size: int = option(36, "hidden units (Chung et al.: tanh 100, GRU 46, LSTM 36)",
                              lo=1)
    num_layers: int = option(1, "stacked recurrent layers", lo=1)
    output: str = option("bernoulli", "frame output: 88 independent sigmoids (bernoulli) or "
                         "RNN-NADE (nade)", choices=model.OUTPUTS)
    nade_hidden: int = option(50, "NADE hidden units (--output nade)", lo=1)
    weight_noise: float = option(0.075, "std of the Gaussian noise added to the weights for "
                                 "each step's gradient (0: off)", lo=0)
    transpose: int = option(0, "each epoch, move every training piece by a random number of "
                            "semitones in [-K, K], among the shifts that keep its notes on the "
                            "keys (0: off; validation and test are never moved)", lo=0, hi=87)
    transpose_step: int = option(1, "--transpose in multiples of this many semitones (12: "
                                 "by octaves, which keeps the key)", lo=1, hi=12)
    dropout: float = option(0.0, "dropout on the recurrent outputs where they enter the output "
                            "layer (training only)", lo=0, hi=1, hi_open=True)
    input_dropout: float = option(0.0, "dropout on the input frames (training only; the "
                                  "targets stay whole)", lo=0, hi=1, hi_open=True)
    input_flip: float = option(0.0, "probability of flipping each note of the input frames "
                               "(training only; the targets stay whole)", lo=0, hi=1)
    window: int = option(0, "train on windows of about this many frames (each piece cut at a "
                         "random phase each epoch, each window from the zero state with the "
                         "frame before it as its first input) instead of whole pieces (0: off)",
                         lo=0)
    freq_init: bool = option(True, "start the output biases at the logit of each note's "
                             "training frequency")
    steps_per_beat: int = option(2, "MIDI folders: time steps per quarter note", lo=1)
    dtype: str = option("float32", "floating-point type", choices=("float32", "float64"))
    eval_batch: int = option(64, "pieces per evaluation batch", lo=1)
    init_from: str = option("", "start from the weights of this music checkpoint (same "
                            "architecture; e.g. a second phase at a lower --lr)")
    optimizer: str = option("rmsprop", "optimiser", choices=("adagrad", "adam", "rmsprop", "sgd"))
    lr: float = option(3e-3, "learning rate", lo=0, lo_open=True)
    clip: float = option(1.0, "clip gradients to this global norm (0: off)", lo=0)
    schedule: str = redefault(trainer.TrainOptions, "schedule", "plateau")
    patience: int = redefault(trainer.TrainOptions, "patience", 2)
    epochs: int = option(300, "maximum number of epochs", lo=1)
    batch_size: int = option(1, "pieces per step (Chung et al.: one piece per update)", lo=1)
    early_stop: int = option(10, "stop after N epochs without a better --monitor (0: off)",
                             lo=0)
    monitor: str = option("valid_nll", "validation metric for best.npz and early stopping",
                          choices=("valid_nll", "valid_acc"))
    out: str = option("runs/music", "output folder: last.npz, best.npz, metrics.jsonl")

    def __post_init__(self):
        super().__post_init__()
        # settings the run would ignore silently (round 14's audit)
        if changed(self, "nade_hidden") and self.output != "nade":
            raise ValueError(f"--nade-hidden {self.nade_hidden}: sizes the NADE output only; "
                             f"with --output {self.output} it would be ignored")
        if changed(self, "transpose_step") and not self.transpose:
            raise ValueError(f"--transpose-step {self.transpose_step}: the unit of --transpose's "
                             "shifts; with --transpose 0 (off) it would be ignored")
        if changed(self, "steps_per_beat") and self.data in data.STEPS_PER_BEAT:
            raise ValueError(f"--steps-per-beat {self.steps_per_beat}: for MIDI folders and "
                             f".json files; {self.data} has its own "
                             f"({data.STEPS_PER_BEAT[self.data]}), so it would be ignored")

    def model_config(self):
        return model.MusicConfig(self.mode, self.hidden_size, self.num_layers, self.output,
                                 self.nade_hidden)


def _length_batches(rolls, size, max_frames=4096):
    """Indices of the pieces sorted by length, cut into batches of at most
    ``size`` pieces and (unless one piece is longer) ``max_frames`` padded
    frames: less padding, and NADE's (88, N, Hn) activations stay small."""
    order = sorted(range(len(rolls)), key=lambda i: len(rolls[i]))
    batches, cur = [], []
    for i in order:
        if cur and (len(cur) == size or (len(cur) + 1) * len(rolls[i]) > max_frames):
            batches.append(cur)
            cur = []
        cur.append(i)
    return batches + [cur] if cur else batches


def evaluate(mcfg, params, rolls, batch=64, accuracy=True):
    """{"nll", "acc", "frames"} over ``rolls`` (see the module docstring)."""
    if not rolls:                   # data.check_sets refuses empty splits; not a 0/0 here
        raise ValueError("evaluate: expected at least one piece, got none")
    dtype = params["out.weight"].dtype
    total, frames, tp, fp, fn = 0.0, 0, 0, 0, 0
    for group in _length_batches(rolls, batch):
        b = model.make_batch([rolls[i] for i in group], dtype)
        loss, n, _ = model.loss_forward(mcfg, params, b)
        total, frames = total + loss * n, frames + n
        if accuracy:
            pred = model.predict(mcfg, params, b)
            tp += int((pred & b.y).sum())
            fp += int((pred & ~b.y).sum())
            fn += int((~pred & b.y).sum())
    acc = tp / (tp + fp + fn) if tp + fp + fn else float("nan")
    return {"nll": total / frames, "acc": acc, "frames": frames}


def piece_nlls(mcfg, params, rolls, batch=64):
    """The NLL of every frame of every piece: a list of (T_i,) arrays in the
    order of ``rolls``. Pooling them all is ``evaluate``'s ``nll``; the other
    weightings (per piece, without the first frame) are for comparing with
    papers that count differently (``benchmarks/music_diagnosis.py``)."""
    out = [None] * len(rolls)
    for group in _length_batches(rolls, batch):
        b = model.make_batch([rolls[i] for i in group], params["out.weight"].dtype)
        nll = model.frame_nll(mcfg, params, b)                          # (N,)
        piece = b.rows % len(group)                                     # (N,) time-major rows
        for k, i in enumerate(group):
            out[i] = nll[piece == k]
    return out


class MusicTask:
    """The trainer's task: minibatches of whole pieces (or windows), the
    regularisers of the options (transposition, weight noise, dropout, input
    noise), validation."""

    def __init__(self, cfg, mcfg, sets):
        self.cfg, self.mcfg, self.train, self.valid = cfg, mcfg, sets["train"], sets["valid"]
        self.dtype = np.dtype(cfg.dtype)
        self.ranges = data.shift_ranges(self.train) if cfg.transpose else None    # (n, 2)
        self._planned = (None, [])                    # (epoch, its items), see _plan

    def steps(self, epoch):
        return math.ceil(len(self._plan(epoch)) / self.cfg.batch_size)

    def _plan(self, epoch):
        """The epoch's training items in order: (piece, start, stop) triples,
        whole pieces or (``window``) their windows; a function of (seed, epoch)."""
        if self._planned[0] != epoch:
            rng = np.random.default_rng([self.cfg.seed, epoch])
            order = rng.permutation(len(self.train))
            L = self.cfg.window
            items = [(j, 0, len(self.train[j])) for j in order] if not L else [
                (j, s, e) for j in order for s, e in data.windows(len(self.train[j]), L, rng)]
            if L:
                items = [items[k] for k in rng.permutation(len(items))]
            self._planned = epoch, items
        return self._planned[1]

    def loss_and_grads(self, params, epoch, i, rng):
        bs = self.cfg.batch_size
        items = self._plan(epoch)[i * bs:(i + 1) * bs]
        pieces = self._pieces(epoch, [j for j, _, _ in items])
        before = np.array([p[s - 1] if s else np.zeros(p.shape[1], bool)
                           for p, (_, s, _) in zip(pieces, items)])               # (B, 88)
        batch = model.make_batch([p[s:e] for p, (_, s, e) in zip(pieces, items)], self.dtype,
                                 before)
        batch = self._noisy(batch, rng)
        sigma = self.cfg.weight_noise
        if sigma:
            params = {k: (p + sigma * rng.standard_normal(p.shape)).astype(p.dtype)
                      for k, p in params.items()}
        drop = nn.dropout_mask((len(batch.rows), self.mcfg.hidden_size), self.cfg.dropout, rng,
                               self.dtype)                                  # (N, H)
        loss, n, cache = model.loss_forward(self.mcfg, params, batch, drop)
        return loss, n, model.backward(self.mcfg, params, cache)

    def _pieces(self, epoch, pick):
        """The training pieces ``pick``, transposed by the epoch's shifts: one
        draw per piece per epoch, a function of (seed, epoch) only."""
        if not self.cfg.transpose:
            return [self.train[j] for j in pick]
        shifts = data.random_shifts(self.ranges, self.cfg.transpose,
                                    np.random.default_rng([self.cfg.seed, epoch, 1]),
                                    self.cfg.transpose_step)
        return [data.transpose(self.train[j], shifts[j]) for j in pick]

    def _noisy(self, batch, rng):
        """The batch with dropped and flipped input notes; the targets are clean."""
        x = batch.x
        if self.cfg.input_flip:
            x = np.abs(x - (rng.random(x.shape) < self.cfg.input_flip)).astype(x.dtype)
        if self.cfg.input_dropout:
            x = x * nn.dropout_mask(x.shape, self.cfg.input_dropout, rng, x.dtype)
        return batch._replace(x=x)

    def evaluate(self, params):
        r = evaluate(self.mcfg, params, self.valid, self.cfg.eval_batch)
        return {"valid_nll": r["nll"], "valid_acc": r["acc"]}


def app_meta(cfg, mcfg):
    return {"model": mcfg.to_dict(), "data": cfg.data,
            "steps_per_beat": data.steps_per_beat_of(cfg.data, cfg.steps_per_beat)}


def load_sets(cfg):
    return data.load(None if cfg.data == "bach" else cfg.data, cfg.steps_per_beat, cfg.seed)


def fit(cfg, sets=None, resume=None, log=print):
    """Train (or resume) a model; returns (model config, final trainer State)."""
    sets = data.check_sets(sets, "sets") if sets is not None else load_sets(cfg)
    mcfg = cfg.model_config()
    params = None
    if resume is None and cfg.init_from:
        start, saved = load_model(cfg.init_from)[:2]
        if start != mcfg:
            raise ValueError(f"--init-from {cfg.init_from}: architecture {start.to_dict()} "
                             f"differs from {mcfg.to_dict()}")
        params = {k: v.astype(cfg.dtype) for k, v in saved.items()}
    elif resume is None:
        freqs = model.note_frequencies(sets["train"]) if cfg.freq_init else None
        params = model.init_params(mcfg, cfg.seed, np.dtype(cfg.dtype), freqs)
    # training never changes a shape, so no checkpoint can be written with wrong ones
    # once they are checked here (an empty train split once made out.bias 0-d)
    if resume is None:
        validate.check_params(model.param_shapes(mcfg), params, what="initial weights")
    else:
        trainer.check_resumed_params(resume, model.param_shapes(mcfg), cfg.dtype)
    task = MusicTask(cfg, mcfg, sets)
    st = trainer.fit(cfg, task, params, kind=KIND, app_meta=app_meta(cfg, mcfg),
                     resume=resume, log=log, unit="frame")
    return mcfg, st


def load_model(path):
    """(model config, params, checkpoint metadata), checked."""
    return checkpoint.load_model(path, KIND, lambda app: model.MusicConfig(**app["model"]),
                                 model.param_shapes)


def data_of(meta, given=None):
    """(sets, source name) for a checkpoint: ``given`` or the data it was trained on."""
    source = given or meta["app"]["data"]
    cfg = meta.get("train_config", {})
    return data.load(None if source == "bach" else source, cfg.get("steps_per_beat", 2),
                     cfg.get("seed", 0)), source
