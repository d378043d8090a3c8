"""Training a translation model on the shared trainer (``rnnlab.training``).

``TranslateOptions`` adds data, vocabulary, model and decoding options to the
shared ones; ``Task`` gives the trainer its steps (length-bucketed batches in
a (seed, epoch)-shuffled order, so resume is exact), the loss and gradients,
and validation metrics: ``valid_loss``, ``valid_ppl`` and, on up to
``bleu_sentences`` validation sentences decoded greedily, ``valid_bleu``
(lowercased tokens) and ``valid_exact`` (whole-sentence accuracy). Any of them
can be ``--monitor``ed (BLEU and exact match: higher is better).

``keep_epochs`` N keeps ``OUT/epoch<k>.npz`` of the last N epochs;
``average`` makes one model of several such checkpoints (the mean of their
weights, as fairseq's ``average_checkpoints.py``), often a little better than
any one of them.
"""
import math
import os
from dataclasses import dataclass, fields

import numpy as np

from rnnlab.io import atomic
from rnnlab.training import trainer
from rnnlab.training.options import changed, option
from rnnlab.translate import bleu, data, decode, loss as tloss, model, text

KIND = "translate"
MODEL_FIELDS = tuple(f.name for f in fields(model.Seq2SeqConfig)
                     if f.name not in ("src_vocab", "tgt_vocab"))


@dataclass
class TranslateOptions(trainer.TrainOptions):
    """Every ``rnnlab translate train`` option; defaults train the date task in about a minute."""
    lr: float = option(0.005, "learning rate", lo=0, lo_open=True)
    epochs: int = option(3, "number of epochs", lo=1)
    batch_size: int = option(64, "sentence pairs per step", lo=1)
    out: str = option("runs/translate", "output folder: last.npz, best.npz, metrics.jsonl, "
                      "report.html")
    monitor: str = option("valid_loss", "validation metric for best.npz and early stopping "
                          "(valid_bleu and valid_exact need --bleu-sentences)",
                          choices=("valid_loss", "valid_ppl", "valid_bleu", "valid_exact"))
    data: str = option("dates", "dates (generated, no download), multi30k, tatoeba, or a "
                       "prefix PATH/name with name.train.SRC, name.train.TGT, name.valid.* files")
    src_lang: str = option("src", "source language suffix (multi30k: de or en; tatoeba: en or fr)")
    tgt_lang: str = option("tgt", "target language suffix")
    short: bool = option(True, "tatoeba: keep the PyTorch tutorial's short-sentence filter")
    min_count: int = option(1, "tokens seen fewer times in training become <unk>", lo=1)
    max_train: int = option(0, "use only the first N training pairs (0: all)", lo=0)
    emb_size: int = option(32, "embedding size E (both sides)", lo=1)
    enc_hidden: int = option(48, "encoder hidden size He per direction", lo=1)
    enc_layers: int = option(1, "stacked bidirectional encoder layers", lo=1)
    enc_mode: str = option("gru", "encoder cell", choices=("rnn", "lstm", "gru"))
    dec_hidden: int = option(64, "decoder hidden size Hd", lo=1)
    dec_mode: str = option("gru", "decoder cell", choices=("gru", "lstm"))
    attention: str = option("additive", "attention: additive (Bahdanau), dot or general "
                            "(Luong), none", choices=("additive", "dot", "general", "none"))
    attn_size: int = option(0, "additive attention size A (0: dec_hidden)", lo=0)
    style: str = option("bahdanau", "decoder: bahdanau (attend, then step) or luong (step, "
                        "then attend)", choices=("bahdanau", "luong"))
    input_feed: bool = option(False, "luong: feed the attentional state to the next step")
    dropout: float = option(0.0, "dropout on embeddings, outputs, between encoder layers",
                            lo=0, hi=1, hi_open=True)
    tie_embeddings: bool = option(False, "output layer shares the target embeddings")
    init_scale: float = option(0.1, "initial weights uniform in [-s, s]", lo=0, lo_open=True)
    teacher_forcing: float = option(1.0, "probability of feeding the true previous token",
                                    lo=0, hi=1)
    label_smoothing: float = option(0.0, "label smoothing eps", lo=0, hi=1, hi_open=True)
    bleu_sentences: int = option(500, "validation sentences decoded for valid_bleu (0: none)",
                                 lo=0)
    dtype: str = option("float32", "parameter dtype", choices=("float32", "float64"))
    keep_epochs: int = option(0, "also keep OUT/epoch<k>.npz of the last N epochs (for "
                              "rnnlab translate average)", lo=0)

    RESUMABLE = trainer.RESUMABLE + ("keep_epochs",)

    def __post_init__(self):
        super().__post_init__()
        # settings the data or the validation would ignore (round 14's audit)
        if self.data == "dates" and (changed(self, "src_lang") or changed(self, "tgt_lang")):
            raise ValueError(f"--src-lang/--tgt-lang: the generated dates task has no languages "
                             f"to choose (only multi30k, tatoeba and file prefixes do), got "
                             f"{self.src_lang} and {self.tgt_lang}")
        if not self.short and self.data != "tatoeba":
            raise ValueError(f"--no-short: only tatoeba has the short-sentence filter, got "
                             f"--data {self.data}")
        if self.monitor in ("valid_bleu", "valid_exact") and not self.bleu_sentences:
            raise ValueError(f"--monitor {self.monitor}: needs --bleu-sentences > 0 (the "
                             "validation sentences decoded to score it), got 0")


