"""Higher-order descent at a PSD critical point: non-strict saddle or (degenerate) minimum.

At a critical point theta* whose Hessian is PSD within tolerance the second-order test
decides nothing along the Hessian's (near-)null space N: theta* is a local minimum
(possibly degenerate: flat along symmetries or dead units) or a non-strict ("bad")
saddle, where the loss falls at third or higher order (Kawaguchi 2016: W = 0 of a deep
linear net with two or more hidden layers, whose Hessian vanishes). ``descent_test``
decides by probing the loss around theta* (docs/nonlinear.md, "Non-strict saddles"):

1. The dense Hessian (n exact HVPs, symmetrised) and its eigen-decomposition. N is
   spanned by the eigenvectors with |lambda| <= psd_tol x lam_ref: the same resolution
   as the PSD test (eigenvalues above -psd_tol lam_ref count as >= 0, those below
   psd_tol lam_ref as 0). N empty: H is positive definite and theta* a strict local
   minimum (the second-order sufficient condition); nothing is probed.
2. Paths: ``N_DIRS`` seeded random unit vectors of N (isotropic Gaussians projected
   on N; the projector is applied with the null or the range basis, whichever is
   smaller), each taken with both signs. Each path climbs a ladder of radii
   t_j = RADIUS x ell x 2^(j + 1 - N_RADII), j = 0..N_RADII-1, ell = sqrt(gap_scale /
   lam_ref) (the problem's length scale: a quadratic of curvature lam_ref rises by
   gap_scale over ell), continuing from the direction it reached at the radius below.
   At each radius:

   a. sphere search: the point theta* + t v (v the path's unit null vector), then up
      to ``ROT_STEPS`` rotations of v towards the null-space part of -grad L tangent
      to the sphere, by an angle BETA0, BETA0 / 2, BETA0 / 4 (``ROT_TRIES``), each kept
      when the loss falls;
   b. the band b(d) = DROP_TOL x gap_scale + ||grad L(theta*)|| x d at distance d:
      what round-off and the polished point's residual gradient can explain. The
      sphere point's loss above L* + b(t): the loss rose along this path; after
      ``BLOCK_AFTER`` consecutive radii above the band the path ends (a barrier, or
      a valley the search has not found). Below L* - b(t): **descent**, if the
      segment from theta* to it has no barrier (the loss at the ladder's smaller
      radii along it stays below L* + b); a barrier counts as a radius above the
      band. Within the band:
   c. ``DESCENT_STEPS`` Armijo gradient steps from the sphere point (first trial step
      1 / max(lambda_max, lam_ref), halved at most ``HALVINGS`` times, sufficient
      decrease ``ARMIJO``), which also correct the point in the Hessian's range (the
      centre-manifold correction the null-space search leaves out); a point below
      L* - b(its distance) is **descent**, under the same segment check.

   So a descent counts only if it is reached from theta* along a path on which the
   loss never exceeds L* + b (the segment, then gradient steps, which only go down):
   a local minimum whose barrier is higher than the band cannot be left that way.
3. relu / leaky_relu: a probe point counts only if every hidden pre-activation that is
   clearly off the kink at theta* (|z| > KINK_TOL x max |Z_k| of its layer) keeps its
   sign, so the probes stay in the linear regions that touch theta* (a dead unit is
   not revived by a long step along its incoming weights, which are flat directions
   of H). Trial points outside are rejected; a path whose sphere point is outside
   ends.

theta* is a non-strict saddle iff some path finds descent. Exact symmetries (the
GL(d) gauge of linear layers, positive rescaling of relu units) give flat directions
of H but never a loss below L* at a minimum, so they cannot produce descent; the
deterministic start vectors come from ``seed`` (counter-based, ``rng.mix64``).

Resolution: the radius ladder spans 2^(1 - N_RADII) ell .. RADIUS ell. A basin
narrower than the smallest radius, or whose barrier is lower than the band, is not
seen (theta* is then called a saddle); a descent of order K along the best direction
at W = 0 of a deep linear net must exceed DROP_TOL x gap_scale at radius ell, which
holds for K <= 7 on unit-scale data (docs/nonlinear.md). Above ``DENSE_MAX``
parameters the test is not run (``out[0]`` = -1).

Numba's cache keys a caller's compiled code on the caller's file: after a change
here, change ``nltrainer.py`` too (or clear ``NUMBA_CACHE_DIR``).
"""

