"""Parallel corpora, vocabularies and padded batches for translation.

Sources (``load_pair``):

- ``multi30k``: ``../shared/data/translation/multi30k/tok/*.lc.norm.tok.{en,de}``
  (task 1, lower-cased Moses tokens; 29,000 / 1,014 / 1,000 pairs, test 2016).
  Tokens are whitespace-separated (some lines have double spaces).
- ``tatoeba``: ``../shared/data/translation/tatoeba-fra-eng/fra.txt`` (English TAB
  French). Normalised as the PyTorch tutorial "NLP From Scratch" does (lower
  case, accents stripped, a space before ``.!?``, other non-letters to spaces);
  ``short=True`` keeps its filter (< 10 tokens, English starting "i am", "he
  s", ...). The corpus has no split: a seeded permutation gives train / valid /
  test (90 / 5 / 5 %), so the same seed gives the same split.
- ``dates``: the generated date-normalisation task (``dates.py``), no download.
- a prefix ``PATH/name``: files ``PATH/name.{train,valid,test}.{SRC,TGT}``
  (whitespace-separated tokens, one sentence per line; test optional).

Vocabularies (``build_vocab``): ``<pad>`` 0, ``<unk>`` 1, ``<bos>`` 2, ``<eos>``
3, then tokens seen at least ``min_count`` times in the training side, by
descending count, ties alphabetically. At translation time a token outside the
vocabulary becomes ``<unk>`` (documented behaviour, never an error); the model
may also write ``<unk>``, which is printed as is. Sources longer than any seen
in training are fine: nothing in the model depends on absolute positions.

Batches (``Batch``): time-major ids, source (S, B) and target (T+1, B) with
``<bos>`` first and ``<eos>`` last, padded with 0; ``src_len`` (B,) counts real
source tokens.
"""
import os
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)

DATA_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "translation"
MULTI30K_SPLITS = {"train": "train", "valid": "val", "test": "test_2016_flickr"}
TUTORIAL_PREFIXES = ("i am ", "i m ", "he is", "he s ", "she is", "she s ", "you are",
                     "you re ", "we are", "we re ", "they are", "they re ")


class Vocab:
    """Tokens <-> ids; specials first. ``encode`` maps unknown tokens to <unk>."""

    def __init__(self, itos):
        self.itos = list(itos)
        if tuple(self.itos[:4]) != SPECIALS:
            raise ValueError(f"vocabulary must start with {SPECIALS}, got {self.itos[:4]}")
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)

    def encode(self, tokens):
        return [self.stoi.get(t, UNK_ID) for t in tokens]

    def decode(self, ids):
        """Tokens up to the first <eos>, specials other than <unk> dropped."""
        out = []
        for i in ids:
            if i == EOS_ID:
                break
            if i >= 4 or i == UNK_ID:
                out.append(self.itos[i])
        return out


def build_vocab(sentences, min_count=1):
    """A Vocab of the tokens seen at least ``min_count`` times."""
    counts = Counter(t for s in sentences for t in s)
    kept = sorted((t for t, c in counts.items() if c >= min_count and t not in SPECIALS),
                  key=lambda t: (-counts[t], t))
    return Vocab(SPECIALS + tuple(kept))


# ---------------------------------------------------------------- readers

def read_lines(path, flag=None):
    """Lines of a UTF-8 file, without newlines; clear errors for what is wrong (named
    ``flag path`` when the file came from an option such as ``--input``)."""
    path = Path(path)
    name = f"{flag} {path}" if flag else f"{path}"
    if not path.exists():
        raise FileNotFoundError(f"{name}: no such file"
                                + (f" (the shared data folder {DATA_ROOT} is missing; see "
                                   "../shared/data/README.md)"
                                   if not flag and not DATA_ROOT.exists() else ""))
    if path.is_dir():
        raise ValueError(f"{name}: is a folder; expected a text file, one sentence per line")
    raw = path.read_bytes()
    # valid UTF-8 but never text: refused as rnnlab train refuses binary input
    if b"\0" in raw:
        raise ValueError(f"{name}: looks like a binary file (contains NUL bytes, the first "
                         f"at byte {raw.index(0)}), expected UTF-8 text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{name}: expected UTF-8 text, found a byte that is not "
                         f"({e.reason} at byte {e.start})") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")   # as text mode reads
    if lines and lines[-1] == "":
        lines.pop()                                         # the final newline
    return lines


def read_parallel(src_path, tgt_path):
    """Token lists of two line-aligned files; refuses mismatched counts and empty lines."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise ValueError(f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}; "
                         "expected line-aligned translations (one pair per line)")
    pairs = []
    for n, (s, t) in enumerate(zip(src, tgt), 1):
        s_tok, t_tok = s.split(), t.split()
        if not s_tok or not t_tok:
            empty = src_path if not s_tok else tgt_path
            raise ValueError(f"{empty}: line {n} is empty; expected a sentence on every line")
        pairs.append((s_tok, t_tok))
    return pairs


def normalize_tutorial(text):
    """The PyTorch tutorial's normalisation: ASCII letters, ``.!?`` as tokens."""
    text = "".join(c for c in unicodedata.normalize("NFD", text.lower().strip())
                   if unicodedata.category(c) != "Mn")
    text = re.sub(r"([.!?])", r" \1", text)
    return re.sub(r"[^a-zA-Z.!?]+", " ", text).strip()


