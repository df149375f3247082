"""The product kernels: every entry summed in its scalar order, bit for bit.

``linalg._gemm`` (one run) and ``lockstep._lanes_mm`` (a block of runs, one per
lane) must give each entry exactly the bits of ``((0 + a_0 b_0) + a_1 b_1) + ...``
with p ascending: the two trainers' bit-identity rests on it. The reference is
that sum written out in Python floats (IEEE double, no fused multiply-add).
"""

import numpy as np
import pytest
from numba import njit

from sweepengine.kernels import linalg, lockstep
from sweepengine.kernels.simd import view1, view2

# (m, k, n): row and column remainders of the 4 x 8 blocks, vectors of one, the
# largest loop-kernel size and BLAS sizes just above it
SHAPES = [(1, 1, 1), (3, 2, 5), (4, 8, 8), (5, 3, 9), (8, 8, 8), (7, 13, 12), (9, 6, 17),
          (2, 31, 3), (32, 32, 32), (48, 48, 48), (49, 48, 48), (20, 100, 70)]  # fmt: skip


def _sequential(A, B, C0=None):
    """A @ B (+ C0) entry by entry, p ascending from 0.0 (or from C0's entry)."""
    m, k = A.shape
    n = B.shape[1]
    out = np.empty((m, n))
    for i in range(m):
        for j in range(n):
            s = 0.0 if C0 is None else float(C0[i, j])
            for p in range(k):
                s += float(A[i, p]) * float(B[p, j])
            out[i, j] = s
    return out


def _check(got, A, B, C0=None):
    m, k = A.shape
    n = B.shape[1]
    if m * k * n <= linalg.SIMD_GEMM:
        np.testing.assert_array_equal(got, _sequential(A, B, C0))
    else:  # BLAS: its own order
        ref = A @ B + (0.0 if C0 is None else C0)
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())


@pytest.mark.parametrize("m,k,n", SHAPES, ids=lambda v: str(v))
def test_products_sum_in_scalar_order(rng, m, k, n):
    A, B, C0 = rng.standard_normal((m, k)), rng.standard_normal((k, n)), rng.standard_normal((m, n))
    scratch = np.empty(max(k * n, m * n))
    out = np.full((m, n), np.nan)
    linalg.mm(A, B, out)
    _check(out, A, B)
    out = np.full((m, n), np.nan)
    linalg.mm(np.ascontiguousarray(A.T).T, B, out)  # A as a transposed (F-ordered) view
    _check(out, A, B)
    out = C0.copy()
    linalg.mm_acc(A, B, out, scratch)
    _check(out, A, B, C0)
    Bt = np.ascontiguousarray(B.T)
    out = np.full((m, n), np.nan)
    linalg.mm_nt(A, Bt, out, scratch)
    _check(out, A, B)
    out = C0.copy()
    linalg.mm_nt(A, Bt, out, scratch, True)
    _check(out, A, B, C0)


def test_product_with_strided_rows_of_b(rng):
    """B a transposed view (rows not contiguous): loops up to SMALL_STRIDED, BLAS above."""
    for m, k, n in [(3, 4, 5), (8, 8, 8), (8, 64, 8)]:
        A, Bt, C0 = (
            rng.standard_normal((m, k)),
            rng.standard_normal((n, k)),
            rng.standard_normal((m, n)),
        )
        out = np.empty((m, n))
        linalg.mm(A, Bt.T, out)
        acc = C0.copy()
        linalg.mm_acc(A, Bt.T, acc, np.empty(m * n))
        if m * k * n <= linalg.SMALL_STRIDED:
            np.testing.assert_array_equal(out, _sequential(A, Bt.T))
            np.testing.assert_array_equal(acc, _sequential(A, Bt.T, C0))
        else:
            np.testing.assert_allclose(out, A @ Bt.T, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(acc, A @ Bt.T + C0, rtol=1e-12, atol=1e-12)


@njit
def _view2_written(buf, off, m, n):
    """A copy of view2(buf, off, m, n) after writing -1 at [1, 2] through the view (views
    are borrowed: they never go back to Python themselves)."""
    v = view2(buf, off, m, n)
    v[1, 2] = -1.0
    return v.copy()


@njit
def _view1_sum(buf, off, n):
    return view1(buf, off, n).sum()


def test_view2_of_contiguous_and_strided_buffers():
    buf = np.arange(40.0)
    want = buf[3:23].reshape(4, 5).copy()
    want[1, 2] = -1.0
    np.testing.assert_array_equal(_view2_written(buf, 3, 4, 5), want)
    assert buf[3 + 7] == -1.0  # written through: a view, not a copy
    strided = np.arange(80.0)[::2]
    want = strided[2:14].reshape(3, 4).copy()
    want[1, 2] = -1.0
    np.testing.assert_array_equal(_view2_written(strided, 2, 3, 4), want)
    assert strided[2 + 6] == -1.0
    assert _view1_sum(np.arange(10.0), 2, 5) == 2 + 3 + 4 + 5 + 6


def _lanes(rng, rows, nb, pad):
    """(rows, pad) lane arrays: nb random lanes, the rest zero."""
    a = np.zeros((rows, pad))
    a[:, :nb] = rng.standard_normal((rows, nb))
    return a


@pytest.mark.parametrize("nb", [1, 8, 13, 16])
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 5, 2), (8, 8, 8), (5, 4, 7)], ids=str)
def test_lane_products_equal_one_run_products_bitwise(rng, nb, m, k, n):
    pad = (nb + 7) // 8 * 8
    a0, b0, o0 = 3, 5, 2  # entries at offsets inside bigger buffers
    A = _lanes(rng, a0 + m * k, nb, pad)
    B = _lanes(rng, b0 + k * n, nb, pad)
    out = np.full((o0 + m * n, pad), np.nan)
    # A B, A^T B (A stored k x m) and A B^T (B stored n x k), each against _sequential per lane
    for name, (ai, ap, bp, bj) in {"nn": (k, 1, n, 1), "tn": (1, m, n, 1),
                                   "nt": (k, 1, 1, k)}.items():  # fmt: skip
        lockstep._lanes_mm(A, a0, ai, ap, B, b0, bp, bj, out, o0, m, k, n)
        for b in range(nb):
            Ab = A[a0 : a0 + m * k, b]
            Bb = B[b0 : b0 + k * n, b]
            Am = Ab.reshape(m, k) if name != "tn" else Ab.reshape(k, m).T
            Bm = Bb.reshape(k, n) if name != "nt" else Bb.reshape(n, k).T
            np.testing.assert_array_equal(out[o0:, b].reshape(m, n), _sequential(Am, Bm), name)


def test_lane_dots_equal_one_run_dot_bitwise(rng):
    for rows in (1, 3, 4, 9, 64):
        A, B = rng.standard_normal((rows, 16)), rng.standard_normal((rows, 16))
        v = rng.standard_normal(rows)
        acc, out, out2 = np.empty((4, 16)), np.empty(16), np.empty(16)
        lockstep.dot_lanes(A, B, acc, out)
        lockstep.dot_lanes_shared(A, v, acc, out2)
        for b in range(16):
            a = np.ascontiguousarray(A[:, b])
            assert out[b] == linalg.dot(a, np.ascontiguousarray(B[:, b]))
            assert out2[b] == linalg.dot(a, v)
