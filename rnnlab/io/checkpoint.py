"""Checkpoints: one ``.npz`` (read with ``allow_pickle=False``) holding every array
plus a JSON metadata blob; no pickle anywhere.

Array names: ``param/<name>`` (weights), ``opt/<key>`` (optimizer state),
``state/<i>`` (the recurrent state carried between chunks, so a run resumed in
the middle of an epoch continues exactly), and ``meta``: UTF-8 JSON stored as a
uint8 array with config, vocabulary, RNG state, data position and history.

Writes refuse, before touching the file, what a read would refuse (non-float or
non-finite weights, object arrays, metadata that is not a JSON object). Writes
are atomic: the file is written and fsynced under a temporary name in the
same folder, then ``os.replace``d over the old one, so a crash or a full disk
leaves the previous checkpoint intact (and the temporary files of killed saves
are removed by the next successful one).

Reads trust nothing: a file that is missing, a folder, unreadable, not a zip,
holds members that are not ``.npy`` arrays, pickled objects, non-numeric or
non-finite weights, or metadata of the wrong form raises ``CheckpointError``
(a ValueError) that names the file and what was expected and found. ``expect``
checks one metadata field the same way, for every application's own fields.
"""
import errno
import json
import math
import os
import zipfile

import numpy as np

from rnnlab.engine import backend as _backend, validate
from rnnlab.io.atomic import atomic_path

# "rnnlab-<kind>": kind names the application (lm, music, translate, ...)
PREFIX, VERSION = "rnnlab-", 1
FORMAT = PREFIX + "lm"


KINDS = {"lm": "language-model", "music": "music", "translate": "translation",
         "forecast": "forecasting", "caption": "captioning"}

_GROUPS = {"param": "weight", "opt": "optimizer state", "state": "carried state"}


class CheckpointError(ValueError):
    """A checkpoint that cannot be written or read; the message names the file."""


def _member_problem(group, name, v):
    """What is wrong with one array for ``load``, or None: weights and carried
    state are floats, optimizer state numbers, and every float is finite."""
    if v.dtype.kind not in ("f" if group != "opt" else "fiu"):
        return (f"{_GROUPS[group]} {name!r} has dtype {v.dtype}; expected "
                + ("floats" if group != "opt" else "numbers"))
    if v.dtype.kind == "f" and not np.isfinite(v).all():
        bad = int(v.size - np.count_nonzero(np.isfinite(v)))
        return f"{_GROUPS[group]} {name!r} has {bad} NaN or Inf value(s) of {v.size}"
    return None


