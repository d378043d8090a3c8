"""Bounds on what one option can ask for: a clear error before an allocation that
would exhaust the machine, instead of a MemoryError deep inside (or the kernel's
out-of-memory killer). Every application estimates its own need and calls
``check_memory`` before the first step."""
import os


def physical_memory():
    """Bytes of RAM on this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def human(nbytes):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if nbytes < 1024 or unit == "TB":
            return f"{nbytes:,.0f} {unit}" if unit == "B" else f"{nbytes:,.1f} {unit}"
        nbytes /= 1024


def check_memory(nbytes, what, fix, fraction=0.8, total=None):
    """Raise ValueError when ``what`` needs more than ``fraction`` of the RAM.

    ``fix`` says which options to lower; ``total`` overrides the RAM (for tests).
    """
    total = physical_memory() if total is None else total
    if total and nbytes > fraction * total:
        raise ValueError(f"{what} needs about {human(nbytes)} of memory, more than this "
                         f"machine's {human(total)} allow; {fix}")
