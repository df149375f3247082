"""Extreme Hessian eigenvalues by Lanczos on exact HVPs.

Lanczos with full re-orthogonalisation from a deterministic pseudo-random
start. Ritz values lie inside [lam_min, lam_max] of the Hessian; each comes
with the residual bound |beta_j y_j| (an eigenvalue lies within it). A
breakdown (beta ~ 0) means the Krylov space is invariant: the Ritz values are
then exact eigenvalues and the bounds are 0. ``lanczos`` runs on any operator of
``kernels.operator`` (the deep linear network's Hessian, or a network with an
activation); ``lanczos_extremes`` is it on the linear Hessian.
"""

import numpy as np
from numba import njit

from .._config import JIT
from .chain import node_offsets, param_offsets
from .linalg import copy1, dot
from .operator import StatsHvp, hvp_op
from .rng import mix64


@njit(**JIT)
def _start_vector(n, seed):
    q = np.empty(n)
    s = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x632BE59BD9B4E019)
    for i in range(n):
        q[i] = np.float64(mix64(s + np.uint64(i)) >> np.uint64(11)) / 9007199254740992.0 - 0.5
    return q / np.sqrt(dot(q, q))


@njit(**JIT)
def _ritz_extremes(alpha, beta, j):
    """(theta_min, theta_max, err_min, err_max) of the (j+1)x(j+1) tridiagonal."""
    T = np.zeros((j + 1, j + 1))
    for i in range(j + 1):
        T[i, i] = alpha[i]
        if i < j:
            T[i, i + 1] = beta[i]
            T[i + 1, i] = beta[i]
    w, Y = np.linalg.eigh(T)
    return w[0], w[j], abs(beta[j] * Y[j, 0]), abs(beta[j] * Y[j, j])


@njit(**JIT)
def lanczos_extremes(theta, dims, Cxx, ws, maxiter, tol, seed, out):
    """``lanczos`` on the deep linear network's Hessian at a point prepared in ``ws``."""
    op = StatsHvp(dims, param_offsets(dims), node_offsets(dims), Cxx, ws)
    lanczos(op, theta, maxiter, tol, seed, out)


@njit(**JIT)
def lanczos(op, theta, maxiter, tol, seed, out):
    """out = (lam_min, lam_max, err_min, err_max, iterations) of the Hessian of ``op`` at
    theta (its workspace prepared there).

    Stops once both residual bounds are <= tol * max(|lam_min|, |lam_max|), on
    breakdown, or after ``maxiter`` iterations, capped at n: with full
    re-orthogonalisation the n-th gives the exact extremes (bounds 0).
    """
    n = theta.size
    m = min(maxiter, n)
    Q = np.empty((m, n))
    alpha = np.zeros(m)
    beta = np.zeros(m)
    w = np.empty(n)
    coef = np.empty(m)
    copy1(Q[0], _start_vector(n, seed))
    scale = 0.0
    lo = hi = elo = ehi = 0.0
    j = 0
    for j in range(m):
        hvp_op(op, theta, Q[j], w)
        a = dot(Q[j], w)
        alpha[j] = a
        for _ in range(2):  # classical Gram-Schmidt, twice is enough (Kahan)
            for i in range(j + 1):
                coef[i] = dot(Q[i], w)
            for i in range(j + 1):
                c = coef[i]
                for t in range(n):
                    w[t] -= c * Q[i, t]
        b = np.sqrt(dot(w, w))
        beta[j] = b
        scale = max(scale, abs(a), b)
        breakdown = b <= 1e-13 * scale or scale == 0.0
        if breakdown or j == n - 1:
            beta[j] = 0.0
        if breakdown or j == m - 1 or j % 4 == 3:
            lo, hi, elo, ehi = _ritz_extremes(alpha, beta, j)
            big = max(abs(lo), abs(hi))
            if breakdown or (elo <= tol * big and ehi <= tol * big):
                break
        if j + 1 < m:
            for t in range(n):
                Q[j + 1, t] = w[t] / b
    out[0] = lo
    out[1] = hi
    out[2] = elo
    out[3] = ehi
    out[4] = j + 1
