"""Non-recurrent building blocks, forward and backward side by side."""
from rnnlab.nn.functional import (RowGrad, dropout_mask, embedding_backward,
                                  embedding_backward_rows, embedding_forward, linear_backward,
                                  linear_cross_entropy, linear_forward, log_softmax, mse,
                                  sigmoid, sigmoid_cross_entropy, sigmoid_nll_rows,
                                  softmax_cross_entropy)

__all__ = ["linear_forward", "linear_backward", "linear_cross_entropy", "embedding_forward",
           "embedding_backward", "embedding_backward_rows", "RowGrad", "dropout_mask",
           "log_softmax", "softmax_cross_entropy", "sigmoid", "sigmoid_cross_entropy",
           "sigmoid_nll_rows", "mse"]
