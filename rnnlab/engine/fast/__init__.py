"""The compiled fast path (numba): each layer-direction's whole time loop as one call.

numba's on-disk cache keys each compiled function by its own file's time stamp,
not by the files it calls into: after an edit to ``sync.py`` or ``gemm.py``
alone (a ``git pull`` into an editable install, say), the loops of ``units.py``
would still load the old barrier or tile, compiled into them. So the cache
next to these files is kept only while every source file here is unchanged:
``fresh_cache`` compares their digest with the one stamped when the cache was
made, and empties the cache when they differ (numba then compiles afresh).
"""
import glob
import hashlib
import os

from rnnlab.io.atomic import atomic_write

_HERE = os.path.dirname(os.path.abspath(__file__))


def fresh_cache(folder=_HERE):
    """Empty numba's cache of the modules in ``folder`` (its ``__pycache__``) if
    any ``.py`` there changed since the cache's stamp; returns whether it did.
    Nothing where the folder cannot be written (numba caches elsewhere then)."""
    digest = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(folder, "*.py"))):
        with open(path, "rb") as f:
            digest.update(os.path.basename(path).encode() + b"\0" + f.read())
    cache = os.path.join(folder, "__pycache__")
    stamp = os.path.join(cache, "numba-sources.sha256")
    try:
        with open(stamp) as f:
            if f.read() == digest.hexdigest():
                return False
    except OSError:
        pass
    try:
        for old in glob.glob(os.path.join(cache, "*.nbi")) + glob.glob(os.path.join(cache, "*.nbc")):
            os.remove(old)
        with atomic_write(stamp) as f:
            f.write(digest.hexdigest())
    except OSError:                                               # read-only install, a race
        return False
    return True


fresh_cache()
