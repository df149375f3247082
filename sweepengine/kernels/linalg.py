"""Small dense products used by every kernel.

Hand-written loops below ``SMALL_GEMM`` flops (no BLAS call overhead, which
dominates at the widths sweeps use), BLAS through ``np.dot`` above it.
"""

import numpy as np
from numba import njit

from .._config import JIT

# Products with m*k*n at most this use hand-written loops; larger ones call BLAS
# through scipy. Measured (1 thread, alone): loops 39 ns vs BLAS 104 ns at 4x4x4,
# 182 vs 164 ns at 8x8x8, 6.9 vs 2.4 us at 32x32x32; inside the batched trainer
# loops at 8x8x8 gave 1.7x the run-steps/s of BLAS (no per-call BLAS overhead).
# Defined here, not in _config: Numba's cache tracks this file, not imported globals.
SMALL_GEMM = 8 * 8 * 8


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
    """sum_i a_i b_i over two 1-D arrays.

    Four interleaved partial sums, added in a fixed order: reproducible
    whatever the thread count, and 2.5x faster than one accumulator (which
    cannot vectorise without fastmath).
    """
    n = a.size
    s0 = s1 = s2 = s3 = 0.0
    n4 = n - n % 4
    for i in range(0, n4, 4):
        s0 += a[i] * b[i]
        s1 += a[i + 1] * b[i + 1]
        s2 += a[i + 2] * b[i + 2]
        s3 += a[i + 3] * b[i + 3]
    for i in range(n4, n):
        s0 += a[i] * b[i]
    return (s0 + s1) + (s2 + s3)
