"""The JSONL metrics log (``OUT/metrics.jsonl``): one JSON object per finished epoch.

The rows that matter are also kept in the checkpoint (its ``history``), and the
file is rewritten from that history, atomically, whenever it changes. So after
any kill the log has exactly one row per epoch that the checkpoint has finished,
and a resumed run never repeats a row.
"""
import json
import math

from rnnlab.io.atomic import atomic_write


def _clean(record):
    # JSON has no inf/nan: write them as strings so every line stays valid JSON
    return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()}


def text(history):
    """The file's content for ``history``: one JSON object per line."""
    return "".join(json.dumps(_clean(record)) + "\n" for record in history)


def write(path, history):
    """Rewrite ``path`` to hold exactly the rows of ``history`` (a list of dicts)."""
    with atomic_write(path) as f:
        f.write(text(history))


def read(path):
    """The rows of a metrics file (a list of dicts)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
