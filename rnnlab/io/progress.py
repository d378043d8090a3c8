"""The one progress bar: tqdm when it is installed, a carriage-return line otherwise.

Every long loop in rnnlab (the demo, the lab's tasks, every trainer, evaluation)
shows its progress through ``progress(...)``, so they all look the same:
``desc  n/total  rate unit/s  key=value ...`` on stderr. Used as a context
manager (``with progress(...) as bar:``) the bar is closed, its line cleared, also
when the loop raises, so the command's one-line error starts on a clean line.
"""
import sys
import time


class _Closing:
    """``with bar:`` closes the bar on the way out, also when the loop raises."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Line(_Closing):
    """A minimal tqdm stand-in: redraws one line at most every 0.2 s."""

    def __init__(self, total, desc, unit, initial, file):
        self.total, self.desc, self.unit, self.n, self.file = total, desc, unit, initial, file
        self.postfix, self.t0, self.start, self.shown = "", time.perf_counter(), initial, 0.0

    def set_postfix(self, refresh=True, **kw):
        self.postfix = " ".join(f"{k}={v}" for k, v in kw.items())

    def update(self, n=1):
        self.n += n
        now = time.perf_counter()
        if now - self.shown >= 0.2 or self.n >= (self.total or 0):
            self.shown = now
            self.file.write("\r" + self.line(now))
            self.file.flush()

    def line(self, now=None):
        rate = (self.n - self.start) / max((now or time.perf_counter()) - self.t0, 1e-9)
        total = f"/{self.total}" if self.total else ""
        return f"{self.desc}  {self.n}{total}  {rate:.1f} {self.unit}/s  {self.postfix}".rstrip()

    def close(self):
        self.file.write("\r" + " " * min(len(self.line()), 200) + "\r")
        self.file.flush()


class _Off(_Closing):
    """What ``progress(enabled=False)`` returns: every call does nothing."""
    n = 0

    def set_postfix(self, refresh=True, **kw):
        pass

    def update(self, n=1):
        self.n += n

    def close(self):
        pass


def progress(total, desc="", *, enabled=True, unit="step", initial=0, file=None, plain=False):
    """A progress bar over ``total`` units (``None`` if unknown), on ``file`` (stderr).

    Returns an object with ``update(n)``, ``set_postfix(**values)`` and ``close()``,
    and a context manager that closes it.
    ``plain=True`` forces the built-in line even when tqdm is installed.
    """
    if not enabled:
        return _Off()
    file = sys.stderr if file is None else file
    if not plain:
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=file,
                        leave=False, dynamic_ncols=True)
    return _Line(total, desc, unit, initial, file)
