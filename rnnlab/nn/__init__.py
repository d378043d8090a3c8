"""Non-recurrent building blocks, forward and backward side by side."""
from rnnlab.nn.functional import (dropout_mask, embedding_backward, embedding_forward,
                                  linear_backward, linear_forward, log_softmax, mse,
                                  sigmoid, sigmoid_cross_entropy, softmax_cross_entropy)

__all__ = ["linear_forward", "linear_backward", "embedding_forward", "embedding_backward",
           "dropout_mask", "log_softmax", "softmax_cross_entropy", "sigmoid",
           "sigmoid_cross_entropy", "mse"]
