"""A second source the project does not draw: composites of scikit-learn's 8x8 digits.

Each image is SIZE x SIZE RGB like a scene; one or two handwritten digits
(scikit-learn's bundled ``load_digits``, 1797 images of 8x8, values 0..16),
each scaled up 2x to 16 x 16 to fill one cell of the 3 x 3 grid, in white.
Captions use the scene grammar with the digit as the noun: "a 3 above a 7",
"a 7 below a 3". Train / valid / test draw digit images from disjoint parts of
the bundle, so test digits are handwriting the model never saw.
"""
import numpy as np

from rnnlab.caption import scenes

PARTS = {"train": (0.0, 0.7), "valid": (0.7, 0.8), "test": (0.8, 1.0)}


def load_bundle():
    """(images (N, 8, 8) float in 0..16, labels (N,)) from scikit-learn."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ValueError("the digits source needs scikit-learn: pip install "
                         "'rnnlab[caption]'") from None
    d = load_digits()
    return d.images, d.target


def vocabulary():
    return ["a", *(str(i) for i in range(10)), *(w for r in scenes.RELATIONS for w in r.split())]


def generate(n, split="train", seed=0, max_objects=2):
    """``n`` digit composites of ``split`` as scenes.Scene (shape = the digit)."""
    if split not in PARTS:
        raise ValueError(f"digits split must be one of {tuple(PARTS)}, got {split!r}")
    images, labels = load_bundle()
    lo, hi = (int(f * len(images)) for f in PARTS[split])
    rng = np.random.default_rng([seed, 100 + list(PARTS).index(split)])
    out = []
    for _ in range(n):
        k = int(rng.integers(1, max_objects + 1))
        cells = rng.choice(scenes.GRID * scenes.GRID, size=k, replace=False)
        picks = rng.integers(lo, hi, size=k)
        img = rng.integers(0, 12, (scenes.SIZE, scenes.SIZE, 3)).astype(np.float64)
        objs = []
        for cell, i in zip(cells, picks):
            row, col = int(cell) // scenes.GRID, int(cell) % scenes.GRID
            y0, x0 = row * scenes.CELL, col * scenes.CELL
            big = np.kron(images[i], np.ones((2, 2))) * (255.0 / 16.0)    # (16, 16)
            img[y0:y0 + 16, x0:x0 + 16] = np.maximum(img[y0:y0 + 16, x0:x0 + 16], big[..., None])
            objs.append(scenes.Obj(str(int(labels[i])), "", "", row, col,
                                   (y0, x0, y0 + 16, x0 + 16)))
        out.append(scenes.Scene(np.clip(img, 0, 255).astype(np.uint8), tuple(objs),
                                scenes.captions(objs)))
    return out
