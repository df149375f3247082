"""Analytic results for deep linear networks: Sigma, L*, critical values and points.

Setting (DESIGN.md section 1). K = H + 1 weight matrices W_k of shape
(d_k, d_{k-1}), d_0 = d_x, d_K = d_y, data X (d_x, m), Y (d_y, m) and

    L(W) = 1/2 ||W_K ... W_1 X - Y||_F^2 = 1/2 (tr(P Cxx P^T) - 2 tr(P Cyx^T) + yy)

with the end-to-end product P = W_K ... W_1 and the sufficient statistics
Cxx = X X^T, Cyx = Y X^T, yy = tr(Y Y^T). Everything here follows from

    B     = Cyx Cxx^+               least-squares solution (d_y, d_x)
    Sigma = Cyx Cxx^+ Cyx^T = B Cxx B^T = U diag(l) U^T,   l_1 >= l_2 >= ... >= 0
    r_0   = yy - tr(Sigma) = ||Y - B X||_F^2                least-squares residual
    p     = min(d_x, d_1, ..., d_H, d_y)                   rank cap of P

A critical point has P = U_S U_S^T B for a set S of at most p eigen-directions
of Sigma (Baldi and Hornik 1989 for H = 1; Kawaguchi 2016 for any depth), and

    L = 1/2 (yy - sum_{i in S} l_i) = 1/2 (r_0 + sum_{i not in S} l_i).

The global minimum is S = {1..p} (reduced-rank regression). We evaluate levels
in the second form, as sums of non-negative terms, so a level near L* keeps
its relative accuracy instead of being the difference of two large numbers.

Two entry points for each result: from data (X, Y), which works with the SVD
of X and never squares its condition number, and ``*_from_stats``, which the
trainer uses and which works with the eigen-decomposition of Cxx (directions
whose Cxx eigenvalue is below ``10 d_x eps`` times the largest count as null,
so singular Cxx, e.g. d_x > m or duplicated rows, is handled as a
pseudo-inverse). Both are valid for singular Cxx.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import scipy.linalg

from ._haar import haar_orthonormal
from ._validate import as_matrix

__all__ = [
    "NearestCritical",
    "critical_point",
    "critical_point_from_stats",
    "critical_values",
    "critical_values_from_stats",
    "global_minimizer",
    "global_minimizer_from_stats",
    "global_minimum",
    "global_minimum_from_stats",
    "LearnedModesError",
    "critical_level",
    "kawaguchi_rank",
    "learned_modes",
    "mode_basis",
    "mode_defect",
    "mode_occupancy",
    "nearest_critical_value",
    "rank_cap",
    "sigma_spectrum",
]

#: Default relative tolerance (of 1/2 yy) under which two critical levels are one.
RTOL = 1e-9
#: Default cap on the number of level combinations enumerated exactly.
MAX_COUNT = 2**16
#: Modes of Sigma with l_i <= MODE_RTOL * l_1 are left out of :func:`mode_basis`.
MODE_RTOL = 1e-10
#: Eigenvalues of Sigma within this relative distance form one cluster in :func:`learned_modes`.
CLUSTER_RTOL = 1e-6
#: An occupancy farther than this from the clean pattern is not at a clean critical point.
OCC_TOL = 0.05
#: Singular values of W_H...W_2 above this times the largest count in :func:`kawaguchi_rank`.
RANK_RTOL = 1e-3
# Statistics from float32 data are slightly inconsistent; beyond this they are wrong.
_STATS_RTOL = 1e-6
# Counts of combinations saturate here (a float, so 2^d_y never overflows).
_HUGE = 1e200


class _Spectrum(NamedTuple):
    eigvals: np.ndarray  # (d_y,) eigenvalues of Sigma, descending, >= 0
    U: np.ndarray  # (d_y, d_y) orthogonal, column i is the eigenvector of eigvals[i]
    UtB: np.ndarray  # (d_y, d_x) U^T B, B = Cyx Cxx^+ the least-squares solution
    resid: float  # r_0 = yy - tr(Sigma) >= 0
    yy: float


class NearestCritical(NamedTuple):
    """Result of :func:`nearest_critical_value`.

    ``value`` and ``rank`` have the shape of the ``loss`` argument (plain
    float and int for a scalar). ``method`` says which levels were searched:
    ``"exact"`` (every subset S with |S| <= p) or ``"top"`` (only S = {1..r},
    r = 0..p).
    """

    value: float | np.ndarray
    rank: int | np.ndarray
    method: Literal["exact", "top"]


# ----------------------------------------------------------------------------- validation


def _widths(hidden_widths) -> list[int]:
    if isinstance(hidden_widths, str | bytes) or not isinstance(
        hidden_widths, Sequence | np.ndarray
    ):
        raise ValueError(
            "hidden_widths must be a sequence of positive ints d_1..d_H (e.g. [8, 8], "
            f"or [] for no hidden layer), got {hidden_widths!r}"
        )
    if isinstance(hidden_widths, np.ndarray) and hidden_widths.ndim != 1:
        raise ValueError(f"hidden_widths must be 1-D, got an array of shape {hidden_widths.shape}")
    out = []
    for w in hidden_widths:
        if isinstance(w, bool | np.bool_) or not isinstance(w, int | np.integer) or w < 1:
            raise ValueError(f"hidden_widths must hold integers >= 1, got {list(hidden_widths)!r}")
        out.append(int(w))
    return out


def _data(X, Y) -> tuple[np.ndarray, np.ndarray]:
    X = as_matrix(X, "X")
    Y = as_matrix(Y, "Y")
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"X and Y must have the same number of columns (samples m): X has shape "
            f"{X.shape}, Y has shape {Y.shape}"
        )
    return X, Y


def _stats_matrices(Cxx, Cyx) -> tuple[np.ndarray, np.ndarray]:
    Cxx = as_matrix(Cxx, "Cxx")
    if Cxx.shape[0] != Cxx.shape[1]:
        raise ValueError(f"Cxx must be square (d_x, d_x) = X X^T, got shape {Cxx.shape}")
    Cyx = as_matrix(Cyx, "Cyx")
    if Cyx.shape[1] != Cxx.shape[0]:
        raise ValueError(
            f"Cyx must have shape (d_y, d_x) with d_x = {Cxx.shape[0]} (from Cxx), "
            f"got shape {Cyx.shape}"
        )
    big = np.max(np.abs(Cxx))
    if np.max(np.abs(Cxx - Cxx.T)) > _STATS_RTOL * big:
        raise ValueError("Cxx must be symmetric (it is X X^T), got a non-symmetric matrix")
    return 0.5 * (Cxx + Cxx.T), Cyx


def _yy(yy) -> float:
    try:
        out = float(yy)
    except (TypeError, ValueError):
        raise ValueError(f"yy must be a number (tr Y Y^T), got {yy!r}") from None
    if not np.isfinite(out) or out < 0:
        raise ValueError(f"yy must be a finite number >= 0 (tr Y Y^T), got {out}")
    return out


def _count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def _number(value, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _rtol(rtol) -> float:
    out = _number(rtol, "rtol")
    if not (np.isfinite(out) and 0 <= out < 1):
        raise ValueError(f"rtol must be a number in [0, 1), got {rtol!r}")
    return out


def _subset(subset, d_y: int, p: int) -> list[int]:
    if isinstance(subset, str | bytes) or not isinstance(subset, Sequence | np.ndarray):
        raise ValueError(
            "subset must be a sequence of eigen-direction indices (0-based, in descending "
            f"eigenvalue order), got {subset!r}"
        )
    out = []
    for i in np.asarray(subset, dtype=object).ravel():
        if isinstance(i, bool | np.bool_) or not isinstance(i, int | np.integer):
            raise ValueError(f"subset must hold integers, got {list(subset)!r}")
        if not 0 <= i < d_y:
            raise ValueError(
                f"subset indices must lie in 0..{d_y - 1} (d_y = {d_y} eigen-directions), "
                f"got {list(subset)!r}"
            )
        out.append(int(i))
    if len(set(out)) != len(out):
        raise ValueError(f"subset must not repeat an index, got {out}")
    if len(out) > p:
        raise ValueError(
            f"subset has {len(out)} directions, more than the rank cap "
            f"p = min(d_x, d_1..d_H, d_y) = {p}; got {out}"
        )
    return out


def _scale(scale) -> float:
    out = _number(scale, "scale")
    if not (np.isfinite(out) and out > 0):
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    return out


# ----------------------------------------------------------------------------- spectrum


def _svd(a: np.ndarray, full_matrices: bool):
    try:
        return scipy.linalg.svd(a, full_matrices=full_matrices, lapack_driver="gesdd")
    except np.linalg.LinAlgError:  # gesdd occasionally fails to converge; gesvd is slower, sturdier
        return scipy.linalg.svd(a, full_matrices=full_matrices, lapack_driver="gesvd")


def _sigma_from_root(M: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigen-pairs of Sigma = M M^T, and U^T B for B = M ``right`` (r, d_x).

    With M = U diag(sv) Z^T (d_y, r), U^T B = [diag(sv) Z^T right; 0]: rows of
    null directions are exactly zero, not rounding noise that the K-th roots
    in :func:`_critical_point` would blow up to a visible size.
    """
    d_y = M.shape[0]
    eigvals = np.zeros(d_y)
    UtB = np.zeros((d_y, right.shape[1]))
    if M.shape[1] == 0:
        return eigvals, np.eye(d_y), UtB
    U, sv, Zt = _svd(M, full_matrices=True)
    eigvals[: sv.size] = sv * sv
    UtB[: sv.size] = (sv[:, None] * Zt[: sv.size]) @ right
    return eigvals, U, UtB