def model_config(cfg, vocabs):
    return model.Seq2SeqConfig(len(vocabs[0]), len(vocabs[1]),
                               **{k: getattr(cfg, k) for k in MODEL_FIELDS})


def app_meta(cfg, mcfg, vocabs):
    return {"model": mcfg.to_dict(), "src_vocab": vocabs[0].itos, "tgt_vocab": vocabs[1].itos,
            "src_lang": cfg.src_lang, "tgt_lang": cfg.tgt_lang, "data": cfg.data,
            "tokenizer": text.tokenizer_for(cfg.data)}


def load_data(cfg):
    splits = data.load_pair(cfg.data, cfg.src_lang, cfg.tgt_lang, cfg.seed, cfg.short)
    if cfg.max_train:
        splits["train"] = splits["train"][:cfg.max_train]
    if "valid" not in splits or not splits["valid"]:
        raise ValueError(f"--data {cfg.data}: no validation pairs found")
    return splits


def vocabularies(cfg, train_pairs):
    return (data.build_vocab((s for s, _ in train_pairs), cfg.min_count),
            data.build_vocab((t for _, t in train_pairs), cfg.min_count))


class Task:
    """What the shared trainer needs: steps, loss and gradients, validation."""

    def __init__(self, cfg, mcfg, splits, vocabs):
        self.cfg, self.mcfg, self.vocabs = cfg, mcfg, vocabs
        self.train, self.valid = splits["train"], splits["valid"]
        self._orders = {}

    def _order(self, epoch):
        if epoch not in self._orders:
            self._orders = {epoch: data.bucket_order(self.train, self.cfg.batch_size,
                                                     self.cfg.seed, epoch)}
        return self._orders[epoch]

    def steps(self, epoch):
        return len(self._order(epoch))

    def loss_and_grads(self, params, epoch, i, rng):
        b = data.make_batch([self.train[j] for j in self._order(epoch)[i]], *self.vocabs)
        return tloss.loss_and_grads(self.mcfg, params, b, True, rng,
                                    self.cfg.teacher_forcing, self.cfg.label_smoothing)

    def evaluate(self, params):
        return evaluate(self.mcfg, params, self.valid, self.vocabs, self.cfg.batch_size,
                        self.cfg.bleu_sentences, "valid_")


