"""Figures: matplotlib loaded on demand (Agg backend) and PNGs written atomically.

matplotlib is imported only when a figure is drawn, so the rest of rnnlab runs
without it; a missing matplotlib is a ValueError naming the extra to install.
Every figure of the lab and of the applications goes through these two.
"""
from rnnlab.io.atomic import atomic_write


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend; a clear error without the extra."""
    try:
        import matplotlib
    except ImportError:
        raise ValueError('figures need matplotlib: pip install "rnnlab[plot]"') from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_png(fig, path, dpi=110):
    """Write ``fig`` to ``path`` as PNG (atomically), close it, return the path."""
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, dpi=dpi, format="png")
    pyplot().close(fig)
    return str(path)
