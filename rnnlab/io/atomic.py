"""Whole-file writes that never leave a half-written file: write a temporary
file in the same folder, flush it to disk, then rename it over the target.

Temporary names are ``.<name>.tmp-<pid>``; ``remove_stale`` deletes the ones a
killed process left behind (its pid no longer runs), so they never pile up.
"""
import contextlib
import glob
import os


def _tmp_name(path):
    folder = os.path.dirname(os.path.abspath(path))
    return os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path):
    """``with atomic_path(p) as tmp: write(tmp)``; ``tmp`` becomes ``p`` on success.

    For writers that want a file name (``np.savez``, ``savefig``, ``wave``); on any
    error the target is untouched and the temporary file is removed.
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = _tmp_name(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    remove_stale(path)


@contextlib.contextmanager
def atomic_write(path, mode="w", encoding="utf-8"):
    """``with atomic_write(p) as f: f.write(...)``; on any error ``p`` is untouched."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": encoding})) as f:
            yield f
            f.flush()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(path):
    """Delete ``path``'s temporary files left by processes that no longer run."""
    pattern = os.path.join(os.path.dirname(os.path.abspath(path)),
                           f".{glob.escape(os.path.basename(path))}.tmp-*")
    for tmp in glob.glob(pattern):
        pid = tmp.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                os.remove(tmp)