def evaluate(mcfg, params, pairs, vocabs, batch_size=64, bleu_sentences=None, prefix=""):
    """Teacher-forced loss and perplexity; greedy BLEU and exact match on a prefix."""
    total = count = 0
    for i in range(0, len(pairs), batch_size):
        b = data.make_batch(pairs[i:i + batch_size], *vocabs)
        loss, n, _ = tloss.forward(mcfg, params, b)
        total, count = total + loss * n, count + n
    out = {prefix + "loss": total / count, prefix + "ppl": math.exp(min(total / count, 50))}
    n = len(pairs) if bleu_sentences is None else min(bleu_sentences, len(pairs))
    if n:
        hyps = translate_pairs(mcfg, params, pairs[:n], vocabs, batch_size)
        refs = [t for _, t in pairs[:n]]
        out[prefix + "bleu"] = bleu.token_bleu(hyps, refs)
        out[prefix + "exact"] = float(np.mean([h == r for h, r in zip(hyps, refs)]))
    return out


def translate_pairs(mcfg, params, pairs, vocabs, batch_size=64, beam=1, alpha=0.0,
                    max_len_a=1.5, max_len_b=10):
    """Target tokens of the best translation of every pair's source side."""
    out = []
    for i in range(0, len(pairs), batch_size):
        b = data.make_batch(pairs[i:i + batch_size], *vocabs)
        if beam == 1:
            hyps = decode.greedy(mcfg, params, b.src, b.src_len, max_len_a, max_len_b, alpha)
        else:
            hyps = [h[0] for h in decode.beam_search(mcfg, params, b.src, b.src_len, beam, alpha,
                                                     1, max_len_a, max_len_b)]
        out += [vocabs[1].decode(h.tokens) for h in hyps]
    return out


def check_options(cfg):
    """Refuse, naming the flags, the model options a new run cannot build or would
    ignore (``Seq2SeqConfig`` checks the shapes again, by field name, for the Python
    API). Not on ``--resume``: its settings were accepted when the run started."""
    E, He, Hd = cfg.emb_size, cfg.enc_hidden, cfg.dec_hidden
    if cfg.style == "luong" and cfg.attention == "none":
        raise ValueError("--style luong: attends after each decoder step, so it needs "
                         "attention; with --attention none use --style bahdanau")
    if cfg.attention == "dot" and Hd != 2 * He:
        raise ValueError(f"--dec-hidden: expected 2 * --enc-hidden = {2 * He} for --attention "
                         f"dot (the query and the keys must have one size), got {Hd}")
    if cfg.tie_embeddings and cfg.style == "bahdanau":
        # the output layer reads [h; c; e]: always wider than e alone
        out = Hd + E + (2 * He if cfg.attention != "none" else 0)
        raise ValueError(f"--tie-embeddings: the output layer reuses the target embeddings, so "
                         f"its input must have --emb-size {E} features; with --style bahdanau "
                         f"it has {out} ([h; c; e]: --dec-hidden + 2 * --enc-hidden + "
                         f"--emb-size), never --emb-size; use --style luong (there it has "
                         f"--dec-hidden features) with --dec-hidden {E}")
    if cfg.tie_embeddings and Hd != E:
        raise ValueError(f"--emb-size: expected --dec-hidden ({Hd}), the output layer's input "
                         f"size with --style luong, for --tie-embeddings, got {E}")
    # options that would be ignored: refused, not silently dropped
    if cfg.input_feed and cfg.style != "luong":
        raise ValueError("--input-feed: feeds Luong's attentional state to the next step; "
                         "with --style bahdanau it has no effect (the context enters every "
                         "step anyway); give --style luong or drop --input-feed")
    if cfg.attn_size and cfg.attention != "additive":
        raise ValueError(f"--attn-size {cfg.attn_size}: sizes additive attention only; with "
                         f"--attention {cfg.attention} it has no effect; drop it")


