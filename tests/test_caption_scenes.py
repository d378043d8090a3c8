"""The scene generator: captions true of the images, held-out combinations never
seen in training, reproducible from a seed; the digits composites."""
import itertools

import numpy as np
import pytest

from rnnlab.caption import digits, scenes


def _cell(o):
    y0, x0, y1, x1 = o.box                        # from the pixels' box, not the stored cell
    return (y0 + y1) // 2 // scenes.CELL, (x0 + x1) // 2 // scenes.CELL


def _parse(text):
    """[(size, colour, shape)], [relation] from a caption of the grammar."""
    words, objs, rels = text.split(), [], []
    while words:
        assert words.pop(0) == "a"
        objs.append(tuple(words[:3]))
        words = words[3:]
        if words:
            rel = words.pop(0)
            rels.append(rel + " " + words.pop(0) if rel in ("left", "right") else rel)
    return objs, rels


def _true_relation(a, b):
    (ra, ca), (rb, cb) = _cell(a), _cell(b)
    if ra != rb:
        return "above" if ra < rb else "below"
    return "left of" if ca < cb else "right of"


@pytest.mark.parametrize("split", scenes.SPLITS)
def test_every_caption_is_rederived_from_the_object_list(split):
    for s in scenes.generate(40, split, seed=3):
        k = len(s.objects)                        # k! orderings; alike objects share captions
        assert 1 <= len(s.captions) == len(set(s.captions)) <= [1, 1, 2, 6][k]
        for text in s.captions:
            objs, rels = _parse(text)
            named = [next(o for o in s.objects if (o.size, o.colour, o.shape) == t) for t in objs]
            assert sorted(objs) == sorted((o.size, o.colour, o.shape) for o in s.objects)
            # the relation between neighbours; when two objects look alike, some
            # assignment of the alike ones must make every relation true
            options = [[o for o in s.objects if (o.size, o.colour, o.shape) == t] for t in objs]
            assert any(len(set(map(id, p))) == len(p) and
                       all(_true_relation(a, b) == r for a, b, r in zip(p, p[1:], rels))
                       for p in itertools.product(*options)), (text, named)


def test_objects_are_drawn_in_their_colour_inside_their_box():
    for s in scenes.generate(20, "test", seed=1):
        for o in s.objects:
            y0, x0, y1, x1 = o.box
            assert 0 <= y0 and y1 <= scenes.SIZE and 0 <= x0 and x1 <= scenes.SIZE
            px = s.image[scenes.object_mask(o)].astype(int)
            assert np.abs(px.mean(axis=0) - scenes.COLOURS[o.colour]).max() < 30
        assert len({_cell(o) for o in s.objects}) == len(s.objects)


def test_heldout_combinations_never_occur_in_training():
    train, held = scenes.generate(3000, "train"), scenes.generate(200, "heldout")
    scenes.check_split(train, held)
    assert not scenes.combos_in(train) & scenes.HELDOUT
    assert scenes.combos_in(held) & scenes.HELDOUT == scenes.HELDOUT     # all are exercised
    with pytest.raises(ValueError, match="held-out combinations occur in training"):
        scenes.check_split(held, held)


def test_same_seed_same_scenes_other_seed_others():
    a, b, c = (scenes.generate(5, "valid", seed=s) for s in (7, 7, 8))
    assert all((x.image == y.image).all() and x.captions == y.captions for x, y in zip(a, b))
    assert any(x.captions != y.captions for x, y in zip(a, c))


def test_recolour_changes_only_that_object():
    s = scenes.generate(1, "test", seed=2, counts=[2])[0]
    e = scenes.recolour(s, 0, "yellow" if s.objects[0].colour != "yellow" else "red")
    changed = (e.image != s.image).any(axis=2)
    assert changed.any() and not changed[~scenes.object_mask(s.objects[0])].any()
    assert e.objects[1] == s.objects[1] and e.objects[0].colour != s.objects[0].colour


def test_digit_composites_name_the_digits():
    pytest.importorskip("sklearn")
    for s in digits.generate(10, "test", seed=0):
        assert s.image.shape == (scenes.SIZE, scenes.SIZE, 3) and s.image.dtype == np.uint8
        for text in s.captions:
            named = [w for w in text.split() if w.isdigit()]
            assert sorted(named) == sorted(o.shape for o in s.objects)
            assert set(text.split()) <= set(digits.vocabulary())


def test_training_refuses_scenes_with_held_out_pairs(monkeypatch, tmp_path):
    from rnnlab.caption import data, train
    real = data.make_split
    monkeypatch.setattr(data, "make_split", lambda source, n, split, *a: real(
        source, n, "heldout" if split == "train" else split, *a))
    cfg = train.CaptionOptions(out=str(tmp_path), train_size=4, valid_size=2, epochs=1)
    with pytest.raises(ValueError, match="held-out combinations occur in training"):
        train.fit(cfg, log=lambda *a: None)
    assert not list(tmp_path.iterdir())                # refused before any training
