"""One evaluation of a trained captioner: every metric and control on one split.

``report(mcfg, params, vocab, split_scenes)`` decodes greedily (or with a beam)
and returns a flat dict: exact match overall and per object count, per-slot
accuracy, BLEU-4 with its signature, the attention hit rate (attention
decoder), the shuffled-image control and the colour-edit control (shape scenes).
"""
import numpy as np

from rnnlab.caption import data, metrics, search
from rnnlab.caption.train import describe


def decode(mcfg, params, vocab, x, beam=0):
    """(captions, attention maps or None): greedy, or a beam of width ``beam``."""
    if not beam:
        return describe(mcfg, params, vocab, x)
    caps, maps = [], []
    for i in range(len(x)):
        ids, _, a = search.beam(mcfg, params, x[i:i + 1], beam)
        caps.append(vocab.decode(ids))
        maps.append(a)
    return caps, (maps if mcfg.decoder == "attend" else None)


def check_vocab(vocab, scenes_, where):
    """ValueError when the data's captions use words the checkpoint does not know."""
    data.encode_all(vocab, scenes_[:200], where)


def report(mcfg, params, vocab, scenes_, beam=0, seed=0, controls=True):
    check_vocab(vocab, scenes_, "data")
    x = data.as_input(np.stack([s.image for s in scenes_])).astype(params["out.weight"].dtype)
    caps, maps = decode(mcfg, params, vocab, x, beam)
    out = {"images": len(scenes_), "exact": metrics.exact(caps, scenes_)}
    for k in (1, 2, 3):
        sel = [i for i, s in enumerate(scenes_) if len(s.objects) == k]
        if sel:
            out[f"exact_{k}obj"] = metrics.exact([caps[i] for i in sel], [scenes_[i] for i in sel])
    out.update({f"slot_{k}": v for k, v in metrics.slots(caps, scenes_).items()})
    out["bleu4"], out["bleu_signature"] = metrics.bleu4(caps, scenes_)
    if maps is not None:
        h = metrics.hit_rate(caps, maps, scenes_, mcfg.grid)
        out["hit_rate"], out["hit_nouns"] = h.get("hit", 0.0), h["n"]
        out.update({f"hit_{k}": v for k, v in h.items() if k not in ("hit", "n")})
    if controls:
        perm = np.random.default_rng(seed).permutation(len(scenes_))
        shuffled, _ = decode(mcfg, params, vocab, x[perm], beam)
        out["shuffled_exact"] = metrics.exact(shuffled, scenes_)
        if all(o.colour for s in scenes_ for o in s.objects):
            edited = metrics.edited_scenes(scenes_, seed)
            ex = data.as_input(np.stack([s.image for s in edited])).astype(x.dtype)
            after, _ = decode(mcfg, params, vocab, ex, beam)
            ce = metrics.colour_edits(caps, after, scenes_, edited)
            out.update({"edit_followed": ce["followed"], "edit_only_colour": ce["only_colour"],
                        "edit_n": ce["n"]})
    return out, caps, maps


ROWS = (("exact", "exact match"), ("exact_1obj", "  1 object"), ("exact_2obj", "  2 objects"),
        ("exact_3obj", "  3 objects"), ("slot_size", "slot: size"), ("slot_colour", "slot: colour"),
        ("slot_shape", "slot: shape"), ("slot_relation", "slot: relation"),
        ("bleu4", "BLEU-4"), ("hit_rate", "attention hit rate"),
        ("hit_centre", "  noun: peak cell centre inside the box"),
        ("hit_size", "  at the size word"), ("hit_colour", "  at the colour word"),
        ("hit_phrase", "  attention summed over the phrase"),
        ("shuffled_exact", "shuffled images: exact"), ("edit_followed", "colour edit followed"),
        ("edit_only_colour", "colour edit: only the colour word changed"))


def format_report(r):
    lines = []
    for key, label in ROWS:
        if key in r:
            v = r[key]
            lines.append(f"{label:44s} {v:8.2f}" if key == "bleu4" else f"{label:44s} {100 * v:7.1f}%")
    if "bleu_signature" in r:
        lines.append(f"({r['images']} images"
                     + (f", {r['hit_nouns']} nouns for the hit rate" if "hit_nouns" in r else "")
                     + (f", {r['edit_n']} correctly captioned images edited" if "edit_n" in r else "")
                     + ")")
        lines.append(f"(sacrebleu {r['bleu_signature']})")
    return "\n".join(lines)
