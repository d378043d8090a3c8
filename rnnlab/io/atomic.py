"""Whole-file writes that never leave a half-written file: write a temporary
file in the same folder, flush it to disk, then rename it over the target."""
import contextlib
import os


@contextlib.contextmanager
def atomic_write(path, mode="w", encoding="utf-8"):
    """``with atomic_write(p) as f: f.write(...)``; on any error ``p`` is untouched."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": encoding})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
