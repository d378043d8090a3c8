"""Training a captioner on the shared trainer, and loading one back.

The data is generated from ``--seed`` (train, valid; test and heldout for
evaluation), so a run needs no download. Each step draws ``batch_size`` scenes
in a (seed, epoch)-shuffled order and, per scene, its reading-order phrasing
(objects row by row, left to right; ``--phrasing reading``, the default) or
one of its true phrasings at random (``--phrasing random``; every phrasing
counts as correct at evaluation either way, but the random targets learn more
slowly: 39% against 80% validation exact match after two epochs of 8000 images).
Validation reports the loss on reading-order captions and the greedy exact
match (``valid_exact``, the default ``--monitor``) on ordinary validation
scenes: nothing of the test or held-out splits enters training or model
selection, and ``fit`` asserts that no held-out colour-shape pair occurs in
the training or validation scenes.
"""
from dataclasses import dataclass

import numpy as np

from rnnlab.caption import data, metrics, model, scenes, search
from rnnlab.io import checkpoint
from rnnlab.training import trainer
from rnnlab.training.options import changed, flag, option

KIND = "caption"


@dataclass
class CaptionOptions(trainer.TrainOptions):
    # the shared options whose defaults differ here (a one-minute run by default)
    lr: float = option(3e-3, "learning rate", lo=0, lo_open=True)
    epochs: int = option(4, "number of epochs", lo=1)
    monitor: str = option("valid_exact", "validation metric for best.npz and early stopping",
                          choices=("valid_exact", "valid_loss"))
    out: str = option("runs/caption", "output folder: last.npz, best.npz, metrics.jsonl")
    source: str = option("scenes", "data: generated shape scenes, or scikit-learn digit "
                         "composites", choices=data.SOURCES)
    decoder: str = option("attend", "attend (Show, Attend and Tell) or show-tell (image as the "
                          "initial state)", choices=model.DECODERS)
    # at most 100,000 generated images (~2.7 GB as float32): 100,000,000 ran until stopped
    train_size: int = option(4000, "generated training images", lo=1, hi=100_000)
    valid_size: int = option(200, "generated validation images", lo=1, hi=100_000)
    max_objects: int = option(3, "objects per scene: 1 to this (digits: at most 2)", lo=1,
                              hi=3)
    phrasing: str = option("reading", "training caption per image: the reading-order phrasing "
                           "(objects row by row), or a random true phrasing (slower to learn)",
                           choices=("reading", "random"))
    hidden: int = option(128, "decoder LSTM size H", lo=1)
    embed: int = option(32, "word embedding size E", lo=1)
    attention_size: int = option(64, "attention size A", lo=1)
    channels: str = option("auto", "CNN channels per conv-ReLU-pool block (comma list), or "
                           "auto: 16,32,32,32 for scenes (a 3 x 3 grid, one cell per scene "
                           "cell), 16,32,32 for digits (6 x 6: on 3 x 3 the digit's attention "
                           "lands on a neighbouring cell; benchmarks/results/caption.md)")
    alpha_c: float = option(0.0, "weight of the doubly stochastic attention regulariser "
                            "(off by default: on the earlier 6 x 6 one-stream design it pulled "
                            "the attention of the nouns onto the background; measured in "
                            "benchmarks/results/caption_alpha0.md)", lo=0)
    colour_channels: int = option(8, "0: the CNN reads the RGB image; > 0: two-stream encoder, "
                                  "the CNN reads the brightness (max over R, G, B) and a 1x1 "
                                  "conv with this many channels reads the colours", lo=0)
    ctx_dropout: float = option(0.0, "dropout on the attention context the decoder LSTM reads "
                                "(the output layer always sees it whole; 0.5 lowered held-out "
                                "exact match in the ablation of benchmarks/results/caption.md)",
                                lo=0, hi=1, hi_open=True)
    word_dropout: float = option(0.0, "probability of replacing each previous word the decoder "
                                 "reads by <pad> while training (measured in the ablation of "
                                 "benchmarks/results/caption.md)", lo=0, hi=1, hi_open=True)
    dtype: str = option("float32", "parameter dtype", choices=("float32", "float64"))

    def __post_init__(self):
        super().__post_init__()
        channels_of(self)
        if self.decoder == "show-tell" and self.alpha_c > 0:    # would be ignored silently
            raise ValueError(f"--alpha-c {self.alpha_c:g}: the attention regulariser needs "
                             "--decoder attend (show-tell has no attention)")
        used = [f"{flag(k)} {getattr(self, k):g}" for k in ATTENTION_ONLY if changed(self, k)]
        if self.decoder == "show-tell" and used:
            raise ValueError(f"{', '.join(used)}: read by the attention only, which --decoder "
                             "show-tell does not have")


# options of the attention, which --decoder show-tell does not have (--alpha-c: its own check)
ATTENTION_ONLY = ("attention_size", "ctx_dropout")

# the encoder per data source when --channels is auto (measured: results/caption.md)
AUTO_CHANNELS = {"scenes": "16,32,32,32", "digits": "16,32,32"}


def channels_of(cfg):
    """The CNN's channels per block for this config (``auto`` resolved by source)."""
    return parse_channels(AUTO_CHANNELS[cfg.source] if cfg.channels == "auto" else cfg.channels)


def parse_channels(text):
    try:
        ch = tuple(int(c) for c in text.split(","))
    except ValueError:
        ch = ()
    if not ch or min(ch) < 1 or len(ch) > 4:
        raise ValueError(f"--channels: expected 1 to 4 positive integers like 16,32,32, "
                         f"got {text!r}")
    return ch


