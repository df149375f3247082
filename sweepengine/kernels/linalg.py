"""Small dense products used by every kernel.

Products up to ``SIMD_GEMM`` multiply-adds use the register-blocked kernel
``_gemm`` (explicit 4-wide vectors, ``simd``); larger ones call BLAS through
``np.dot``. In ``_gemm`` every entry is summed as its scalar definition,
``((0 + a_0 b_0) + a_1 b_1) + ...`` with p ascending and no fused multiply-add,
whatever the blocking: the lock-step trainer sums each run's entries in the same
order, which keeps the two trainers bit-identical.
"""

import numpy as np
from numba import njit

from .._config import JIT
from .simd import load4, madd4s, store4, view2, zero4

# Products with m*k*n at most this use ``_gemm``; larger ones call BLAS through
# scipy. Measured, square d x d x d, 1 thread, ns per product, OpenBLAS in brackets:
# d = 4: 26 [99], 8: 61 [149], 16: 253 [432], 32: 1,714 [2,328], 48: 5,654 [6,510],
# 64: 14,286 [14,050] (_gemm does no cache blocking; 64^3 outgrows L1). Defined
# here, not in _config: Numba's cache tracks this file, not imported globals.
SIMD_GEMM = 48 * 48 * 48
# A B with strided rows of B (a transposed view, e.g. R X^T of the data form):
# scalar loops up to this size, BLAS above.
SMALL_STRIDED = 8 * 8 * 8


@njit(**JIT)
def copy1(dst, src):
    """dst[:] = src for vectors of one length. Kernels copy with these loops rather than
    NumPy slice assignment, whose shape-mismatch error message costs every process that
    compiles one about 3 s with a cold cache (its formatting code is compiled)."""
    for i in range(dst.shape[0]):
        dst[i] = src[i]


@njit(**JIT)
def copy2(dst, src):
    """dst[:, :] = src for matrices of one shape (any layouts); see :func:`copy1`."""
    for i in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[i, j] = src[i, j]


@njit(**JIT)
def _gemm(A, B, out, acc):
    """out = A @ B (acc False) or out += A @ B (acc True).

    B and out need unit inner stride (rows loaded as vectors); A any layout.
    Blocks of 4 rows x 8 columns (8 vector accumulators) while they fit, then
    4 x 4; the last 1-3 columns by a 4 x 4 block ending at column n (overlapping
    columns are recomputed with the same bits) or, when accumulating or n < 4, by
    scalar loops. A last partial row block repeats its last row (the duplicates
    store the same values).
    """
    m, k = A.shape
    n = B.shape[1]
    for i0 in range(0, m, 4):
        i1, i2, i3 = min(i0 + 1, m - 1), min(i0 + 2, m - 1), min(i0 + 3, m - 1)
        j = 0
        while j + 8 <= n:
            if acc:
                c0, c1 = load4(out, i0, j), load4(out, i0, j + 4)
                c2, c3 = load4(out, i1, j), load4(out, i1, j + 4)
                c4, c5 = load4(out, i2, j), load4(out, i2, j + 4)
                c6, c7 = load4(out, i3, j), load4(out, i3, j + 4)
            else:
                c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = zero4()
            for p in range(k):
                x, y = load4(B, p, j), load4(B, p, j + 4)
                a = A[i0, p]
                c0, c1 = madd4s(c0, a, x), madd4s(c1, a, y)
                a = A[i1, p]
                c2, c3 = madd4s(c2, a, x), madd4s(c3, a, y)
                a = A[i2, p]
                c4, c5 = madd4s(c4, a, x), madd4s(c5, a, y)
                a = A[i3, p]
                c6, c7 = madd4s(c6, a, x), madd4s(c7, a, y)
            store4(out, i0, j, c0)
            store4(out, i0, j + 4, c1)
            store4(out, i1, j, c2)
            store4(out, i1, j + 4, c3)
            store4(out, i2, j, c4)
            store4(out, i2, j + 4, c5)
            store4(out, i3, j, c6)
            store4(out, i3, j + 4, c7)
            j += 8
        while j < n:
            if j + 4 > n:
                if acc or n < 4:
                    break  # scalar columns below
                j = n - 4  # a last block overlapping the previous one: same bits again
            if acc:
                c0, c2 = load4(out, i0, j), load4(out, i1, j)
                c4, c6 = load4(out, i2, j), load4(out, i3, j)
            else:
                c0 = c2 = c4 = c6 = zero4()
            for p in range(k):
                x = load4(B, p, j)
                c0 = madd4s(c0, A[i0, p], x)
                c2 = madd4s(c2, A[i1, p], x)
                c4 = madd4s(c4, A[i2, p], x)
                c6 = madd4s(c6, A[i3, p], x)
            store4(out, i0, j, c0)
            store4(out, i1, j, c2)
            store4(out, i2, j, c4)
            store4(out, i3, j, c6)
            j += 4
        for jj in range(j, n):
            for i in range(i0, min(i0 + 4, m)):
                s = out[i, jj] if acc else 0.0
                for p in range(k):
                    s += A[i, p] * B[p, jj]
                out[i, jj] = s