import numpy as np
from numba import njit

from .._config import JIT
from .activation import LEAKY_RELU, RELU, data_offsets, hessian_prepared, loss, loss_grad
from .linalg import copy1, dot
from .rng import mix64, next_normal

N_DIRS = 8  # random null directions, each probed with both signs (2 N_DIRS paths)
N_RADII = 16  # radii of the ladder, ratio 2
RADIUS = 1.0  # largest radius, in units of ell = sqrt(gap_scale / lam_ref)
ROT_STEPS = 4  # sphere rotations per radius
ROT_TRIES = 3  # angles BETA0, BETA0 / 2, BETA0 / 4
BETA0 = 0.5  # radians
BLOCK_AFTER = 3  # a path ends after this many consecutive radii above the band
DESCENT_STEPS = 3  # Armijo gradient steps from an in-band sphere point
HALVINGS = 8  # step halvings per gradient step
ARMIJO = 1e-4  # sufficient-decrease constant of the gradient steps
DROP_TOL = 1e-8  # the band's floor, relative to gap_scale
KINK_TOL = 1e-8  # relu / leaky_relu: |z| above this x max|Z_k| keeps its sign
DENSE_MAX = 2000  # dense Hessian: at most this many parameters
N_OUT = 6  # nullity, drop, radius, loss evaluations, lambda_min, lambda_max

_STREAM = np.uint64(0x3C6EF372FE94F82B)  # keeps these draws apart from Lanczos' and SGD's


@njit(**JIT)
def _admissible(z, sgn):
    """Every fixed sign (sgn != 0) of the hidden pre-activations z is kept."""
    for i in range(z.size):
        s = sgn[i]
        if s != 0.0 and s * z[i] <= 0.0:
            return False
    return True


@njit(**JIT)
def _project(B, null, u, out):
    """out = P_N u: B holds the null basis (``null``) or the range basis (P_N = I - B^T B),
    whichever is smaller, so a projection costs min(k, n - k) x n."""
    n = u.size
    if null:
        for i in range(n):
            out[i] = 0.0
    else:
        copy1(out, u)
    for r in range(B.shape[0]):
        c = dot(B[r], u)
        if not null:
            c = -c
        for i in range(n):
            out[i] += c * B[r, i]


@njit(**JIT)
def _step_to(theta, t, v, x):
    for i in range(theta.size):
        x[i] = theta[i] + t * v[i]


@njit(**JIT)
def _ray_ok(theta, xs, j, l0, floor, gres, dims, X, Y, act, alpha, lam, ws, z, sgn, kinked, x):
    """(no barrier, evaluations): the loss at theta + 2^-i (xs - theta), i = 1..j (the
    ladder's smaller radii), stays below L* + the band there (and, for relu / leaky_relu,
    every such point is admissible)."""
    n = theta.size
    t = _distance(xs, theta)
    for i in range(1, j + 1):
        f = 2.0**-i
        for q in range(n):
            x[q] = theta[q] + f * (xs[q] - theta[q])
        l = loss(x, dims, X, Y, act, alpha, lam, ws)
        if l - l0 > floor + gres * f * t or (kinked and not _admissible(z, sgn)):
            return False, i
    return True, j


@njit(**JIT)
def _distance(x, theta):
    s = 0.0
    for i in range(x.size):
        d = x[i] - theta[i]
        s += d * d
    return np.sqrt(s)