def _spectrum_from_data(X: np.ndarray, Y: np.ndarray) -> _Spectrum:
    # X = V diag(s) Q^T (thin, numerical rank r). Then Cxx^+ = V diag(s^-2) V^T,
    # B = Y Q diag(1/s) V^T and Sigma = (Y Q)(Y Q)^T: no squared condition number.
    V, s, Qt = _svd(X, full_matrices=False)
    keep = s > max(X.shape) * np.finfo(np.float64).eps * (s[0] if s.size else 0.0)
    V, s, Qt = V[:, keep], s[keep], Qt[keep]
    YQ = Y @ Qt.T
    eigvals, U, UtB = _sigma_from_root(YQ, V.T / s[:, None])
    R = Y - YQ @ Qt
    return _Spectrum(eigvals, U, UtB, float(np.sum(R * R)), float(np.sum(Y * Y)))


def _spectrum_from_stats(Cxx: np.ndarray, Cyx: np.ndarray, yy: float | None) -> _Spectrum:
    # Cxx = V diag(s) V^T; Sigma = M M^T with M = Cyx V diag(s^-1/2) over the kept s.
    s, V = scipy.linalg.eigh(Cxx)
    top = max(s[-1], 0.0)
    if s[0] < -_STATS_RTOL * top:
        raise ValueError(
            f"Cxx must be positive semi-definite (it is X X^T), got an eigenvalue {s[0]:.3g} "
            f"against a largest of {top:.3g}"
        )
    keep = s > 10 * Cxx.shape[0] * np.finfo(np.float64).eps * top
    V, s = V[:, keep], s[keep]
    root = np.sqrt(s)
    eigvals, U, UtB = _sigma_from_root((Cyx @ V) / root, V.T / root[:, None])
    trace = float(np.sum(eigvals))
    if yy is None:
        return _Spectrum(eigvals, U, UtB, 0.0, trace)
    if yy < trace * (1 - _STATS_RTOL):
        raise ValueError(
            f"yy = {yy:.6g} is smaller than tr(Cyx Cxx^+ Cyx^T) = {trace:.6g}; the statistics "
            "(Cxx, Cyx, yy) cannot come from the same data X, Y"
        )
    return _Spectrum(eigvals, U, UtB, max(yy - trace, 0.0), yy)