@njit(**JIT)
def _rows_contiguous(a):
    return a.shape[1] <= 1 or a.strides[1] == a.itemsize


@njit(**JIT)
def _transpose_into(B, scratch):
    """B^T as a (B.shape[1], B.shape[0]) view of ``scratch``."""
    k, n = B.shape[1], B.shape[0]
    T = view2(scratch, 0, k, n)
    for j in range(n):
        for p in range(k):
            T[p, j] = B[j, p]
    return T


@njit(**JIT)
def _product(A, B, out, scratch, acc):
    """out = A @ B, or out += A @ B (acc; BLAS then adds through ``scratch``).

    ``_gemm`` when it applies; B with strided rows (a transposed view, e.g. R X^T
    of the data form) is summed by plain loops in the same order up to
    ``SMALL_STRIDED``; BLAS above either size.
    """
    m, k = A.shape
    n = B.shape[1]
    if m * k * n <= SIMD_GEMM and _rows_contiguous(B) and _rows_contiguous(out):
        _gemm(A, B, out, acc)
    elif m * k * n <= SMALL_STRIDED:
        for i in range(m):
            for j in range(n):
                s = out[i, j] if acc else 0.0
                for p in range(k):
                    s += A[i, p] * B[p, j]
                out[i, j] = s
    else:
        _blas(A, B, out, scratch, acc)


@njit(**JIT)
def mm(A, B, out):
    """out = A @ B."""
    m, k = A.shape
    if m * k * B.shape[1] <= SIMD_GEMM and _rows_contiguous(B) and _rows_contiguous(out):
        _gemm(A, B, out, False)  # the common case first, without the dispatch's layers
    else:
        _product(A, B, out, out[0], False)  # (no scratch needed without acc)


@njit(**JIT)
def _blas(A, B, out, scratch, acc):
    """out = A @ B, or out += A @ B through ``scratch`` (acc), by BLAS."""
    if not acc:
        np.dot(A, B, out)
        return
    m, n = out.shape
    t = view2(scratch, 0, m, n)
    np.dot(A, B, t)
    for i in range(m):
        for j in range(n):
            out[i, j] += t[i, j]


@njit(**JIT)
def mm_acc(A, B, out, scratch):
    """out += A @ B; ``scratch`` is a 1-D buffer of at least out.size entries."""
    _product(A, B, out, scratch, True)


@njit(**JIT)
def mm_nt(A, B, out, scratch, acc=False):
    """out = A @ B^T, or out += A @ B^T (acc), with B stored (n, k).

    ``scratch`` holds at least max(B.size, out.size) entries (B^T for ``_gemm``).
    """
    m, k = A.shape
    n = B.shape[0]
    if m * k * n <= SIMD_GEMM:
        _gemm(A, _transpose_into(B, scratch), out, acc)
    else:
        _blas(A, B.T, out, scratch, acc)


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
