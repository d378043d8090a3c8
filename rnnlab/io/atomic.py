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


def check_writable(flag, path, folder=False):
    """Fail before any work when ``path`` (an output file, or a ``folder``) cannot
    be written, naming the option ``flag``: a folder where a file is wanted (or
    the reverse), a file where a parent folder would go, a place this process may
    not write. Creates nothing (the writers make the folders); probes the nearest
    existing folder with a temporary file."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"{flag}: expected a {'folder' if folder else 'file'} name, got {path!r}")
    path = os.fspath(path)
    if folder and os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag} {path}: exists and is not a folder")
    if not folder and os.path.isdir(path):
        raise ValueError(f"{flag} {path}: is a folder; expected a file name")
    probe_in = os.path.abspath(path if folder else os.path.dirname(os.path.abspath(path)))
    while not os.path.exists(probe_in):
        probe_in = os.path.dirname(probe_in)
    if not os.path.isdir(probe_in):
        raise ValueError(f"{flag} {path}: {probe_in} is a file, so no folder can be made "
                         "under it")
    probe = os.path.join(probe_in, f".rnnlab-write-test-{os.getpid()}")
    try:
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        where = "there" if probe_in == os.path.abspath(path) else f"in {probe_in}"
        raise ValueError(f"{flag} {path}: cannot write {where} ({e.strerror or e}); "
                         f"choose another {'folder' if folder else 'place'}") from None


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