def run(cfg, resume=None, log=print):
    """Train from scratch (or continue ``resume``); returns (State, Task)."""
    if resume is None:
        check_options(cfg)
    splits = load_data(cfg)
    if resume is not None:
        meta = resume["meta"]["app"]
        check_pair(meta, cfg.src_lang, cfg.tgt_lang, resume["path"])
        vocabs = (data.Vocab(meta["src_vocab"]), data.Vocab(meta["tgt_vocab"]))
    else:
        vocabs = vocabularies(cfg, splits["train"])
    mcfg = model_config(cfg, vocabs)
    if resume is not None:
        trainer.check_resumed_params(resume, model.param_shapes(mcfg), cfg.dtype)
    params = None if resume else model.init_params(mcfg, cfg.seed, np.dtype(cfg.dtype))
    log(f"data {cfg.data} {cfg.src_lang}->{cfg.tgt_lang}: {len(splits['train']):,} train / "
        f"{len(splits['valid']):,} valid pairs; vocabularies {len(vocabs[0]):,} / "
        f"{len(vocabs[1]):,}; {sum(int(np.prod(s)) for s in model.param_shapes(mcfg).values()):,} "
        "parameters")
    task = Task(cfg, mcfg, splits, vocabs)
    meta = app_meta(cfg, mcfg, vocabs)
    st = trainer.fit(cfg, task, params, kind=KIND, app_meta=meta, resume=resume, log=log,
                     unit="tok", on_epoch=lambda st, _: keep_epoch(cfg, st, meta))
    return st, task


def keep_epoch(cfg, st, meta):
    """OUT/epoch<k>.npz after epoch k (a full checkpoint); drop the one N epochs older."""
    if not cfg.keep_epochs:
        return
    trainer.save(os.path.join(cfg.out, f"epoch{st.epoch}.npz"), cfg, st, KIND, meta)
    old = os.path.join(cfg.out, f"epoch{st.epoch - cfg.keep_epochs}.npz")
    if os.path.exists(old):
        os.remove(old)


def average(paths, out):
    """Write ``out``: the mean weights of the checkpoints ``paths`` (same model and
    vocabularies, else ValueError naming the odd one), the last one's metadata."""
    from rnnlab.io import checkpoint
    if not paths:
        raise ValueError("checkpoints: expected at least one, got none")
    atomic.check_writable("--out", out)                # before loading anything
    cks = [checkpoint.load(p, kind=KIND) for p in paths]
    first = cks[0]["meta"].get("app")
    shapes = {k: (v.shape, v.dtype) for k, v in cks[0]["params"].items()}
    for p, ck in zip(paths, cks):
        if ck["meta"].get("app") != first or ck["params"].keys() != shapes.keys():
            raise ValueError(f"{p}: expected the same model and vocabularies as {paths[0]}, "
                             "found another")
        for k, v in ck["params"].items():
            if (v.shape, v.dtype) != shapes[k]:
                raise ValueError(f"{p}: {k} is {v.dtype} {v.shape}, expected "
                                 f"{shapes[k][1]} {shapes[k][0]} as in {paths[0]}")
    params = {k: (sum(ck["params"][k].astype(np.float64) for ck in cks) / len(cks))
              .astype(v.dtype) for k, v in cks[0]["params"].items()}
    meta = dict(cks[-1]["meta"], averaged=[os.fspath(p) for p in paths])
    checkpoint.save(out, params, None, None, meta, kind=KIND)
    return params


def check_pair(meta, src_lang, tgt_lang, path):
    """Refuse a checkpoint trained for another language pair."""
    if (meta["src_lang"], meta["tgt_lang"]) != (src_lang, tgt_lang):
        raise ValueError(f"{path}: checkpoint translates {meta['src_lang']}->{meta['tgt_lang']}"
                         f", not {src_lang}->{tgt_lang}")


def split_args(path):
    """The seed and filter the checkpoint's run used (tatoeba's split depends on them):
    what ``data.load_pair`` needs to give back that run's own held-out pairs."""
    from rnnlab.io import checkpoint
    tc = checkpoint.load(path, kind=KIND)["meta"].get("train_config", {})
    return {"seed": tc.get("seed", 0), "short": tc.get("short", True)}


def load_model(path):
    """(Seq2SeqConfig, params, (src vocab, tgt vocab), app meta) of a checkpoint."""
    from rnnlab.io import checkpoint

    def build(app):
        return (model.Seq2SeqConfig(**app["model"]),
                (data.Vocab(app["src_vocab"]), data.Vocab(app["tgt_vocab"])))
    (mcfg, vocabs), params, meta = checkpoint.load_model(
        path, KIND, build, lambda built: model.param_shapes(built[0]))
    return mcfg, params, vocabs, meta.get("app") or {}