def _arrays(path, params, opt_state, state, meta, kind):
    """The arrays ``save`` writes, refused (CheckpointError) where ``load`` would
    refuse the file: a write that succeeded only to leave a checkpoint no run can
    read, over the previous good one (object arrays were even pickled)."""
    def refuse(why):
        return CheckpointError(f"not writing checkpoint {path}: {why}; the previous "
                               "checkpoint (if any) is left intact")
    for what, v, kinds, want in (("params", params, dict, "a dict of arrays"),
                                 ("opt_state", opt_state, dict, "a dict of arrays or None"),
                                 ("state", state, (tuple, list), "a tuple of arrays or None"),
                                 ("meta", meta, dict, "a dict or None")):
        if not isinstance(v, kinds) and (v is not None or what == "params"):
            raise refuse(f"{what} must be {want}, got {type(v).__name__}")
    named = {"param": params, "opt": opt_state or {},
             "state": {str(i): s for i, s in enumerate(state or ())}}
    arrays = {}
    for group, members in named.items():
        for name, v in members.items():
            if not isinstance(name, str) or not name:
                raise refuse(f"{_GROUPS[group]} name {name!r} is not a non-empty string")
            try:
                arr = np.asarray(_backend.to_numpy(v))
            except (TypeError, ValueError) as e:
                raise refuse(f"{_GROUPS[group]} {name!r} is not an array ({e})") from None
            why = _member_problem(group, name, arr)
            if why:
                raise refuse(why)
            arrays[f"{group}/{name}"] = arr
    try:                 # format and version are the file's own: a loaded meta's are replaced
        blob = json.dumps({**(meta or {}), "format": PREFIX + kind, "version": VERSION},
                          ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise refuse(f"meta is not JSON ({e})") from None
    arrays["meta"] = np.frombuffer(blob.encode("utf-8"), dtype=np.uint8)
    return arrays


def save(path, params, opt_state=None, state=None, meta=None, kind="lm"):
    """Write atomically; on failure raise CheckpointError and keep the old file.
    What ``load`` would refuse is refused before anything is written."""
    arrays = _arrays(path, params, opt_state, state, meta, kind)
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    except OSError as e:
        why = e.strerror or str(e)
        raise CheckpointError(f"could not write checkpoint {path}: {why}; the previous "
                              "checkpoint (if any) is left intact") from None


def _read(path):
    """{name: array} of an .npz whose members are all .npy arrays (no pickle)."""
    # our own handle: np.load(path) leaks its file when the zip is unreadable
    with open(path, "rb") as f:
        with zipfile.ZipFile(f) as zf:
            names = zf.namelist()
        odd = [n for n in names if not n.endswith(".npy")]
        if odd:
            raise CheckpointError(f"{path}: holds {len(odd)} member(s) that are not .npy "
                                  f"arrays ({', '.join(map(repr, odd[:3]))}); expected only "
                                  "the arrays rnnlab writes")
        f.seek(0)
        with np.load(f, allow_pickle=False) as z:
            out = {}
            for k in z.files:
                try:
                    out[k] = z[k]
                    if not isinstance(out[k], np.ndarray):    # NpzFile gives raw bytes
                        raise CheckpointError(f"{path}: member {k + '.npy'!r} is not a .npy "
                                              "array (no NumPy header)")
                except ValueError as e:
                    if isinstance(e, CheckpointError):
                        raise
                    if "allow_pickle" in str(e):
                        raise CheckpointError(f"{path}: array {k!r} holds pickled Python "
                                              "objects, which rnnlab never writes; refusing "
                                              "to load it") from None
                    raise
            return out


def _open_error(path, e):
    if isinstance(e, IsADirectoryError) or os.path.isdir(path):
        return CheckpointError(f"{path}: is a folder; expected a checkpoint file (.npz), "
                               "e.g. OUT/last.npz")
    return CheckpointError(f"{path}: cannot read the checkpoint ({e.strerror or e})")


def _split(path, arrays):
    """Group the arrays by prefix; every name must be one rnnlab writes."""
    out = {"params": {}, "opt_state": {}, "state": []}
    for k, v in arrays.items():
        group, _, name = k.partition("/")
        if group not in _GROUPS or not name:
            raise CheckpointError(f"{path}: unexpected array {k!r}; expected names "
                                  "param/<name>, opt/<name>, state/<index> and meta")
        why = _member_problem(group, name, v)
        if why:
            nonfinite = v.dtype.kind == "f"          # a float's only problem: NaN or Inf
            raise CheckpointError(f"{path}: {why}" + ("; the run had diverged when this was "
                                  "saved: use an earlier checkpoint (e.g. best.npz) or "
                                  "retrain with a lower --lr" if nonfinite else ""))
        if group == "param":
            out["params"][name] = v
        elif group == "opt":
            out["opt_state"][name] = v
        else:
            if not name.isdigit():
                raise CheckpointError(f"{path}: carried-state array {k!r} should be "
                                      "state/<index>")
            out["state"].append((int(name), v))
    idx = sorted(i for i, _ in out["state"])
    if idx != list(range(len(idx))):
        raise CheckpointError(f"{path}: carried-state arrays should be numbered 0..{len(idx) - 1}, "
                              f"found {idx}")
    out["state"] = tuple(v for _, v in sorted(out["state"], key=lambda t: t[0]))
    return out


def load(path, kind="lm"):
    """Returns {"params", "opt_state", "state", "meta"}; clear errors for bad files."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise ValueError(f"path must be a file name (str or os.PathLike), got "
                         f"{type(path).__name__}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        arrays = _read(path)
    except CheckpointError:
        raise
    except (PermissionError, IsADirectoryError) as e:
        raise _open_error(path, e) from None
    except MemoryError:
        raise CheckpointError(f"{path}: an array in it is too large to load; the checkpoint "
                              "is corrupt or not rnnlab's") from None
    except Exception as e:                       # untrusted bytes: any parse failure
        if isinstance(e, OSError) and e.errno and e.errno != errno.EINVAL:  # EINVAL: a bad seek
            raise _open_error(path, e) from None
        raise CheckpointError(f"{path}: checkpoint is truncated or corrupt ({type(e).__name__}: "
                              f"{e}); use another one (e.g. best.npz or last.npz)") from None
    if "meta" not in arrays:
        raise CheckpointError(f"{path}: has no metadata array 'meta'; not an rnnlab checkpoint")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: its metadata is not UTF-8 JSON ({e}); the checkpoint "
                              "is corrupt") from None
    if not isinstance(meta, dict) or meta.get("format") != PREFIX + kind:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"{path}: not an rnnlab {KINDS.get(kind, kind)} checkpoint"
                              + (f" (it is {found!r})" if isinstance(found, str) else ""))
    version = meta.get("version")
    if not is_int(version) or version < 1:
        raise CheckpointError(f"{path}: checkpoint metadata 'version' should be an integer "
                              f">= 1, found {version!r}")
    if version > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {version} is newer than "
                              f"this rnnlab understands ({VERSION})")
    return {**_split(path, arrays), "meta": meta}


def load_model(path, kind, build, shapes=None):
    """An application's model checkpoint, read and checked in one place:
    ``(built, params, meta)``.

    ``build(app_meta)`` makes what the application needs from its own metadata
    (its model config, vocabularies...); a KeyError, TypeError or ValueError
    there means the metadata is incomplete. ``shapes(built)`` gives the
    ``{name: shape}`` the weights must have (names, shapes, one float dtype,
    finite values: ``engine.validate.check_params``). Either failure is a
    CheckpointError naming the file.
    """
    ck = load(path, kind=kind)
    try:
        built = build(ck["meta"].get("app") or {})
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: checkpoint metadata is incomplete or not valid "
                              f"({e})") from None
    if shapes is not None:
        try:
            validate.check_params(shapes(built), ck["params"], what="weights")
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from None
    return built, ck["params"], ck["meta"]


# ---------------------------------------------------------------- metadata fields

def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# what a field may hold: (words for the message, test)
NONNEG_INT = ("an integer >= 0", lambda v: is_int(v) and v >= 0)
NUMBER = ("a number", lambda v: is_number(v) and not math.isnan(v))
FINITE = ("a finite number", lambda v: is_number(v) and math.isfinite(v))
NUMBER_OR_NULL = ("a number or null", lambda v: v is None or (is_number(v) and not math.isnan(v)))
BOOL = ("true or false", lambda v: isinstance(v, bool))
TABLE = ("a JSON object", lambda v: isinstance(v, dict))
LIST = ("a list", lambda v: isinstance(v, list))
TABLES = ("a list of JSON objects", lambda v: isinstance(v, list)
          and all(isinstance(r, dict) for r in v))
TABLE_OR_NULL = ("a JSON object or null", lambda v: v is None or isinstance(v, dict))


def expect(meta, key, what, path):
    """``meta[key]`` (``key`` may be dotted: ``"position.epoch"``), checked against
    ``what`` (one of the pairs above, or your own); CheckpointError otherwise."""
    words, ok = what
    v = meta
    for part in key.split("."):
        if not isinstance(v, dict) or part not in v:
            raise CheckpointError(f"{path}: checkpoint metadata has no {key!r} (expected "
                                  f"{words}); the file was not written by this rnnlab or "
                                  "was edited")
        v = v[part]
    if not ok(v):
        shown = repr(v) if len(repr(v)) <= 60 else repr(v)[:57] + "..."
        raise CheckpointError(f"{path}: checkpoint metadata {key!r} should be {words}, "
                              f"found {shown}")
    return v
