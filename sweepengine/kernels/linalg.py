"""Small dense products used by every kernel.

Hand-written loops below ``SMALL_GEMM`` flops (no BLAS call overhead, which
dominates at the widths sweeps use), BLAS through ``np.dot`` above it.
"""

import numpy as np
from numba import njit

from .._config import JIT, SMALL_GEMM


@njit(**JIT)
def mm(A, B, out):
    """out = A @ B."""
    m, k = A.shape
    n = B.shape[1]
    if m * k * n <= SMALL_GEMM:
        for i in range(m):
            for j in range(n):
                out[i, j] = 0.0
            for p in range(k):
                a = A[i, p]
                for j in range(n):
                    out[i, j] += a * B[p, j]
    else:
        np.dot(A, B, out)


@njit(**JIT)
def mm_acc(A, B, out, scratch):
    """out += A @ B; ``scratch`` is a 1-D buffer of at least out.size entries."""
    m, k = A.shape
    n = B.shape[1]
    if m * k * n <= SMALL_GEMM:
        for i in range(m):
            for p in range(k):
                a = A[i, p]
                for j in range(n):
                    out[i, j] += a * B[p, j]
    else:
        t = scratch[: m * n].reshape((m, n))
        np.dot(A, B, t)
        for i in range(m):
            for j in range(n):
                out[i, j] += t[i, j]


@njit(**JIT)
def set_identity(out):
    """out = I (square)."""
    n = out.shape[0]
    for i in range(n):
        for j in range(n):
            out[i, j] = 0.0
        out[i, i] = 1.0


@njit(**JIT)
def dot(a, b):
    """sum_i a_i b_i over two 1-D arrays (fixed order: reproducible)."""
    s = 0.0
    for i in range(a.size):
        s += a[i] * b[i]
    return s
