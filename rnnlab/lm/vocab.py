"""Tokenizers and vocabularies: tokens <-> integer ids, saved as JSON with the model.

A vocabulary is a small frozen dataclass: ``itos`` (id -> token), the level
(``"word"`` or ``"char"``), and the names of its special tokens (unknown,
end-of-sentence, sentence start). Ids are assigned specials first, then by
descending count, ties broken alphabetically, so building twice from the same
text gives the same ids (exact resume depends on it).
"""
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from rnnlab.io.atomic import atomic_write

UNK, EOS = "<unk>", "<eos>"
SENTENCE_START, SENTENCE_END = "SENTENCE_START", "SENTENCE_END"   # the tutorial's names

# words, contractions ("don't", "it's"), numbers, or single punctuation marks
_WORD_RE = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


def word_tokens(text):
    """Whitespace-separated tokens (PTB/WikiText are already tokenized)."""
    return text.split()


def word_tokens_raw(text):
    """Tokenize free text (e.g. Reddit comments): words and punctuation apart."""
    return _WORD_RE.findall(text)


def char_tokens(text):
    return list(text)


@dataclass(frozen=True)
class Vocab:
    itos: tuple                       # id -> token
    level: str = "word"               # "word" | "char"
    unk: Optional[str] = UNK          # token for everything else (None: no unknowns allowed)
    eos: Optional[str] = None         # end of a sentence/line (generation stops there)
    bos: Optional[str] = None         # start of a sentence (generation starts there)
    stoi: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.level not in ("word", "char"):
            raise ValueError(f"vocabulary level must be 'word' or 'char', got {self.level!r}")
        object.__setattr__(self, "stoi", {t: i for i, t in enumerate(self.itos)})
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary has duplicate tokens")
        for name in ("unk", "eos", "bos"):
            tok = getattr(self, name)
            if tok is not None and tok not in self.stoi:
                raise ValueError(f"vocabulary's {name} token {tok!r} is not in it")

    def __len__(self):
        return len(self.itos)

    def id(self, name):
        """Id of a special token by role ("unk", "eos", "bos"), or None."""
        tok = getattr(self, name)
        return None if tok is None else self.stoi[tok]

    def to_dict(self):
        d = asdict(self)
        d.pop("stoi")
        d["itos"] = list(self.itos)
        return d

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict) or "itos" not in d or "level" not in d:
            raise ValueError("malformed vocabulary: expected an object with 'itos' and "
                             f"'level', got {str(d)[:60]}")
        itos = d["itos"]
        if not isinstance(itos, list) or not all(isinstance(t, str) for t in itos):
            raise ValueError("malformed vocabulary: 'itos' should be a list of strings")
        specials = {k: d.get(k) for k in ("unk", "eos", "bos")}
        if not all(v is None or isinstance(v, str) for v in specials.values()):
            raise ValueError("malformed vocabulary: unk, eos and bos should be strings or null")
        return cls(itos=tuple(itos), level=d["level"], **specials)


def build(tokens, level="word", max_size=None, min_count=1, unk=UNK, eos=None, bos=None):
    """Vocabulary of the ``max_size`` most frequent tokens seen >= ``min_count`` times.

    Specials (unk, eos, bos) always get the first ids and count towards max_size.
    """
    specials = [t for t in (unk, eos, bos) if t is not None]
    counts = Counter(tokens)
    for s in specials:
        counts.pop(s, None)
    ranked = sorted((t for t, c in counts.items() if c >= min_count),
                    key=lambda t: (-counts[t], t))
    if max_size is not None:
        if max_size <= len(specials):
            raise ValueError(f"max vocabulary size {max_size} leaves no room beyond the "
                             f"{len(specials)} special tokens")
        ranked = ranked[:max_size - len(specials)]
    if unk is None and len(ranked) < len(counts):
        raise ValueError("vocabulary drops tokens but has no unknown token to map them to")
    return Vocab(tuple(specials + ranked), level, unk, eos, bos)


def encode(vocab, tokens):
    """Token list -> int64 ids (T,); tokens outside the vocabulary -> unk."""
    unk_id = vocab.id("unk")
    if unk_id is None:
        missing = sorted({t for t in tokens if t not in vocab.stoi})
        if missing:
            raise ValueError(f"{len(missing)} token(s) not in the vocabulary: "
                             + ", ".join(repr(t) for t in missing[:10]))
    get = vocab.stoi.get
    return np.fromiter((get(t, unk_id) for t in tokens), dtype=np.int64, count=len(tokens))


def decode(vocab, ids):
    sep = " " if vocab.level == "word" else ""
    return sep.join(vocab.itos[int(i)] for i in ids)


def tokenize(vocab, text):
    return word_tokens(text) if vocab.level == "word" else char_tokens(text)


def unknown_in(vocab, text):
    """Tokens of ``text`` that the vocabulary does not have (for clear errors)."""
    return sorted({t for t in tokenize(vocab, text) if t not in vocab.stoi})


def save(vocab, path):
    with atomic_write(path) as f:
        json.dump(vocab.to_dict(), f, ensure_ascii=False)


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return Vocab.from_dict(json.load(f))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a vocabulary JSON file ({e})") from None
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read it ({e.strerror or e})") from None