def sigma_spectrum(Cxx, Cyx) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of Sigma = Cyx Cxx^+ Cyx^T (d_y, d_y), symmetric PSD.

    Returns ``(eigvals, U)``: eigvals of shape (d_y,) in descending order,
    clipped at 0, and U (d_y, d_y) orthogonal with Sigma = U diag(eigvals) U^T.
    Cxx may be singular: with Cxx = V diag(s) V^T, directions whose
    eigenvalue s_j is at most ``10 d_x eps max(s)`` are treated as null (the
    pseudo-inverse), and Sigma = M M^T with M = Cyx V diag(s^-1/2) is
    decomposed by the SVD of M, so the eigenvalues come out >= 0.
    """
    Cxx, Cyx = _stats_matrices(Cxx, Cyx)
    spec = _spectrum_from_stats(Cxx, Cyx, None)
    return spec.eigvals, spec.U


def rank_cap(d_x: int, d_y: int, hidden_widths: Sequence[int]) -> int:
    """p = min(d_x, d_1, ..., d_H, d_y): the largest possible rank of P = W_K ... W_1."""
    return min(_count(d_x, "d_x", 1), _count(d_y, "d_y", 1), *_widths(hidden_widths))


# ----------------------------------------------------------------------------- global minimum


def _global_minimum(spec: _Spectrum, p: int) -> float:
    # L* = 1/2 (yy - sum_{i<=p} l_i) = 1/2 (r_0 + sum_{i>p} l_i), a sum of non-negative terms.
    return 0.5 * (spec.resid + float(np.sum(spec.eigvals[p:])))


def global_minimum(X, Y, hidden_widths: Sequence[int]) -> float:
    """Global minimum L* of L(W) = 1/2 ||W_K ... W_1 X - Y||_F^2 over all weights.

    Reduced-rank regression: P = W_K ... W_1 ranges over the matrices of rank
    at most p = min(d_x, d_1, ..., d_H, d_y), and

        L* = 1/2 (yy - sum_{i <= p} l_i) = 1/2 (||Y - B X||_F^2 + sum_{i > p} l_i)

    with l_i the eigenvalues of Sigma = Cyx Cxx^+ Cyx^T (descending) and
    B = Cyx Cxx^+. Valid for singular X X^T (d_x > m, duplicated rows): L* is
    then the residual of the best rank-p least-squares fit. ``hidden_widths``
    is d_1..d_H, empty for a single layer (ordinary least squares).
    """
    X, Y = _data(X, Y)
    p = min(X.shape[0], Y.shape[0], *_widths(hidden_widths))
    return _global_minimum(_spectrum_from_data(X, Y), p)


def global_minimum_from_stats(Cxx, Cyx, yy, hidden_widths: Sequence[int]) -> float:
    """:func:`global_minimum` from the statistics Cxx = X X^T, Cyx = Y X^T, yy = tr(Y Y^T).

    Here r_0 = yy - tr(Sigma), so absolute accuracy is about eps * yy.
    """
    Cxx, Cyx = _stats_matrices(Cxx, Cyx)
    spec = _spectrum_from_stats(Cxx, Cyx, _yy(yy))
    p = min(Cxx.shape[0], Cyx.shape[0], *_widths(hidden_widths))
    return _global_minimum(spec, p)


# ----------------------------------------------------------------------------- critical levels


def _combinations(mults: Sequence[int], p: int) -> float:
    """Number of count vectors c with 0 <= c_j <= mults[j] and sum c_j <= p (as a float)."""
    poly = np.zeros(p + 1)
    poly[0] = 1.0
    for m in mults:
        # Multiply by 1 + x + ... + x^m, truncated at degree p: a sliding window sum.
        # Coefficients saturate at _HUGE so that neither the sums nor the count overflow.
        csum = np.cumsum(poly)
        shifted = np.concatenate([np.zeros(m + 1), csum])[: p + 1]
        poly = np.minimum(csum - shifted, _HUGE)
    return min(float(np.sum(poly)), _HUGE)


def _dedupe(levels: np.ndarray, ranks: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge levels within ``tol`` of the lowest member of their cluster.

    Each cluster is represented by its member with the fewest directions |S|
    (then the lowest level), so the empty set keeps 1/2 yy exactly.
    """
    order = np.lexsort((ranks, levels))
    levels, ranks = levels[order], ranks[order]
    if levels.size == 0:
        return levels, ranks
    cluster = np.empty(levels.size, dtype=np.int64)
    # Chains of neighbours within tol; a chain wider than tol is split greedily.
    starts = np.flatnonzero(np.diff(levels) > tol) + 1
    bounds = np.concatenate([[0], starts, [levels.size]])
    cid = 0
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        if levels[b - 1] - levels[a] <= tol:
            cluster[a:b] = cid
            cid += 1
            continue
        first = levels[a]
        for i in range(a, b):
            if levels[i] - first > tol:
                cid += 1
                first = levels[i]
            cluster[i] = cid
        cid += 1
    pick = np.lexsort((levels, ranks, cluster))
    first_of = np.ones(pick.size, dtype=bool)
    first_of[1:] = cluster[pick[1:]] != cluster[pick[:-1]]
    reps = pick[first_of]
    return levels[reps], ranks[reps]