@njit(inline="always", **JIT)
def _found(out, drop, radius, evals):
    """Record a descent: its drop (of gap_scale), radius (of ell) and the evaluations."""
    out[1] = drop
    out[2] = radius
    out[3] = evals


@njit(**JIT)
def descent_test(theta, dims, X, Y, act, alpha, lam, ws, gap_scale, lam_ref, psd_tol, seed,
                 out):  # fmt: skip
    """The higher-order test at theta (module docstring). ``out`` (``N_OUT``): nullity
    (-1: not run: n > DENSE_MAX, or lambda_min < -psd_tol lam_ref), the relative drop
    (L* - L) / gap_scale at the first descent found (0.0: none; NaN: not run), its
    radius / ell (NaN: none), loss evaluations, and the dense Hessian's lambda_min and
    lambda_max (NaN above DENSE_MAX). ``ws`` is overwritten."""
    n = theta.size
    out[0] = -1.0
    out[1] = np.nan
    out[2] = np.nan
    out[3] = 0.0
    out[4] = np.nan
    out[5] = np.nan
    if n > DENSE_MAX:
        return
    K = dims.size - 1
    m = X.shape[1]
    g = np.empty(n)
    l0 = loss_grad(theta, dims, X, Y, act, alpha, lam, ws, g)
    gres = np.sqrt(dot(g, g))
    H = np.empty((n, n))
    hessian_prepared(theta, dims, X, act, alpha, lam, ws, H)
    for i in range(n):
        for j in range(i):
            h = 0.5 * (H[i, j] + H[j, i])
            H[i, j] = h
            H[j, i] = h
    w, U = np.linalg.eigh(H)
    out[4] = w[0]
    out[5] = w[n - 1]
    thr = psd_tol * lam_ref
    if w[0] < -thr:  # indefinite: a strict saddle, nothing to test
        return
    k = 0
    for i in range(n):
        if abs(w[i]) <= thr:
            k += 1
    out[0] = k
    out[1] = 0.0
    if k == 0:
        return
    null = k <= n - k
    B = np.empty((k if null else n - k, n))
    r = 0
    for i in range(n):
        if (abs(w[i]) <= thr) == null:
            B[r, :] = U[:, i]
            r += 1
    # relu / leaky_relu: signs of the hidden pre-activations that are off the kink
    noff = data_offsets(dims, m)
    lo, hi = noff[1], noff[K]
    kinked = act == RELU or act == LEAKY_RELU
    sgn = np.zeros(hi - lo)
    if kinked:
        loss(theta, dims, X, Y, act, alpha, lam, ws)
        for layer in range(1, K):
            a0, a1 = noff[layer], noff[layer + 1]
            zmax = 0.0
            for i in range(a0, a1):
                zmax = max(zmax, abs(ws[i]))
            tol = KINK_TOL * zmax
            for i in range(a0, a1):
                if ws[i] > tol:
                    sgn[i - lo] = 1.0
                elif ws[i] < -tol:
                    sgn[i - lo] = -1.0
    z = ws[lo:hi]  # the hidden pre-activations of the last point evaluated
    # paths: N_DIRS seeded unit vectors of N (an isotropic Gaussian projected), both signs
    P = 2 * N_DIRS
    V = np.empty((P, n))
    rng = np.empty(1, dtype=np.uint64)
    rng[0] = mix64(np.uint64(seed) ^ _STREAM)
    v = np.empty(n)
    for d in range(N_DIRS):
        for i in range(n):
            v[i] = next_normal(rng)
        _project(B, null, v, V[2 * d])
        s = np.sqrt(dot(V[2 * d], V[2 * d]))
        for i in range(n):
            V[2 * d, i] /= s
            V[2 * d + 1, i] = -V[2 * d, i]
    alive = np.ones(P, dtype=np.bool_)
    ups = np.zeros(P, dtype=np.int64)  # consecutive radii above the band
    ell = np.sqrt(gap_scale / lam_ref)
    floor = DROP_TOL * gap_scale
    step0 = 1.0 / max(w[n - 1], lam_ref)
    x = np.empty(n)
    xs = np.empty(n)
    y = np.empty(n)
    gy = np.empty(n)
    c = np.empty(n)
    evals = 0
    for j in range(N_RADII):
        t = RADIUS * ell * 2.0 ** (j + 1 - N_RADII)
        band = floor + gres * t
        for p in range(P):
            if not alive[p]:
                continue
            a = V[p]  # the path's unit null vector, updated in place
            _step_to(theta, t, a, x)
            l = loss_grad(x, dims, X, Y, act, alpha, lam, ws, g)
            evals += 1
            if kinked and not _admissible(z, sgn):
                alive[p] = False
                continue
            copy1(xs, x)
            # a. rotate towards the null-space part of -grad, tangent to the sphere
            for _ in range(ROT_STEPS):
                _project(B, null, g, c)
                ca = dot(c, a)
                nt = 0.0
                for i in range(n):
                    c[i] -= ca * a[i]
                    nt += c[i] * c[i]
                nt = np.sqrt(nt)
                if not nt > 0.0:
                    break
                beta = BETA0
                moved = False
                for _ in range(ROT_TRIES):
                    cb, sb = np.cos(beta), np.sin(beta)
                    s = 0.0
                    for i in range(n):
                        v[i] = cb * a[i] - sb * c[i] / nt
                        s += v[i] * v[i]
                    s = np.sqrt(s)
                    for i in range(n):
                        v[i] /= s
                    _step_to(theta, t, v, x)
                    lt = loss(x, dims, X, Y, act, alpha, lam, ws)
                    evals += 1
                    if lt < l and (not kinked or _admissible(z, sgn)):
                        copy1(a, v)
                        copy1(xs, x)
                        l = loss_grad(x, dims, X, Y, act, alpha, lam, ws, g)
                        evals += 1
                        moved = True
                        break
                    beta *= 0.5
                if not moved:
                    break
            # b. the band
            if l - l0 > band:  # above: a barrier on this path, if it persists
                ups[p] += 1
                if ups[p] >= BLOCK_AFTER:
                    alive[p] = False
                continue
            if l0 - l > band:  # below: descent, if the segment from theta* has no barrier
                ok, e = _ray_ok(theta, xs, j, l0, floor, gres, dims, X, Y, act, alpha, lam, ws,
                                z, sgn, kinked, x)  # fmt: skip
                evals += e
                if ok:
                    _found(out, (l0 - l) / gap_scale, t / ell, evals)
                    return
                ups[p] += 1
                if ups[p] >= BLOCK_AFTER:
                    alive[p] = False
                continue
            ups[p] = 0
            # c. gradient steps from the (in-band) sphere point; g is the gradient there
            copy1(y, xs)
            copy1(gy, g)
            ly = l
            for _ in range(DESCENT_STEPS):
                gg = dot(gy, gy)
                if not step0 * gg > 1e-13 * gap_scale:  # a decrease below resolution
                    break
                h = step0
                ok = False
                for _ in range(HALVINGS + 1):
                    for i in range(n):
                        x[i] = y[i] - h * gy[i]
                    lt = loss(x, dims, X, Y, act, alpha, lam, ws)
                    evals += 1
                    if lt <= ly - ARMIJO * h * gg and (not kinked or _admissible(z, sgn)):
                        ok = True
                        break
                    h *= 0.5
                if not ok:
                    break
                copy1(y, x)
                ly = loss_grad(y, dims, X, Y, act, alpha, lam, ws, gy)
                evals += 1
                if l0 - ly > floor + gres * _distance(y, theta):
                    ok, e = _ray_ok(theta, xs, j, l0, floor, gres, dims, X, Y, act, alpha,
                                    lam, ws, z, sgn, kinked, x)  # fmt: skip
                    evals += e
                    if ok:
                        _found(out, (l0 - ly) / gap_scale, t / ell, evals)
                        return
                    break
    out[3] = evals
