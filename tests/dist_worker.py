"""Run by ``tests/test_dist_mpi.py`` under ``mpiexec -n N`` (or alone).

    python dist_worker.py trainer OUT [--ordered] [--parts K]
        the shared trainer on a regression task, each rank on its share of
        every minibatch through ``reduce_grads``; rank 0 writes OUT
    python dist_worker.py hang      rank 1 stops answering; rank 0 must time out
    python dist_worker.py raise     rank 1 raises; the job must end at once
    python dist_worker.py die       rank 1 is killed; the job must end
"""
import os
import signal
import sys
import time

import numpy as np

from rnnlab.dist import mpi
from rnnlab.training import trainer


class Regression:
    """y = x w + noise; minibatch i of epoch e is a (seed, e)-shuffled slice; each
    rank takes its part of it (``dp.slices``) and returns that part's mean."""

    def __init__(self, dp, n=96, batch=12):
        r = np.random.default_rng(0)
        self.x = r.standard_normal((n, 3)).astype(np.float32)
        self.y = (self.x @ np.array([1.0, -2.0, 0.5], np.float32)
                  + 0.01 * r.standard_normal(n).astype(np.float32))
        self.dp, self.batch = dp, batch

    def steps(self, epoch):
        return len(self.x) // self.batch

    def part(self, params, idx):
        err = self.x[idx] @ params["w"] - self.y[idx]                # (b,)
        return float(np.mean(err ** 2)), len(idx), {"w": 2 * self.x[idx].T @ err / len(idx)}

    def loss_and_grads(self, params, epoch, i, rng):
        order = np.random.default_rng([0, epoch]).permutation(len(self.x))
        idx = order[i * self.batch:(i + 1) * self.batch]
        if self.dp.comm is not None:        # this rank's part; reduce_grads sums the ranks'
            return self.part(params, idx[self.dp.slices(self.batch)[0]])
        # one process: the K parts in turn, summed in order (what --ordered ranks give)
        loss, count, grads, _ = self.dp.step(lambda c, _: self.part(params, idx[c]) + ((),),
                                             self.batch)
        return loss, count, grads

    def evaluate(self, params):
        return {"valid_loss": float(np.mean((self.x @ params["w"] - self.y) ** 2))}


def run_trainer(out, ordered, parts):
    dp = mpi.from_options(parts, ordered, timeout=60)
    cfg = trainer.TrainOptions(out=out, epochs=3, lr=0.05, progress=False, batch_size=12,
                               checkpoint_every=3)
    params = dp.broadcast({"w": np.zeros(3, np.float32)})
    with dp.fail_together():
        trainer.fit(cfg, Regression(dp), params, kind="test", log=lambda *a: None,
                    **dp.fit_hooks())


def main(argv):
    what = argv[0]
    if what == "trainer":
        parts = int(argv[argv.index("--parts") + 1]) if "--parts" in argv else 0
        return run_trainer(argv[1], "--ordered" in argv, parts)
    dp = mpi.from_options(timeout=3)
    grads = {"w": np.ones(4, np.float32)}
    with dp.fail_together():
        if dp.rank == 1 and what == "hang":
            time.sleep(120)
        if dp.rank == 1 and what == "raise":
            raise RuntimeError("disk full on rank 1")
        if dp.rank == 1 and what == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        dp.reduce_grads(1.0, 1, grads)
        dp.reduce_grads(1.0, 1, grads)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