def _show(count: float) -> str:
    if count >= _HUGE:
        return f"more than {_HUGE:.0e}"
    return f"{count:.0f}" if count < 2**53 else f"about {count:.3g}"


def _levels(left_out: np.ndarray, size: np.ndarray, yy: float) -> np.ndarray:
    """1/2 (r_0 + sum_{i not in S} l_i), with S empty giving 1/2 yy exactly, not to rounding."""
    return np.where(size == 0, 0.5 * yy, 0.5 * left_out)


def _exact_table(
    eigvals: np.ndarray, resid: float, yy: float, p: int, rtol: float, max_count: int, who: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """All distinct levels 1/2 (r_0 + sum_{i not in S} l_i), |S| <= p, with the least |S|.

    More than ``max_count`` combinations: a ValueError naming ``who``, or
    None when ``who`` is empty.

    Only the multiset of chosen eigenvalues matters, so eigenvalues equal to
    within ``tie`` are grouped and we enumerate how many of each group S
    takes; eigenvalues <= ``tie`` change a level by at most p * tie <= tol and
    are never taken. This collapses the 2^d_y subsets of a rank-deficient or
    degenerate Sigma to what actually differs.
    """
    tol = rtol * 0.5 * yy
    tie = 2.0 * tol / max(p, 1)
    small = eigvals <= tie
    base = resid + float(np.sum(eigvals[small]))
    big = eigvals[~small]  # descending
    groups: list[np.ndarray] = []
    start = 0
    for i in range(1, big.size + 1):
        if i == big.size or big[start] - big[i] > tie:
            groups.append(big[start:i])
            start = i
    count = _combinations([g.size for g in groups], p)
    if count > max_count:
        if not who:
            return None
        d_y = eigvals.size
        total = _combinations([1] * d_y, p)  # sum_{k <= p} C(d_y, k)
        raise ValueError(
            f"{who}: there are {_show(total)} subsets S of the d_y = {d_y} eigen-directions of "
            f"Sigma with |S| <= p = {p}, and after merging zero and tied eigenvalues still "
            f"{_show(count)} distinct combinations to enumerate, more than max_count = "
            f"{max_count}. Pass a larger max_count (memory and time grow linearly with it), "
            "or use nearest_critical_value(..., method='top'), which searches only the "
            "levels 1/2 (yy - l_1 - ... - l_r), r = 0..p, that gradient training from small "
            "initialisation visits."
        )
    comp = np.zeros(1)  # sum over the chosen group members NOT in S
    size = np.zeros(1, dtype=np.int64)
    for g in groups:
        # Taking the top c of a group leaves tail[c] = sum(g[c:]) out of S.
        tail = np.concatenate([np.cumsum(g[::-1])[::-1], [0.0]])
        comp = (comp[:, None] + tail[None, :]).ravel()
        size = (size[:, None] + np.arange(g.size + 1)[None, :]).ravel()
        ok = size <= p
        comp, size = comp[ok], size[ok]
    return _dedupe(_levels(base + comp, size, yy), size, tol)


def _top_table(
    eigvals: np.ndarray, resid: float, yy: float, p: int, rtol: float
) -> tuple[np.ndarray, np.ndarray]:
    """Levels of S = {1..r}, r = 0..p: 1/2 (r_0 + sum_{i > r} l_i)."""
    tails = np.concatenate([np.cumsum(eigvals[::-1])[::-1], [0.0]])
    r = np.arange(min(p, eigvals.size) + 1)
    return _dedupe(_levels(resid + tails[r], r, yy), r, rtol * 0.5 * yy)


def _critical_values(
    spec: _Spectrum, widths: list[int], max_count: int, rtol: float, who: str
) -> np.ndarray:
    d_y, d_x = spec.UtB.shape
    p = min(d_x, d_y, *widths)
    if not widths:
        # H = 0: L is convex in W_1; its only critical points are least-squares fits.
        return np.array([_global_minimum(spec, p)])
    table = _exact_table(spec.eigvals, spec.resid, spec.yy, p, rtol, max_count, who)
    assert table is not None  # who is non-empty: too many raises
    return table[0]


def critical_values(
    X,
    Y,
    hidden_widths: Sequence[int],
    *,
    max_count: int = MAX_COUNT,
    rtol: float = RTOL,
) -> np.ndarray:
    """Sorted distinct critical values of L(W) = 1/2 ||W_K ... W_1 X - Y||_F^2.

    For H >= 1 hidden layers these are the levels

        1/2 (yy - sum_{i in S} l_i),   S subset of {1..d_y}, |S| <= p,

    each attained by :func:`critical_point`; the largest is 1/2 yy (S empty,
    e.g. W = 0), the smallest is :func:`global_minimum`. For H = 0 the loss is
    convex and the only critical value is L*.

    Levels closer than ``rtol * yy / 2`` count as one (eigenvalue ties and
    zero eigenvalues give duplicates); each is reported as computed for its
    smallest S. The number of subsets explodes with d_y: after merging zero
    and tied eigenvalues, more than ``max_count`` combinations raise a
    ValueError that says how many there are.
    """
    X, Y = _data(X, Y)
    widths = _widths(hidden_widths)
    max_count = _count(max_count, "max_count", 1)
    return _critical_values(
        _spectrum_from_data(X, Y), widths, max_count, _rtol(rtol), "critical_values"
    )


def critical_values_from_stats(
    Cxx,
    Cyx,
    yy,
    hidden_widths: Sequence[int],
    *,
    max_count: int = MAX_COUNT,
    rtol: float = RTOL,
) -> np.ndarray:
    """:func:`critical_values` from Cxx = X X^T, Cyx = Y X^T, yy = tr(Y Y^T)."""
    Cxx, Cyx = _stats_matrices(Cxx, Cyx)
    spec = _spectrum_from_stats(Cxx, Cyx, _yy(yy))
    widths = _widths(hidden_widths)
    max_count = _count(max_count, "max_count", 1)
    return _critical_values(spec, widths, max_count, _rtol(rtol), "critical_values_from_stats")


def nearest_critical_value(
    loss,
    eigvals,
    yy,
    p: int,
    *,
    method: Literal["auto", "exact", "top"] = "auto",
    max_count: int = MAX_COUNT,
    rtol: float = RTOL,
) -> NearestCritical:
    """Critical level 1/2 (yy - sum_{i in S} l_i), |S| <= p, nearest to each loss.

    ``loss`` is a number or an array (vectorised: the table of levels is built
    once). ``eigvals`` are the eigenvalues of Sigma (any order, e.g. from
    :func:`sigma_spectrum`), ``yy = tr(Y Y^T)`` and ``p`` the rank cap
    (:func:`rank_cap`). Returns ``NearestCritical(value, rank, method)`` where
    ``rank`` is |S| (the smallest S giving that level).

    Methods: ``"exact"`` searches every subset. Finding the subset sum nearest
    to a target is the subset-sum problem, NP-hard in general, so no cheap
    exact search exists for large d_y; it is done by enumeration after zero
    and tied eigenvalues are merged, and raises a ValueError past
    ``max_count`` combinations. ``"top"`` searches only S = {1..r},
    r = 0..p: the plateaus that gradient training from small initialisation
    visits, as it learns the directions in order of decreasing eigenvalue
    (Saxe et al. 2014). ``"auto"`` (default) is exact when that fits within
    max_count and top otherwise; ``method`` in the result says which ran.
    """
    try:
        values = np.asarray(loss, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"loss must be a number or an array of numbers, got {loss!r}") from None
    if not np.isfinite(values).all():
        raise ValueError("loss contains non-finite values (NaN or inf)")
    try:
        l = np.asarray(eigvals, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"eigvals must be a 1-D array of numbers, got {eigvals!r}") from None
    if l.ndim != 1 or l.size == 0 or not np.isfinite(l).all():
        raise ValueError(
            f"eigvals must be a non-empty 1-D array of finite numbers, got shape {l.shape}"
        )
    yy = _yy(yy)
    if np.min(l) < -_STATS_RTOL * max(float(np.max(l)), yy):
        raise ValueError(f"eigvals must be >= 0 (Sigma is PSD), got min {np.min(l):.3g}")
    l = np.sort(np.clip(l, 0.0, None))[::-1]
    trace = float(np.sum(l))
    if yy < trace * (1 - _STATS_RTOL):
        raise ValueError(f"yy = {yy:.6g} is smaller than sum(eigvals) = {trace:.6g}")
    p = _count(p, "p", 0)
    max_count = _count(max_count, "max_count", 1)
    rtol = _rtol(rtol)
    if method not in ("auto", "exact", "top"):
        raise ValueError(f"method must be 'auto', 'exact' or 'top', got {method!r}")
    resid = max(yy - trace, 0.0)
    table = None
    if method != "top":
        who = "nearest_critical_value" if method == "exact" else ""
        table = _exact_table(l, resid, yy, p, rtol, max_count, who)
    used: Literal["exact", "top"] = "top" if table is None else "exact"
    levels, ranks = _top_table(l, resid, yy, p, rtol) if table is None else table
    idx = np.searchsorted(levels, values)
    lo = np.clip(idx - 1, 0, levels.size - 1)
    hi = np.clip(idx, 0, levels.size - 1)
    pick = np.where(np.abs(levels[hi] - values) < np.abs(values - levels[lo]), hi, lo)
    if values.ndim == 0:
        return NearestCritical(float(levels[pick]), int(ranks[pick]), used)
    return NearestCritical(levels[pick], ranks[pick], used)


# ----------------------------------------------------------------------------- critical points


def _orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    """Haar-random orthogonal matrix."""
    return haar_orthonormal(rng.standard_normal((n, n)))


def _critical_point(
    spec: _Spectrum, widths: list[int], subset, scale, rng, rtol: float = RTOL
) -> list[np.ndarray]:
    d_y, d_x = spec.UtB.shape
    p = min(d_x, d_y, *widths)
    S = _subset(subset, d_y, p)
    scale = _scale(scale)
    K = len(widths) + 1
    US = spec.U[:, S]
    G = spec.UtB[S]  # (|S|, d_x) = U_S^T B, so P = U_S G
    if K == 1:
        missed = np.delete(spec.eigvals, S)
        thr = rtol * float(np.sum(spec.eigvals))
        if missed.size and missed.max() > thr:
            must = np.flatnonzero(spec.eigvals > thr).tolist()
            raise ValueError(
                "subset: with no hidden layer L is convex in W_1 and its only critical points "
                f"are least-squares fits, so subset must contain every direction with a "
                f"non-zero eigenvalue, {must}; got {S}. Use global_minimizer."
            )
        return [US @ G]
    dims = [d_x, *widths, d_y]
    W = [np.zeros((dims[k + 1], dims[k])) for k in range(K)]
    s = len(S)
    if s:
        # Balanced factors: G = Q diag(sig) R^T, each layer carries diag(sig)^(1/K), so
        # W_{k+1}^T W_{k+1} = W_k W_k^T = diag(sig)^(2/K) (padded with zeros).
        Q, sig, Rt = _svd(G, full_matrices=False)
        D = sig ** (1.0 / K)
        W[0][:s] = D[:, None] * Rt
        for k in range(1, K - 1):
            W[k][:s, :s] = np.diag(D)
        W[-1][:, :s] = (US @ Q) * D
    # The product, hence the gradient's zero, is kept by W_1 -> c^-(K-1) W_1, W_k -> c W_k
    # and by W_k -> O W_k, W_{k+1} -> W_{k+1} O^T with O orthogonal (dL/dW_k -> O dL/dW_k ...).
    W[0] *= scale ** -(K - 1)
    for k in range(1, K):
        W[k] *= scale
    if rng is not None:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        for k in range(K - 1):
            O = _orthogonal(gen, dims[k + 1])
            W[k] = O @ W[k]
            W[k + 1] = W[k + 1] @ O.T
    return W


def critical_point(
    X,
    Y,
    hidden_widths: Sequence[int],
    subset: Sequence[int],
    *,
    scale: float = 1.0,
    rng: int | np.random.Generator | None = None,
) -> list[np.ndarray]:
    """Weights [W_1, ..., W_K] at a critical point with loss 1/2 (yy - sum_{i in S} l_i).

    ``subset`` S holds 0-based indices of eigen-directions of
    Sigma = Cyx Cxx^+ Cyx^T in descending eigenvalue order, |S| <= p. The
    end-to-end product is P = U_S U_S^T B, B = Cyx Cxx^+, so that

        dL/dP = P Cxx - Cyx = (U_S U_S^T - I) Cyx,

    whose column space is orthogonal to U_S and whose product with
    (U_S^T B)^T is (U_S U_S^T - I) Sigma U_S = 0; hence every
    dL/dW_k = A_k^T (dL/dP) B_k^T vanishes (A_k = W_K..W_{k+1} has columns in
    span U_S, B_k = W_{k-1}..W_1 rows in the row space of U_S^T B).

    Factorisation: with U_S^T B = Q diag(sig) R^T, W_1 = [diag(sig)^(1/K) R^T; 0],
    the middle layers [diag(sig)^(1/K), 0; 0, 0], W_K = [U_S Q diag(sig)^(1/K), 0]:
    balanced (W_{k+1}^T W_{k+1} = W_k W_k^T). ``scale`` = c != 1 multiplies W_1
    by c^-(K-1) and the other layers by c (same product, unbalanced). With
    ``rng`` (seed or Generator) each hidden layer is rotated by a random
    orthogonal O_k (W_k -> O_k W_k, W_{k+1} -> W_{k+1} O_k^T), giving a
    generic-looking point on the same critical manifold.

    The empty subset gives W = 0 for H >= 1. With no hidden layer (H = 0) L is
    convex, and S must contain every direction of non-zero eigenvalue (the
    least-squares fit); anything else raises a ValueError. That point is
    unique, so ``scale`` and ``rng`` do nothing there.
    """
    X, Y = _data(X, Y)
    widths = _widths(hidden_widths)
    return _critical_point(_spectrum_from_data(X, Y), widths, subset, scale, rng)


def critical_point_from_stats(
    Cxx,
    Cyx,
    hidden_widths: Sequence[int],
    subset: Sequence[int],
    *,
    scale: float = 1.0,
    rng: int | np.random.Generator | None = None,
) -> list[np.ndarray]:
    """:func:`critical_point` from Cxx = X X^T and Cyx = Y X^T (yy is not needed)."""
    Cxx, Cyx = _stats_matrices(Cxx, Cyx)
    widths = _widths(hidden_widths)
    return _critical_point(_spectrum_from_stats(Cxx, Cyx, None), widths, subset, scale, rng)


def global_minimizer(
    X,
    Y,
    hidden_widths: Sequence[int],
    *,
    scale: float = 1.0,
    rng: int | np.random.Generator | None = None,
) -> list[np.ndarray]:
    """Weights attaining :func:`global_minimum`: :func:`critical_point` with S = {0..p-1}."""
    X, Y = _data(X, Y)
    widths = _widths(hidden_widths)
    p = min(X.shape[0], Y.shape[0], *widths)
    return _critical_point(_spectrum_from_data(X, Y), widths, range(p), scale, rng)


def global_minimizer_from_stats(
    Cxx,
    Cyx,
    hidden_widths: Sequence[int],
    *,
    scale: float = 1.0,
    rng: int | np.random.Generator | None = None,
) -> list[np.ndarray]:
    """:func:`global_minimizer` from Cxx = X X^T and Cyx = Y X^T."""
    Cxx, Cyx = _stats_matrices(Cxx, Cyx)
    widths = _widths(hidden_widths)
    p = min(Cxx.shape[0], Cyx.shape[0], *widths)
    return _critical_point(_spectrum_from_stats(Cxx, Cyx, None), widths, range(p), scale, rng)


# ----------------------------------------------------------------------------- learned modes


def mode_basis(Cxx, Cyx, rtol: float = MODE_RTOL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(l, U, G): the r modes of Sigma = Cyx Cxx^+ Cyx^T with l_i > rtol * l_1.

    l (r,) descending, U (d_y, r) the eigenvectors u_i, G (d_x, r) the columns
    g_i = Cyx^T u_i / l_i, so that the occupancy of mode i is u_i^T P g_i
    (:func:`mode_occupancy`, ``kernels.polish.occupancy``). r is the numerical
    rank of Sigma. Why ``rtol`` = 1e-10 relative to l_1: eigenvalues come from
    the SVD of M = Cyx Cxx^(-1/2) (``sigma_spectrum``), so l_i = sv_i^2 has an
    absolute error ~ eps l_1 and modes below 1e-10 l_1 (sv_i < 1e-5 sv_1) carry
    no usable direction; they also move a level by less than 1e-10 l_1, below
    the RTOL resolution of :func:`critical_values`. Raw (non-whitened) X is
    handled by the pseudo-inverse: the occupancy whitens through Cxx.
    """
    Cxx, Cyx = _stats_matrices(Cxx, Cyx)
    rtol = _rtol(rtol)
    spec = _spectrum_from_stats(Cxx, Cyx, None)
    l = spec.eigvals
    keep = l > rtol * l[0] if l.size and l[0] > 0 else np.zeros(l.size, dtype=bool)
    l, U = l[keep], spec.U[:, keep]
    G = (Cyx.T @ U) / l if l.size else np.zeros((Cxx.shape[0], 0))
    return l.copy(), np.ascontiguousarray(U), np.ascontiguousarray(G)


def mode_occupancy(weights, stats, rtol: float = MODE_RTOL) -> np.ndarray:
    """Occupancy u_i^T P Cyx^T u_i / l_i of each mode of :func:`mode_basis` (NumPy reference).

    ``weights`` = [W_1, ..., W_K], ``stats`` = (Cxx, Cyx, ...) (e.g. ``Stats``).
    At a critical point P = U_S U_S^T Cyx Cxx^+ it is 1 for i in S and 0
    otherwise (u_i^T U_S U_S^T Cyx Cxx^+ Cyx^T u_i / l_i = [i in S] u_i^T Sigma
    u_i / l_i); for whitened data (Cxx = I, Cyx = U diag(s) V^T) it is
    u_i^T P v_i / s_i, Saxe et al.'s mode strength over its final value.
    """
    _, U, G = mode_basis(stats[0], stats[1], rtol)
    P = np.eye(np.asarray(weights[0]).shape[1])
    for W in weights:
        P = np.asarray(W, dtype=np.float64) @ P
    return np.einsum("ai,ab,bi->i", U, P, G)


class LearnedModesError(ValueError):
    """Occupancies not at a clean critical point; ``modes`` holds the rounded guess."""

    def __init__(self, message: str, modes: tuple[int, ...], defect: float):
        super().__init__(message)
        self.modes = modes
        self.defect = defect


def _clusters(l: np.ndarray, rtol: float) -> list[np.ndarray]:
    """Index runs of descending l whose neighbours are within rtol * l_1 (chained)."""
    if l.size == 0:
        return []
    tol = rtol * l[0]
    cuts = np.flatnonzero(l[:-1] - l[1:] > tol) + 1
    return np.split(np.arange(l.size), cuts)


def learned_modes_batch(occupancy, l, *, cluster_rtol: float = CLUSTER_RTOL):
    """:func:`learned_modes` of many points at once: ``occupancy`` (R, r) -> (the R sets
    S as tuples, their defects (R,)); never raises on a defect (the caller decides)."""
    occ = np.atleast_2d(np.asarray(occupancy, dtype=np.float64))
    l = np.asarray(l, dtype=np.float64).ravel()
    if occ.shape[1] != l.size:
        raise ValueError(
            f"occupancy and l must have the same length, got {occ.shape[1]} and {l.size}"
        )
    if l.size > 1 and np.any(np.diff(l) > 0):
        raise ValueError("l must be in descending order (as mode_basis returns it)")
    R = occ.shape[0]
    counts, defect = [], np.zeros(R)
    clusters = _clusters(l, _rtol(cluster_rtol))
    for idx in clusters:
        o = occ[:, idx]
        total = o.sum(axis=1)
        count = np.clip(np.rint(np.nan_to_num(total)), 0, idx.size).astype(np.int64)
        defect = np.maximum.reduce([defect, np.abs(total - count), (-o).max(axis=1),
                                    (o - 1.0).max(axis=1)])  # fmt: skip
        counts.append(count)
    modes = [
        tuple(int(i) for idx, c in zip(clusters, row, strict=True) for i in idx[: int(c)])
        for row in (np.stack(counts, axis=1) if counts else np.zeros((R, 0), dtype=np.int64))
    ]
    return modes, defect


def _learned(occupancy, l, cluster_rtol: float) -> tuple[tuple[int, ...], float]:
    occ = np.asarray(occupancy, dtype=np.float64).ravel()
    if occ.shape != np.asarray(l).ravel().shape:
        raise ValueError(
            f"occupancy and l must have the same length, got {occ.size} and {np.size(l)}"
        )
    modes, defect = learned_modes_batch(occ[None, :], l, cluster_rtol=cluster_rtol)
    return modes[0], float(defect[0])


def mode_defect(occupancy, l, *, cluster_rtol: float = CLUSTER_RTOL) -> float:
    """How far occupancies are from a clean critical point (0 there); see :func:`learned_modes`."""
    return _learned(occupancy, l, _rtol(cluster_rtol))[1]


def learned_modes(
    occupancy,
    l,
    *,
    tol: float = OCC_TOL,
    cluster_rtol: float = CLUSTER_RTOL,
    strict: bool = True,
) -> tuple[int, ...]:
    """The learned set S (sorted 0-based mode indices) from per-mode occupancies.

    Modes whose eigenvalues l_i agree to ``cluster_rtol * l_1`` form a cluster.
    Within a cluster the critical set is rotation-invariant (P = Q Q^T B for
    any orthonormal Q spanning part of the eigenspace), so single occupancies
    u_i^T Q Q^T u_i may be anywhere in [0, 1]; only their sum, the dimension
    learned, is determined. S takes round(sum) modes of each cluster, its first
    ones (any choice gives the same level). Default 1e-6: a polished point's
    rotation within a near-degenerate pair is fixed only to ~ ||g|| / gap, which
    is negligible for gaps above 1e-6 l_1 at the polish tolerance.

    A cluster is clean when its sum is within ``tol`` of an integer and each
    occupancy lies in [-tol, 1 + tol]. ``tol`` = 0.05: at polished points the
    occupancies measured 0 and 1 to ~1e-6, while a point between two levels
    (e.g. mid-transition) has occupancies far inside (0, 1); anything between is
    not at a critical point of a clean S. Then ``strict`` raises
    :class:`LearnedModesError` (with the rounded guess as ``.modes`` and the
    defect as ``.defect``); ``strict=False`` returns the rounded guess.
    """
    tol = _number(tol, "tol")
    S, defect = _learned(occupancy, l, _rtol(cluster_rtol))
    if strict and defect > tol:
        raise LearnedModesError(
            f"occupancies {np.round(np.asarray(occupancy, dtype=float), 4).tolist()} are "
            f"{defect:.3g} from a clean 0/1 pattern (tol {tol}): not at a critical point of "
            f"a clean S (nearest guess {S})",
            S,
            defect,
        )
    return S


def critical_level(S, l, yy) -> float:
    """1/2 (yy - sum_{i in S} l_i), evaluated as 1/2 (r_0 + sum_{i not in S} l_i).

    ``l`` holds the modes' eigenvalues (e.g. from :func:`mode_basis`),
    r_0 = yy - sum(l) >= 0 the least-squares residual; the second form keeps
    the relative accuracy of a level near L*.
    """
    l = np.asarray(l, dtype=np.float64).ravel()
    yy = _yy(yy)
    idx = np.asarray(list(S), dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= l.size or np.unique(idx).size != idx.size):
        raise ValueError(f"S must hold distinct indices in 0..{l.size - 1}, got {list(S)}")
    out = np.ones(l.size, dtype=bool)
    out[idx] = False
    if idx.size == 0:
        return 0.5 * yy
    return 0.5 * (max(yy - float(np.sum(l)), 0.0) + float(np.sum(l[out])))


def kawaguchi_rank(weights, rtol: float = RANK_RTOL, ref: float | None = None) -> int:
    """Numerical rank of W_H ... W_2, the product of the K - 2 middle layers.

    Kawaguchi (2016) Theorem 2.3 (iv): at a saddle point, rank(W_H ... W_2) = p
    implies a negative Hessian eigenvalue (a strict saddle). For K = 2 the empty
    product is the identity of size d_1 (rank d_1); for K = 1 (no hidden layer,
    convex loss, no saddles) we return p = min(d_x, d_y) so that the criterion
    reads as vacuously met. Rank: singular values above ``rtol`` times the
    largest, or times ``ref`` if that is larger. ``ref`` is the problem's own
    scale of the product, e.g. l_1^((K-2)/(2K)), its largest singular value at the
    balanced global minimizer: without it a point near W = 0 (all singular values
    at the noise level of the polish) counts as full rank. Why 1e-3: at polished
    points the singular values carried by unused hidden units measured below 1e-5
    of the largest (they are the distance to
    the exact critical set, ~ tol^(1/(K-1)) per layer), while those of learned
    modes of a balanced point are (l_i / l_1)^((K-2)/(2K)) of it, above 1e-3
    unless the learned eigenvalues span more than six decades.
    """
    Ws = [np.asarray(W, dtype=np.float64) for W in weights]
    K = len(Ws)
    if K == 1:
        return int(min(Ws[0].shape))
    if K == 2:
        return int(Ws[0].shape[0])
    M = Ws[1]
    for W in Ws[2:-1]:
        M = W @ M
    sv = np.linalg.svd(M, compute_uv=False)
    top = max(float(sv[0]) if sv.size else 0.0, 0.0 if ref is None else _number(ref, "ref"))
    if top == 0:
        return 0
    return int(np.sum(sv > _rtol(rtol) * top))
