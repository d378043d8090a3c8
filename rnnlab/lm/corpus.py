"""Corpus readers: text in, lists of tokens (train / valid / test) out.

Sources ``load`` understands:

- ``"python-docs"`` (the default): the Python language reference that ships with
  CPython as ``pydoc_data.topics``; no download needed.
- a Penn Treebank folder (``ptb.{train,valid,test}.txt``) or a WikiText folder
  (``{train,valid,test}.txt``): pre-tokenized words, one sentence or paragraph a
  line, ``<unk>`` already present, ``<eos>`` added at every line end (as Zaremba
  et al. and PyTorch's word_language_model do, empty lines included).
- a ``.csv`` file with a ``body`` column, like the RNN tutorial's Reddit comments:
  quoted multi-line records, HTML entities unescaped, lower-cased, split into
  sentences, each wrapped in ``SENTENCE_START`` ... ``SENTENCE_END``.
- any other text file, or a folder of them (concatenated in name order).

Files without their own splits are cut into 90% train, 5% valid, 5% test.
Every reading error names the file and the problem.
"""
import csv
import html
import io
import os
import re
from dataclasses import dataclass
from typing import Optional

from rnnlab.lm import vocab as vocab_mod

DEFAULT_SOURCE = "python-docs"
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass
class Corpus:
    """Token lists per split plus the special tokens the text uses."""
    name: str
    level: str                    # "word" | "char"
    train: list
    valid: list
    test: list
    unk: Optional[str] = vocab_mod.UNK
    eos: Optional[str] = None     # end of line / sentence
    bos: Optional[str] = None     # start of sentence (CSV sentences only)

    def split(self, name):
        if name not in ("train", "valid", "test"):
            raise ValueError(f"split must be train, valid or test, got {name!r}")
        return getattr(self, name)


# ---------------------------------------------------------------- raw reading

def read_text(path):
    """A file's text, with a clear error for missing, empty, binary or non-UTF-8 files."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a folder, expected a text file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"{path}: cannot read it ({e.strerror or e})") from None
    if not data.strip():
        raise ValueError(f"{path}: file is empty (no text to train on)")
    if b"\0" in data[:65536]:
        raise ValueError(f"{path}: looks like a binary file (contains NUL bytes), "
                         "expected UTF-8 text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not valid UTF-8 text (byte 0x{data[e.start]:02x} at "
                         f"offset {e.start}); convert it first, e.g. with iconv") from None


def python_docs_text():
    """The embedded default corpus: CPython's language reference topics."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise ValueError(f"corpus {DEFAULT_SOURCE!r}: this Python has no pydoc_data (the "
                         "language reference it ships); give a text file or folder") from None
    return "\n".join(topics[k] for k in sorted(topics))


def _folder_files(path):
    try:
        names = os.listdir(path)
    except OSError as e:
        raise ValueError(f"{path}: cannot list the folder ({e.strerror or e})") from None
    files = sorted(os.path.join(path, n) for n in names
                   if not n.startswith(".") and os.path.isfile(os.path.join(path, n)))
    if not files:
        raise ValueError(f"{path}: folder has no files to read")
    return files


# ---------------------------------------------------------------- tokenizing

def line_words(text, eos=vocab_mod.EOS):
    """Pre-tokenized words with ``eos`` after every line (PTB/WikiText layout)."""
    out = []
    for line in text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"):
        out.extend(line.split())
        out.append(eos)
    return out


def split_sentences(text):
    return [s for s in (p.strip() for p in _SENTENCE_RE.split(text)) if s]


