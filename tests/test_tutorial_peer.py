"""The benchmark's peer (the classic tutorial's NumPy RNN, re-created) is right, and
rnnlab computes the same truncated gradients on the same function."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import tutorial_peer as peer  # noqa: E402
import tutorial_rnnlm  # noqa: E402
from rnnlab.lab.gradcheck import check_grads  # noqa: E402


def test_peer_full_bptt_matches_finite_differences():
    rng = np.random.default_rng(0)
    p = peer.init(11, 4, rng)
    ids = rng.integers(0, 11, size=7)
    x, y = ids[:-1], ids[1:]

    def f(q):
        dU, dV, dW = peer.bptt(q, x, y, bptt_truncate=100)          # no truncation
        return peer.loss(q, x, y), {"U": dU, "V": dV, "W": dW}
    assert max(check_grads(f, p).values()) < 1e-7


def test_rnnlab_gives_the_tutorials_truncated_gradients():
    rng = np.random.default_rng(1)
    p = peer.init(13, 5, rng)
    ids = rng.integers(0, 13, size=12)                             # longer than the truncation
    assert tutorial_rnnlm.same_gradients(p, ids) < 1e-12