def read_tatoeba(path, short=True):
    """(english tokens, french tokens) pairs of ``fra.txt``, normalised (and filtered)."""
    pairs = []
    for n, line in enumerate(read_lines(path), 1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise ValueError(f"{path}: line {n} has {len(fields)} tab-separated fields; "
                             "expected 2 (English<TAB>French)")
        en, fr = normalize_tutorial(fields[0]), normalize_tutorial(fields[1])
        if not en or not fr:
            raise ValueError(f"{path}: line {n} has an empty side after normalisation")
        if short and not (len(en.split()) < 10 and len(fr.split()) < 10
                          and en.startswith(TUTORIAL_PREFIXES)):
            continue
        pairs.append((en.split(), fr.split()))
    return pairs


def split_seeded(pairs, seed=0, valid=0.05, test=0.05):
    """{"train", "valid", "test"} from one seeded permutation."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    nv, nt = int(round(valid * len(pairs))), int(round(test * len(pairs)))
    pick = lambda idx: [pairs[i] for i in idx]
    return {"valid": pick(order[:nv]), "test": pick(order[nv:nv + nt]),
            "train": pick(order[nv + nt:])}


def split_depends_on_seed(source):
    """Whether ``load_pair``'s splits of this source change with the seed (the
    generated dates and tatoeba's seeded split do; Multi30k's and files' do not)."""
    return source in ("dates", "tatoeba")


def load_pair(source, src_lang, tgt_lang, seed=0, short=True, root=None):
    """{"train", "valid", "test"}: lists of (source tokens, target tokens)."""
    root = Path(root) if root else DATA_ROOT
    if source == "dates":
        from rnnlab.translate import dates
        return dates.splits(seed)
    if source == "multi30k":
        if {src_lang, tgt_lang} != {"en", "de"}:
            raise ValueError(f"--src-lang/--tgt-lang: multi30k has en and de, got "
                             f"{src_lang} and {tgt_lang}")
        d = root / "multi30k" / "tok"
        return {k: read_parallel(d / f"{v}.lc.norm.tok.{src_lang}", d / f"{v}.lc.norm.tok.{tgt_lang}")
                for k, v in MULTI30K_SPLITS.items()}
    if source == "tatoeba":
        if {src_lang, tgt_lang} != {"en", "fr"}:
            raise ValueError(f"--src-lang/--tgt-lang: tatoeba has en and fr, got "
                             f"{src_lang} and {tgt_lang}")
        pairs = read_tatoeba(root / "tatoeba-fra-eng" / "fra.txt", short)
        if src_lang == "fr":
            pairs = [(f, e) for e, f in pairs]
        return split_seeded(pairs, seed)
    prefix = Path(source)
    files = {k: (Path(f"{prefix}.{k}.{src_lang}"), Path(f"{prefix}.{k}.{tgt_lang}"))
             for k in ("train", "valid", "test")}
    if not files["train"][0].exists():
        raise FileNotFoundError(
            f"--data {source}: expected dates, multi30k, tatoeba or a prefix with files "
            f"{files['train'][0]} and {files['train'][1]} (and .valid./.test.); found none")
    splits = {k: read_parallel(*f) for k, f in files.items() if os.path.exists(f[0])}
    if not splits["train"]:
        raise ValueError(f"--data {source}: {files['train'][0]} and {files['train'][1]} are "
                         "empty; expected training sentences, one pair per line")
    return splits


# ---------------------------------------------------------------- batches

class Batch(NamedTuple):
    src: np.ndarray        # (S, B) int64 source ids, 0-padded
    src_len: np.ndarray    # (B,) real source tokens per row
    tgt: np.ndarray        # (T+1, B) <bos> y_1 .. y_n <eos>, 0-padded (T = longest n + 1)


def make_batch(pairs, src_vocab, tgt_vocab):
    """One padded, time-major Batch of (source tokens, target tokens) pairs."""
    src = [src_vocab.encode(s) for s, _ in pairs]
    tgt = [[BOS_ID] + tgt_vocab.encode(t) + [EOS_ID] for _, t in pairs]
    return pad_batch(src, tgt)


def pad_batch(src, tgt=None):
    """A Batch of id lists (tgt already with <bos>/<eos>; None: a 1-row dummy)."""
    B = len(src)
    S = max(len(s) for s in src)
    a = np.zeros((S, B), np.int64)
    for b, s in enumerate(src):
        a[:len(s), b] = s
    tgt = tgt or [[BOS_ID, EOS_ID]] * B
    t = np.zeros((max(len(x) for x in tgt), B), np.int64)
    for b, x in enumerate(tgt):
        t[:len(x), b] = x
    return Batch(a, np.array([len(s) for s in src], np.int64), t)


def bucket_order(pairs, batch_size, seed, epoch):
    """Batches of similar source length, in a (seed, epoch)-shuffled order.

    Pairs are shuffled, cut into pools of 50 batches, each pool sorted by
    source length and cut into batches; the batch order is shuffled again.
    Returns a list of index arrays.
    """
    rng = np.random.default_rng([seed, epoch])
    idx = rng.permutation(len(pairs))
    pool = 50 * batch_size
    batches = []
    for p in range(0, len(idx), pool):
        chunk = idx[p:p + pool]
        chunk = chunk[np.argsort([len(pairs[i][0]) for i in chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]