def csv_sentences(path, column="body"):
    """Sentences (lists of tokens, wrapped in start/end tokens) of a CSV text column."""
    text = read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        if reader.fieldnames is None or column not in reader.fieldnames:
            raise ValueError(f"{path}: no {column!r} column in the CSV header "
                             f"(found {reader.fieldnames})")
        sentences = []
        for row in reader:
            body = html.unescape(row[column] or "").lower()
            for s in split_sentences(body):
                words = vocab_mod.word_tokens_raw(s)
                if words:
                    sentences.append([vocab_mod.SENTENCE_START] + words
                                     + [vocab_mod.SENTENCE_END])
    except csv.Error as e:
        raise ValueError(f"{path}: malformed CSV near line {reader.line_num}: {e}") from None
    if not sentences:
        raise ValueError(f"{path}: the {column!r} column holds no text")
    return sentences


def line_sentences(path, bos=vocab_mod.SENTENCE_START, eos=vocab_mod.SENTENCE_END):
    """One sentence per line (PTB), wrapped in start/end tokens, as the tutorial does."""
    return [[bos] + line.split() + [eos] for line in read_text(path).splitlines()
            if line.strip()]


def _cut(items):
    """90 / 5 / 5 split of a sequence (tokens or sentences), in order."""
    n = len(items)
    a, b = int(n * 0.9), int(n * 0.95)
    return items[:a], items[a:b], items[b:]


def batchify(ids, B, what="corpus"):
    """(N*B,) ids -> (N, B): B contiguous streams side by side; the tail is dropped."""
    N = len(ids) // B
    if N < 2:
        raise ValueError(f"{what} has {len(ids)} tokens: too short for batch size {B} "
                         f"(needs at least {2 * B} tokens)")
    return ids[:N * B].reshape(B, N).T.copy()                     # (N, B)


# ---------------------------------------------------------------- sources

def _split_folder(path):
    for names in (("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"),
                  ("train.txt", "valid.txt", "test.txt"),
                  ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens")):
        if os.path.exists(os.path.join(path, names[0])):
            return [os.path.join(path, n) for n in names]
    return None


def _from_splits(path, files, level):
    if level == "char":
        parts = [list(read_text(f)) for f in files]
        return Corpus(os.path.basename(path), "char", *parts, eos=None)
    parts = [line_words(read_text(f)) for f in files]
    return Corpus(os.path.basename(path), "word", *parts, eos=vocab_mod.EOS)


def _from_text(name, text, level):
    if level == "char":
        return Corpus(name, "char", *_cut(list(text)), eos=None)
    return Corpus(name, "word", *_cut(line_words(text)), eos=vocab_mod.EOS)


def _from_csv(path, level, column="body"):
    if level == "char":
        raise ValueError(f"{path}: CSV sentences are word-level; use --level word")
    parts = [sum(p, []) for p in _cut(csv_sentences(path, column))]
    return Corpus(os.path.basename(path), "word", *parts, eos=vocab_mod.SENTENCE_END,
                  bos=vocab_mod.SENTENCE_START)


def load(source=DEFAULT_SOURCE, level="auto"):
    """Read a corpus. level: "word", "char" or "auto" (word for PTB/WikiText/CSV,
    char for plain text and the embedded default)."""
    if level not in ("auto", "word", "char"):
        raise ValueError(f"level must be auto, word or char, got {level!r}")
    source = source or DEFAULT_SOURCE
    if source == DEFAULT_SOURCE:
        return _from_text(DEFAULT_SOURCE, python_docs_text(), "char" if level == "auto" else level)
    if not os.path.exists(source):
        raise FileNotFoundError(f"{source}: no such file or directory (give a text file, "
                                f"a folder, a .csv file, or {DEFAULT_SOURCE!r})")
    if os.path.isdir(source):
        files = _split_folder(source)
        if files is not None:
            return _from_splits(source, files, "word" if level == "auto" else level)
        text = "\n".join(read_text(f) for f in _folder_files(source))
        return _from_text(os.path.basename(source), text, "char" if level == "auto" else level)
    if source.lower().endswith(".csv"):
        return _from_csv(source, "word" if level == "auto" else level)
    return _from_text(os.path.basename(source), read_text(source),
                      "char" if level == "auto" else level)
