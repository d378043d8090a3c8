"""Captions as token ids, images as model input, and their checks.

A ``Vocab`` is the word list of the grammar behind the specials ``<pad>`` (0),
``<s>`` (1) and ``</s>`` (2); it is saved in every checkpoint, and data whose
captions use a word outside it is refused with the word named. Images enter the
model as float (B, 3, S, S) in [0, 1]; ``as_input`` accepts uint8 (B, S, S, 3)
(the generator's and Pillow's layout) and says what was expected otherwise.
"""
import numpy as np

from rnnlab.caption import digits, scenes

SPECIALS = ("<pad>", "<s>", "</s>")
SOURCES = ("scenes", "digits")


class Vocab:
    def __init__(self, words):
        self.words = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self):
        return len(self.words)

    def encode(self, caption, where="caption"):
        """[<s>, ids..., </s>] for a caption string; clear errors for empty or unknown words."""
        words = caption.split() if isinstance(caption, str) else None
        if not words:
            raise ValueError(f"{where}: empty caption (expected words, got {caption!r})")
        unknown = [w for w in words if w not in self.index]
        if unknown:
            raise ValueError(f"{where}: vocabulary mismatch: {unknown[:3]} not in the model's "
                             f"vocabulary of {len(self)} words ({' '.join(self.words[3:12])} ...)")
        return [1] + [self.index[w] for w in words] + [2]

    def decode(self, ids):
        """Words up to the first </s>, as one string."""
        out = []
        for i in ids:
            if int(i) == 2:
                break
            if int(i) > 2:
                out.append(self.words[int(i)])
        return " ".join(out)

    def to_list(self):
        return self.words[len(SPECIALS):]


def source_vocab(source):
    if source not in SOURCES:
        raise ValueError(f"--source: expected one of {SOURCES}, got {source!r}")
    return Vocab(scenes.vocabulary() if source == "scenes" else digits.vocabulary())


def make_split(source, n, split, seed, max_objects=3, counts=None):
    """Scenes of a source's split (``heldout`` exists for scenes only)."""
    if source == "digits":
        if split == "heldout":
            raise ValueError("the digits source has no held-out composition split")
        return digits.generate(n, split, seed, max_objects=min(max_objects, 2))
    return scenes.generate(n, split, seed, max_objects, counts)


def as_input(images, size=scenes.SIZE, where="images"):
    """float32 (B, 3, size, size) in [0, 1] from uint8 (B, size, size, 3) (or one image)."""
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[None]
    if a.dtype != np.uint8:
        raise ValueError(f"{where}: expected uint8 RGB pixels (0..255), got dtype {a.dtype}")
    if a.ndim != 4 or a.shape[1:] != (size, size, 3):
        raise ValueError(f"{where}: expected RGB images of shape (N, {size}, {size}, 3), "
                         f"got {a.shape}")
    return (a.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


def pad(seqs):
    """(B, Tmax) int array of id lists, padded with 0."""
    out = np.zeros((len(seqs), max(map(len, seqs))), np.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


def encode_all(vocab, scenes_, where):
    """Per scene, the encoded ids of every phrasing."""
    return [[vocab.encode(c, f"{where} scene {i}") for c in s.captions]
            for i, s in enumerate(scenes_)]
