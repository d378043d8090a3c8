"""Caption metrics and the evidence that the model reads the image.

- ``exact``: the generated caption is one of the image's true phrasings.
- ``slots``: per-slot accuracy (size, colour, shape, relation) against the
  reference phrasing that agrees with the output at the most positions.
- ``bleu4``: corpus BLEU-4 with sacrebleu over every reference phrasing.
- ``hit_rate``: each time the decoder emits an object's noun, does the grid
  cell with the most attention overlap that object's box? (The object is the
  one at that place of the aligned reference.) Also the stricter share whose
  peak cell's centre lies inside the box (a box always holds a cell centre).
- ``colour_edits``: recolour one object and decode again: the caption should
  change in the colour word and nowhere else.
"""
import itertools

import numpy as np

from rnnlab.caption import scenes

SLOT_OF = {**{w: "size" for w in scenes.SIZES}, **{w: "colour" for w in scenes.COLOURS},
           **{w: "shape" for w in scenes.SHAPES}, **{str(d): "shape" for d in range(10)},
           "above": "relation", "below": "relation", "left": "relation", "right": "relation"}
SLOTS = ("size", "colour", "shape", "relation")


def exact(preds, scenes_):
    return float(np.mean([p in s.captions for p, s in zip(preds, scenes_)]))


def aligned(pred, refs):
    """The reference agreeing with ``pred`` at the most word positions."""
    w = pred.split()
    return max(refs, key=lambda r: sum(a == b for a, b in zip(w, r.split())))


def slots(preds, scenes_):
    """{slot: accuracy} over the slots of the aligned references (missing words count wrong)."""
    right, total = dict.fromkeys(SLOTS, 0), dict.fromkeys(SLOTS, 0)
    for p, s in zip(preds, scenes_):
        w = p.split()
        for i, word in enumerate(aligned(p, s.captions).split()):
            slot = SLOT_OF.get(word)
            if slot:
                total[slot] += 1
                right[slot] += i < len(w) and w[i] == word
    return {k: right[k] / total[k] for k in SLOTS if total[k]}


def bleu4(preds, scenes_):
    """(score, signature) of sacrebleu's corpus BLEU-4 over all reference phrasings."""
    import sacrebleu
    n = max(len(s.captions) for s in scenes_)
    refs = [[s.captions[i] if i < len(s.captions) else None for s in scenes_] for i in range(n)]
    b = sacrebleu.metrics.BLEU()
    return b.corpus_score(list(preds), refs).score, str(b.get_signature())


def ordering(scene, text):
    """The objects in the order that reference ``text`` names them."""
    for perm in itertools.permutations(scene.objects):
        if scenes.caption(perm) == text:
            return perm
    raise ValueError(f"{text!r} is not a phrasing of this scene")


def cell_box(s, grid, size=scenes.SIZE):
    """(y0, x0, y1, x1) pixels of grid cell ``s``."""
    step = size / grid
    r, c = divmod(int(s), grid)
    return r * step, c * step, (r + 1) * step, (c + 1) * step


def _overlaps(cell, box):
    cy0, cx0, cy1, cx1 = cell
    y0, x0, y1, x1 = box
    return cy0 < y1 and y0 < cy1 and cx0 < x1 and x0 < cx1


def hit_rate(preds, alphas, scenes_, grid):
    """Where the attention peaks while the decoder names each object.

    Per object phrase of the output ("a size colour noun" or "a 7", aligned with the
    reference's objects): "hit" (the issue's measure): at the noun, the peak
    cell overlaps the object's box; "centre": the peak cell's centre lies in
    the box (stricter); "size", "colour": the overlap at those words;
    "phrase": the peak of the attention summed over the phrase's words;
    "n": nouns counted.
    """
    counts = dict.fromkeys(("hit", "centre", "size", "colour", "phrase"), 0)
    totals = dict.fromkeys(counts, 0)
    for p, a, s in zip(preds, alphas, scenes_):
        objs, words = ordering(s, aligned(p, s.captions)), p.split()
        starts = [t for t, w in enumerate(words) if w == "a"][:len(objs)]
        for o, t0 in zip(objs, starts):
            end = next((t for t in range(t0, len(words)) if SLOT_OF.get(words[t]) == "shape"),
                       len(words) - 1)
            span = range(t0, end + 1)                              # "a ... noun"
            for t in span:
                slot = SLOT_OF.get(words[t])
                cell = cell_box(np.argmax(a[t]), grid)
                if slot == "shape":
                    cy, cx = (cell[0] + cell[2]) / 2, (cell[1] + cell[3]) / 2
                    counts["hit"] += _overlaps(cell, o.box)
                    counts["centre"] += _overlaps((cy, cx, cy + 1e-9, cx + 1e-9), o.box)
                    totals["hit"] += 1
                    totals["centre"] += 1
                elif slot in ("size", "colour"):
                    counts[slot] += _overlaps(cell, o.box)
                    totals[slot] += 1
            counts["phrase"] += _overlaps(cell_box(np.argmax(a[list(span)].sum(0)), grid), o.box)
            totals["phrase"] += 1
    out = {k: counts[k] / totals[k] for k in counts if totals[k]}
    out["n"] = totals["hit"]
    return out


def edited_scenes(scenes_, seed=0):
    """One recoloured copy per scene: object 0 in another allowed colour."""
    rng = np.random.default_rng(seed)
    out = []
    for s in scenes_:
        o = s.objects[0]
        options = [c for c in scenes.COLOURS if c != o.colour
                   and (c, o.shape) not in scenes.HELDOUT]
        out.append(scenes.recolour(s, 0, options[rng.integers(len(options))], seed))
    return out


def colour_edits(before, after, originals, edited):
    """{"followed": edited caption true of the edited image, when the original
    caption was true; "only_colour": captions differ in exactly one word, the
    recoloured object's colour}."""
    followed, only, n = 0, 0, 0
    for b, a, s, e in zip(before, after, originals, edited):
        if b not in s.captions:
            continue
        n += 1
        followed += a in e.captions
        diff = [(x, y) for x, y in zip(b.split(), a.split()) if x != y]
        only += (len(b.split()) == len(a.split()) and
                 diff == [(s.objects[0].colour, e.objects[0].colour)])
    return {"followed": followed / max(n, 1), "only_colour": only / max(n, 1), "n": n}