def model_config(cfg, vocab):
    return model.ModelConfig(cfg.decoder, len(vocab), channels_of(cfg), cfg.embed,
                             cfg.hidden, cfg.attention_size, cfg.alpha_c,
                             colour_channels=cfg.colour_channels, ctx_dropout=cfg.ctx_dropout,
                             word_dropout=cfg.word_dropout)


class Task:
    """The trainer's task: batches of (images, one phrasing each)."""

    def __init__(self, cfg, mcfg, vocab, train, valid):
        self.cfg, self.mcfg, self.vocab = cfg, mcfg, vocab
        dt = np.dtype(cfg.dtype)
        self.x = data.as_input(np.stack([s.image for s in train])).astype(dt)
        self.ids = data.encode_all(vocab, train, "train")
        self.valid = valid
        self.vx = data.as_input(np.stack([s.image for s in valid])).astype(dt)
        self.vids = data.pad([data.encode_all(vocab, [s], "valid")[0][0] for s in valid])

    def steps(self, epoch):
        return max(1, len(self.x) // self.cfg.batch_size)

    def loss_and_grads(self, params, epoch, i, rng):
        B = self.cfg.batch_size
        order = np.random.default_rng([self.cfg.seed, epoch]).permutation(len(self.x))
        idx = order[i * B:(i + 1) * B]
        pick = np.random.default_rng([self.cfg.seed, epoch, i]).integers(0, 720, len(idx))
        seqs = [self.ids[j][k % len(self.ids[j])] if self.cfg.phrasing == "random"
                else self.ids[j][0] for j, k in zip(idx, pick)]
        loss, parts, caches = model.loss_forward(self.mcfg, params, self.x[idx], data.pad(seqs),
                                                 rng)
        return loss, parts["tokens"], model.backward(self.mcfg, params, caches)

    def evaluate(self, params):
        loss, _, _ = model.loss_forward(self.mcfg, params, self.vx, self.vids)
        preds = describe(self.mcfg, params, self.vocab, self.vx)[0]
        return {"valid_loss": loss, "valid_exact": metrics.exact(preds, self.valid)}


def describe(mcfg, params, vocab, x, batch=100):
    """(captions, attention maps or None) by greedy decoding, ``batch`` images at a time."""
    caps, maps = [], []
    for i in range(0, len(x), batch):
        ids, al = search.greedy(mcfg, params, x[i:i + batch])
        caps += [vocab.decode(s) for s in ids]
        maps += al if al is not None else [None] * len(ids)
    return caps, (maps if mcfg.decoder == "attend" else None)


def app_meta(cfg, mcfg, vocab):
    return {"model_config": mcfg.to_dict(), "vocab": vocab.to_list(), "source": cfg.source}


def fit(cfg, resume=None, log=print):
    """Generate the data, train, return (state, model config, vocab)."""
    vocab = data.source_vocab(cfg.source)
    mcfg = model_config(cfg, vocab)
    train = data.make_split(cfg.source, cfg.train_size, "train", cfg.seed, cfg.max_objects)
    valid = data.make_split(cfg.source, cfg.valid_size, "valid", cfg.seed, cfg.max_objects)
    if cfg.source == "scenes":
        scenes.check_split(train + valid, [])          # the held-out pairs stay held out
    task = Task(cfg, mcfg, vocab, train, valid)
    if resume is not None:
        trainer.check_resumed_params(resume, model.param_shapes(mcfg), cfg.dtype)
        _check_resumed_vocab(resume, cfg.source, vocab)
    params = None if resume else model.init_params(mcfg, cfg.seed, np.dtype(cfg.dtype))
    log(f"{cfg.source}: {len(train)} train / {len(valid)} valid images, vocabulary "
        f"{len(vocab)}; {cfg.decoder} decoder, "
        f"{sum(v.size for v in (params or resume['params']).values()):,} parameters")
    st = trainer.fit(cfg, task, params, kind=KIND, app_meta=app_meta(cfg, mcfg, vocab),
                     resume=resume, log=log, unit="token")
    return st, mcfg, vocab


def _check_resumed_vocab(resume, source, vocab):
    """The vocabulary the checkpoint trained with is the one --source builds again:
    an edited one would have been replaced without a word, its rows re-read as
    other words."""
    saved = checkpoint.expect(resume["meta"], "app.vocab",
                              ("a list of words", lambda v: isinstance(v, list)),
                              resume["path"])
    if saved != vocab.to_list():
        diff = next((k for k, (a, b) in enumerate(zip(saved, vocab.to_list())) if a != b),
                    min(len(saved), len(vocab)))
        raise checkpoint.CheckpointError(
            f"{resume['path']}: its vocabulary ({len(saved)} words) is not the one --source "
            f"{source} builds ({len(vocab)} words; they differ from word {diff} on)")


def load(path):
    """(model config, params, vocab, meta) from a checkpoint, checked."""
    def build(app):
        mcfg, vocab = model.ModelConfig.from_dict(app["model_config"]), data.Vocab(app["vocab"])
        if len(vocab) != mcfg.vocab_size:
            raise ValueError(f"vocabulary has {len(vocab)} words but the model expects "
                             f"{mcfg.vocab_size}")
        return mcfg, vocab
    (mcfg, vocab), params, meta = checkpoint.load_model(
        path, KIND, build, lambda built: model.param_shapes(built[0]))
    return mcfg, params, vocab, meta
