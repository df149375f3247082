"""Pure compiled kernels on float64 arrays: no I/O, no validation, no Python objects.

Layout conventions (see ``sweepengine._layout``): parameters are one flat
vector ``theta`` (W_1..W_K, each row-major) with ``dims`` = (d_0..d_K) int64.
Per-node work buffers (prefix products, backpropagated errors) share one
layout: node k holds a (d_k, d_0) block at ``node_offsets(dims)[k]``.
"""
