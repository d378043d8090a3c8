"""A seeded scene generator: RGB images of 1-3 shapes, and the captions true of them.

Images are SIZE x SIZE RGB (uint8, (H, W, 3)), black background, split into a
3 x 3 grid of 16-pixel cells; each object sits in its own cell (jittered
inside it) and has a shape, a colour and a size. Captions come from a small
grammar that names every object and the spatial relation between neighbours
in the sentence:

    caption  := object (relation object)*
    object   := "a" size colour shape           ("a small red circle")
    relation := "above" | "below" | "left of" | "right of"

``relation(a, b)`` compares grid rows first ("above" when a's row is higher),
then columns. Each ordering of the objects is a true phrasing, so an image with
k objects has k! reference captions; all of them are kept as references.

Splits: train / valid / test draw only the allowed colour-shape combinations;
**heldout** scenes each hold at least one combination from ``HELDOUT`` (e.g. a
green triangle), which never occurs in the other splits (``check_split``
asserts it). Everything is a function of (seed, split): the same seed gives the
same images and captions.
"""
import itertools
from typing import NamedTuple

import numpy as np

SIZE, CELL, GRID = 48, 16, 3
SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 50), "blue": (50, 90, 235),
           "yellow": (230, 215, 40), "purple": (160, 60, 210)}
SIZES = {"small": 4, "large": 7}                     # half-width in pixels
HELDOUT = frozenset({("green", "triangle"), ("blue", "circle"), ("red", "square"),
                     ("yellow", "diamond"), ("purple", "circle")})
RELATIONS = ("above", "below", "left of", "right of")
SPLITS = ("train", "valid", "test", "heldout")


class Obj(NamedTuple):
    """One object: attributes (colour and size are "" for digits), grid cell, box."""
    shape: str
    colour: str
    size: str
    row: int
    col: int
    box: tuple             # (y0, x0, y1, x1), pixels, end exclusive


class Scene(NamedTuple):
    image: np.ndarray      # (SIZE, SIZE, 3) uint8
    objects: tuple         # of Obj
    captions: tuple        # every true phrasing, as strings


def relation(a, b):
    """The relation word(s) for "a <relation> b"."""
    if a.row != b.row:
        return "above" if a.row < b.row else "below"
    return "left of" if a.col < b.col else "right of"


def phrase(o):
    return " ".join(w for w in ("a", o.size, o.colour, o.shape) if w)


def caption(objects):
    """The caption naming ``objects`` in this order."""
    words = [phrase(objects[0])]
    for a, b in zip(objects, objects[1:]):
        words += [relation(a, b), phrase(b)]
    return " ".join(words)


def captions(objects):
    """Every ordering's caption (k! for k objects), first the reading order's."""
    reading = sorted(objects, key=lambda o: (o.row, o.col))
    return tuple(dict.fromkeys(caption(p) for p in itertools.permutations(reading)))


def vocabulary():
    """Every word the scene grammar can emit."""
    words = ["a", *SIZES, *COLOURS, *SHAPES]
    for r in RELATIONS:
        words += r.split()
    return list(dict.fromkeys(words))


# ---------------------------------------------------------------- drawing

def shape_mask(shape, cy, cx, r, size=SIZE):
    """Boolean (size, size) mask of a shape centred at (cy, cx), half-width r."""
    y, x = np.mgrid[0:size, 0:size]
    dy, dx = y - cy, x - cx
    if shape == "circle":
        return dy * dy + dx * dx <= r * r + r
    if shape == "square":
        return (np.abs(dy) <= r) & (np.abs(dx) <= r)
    if shape == "diamond":
        return np.abs(dy) + np.abs(dx) <= r
    if shape == "triangle":                          # apex up, base at the bottom
        return (dy <= r) & (dy >= -r) & (2 * np.abs(dx) <= dy + r)
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def place(rng, shape, colour, size, row, col):
    """An Obj in grid cell (row, col), jittered so it stays inside the cell."""
    r = SIZES[size]
    room = CELL // 2 - r - 1
    cy = row * CELL + CELL // 2 + int(rng.integers(-room, room + 1))
    cx = col * CELL + CELL // 2 + int(rng.integers(-room, room + 1))
    return Obj(shape, colour, size, row, col, (cy - r, cx - r, cy + r + 1, cx + r + 1))


def render(objects, rng=None):
    """The (SIZE, SIZE, 3) uint8 image of ``objects`` with a little colour jitter."""
    rng = np.random.default_rng(rng)
    img = np.zeros((SIZE, SIZE, 3), np.int16)
    for o in objects:
        img[object_mask(o)] = np.asarray(COLOURS[o.colour]) + rng.integers(-20, 21, 3)
    img += rng.integers(0, 12, img.shape, dtype=np.int16)       # faint sensor noise
    return np.clip(img, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- sampling

def _combos(heldout):
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    return [p for p in pairs if (p in HELDOUT) == heldout]


def random_objects(rng, k, force_heldout=False):
    """k objects in distinct cells; allowed combinations only, unless
    ``force_heldout`` (then the first one drawn is a held-out combination)."""
    allowed, held = _combos(False), _combos(True)
    cells = rng.choice(GRID * GRID, size=k, replace=False)
    objs = []
    for i, cell in enumerate(cells):
        pool = held if (force_heldout and i == 0) else allowed
        colour, shape = pool[rng.integers(len(pool))]
        size = ("small", "large")[rng.integers(2)]
        objs.append(place(rng, shape, colour, size, int(cell) // GRID, int(cell) % GRID))
    return tuple(objs)


def make_scene(objects, rng=None):
    return Scene(render(objects, rng), tuple(objects), captions(objects))


def generate(n, split="train", seed=0, max_objects=3, counts=None):
    """``n`` scenes of ``split``; object counts uniform in 1..max_objects (or ``counts``)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    ks = counts if counts is not None else rng.integers(1, max_objects + 1, size=n)
    return [make_scene(random_objects(rng, int(k), split == "heldout"), rng) for k in ks]


def combos_in(scenes):
    return {(o.colour, o.shape) for s in scenes for o in s.objects}


def check_split(train, heldout):
    """Raise ValueError unless the held-out combinations never occur in ``train``
    and every held-out scene has at least one of them."""
    leaked = combos_in(train) & HELDOUT
    if leaked:
        raise ValueError(f"held-out combinations occur in training: {sorted(leaked)}")
    bad = [i for i, s in enumerate(heldout)
           if not any((o.colour, o.shape) in HELDOUT for o in s.objects)]
    if bad:
        raise ValueError(f"held-out scenes {bad[:5]} hold no held-out combination")


def object_mask(o):
    """The pixels of object ``o`` (boolean (SIZE, SIZE))."""
    y0, x0, y1, x1 = o.box
    r = (y1 - y0 - 1) // 2
    return shape_mask(o.shape, y0 + r, x0 + r, r)


def recolour(scene, index, colour, seed=0):
    """The same image with object ``index`` painted another colour: only its
    pixels change; the captions are re-derived."""
    rng = np.random.default_rng(seed)
    objs = list(scene.objects)
    objs[index] = objs[index]._replace(colour=colour)
    img = scene.image.astype(np.int16)
    img[object_mask(objs[index])] = np.asarray(COLOURS[colour]) + rng.integers(-20, 21, 3)
    return Scene(np.clip(img, 0, 255).astype(np.uint8), tuple(objs), captions(objs))
