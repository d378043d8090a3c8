"""Checkpoints: one ``.npz`` (read with ``allow_pickle=False``) holding every array
plus a JSON metadata blob; no pickle anywhere.

Array names: ``param/<name>`` (weights), ``opt/<key>`` (optimizer state),
``state/<i>`` (the recurrent state carried between chunks, so a run resumed in
the middle of an epoch continues exactly), and ``meta``: UTF-8 JSON stored as a
uint8 array with config, vocabulary, RNG state, data position and history.

Writes are atomic: the file is written and fsynced under a temporary name in the
same folder, then ``os.replace``d over the old one, so a crash or a full disk
leaves the previous checkpoint intact.
"""
import json
import os
import zipfile

import numpy as np

from rnnlab.io.atomic import atomic_path

# "rnnlab-<kind>": kind names the application (lm, music, translate, ...)
PREFIX, VERSION = "rnnlab-", 1
FORMAT = PREFIX + "lm"


KINDS = {"lm": "language-model", "music": "music", "translate": "translation",
         "forecast": "forecasting", "caption": "captioning"}


class CheckpointError(ValueError):
    """A checkpoint that cannot be written or read; the message names the file."""


def _arrays(params, opt_state, state, meta, kind):
    arrays = {f"param/{k}": v for k, v in params.items()}
    arrays.update({f"opt/{k}": np.asarray(v) for k, v in (opt_state or {}).items()})
    arrays.update({f"state/{i}": s for i, s in enumerate(state or ())})
    blob = json.dumps({"format": PREFIX + kind, "version": VERSION, **meta}, ensure_ascii=False)
    arrays["meta"] = np.frombuffer(blob.encode("utf-8"), dtype=np.uint8)
    return arrays


def save(path, params, opt_state=None, state=None, meta=None, kind="lm"):
    """Write atomically; on failure raise CheckpointError and keep the old file."""
    arrays = _arrays(params, opt_state, state, meta or {}, kind)
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    except OSError as e:
        why = e.strerror or str(e)
        raise CheckpointError(f"could not write checkpoint {path}: {why}; the previous "
                              "checkpoint (if any) is left intact") from None


def _read(path):
    # our own handle: np.load(path) leaks its file when the zip is unreadable
    with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load(path, kind="lm"):
    """Returns {"params", "opt_state", "state", "meta"}; clear errors for bad files."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        arrays = _read(path)
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: checkpoint is truncated or corrupt ({type(e).__name__}: "
                              f"{e}); use another one (e.g. best.npz or last.npz)") from None
    if not isinstance(meta, dict) or meta.get("format") != PREFIX + kind:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"{path}: not an rnnlab {KINDS.get(kind, kind)} checkpoint"
                              + (f" (it is {found!r})" if isinstance(found, str) else ""))
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {meta['version']} is newer than "
                              f"this rnnlab understands ({VERSION})")
    out = {"params": {}, "opt_state": {}, "state": [], "meta": meta}
    for k, v in arrays.items():
        kind, _, name = k.partition("/")
        if kind == "param":
            out["params"][name] = v
        elif kind == "opt":
            out["opt_state"][name] = v
        elif kind == "state":
            out["state"].append((int(name), v))
    out["state"] = tuple(v for _, v in sorted(out["state"]))
    return out
