"""sweepengine.theory against independent references.

References here never reuse the module's route (SVD of X, eigh of Cxx):
Sigma through numpy's pinv and eigvalsh, L* through Eckart-Young on the
whitened problem, least squares through lstsq, subsets through itertools,
gradients and Hessians through tests/naive.py, and the rank cap through
BFGS on the factorised loss.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.optimize

from sweepengine import theory
from sweepengine.stats import Stats
from tests import naive


def make_data(d_x, d_y, m, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((d_x, m))
    Y = rng.standard_normal((d_y, d_x)) @ X + 0.5 * rng.standard_normal((d_y, m))
    return X, Y


def ref_eigvals(X, Y):
    """Eigenvalues of Sigma = Cyx pinv(Cxx) Cyx^T, descending (numpy route)."""
    Cxx, Cyx = X @ X.T, Y @ X.T
    Sigma = Cyx @ np.linalg.pinv(Cxx, rcond=1e-10, hermitian=True) @ Cyx.T
    return np.clip(np.linalg.eigvalsh(0.5 * (Sigma + Sigma.T))[::-1], 0, None)


def ref_global_minimum_whitened(X, Y, p):
    """Eckart-Young: 1/2 ||Y||^2 - 1/2 sum of the top-p squared singular values of
    Y X^T Cxx^{-1/2} (Cxx invertible)."""
    s, V = np.linalg.eigh(X @ X.T)
    C_inv_half = V @ np.diag(s**-0.5) @ V.T
    sv = np.linalg.svd(Y @ X.T @ C_inv_half, compute_uv=False)
    return 0.5 * np.sum(Y * Y) - 0.5 * np.sum(sv[:p] ** 2)


def rank_cap(X, Y, widths):
    return min(X.shape[0], Y.shape[0], *widths)


def all_subsets(n, p):
    for k in range(min(n, p) + 1):
        yield from itertools.combinations(range(n), k)


def chain(W, d0):
    """W[-1] ... W[0], the identity of size d0 for an empty list."""
    P = np.eye(d0)
    for w in W:
        P = w @ P
    return P


def gradient_is_zero(W, X, Y, rtol=1e-10):
    """Every ||dL/dW_k|| is tiny next to ||A_k|| (||P Cxx|| + ||Cyx||) ||B_k||."""
    P = naive.product(W)
    scale_G = np.linalg.norm(P @ X @ X.T) + np.linalg.norm(Y @ X.T)
    for k, g in enumerate(naive.gradient(W, X, Y)):
        A = chain(W[k + 1 :], W[k].shape[0])
        B = chain(W[:k], X.shape[0])
        bound = np.linalg.norm(A, 2) * scale_G * np.linalg.norm(B, 2)
        if np.linalg.norm(g) > rtol * bound + 1e-300:
            return False
    return True


# ------------------------------------------------------------------------ statistics, Sigma


def test_stats_float64_from_int():
    X = np.arange(6).reshape(2, 3)
    Y = np.array([[1, 0, 2]])
    Cxx, Cyx, yy = Stats.from_data(X, Y)
    assert Cxx.dtype == Cyx.dtype == np.float64
    np.testing.assert_array_equal(Cxx, X @ X.T)
    np.testing.assert_array_equal(Cyx, Y @ X.T)
    assert yy == 5.0 and isinstance(yy, float)


@pytest.mark.parametrize("shape", [(3, 4, 10), (6, 3, 4), (2, 5, 7)])
def test_sigma_spectrum_matches_pinv(shape):
    d_x, d_y, m = shape
    X, Y = make_data(d_x, d_y, m)
    l, U = theory.sigma_spectrum(X @ X.T, Y @ X.T)
    ref = ref_eigvals(X, Y)
    assert l.shape == (d_y,) and U.shape == (d_y, d_y)
    assert np.all(np.diff(l) <= 0) and np.all(l >= 0)
    np.testing.assert_allclose(l, ref, rtol=1e-9, atol=1e-9 * ref[0])
    np.testing.assert_allclose(U.T @ U, np.eye(d_y), atol=1e-12)
    Sigma = (Y @ X.T) @ np.linalg.pinv(X @ X.T, rcond=1e-10, hermitian=True) @ (X @ Y.T)
    np.testing.assert_allclose(Sigma @ U, U * l, atol=1e-9 * ref[0])


def test_rank_cap():
    assert theory.rank_cap(5, 3, [4, 2]) == 2
    assert theory.rank_cap(5, 3, []) == 3
    assert theory.rank_cap(1, 3, [4]) == 1


# ------------------------------------------------------------------------ global minimum


@pytest.mark.parametrize(
    "shape, widths",
    [((4, 3, 12), [2]), ((4, 3, 12), [1]), ((5, 5, 20), [3, 4]), ((3, 6, 9), [8, 2, 5])],
)
def test_global_minimum_eckart_young(shape, widths):
    X, Y = make_data(*shape, seed=1)
    ref = ref_global_minimum_whitened(X, Y, rank_cap(X, Y, widths))
    assert theory.global_minimum(X, Y, widths) == pytest.approx(ref, rel=1e-10)
    stats = Stats.from_data(X, Y)
    assert theory.global_minimum_from_stats(*stats, widths) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("widths", [[], [2], [3, 1]])
def test_global_minimum_singular_cxx_reduces_to_row_space(widths):
    # d_x > m: X X^T is singular. In the coordinates Z = Q^T X of X's column
    # space (X = Q R), the same problem has an invertible Z Z^T.
    X, Y = make_data(7, 3, 4, seed=2)
    Q, _ = np.linalg.qr(X)
    Z = Q.T @ X
    ref = ref_global_minimum_whitened(Z, Y, rank_cap(Z, Y, widths))
    assert theory.global_minimum(X, Y, widths) == pytest.approx(ref, rel=1e-9, abs=1e-12)
    got = theory.global_minimum_from_stats(*Stats.from_data(X, Y), widths)
    assert got == pytest.approx(ref, rel=1e-8, abs=1e-10 * np.sum(Y * Y))


def test_global_minimum_duplicated_rows():
    X, Y = make_data(3, 4, 10, seed=3)
    X2 = np.vstack([X, X[:2], 2.0 * X[1:2]])
    for widths in ([], [2], [1, 5]):
        ref = theory.global_minimum(X, Y, widths)
        assert theory.global_minimum(X2, Y, widths) == pytest.approx(ref, rel=1e-10)
        stats = Stats.from_data(X2, Y)
        assert theory.global_minimum_from_stats(*stats, widths) == pytest.approx(ref, rel=1e-8)


@pytest.mark.parametrize("shape", [(4, 3, 12), (7, 2, 4), (2, 5, 9)])
def test_global_minimum_no_hidden_layer_is_least_squares(shape):
    X, Y = make_data(*shape, seed=4)
    B = np.linalg.lstsq(X.T, Y.T, rcond=None)[0].T
    ref = 0.5 * np.sum((B @ X - Y) ** 2)
    assert theory.global_minimum(X, Y, []) == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_global_minimum_realizable_is_zero_to_rounding():
    # Y = A X with rank(A) = 2 <= p: L* = 0, and the data route keeps it near 0
    # rather than yy times eps.
    rng = np.random.default_rng(5)
    X = rng.standard_normal((5, 30))
    A = rng.standard_normal((4, 2)) @ rng.standard_normal((2, 5))
    Y = A @ X
    yy = np.sum(Y * Y)
    assert abs(theory.global_minimum(X, Y, [2])) < 1e-13 * yy
    assert abs(theory.global_minimum_from_stats(*Stats.from_data(X, Y), [2])) < 1e-10 * yy
    # ...and with a width-1 bottleneck it is not.
    assert theory.global_minimum(X, Y, [1]) > 1e-3 * yy


@pytest.mark.parametrize("widths", [[1], [2], [2, 1]])
def test_global_minimum_against_bfgs_on_factorised_loss(widths):
    # Independent of the eigen-analysis: minimise L over the factors directly.
    X, Y = make_data(3, 3, 8, seed=6)
    dims = [3, *widths, 3]
    shapes = [(dims[k + 1], dims[k]) for k in range(len(dims) - 1)]

    def f(theta):
        W = naive.unflat(theta, shapes)
        return naive.loss(W, X, Y), naive.flat(naive.gradient(W, X, Y))

    rng = np.random.default_rng(7)
    n = sum(r * c for r, c in shapes)
    best = min(
        scipy.optimize.minimize(f, rng.standard_normal(n), jac=True, method="BFGS").fun
        for _ in range(4)
    )
    assert best == pytest.approx(theory.global_minimum(X, Y, widths), rel=1e-6)


def test_global_minimum_below_random_weights():
    X, Y = make_data(4, 3, 10, seed=8)
    L_star = theory.global_minimum(X, Y, [2])
    rng = np.random.default_rng(9)
    for _ in range(200):
        W = [rng.standard_normal((2, 4)), rng.standard_normal((3, 2))]
        assert naive.loss(W, X, Y) >= L_star


# ------------------------------------------------------------------------ critical points

DATA = {"tall": (3, 4, 9), "wide": (5, 2, 7), "singular": (6, 3, 4)}
WIDTHS = [[], [1], [2], [5], [3, 1], [4, 2], [2, 5, 3], [3, 1, 4, 2], [4, 4, 4, 4]]


@pytest.mark.parametrize("source", ["data", "stats"])
@pytest.mark.parametrize("widths", WIDTHS, ids=lambda w: "w=" + "-".join(map(str, w)))
@pytest.mark.parametrize("data", list(DATA), ids=str)
def test_critical_points_every_subset(data, widths, source):
    X, Y = make_data(*DATA[data], seed=10)
    yy = np.sum(Y * Y)
    ref = ref_eigvals(X, Y)
    p = rank_cap(X, Y, widths)
    levels = theory.critical_values(X, Y, widths)
    subsets = [tuple(range(p))] if not widths else list(all_subsets(Y.shape[0], p))
    dims = [X.shape[0], *widths, Y.shape[0]]
    for S in subsets:
        if source == "data":
            W = theory.critical_point(X, Y, widths, S)
        else:
            W = theory.critical_point_from_stats(X @ X.T, Y @ X.T, widths, S)
        assert [w.shape for w in W] == [(dims[k + 1], dims[k]) for k in range(len(dims) - 1)]
        assert all(w.dtype == np.float64 for w in W)
        assert gradient_is_zero(W, X, Y), S
        loss = naive.loss(W, X, Y)
        predicted = 0.5 * (yy - np.sum(ref[list(S)]))
        assert loss == pytest.approx(predicted, rel=1e-9, abs=1e-10 * yy), S
        assert np.min(np.abs(levels - loss)) <= 1e-9 * yy, S


@pytest.mark.parametrize("widths", [[2], [3, 2], [2, 4, 3]])
def test_critical_point_balanced_and_rescaled(widths):
    X, Y = make_data(4, 3, 9, seed=11)
    W = theory.critical_point(X, Y, widths, [0, 2])
    for lower, upper in zip(W[:-1], W[1:], strict=True):
        np.testing.assert_allclose(upper.T @ upper, lower @ lower.T, atol=1e-12)
    P = naive.product(W)
    for kw in [dict(scale=0.3), dict(rng=5), dict(scale=2.0, rng=np.random.default_rng(1))]:
        V = theory.critical_point(X, Y, widths, [0, 2], **kw)
        np.testing.assert_allclose(naive.product(V), P, atol=1e-12 * np.abs(P).max())
        assert gradient_is_zero(V, X, Y)
        assert not np.allclose(V[0], W[0])
    # A seed gives a reproducible point.
    a = theory.critical_point(X, Y, widths, [0, 2], rng=3)
    b = theory.critical_point(X, Y, widths, [0, 2], rng=3)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


@pytest.mark.parametrize("widths", [[1], [2, 2], [3, 1, 2]])
def test_empty_subset_is_zero(widths):
    X, Y = make_data(3, 3, 6, seed=12)
    W = theory.critical_point(X, Y, widths, [])
    assert all(not w.any() for w in W)
    assert naive.loss(W, X, Y) == pytest.approx(0.5 * np.sum(Y * Y))


@pytest.mark.parametrize("data", list(DATA), ids=str)
@pytest.mark.parametrize("widths", [[], [1], [2, 3], [4, 4, 1]])
def test_global_minimizer_attains_global_minimum(data, widths):
    X, Y = make_data(*DATA[data], seed=13)
    L_star = theory.global_minimum(X, Y, widths)
    tol = 1e-10 * np.sum(Y * Y)
    for W in [
        theory.global_minimizer(X, Y, widths),
        theory.global_minimizer(X, Y, widths, scale=0.5, rng=0),
        theory.global_minimizer_from_stats(X @ X.T, Y @ X.T, widths),
    ]:
        assert naive.loss(W, X, Y) == pytest.approx(L_star, rel=1e-9, abs=tol)
        assert gradient_is_zero(W, X, Y)


# ------------------------------------------------------------------------ critical values


@pytest.mark.parametrize("data", list(DATA), ids=str)
@pytest.mark.parametrize("widths", [[1], [2], [3, 5], [4, 4, 4]])
def test_critical_values_against_all_subsets(data, widths):
    X, Y = make_data(*DATA[data], seed=14)
    yy = np.sum(Y * Y)
    cv = theory.critical_values(X, Y, widths)
    assert cv.dtype == np.float64 and cv.ndim == 1
    assert np.all(np.diff(cv) > 1e-9 * yy / 2)
    assert cv[-1] == 0.5 * yy
    assert cv[0] == pytest.approx(theory.global_minimum(X, Y, widths), rel=1e-12)
    ref = ref_eigvals(X, Y)
    brute = np.array(
        [0.5 * (yy - ref[list(S)].sum()) for S in all_subsets(Y.shape[0], rank_cap(X, Y, widths))]
    )
    # Same set up to tolerance, both ways.
    assert np.max(np.min(np.abs(brute[:, None] - cv[None, :]), axis=1)) < 1e-9 * yy
    assert np.max(np.min(np.abs(cv[:, None] - brute[None, :]), axis=1)) < 1e-9 * yy
    stats = theory.critical_values_from_stats(X @ X.T, Y @ X.T, yy, widths)
    np.testing.assert_allclose(stats, cv, rtol=1e-9, atol=1e-9 * yy)


def test_critical_values_count_distinct_and_rank_deficient():
    X, Y = make_data(3, 4, 9, seed=15)  # rank(Sigma) = 3 < d_y = 4
    assert theory.critical_values(X, Y, [2]).size == 1 + 3 + 3
    assert theory.critical_values(X, Y, [9]).size == 2**3
    X, Y = make_data(2, 5, 9, seed=15)  # three zero eigenvalues
    assert theory.critical_values(X, Y, [3]).size == 4


def test_critical_values_with_tied_eigenvalues():
    # X = I, Y = diag(2, 2, 1): Sigma = diag(4, 4, 1), yy = 9. With p = 2 the
    # chosen sums are {0, 1, 4, 5, 8}.
    X = np.eye(3)
    Y = np.diag([2.0, 2.0, 1.0])
    np.testing.assert_allclose(
        theory.critical_values(X, Y, [2]), 0.5 * (9 - np.array([8, 5, 4, 1, 0])), rtol=1e-14
    )


def test_critical_values_no_hidden_layer_is_only_the_minimum():
    X, Y = make_data(3, 4, 9, seed=16)
    np.testing.assert_allclose(
        theory.critical_values(X, Y, []), [theory.global_minimum(X, Y, [])], rtol=1e-14
    )


def test_critical_values_too_many_subsets():
    X, Y = make_data(12, 12, 30, seed=17)
    with pytest.raises(ValueError, match=r"4096 subsets.*4096 distinct.*max_count = 1000"):
        theory.critical_values(X, Y, [12], max_count=1000)
    assert theory.critical_values(X, Y, [12], max_count=4096).size == 4096
    X, Y = make_data(40, 40, 50, seed=17)
    with pytest.raises(ValueError, match=r"1099511627776 subsets"):
        theory.critical_values(X, Y, [40])
    # Zero eigenvalues do not count: rank 2 leaves 4 combinations for any d_y.
    X, Y = make_data(2, 40, 60, seed=17)
    assert theory.critical_values(X, Y, [40], max_count=4).size == 4


# ------------------------------------------------------------------------ nearest level


def brute_nearest(loss, l, yy, p):
    best = None
    for S in all_subsets(l.size, p):
        level = 0.5 * (yy - l[list(S)].sum())
        key = (abs(level - loss), len(S))
        if best is None or key < best[0]:
            best = (key, level, len(S))
    return best[1], best[2]


def test_nearest_critical_value_exact_matches_brute_force():
    X, Y = make_data(5, 5, 20, seed=18)
    Cxx, Cyx, yy = Stats.from_data(X, Y)
    l, _ = theory.sigma_spectrum(Cxx, Cyx)
    rng = np.random.default_rng(19)
    L_star = theory.global_minimum(X, Y, [3])
    losses = rng.uniform(L_star - 1, 0.5 * yy + 1, size=300)
    got = theory.nearest_critical_value(losses, l, yy, 3)
    assert got.method == "exact"
    assert got.value.shape == got.rank.shape == losses.shape
    for x, v, r in zip(losses, got.value, got.rank, strict=True):
        ref_v, ref_r = brute_nearest(x, ref_eigvals(X, Y), yy, 3)
        assert v == pytest.approx(ref_v, rel=1e-10) and r == ref_r
    # Scalar call: plain numbers, same answer; eigenvalue order does not matter.
    one = theory.nearest_critical_value(float(losses[0]), l[::-1], yy, 3)
    assert isinstance(one.value, float) and isinstance(one.rank, int)
    assert (one.value, one.rank) == (got.value[0], got.rank[0])


def test_nearest_critical_value_top_fallback():
    l = np.array([5.0, 3.0, 2.0, 1.0])
    yy = 20.0
    top = 0.5 * (yy - np.array([0, 5, 8, 10]))  # S = {}, {1}, {1,2}, {1,2,3}
    got = theory.nearest_critical_value([10.1, 7.4, 5.8, 0.0, 99.0], l, yy, 3, method="top")
    assert got.method == "top"
    np.testing.assert_allclose(got.value, top[[0, 1, 2, 3, 0]])
    np.testing.assert_array_equal(got.rank, [0, 1, 2, 3, 0])
    # Among all subsets 6.9 is nearest to 1/2 (20 - 5 - 1) = 7.0, |S| = 2; among
    # the top ones to 1/2 (20 - 5) = 7.5.
    exact = theory.nearest_critical_value(6.9, l, yy, 3)
    assert (exact.value, exact.rank, exact.method) == (7.0, 2, "exact")
    # auto falls back to top past max_count; exact refuses.
    auto = theory.nearest_critical_value(6.9, l, yy, 3, max_count=4)
    assert (auto.value, auto.rank, auto.method) == (7.5, 1, "top")
    with pytest.raises(ValueError, match="max_count"):
        theory.nearest_critical_value(6.9, l, yy, 3, method="exact", max_count=4)


# ------------------------------------------------------------------------ Hessians


def hessian_extremes(W, X, Y):
    ev = np.linalg.eigvalsh(naive.hessian(W, X, Y))
    return ev[0], ev[-1]


def test_strict_saddle_for_one_hidden_layer():
    X, Y = make_data(3, 3, 8, seed=20)
    # Missing the top direction: strict saddle (Baldi and Hornik).
    for S in ([1, 2], [1], [0], []):
        W = theory.critical_point(X, Y, [2], S, rng=0)
        lo, hi = hessian_extremes(W, X, Y)
        assert lo < -1e-3 * hi, S
    # The global minimizer has no negative curvature.
    lo, hi = hessian_extremes(theory.global_minimizer(X, Y, [2], rng=0), X, Y)
    assert lo > -1e-9 * hi


@pytest.mark.parametrize("widths", [[2, 2], [3, 1, 2], [1, 1, 1, 1]])
def test_zero_is_a_bad_saddle_for_two_or_more_hidden_layers(widths):
    X, Y = make_data(3, 3, 8, seed=21)
    W = theory.critical_point(X, Y, widths, [])
    assert gradient_is_zero(W, X, Y)
    assert not naive.hessian(W, X, Y).any()
    assert naive.loss(W, X, Y) > theory.global_minimum(X, Y, widths)


# ------------------------------------------------------------------------ input handling


def test_integer_and_float32_input_converted():
    X, Y = make_data(3, 2, 6, seed=22)
    Xi, Yi = np.round(3 * X).astype(np.int32), np.round(3 * Y).astype(np.int64)
    Xf, Yf = Xi.astype(np.float64), Yi.astype(np.float64)
    assert theory.global_minimum(Xi, Yi, [1]) == theory.global_minimum(Xf, Yf, [1])
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    ref = theory.global_minimum(X32.astype(np.float64), Y32.astype(np.float64), [1])
    assert theory.global_minimum(X32, Y32, [1]) == ref
    W = theory.critical_point(X32, Y32, [2], [1])
    assert all(w.dtype == np.float64 for w in W)


X0, Y0 = make_data(3, 2, 6, seed=23)
C0 = (X0 @ X0.T, Y0 @ X0.T, float(np.sum(Y0 * Y0)))
L0 = theory.sigma_spectrum(C0[0], C0[1])[0]

BAD = {
    "m mismatch": (lambda: theory.global_minimum(X0, Y0[:, :5], [1]), "X and Y"),
    "nan in X": (lambda: theory.global_minimum(np.where(X0 > 1, np.nan, X0), Y0, [1]), "X"),
    "inf in Y": (lambda: theory.critical_values(X0, Y0 * np.inf, [1]), "Y"),
    "empty X": (lambda: theory.global_minimum(np.zeros((3, 0)), np.zeros((2, 0)), [1]), "X"),
    "1-D Y": (lambda: theory.global_minimum(X0, Y0[0], [1]), "Y"),
    "string X": (lambda: theory.global_minimum(X0.astype(str), Y0, [1]), "X"),
    "width 0": (lambda: theory.global_minimum(X0, Y0, [2, 0]), "hidden_widths"),
    "width float": (lambda: theory.global_minimum(X0, Y0, [2.5]), "hidden_widths"),
    "width bare int": (lambda: theory.global_minimum(X0, Y0, 3), "hidden_widths"),
    "subset range": (lambda: theory.critical_point(X0, Y0, [2], [2]), "subset"),
    "subset negative": (lambda: theory.critical_point(X0, Y0, [2], [-1]), "subset"),
    "subset repeat": (lambda: theory.critical_point(X0, Y0, [2], [0, 0]), "subset"),
    "subset too big": (lambda: theory.critical_point(X0, Y0, [1], [0, 1]), "subset"),
    "subset float": (lambda: theory.critical_point(X0, Y0, [2], [0.0]), "subset"),
    "subset H=0": (lambda: theory.critical_point(X0, Y0, [], [0]), "subset"),
    "scale 0": (lambda: theory.critical_point(X0, Y0, [2], [0], scale=0.0), "scale"),
    "scale str": (lambda: theory.critical_point(X0, Y0, [2], [0], scale="big"), "scale"),
    "rtol": (lambda: theory.critical_values(X0, Y0, [2], rtol=2.0), "rtol"),
    "loss str": (lambda: theory.nearest_critical_value("low", L0, C0[2], 1), "loss"),
    "max_count 0": (lambda: theory.critical_values(X0, Y0, [2], max_count=0), "max_count"),
    "Cxx not square": (lambda: theory.sigma_spectrum(C0[0][:2], C0[1]), "Cxx"),
    "Cxx not PSD": (lambda: theory.sigma_spectrum(-C0[0], C0[1]), "Cxx"),
    "Cxx not sym": (lambda: theory.sigma_spectrum(C0[0] + np.triu(C0[0], 1), C0[1]), "Cxx"),
    "Cyx shape": (lambda: theory.sigma_spectrum(C0[0], C0[1].T), "Cyx"),
    "yy negative": (lambda: theory.global_minimum_from_stats(C0[0], C0[1], -1, [1]), "yy"),
    "yy too small": (
        lambda: theory.global_minimum_from_stats(C0[0], C0[1], 0.5 * L0.sum(), [1]),
        "yy",
    ),
    "loss nan": (lambda: theory.nearest_critical_value(np.nan, L0, C0[2], 1), "loss"),
    "eigvals 2-D": (lambda: theory.nearest_critical_value(1.0, L0[None], C0[2], 1), "eigvals"),
    "eigvals < 0": (lambda: theory.nearest_critical_value(1.0, -L0, C0[2], 1), "eigvals"),
    "p negative": (lambda: theory.nearest_critical_value(1.0, L0, C0[2], -1), "p"),
    "method": (lambda: theory.nearest_critical_value(1.0, L0, C0[2], 1, method="x"), "method"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_the_argument(case):
    call, name = BAD[case]
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()
