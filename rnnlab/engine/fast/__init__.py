"""The compiled fast path (numba): each layer-direction's whole time loop as one call."""
