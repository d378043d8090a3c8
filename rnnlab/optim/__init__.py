"""Optimisers (pure functions over flat parameter dicts), clipping and schedules."""
from rnnlab.optim.optimizers import (OPTIMIZERS, Optimizer, adagrad, adam, clip_by_global_norm,
                                     global_norm, make, rmsprop, sgd)

__all__ = ["Optimizer", "OPTIMIZERS", "make", "sgd", "adam", "rmsprop", "adagrad",
           "global_norm", "clip_by_global_norm"]
