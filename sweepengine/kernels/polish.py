"""Converge to the critical point a stall shadows: Newton-MR on exact HVPs; mode occupancy.

Newton-MR (Roosta, Liu, Xu and Mahoney 2018): at theta with gradient g and
Hessian H, the step d approximately solves H d = -g by MINRES (Paige and
Saunders 1975) on exact Hessian-vector products, then a backtracking line
search on ||g||^2 accepts theta + alpha d (alpha = 1, 1/2, 1/4, ...) once

    ||g(theta + alpha d)||^2 <= ||g||^2 + 2 rho alpha <H g, d>,      rho = RHO.

MINRES needs no definiteness, so Newton-MR converges to saddles as readily as
to minima (what is wanted: the critical point a plateau shadows, Frye et al.
2019). On a singular H it converges toward a least-squares solution; its
residual norm never increases, so the last iterate is the minimum-residual one.
Because the MINRES residual r = -g - H d is orthogonal to H d,

    <H g, d> = <g, H d> = -(||g||^2 - ||r||^2) <= 0,

so d is a descent direction for ||g||^2 and the Armijo term costs no extra
HVP (||r|| is MINRES's own residual estimate).

Convergence: quadratic onto a critical set that is non-degenerate transversally
(H = 1 saddles and minima: the only null directions of H are the symmetry orbit
W_k -> M W_k, W_{k+1} -> W_{k+1} M^-1, tangent to the set). Only linear onto
a degenerate one: near a point with unused hidden units at zero and H >= 2
hidden layers the loss is, in those units' coordinates x, homogeneous of
degree K, so the gradient there is of order x^(K-1), the Hessian of order
x^(K-2), and the exact Newton step maps x to x (K-2)/(K-1). Each iteration
therefore also tries the extrapolated step (K-1) d, which lands on the set in
one step there (see ``EXTRAP``). A polished point still sits at a distance
~ tol^(1/(K-1)) from the exact set (tol on ||g|| / g_ref) and its Hessian is
~ tol^((K-2)/(K-1)) lam_ref from PSD (1e-5 for tol = 1e-10, K = 3): tolerances
on lambda_min must allow for this.

Which member of a critical family Newton-MR lands on depends on the start: the
family of a bad saddle (H >= 2, unused units at zero) also holds strict members
(an unused unit non-zero in one layer, zero in the next; components along
directions the data never excite, which GD leaves at the init scale), whose
negative curvature shrinks with that scale like the local probe's. Every member
has the same product P = U_S U_S^T Cyx Cxx^+, so the class is read at the
canonical member: ``balance`` (the balanced rank-|S| factorisation of P, unused
units exactly zero), polished once more. Recommended use at a stall probe:

    polish(probe; tol 1e-4, max_newton 10, max_inner 30) -> occupancy -> S (learned_modes)
    -> balance(|S|) -> polish(tol 1e-10, max_newton 20, max_inner 30): accept if converged
    and the loss is the level of S -> lanczos_extremes (ws is prepared) -> class.

(results/polish.md: S right and converged at 12/12 benchmark probes, polish + final
Lanczos <= 2x the current Lanczos probe's time at 12/12.)

Workspace: ``ws`` (``objective.ws_size``) is the usual loss/gradient/HVP
workspace; on return it is prepared at the final theta (``hvp_prepared_at`` and
``spectrum.lanczos_extremes`` may follow directly). ``work`` holds 12 vectors
of length n (``polish_work_size``).
"""

import numpy as np
from numba import njit

from .._config import JIT
from .chain import node, prefix, weight
from .linalg import copy1, dot
from .objective import ws_views
from .operator import StatsObjective, hvp_op, loss_grad_op

# Armijo constant of the line search on ||g||^2 (Newton-MR uses 1e-4): accept any
# step that realises at least this fraction of the decrease predicted by the model.
RHO = 1e-4
# Halvings of the step before the line search gives up (alpha >= 2^-30 ~ 1e-9). Each
# costs one gradient; a direction that does not decrease ||g||^2 even at alpha ~ 1e-9
# means H d = -g was not solved in any useful sense (the rounding floor was reached).
MAX_HALVINGS = 30
# MINRES stops once its residual is below eta ||g||, eta = min(ETA_MAX, (||g|| / g_ref)^ETA_EXP)
# (an Eisenstat-Walker forcing term: loose far out, tight enough near the end for fast local
# convergence), or once the normal-equation residual ||H r|| <= ETA_LS ||H||_est ||r|| (g has
# a component in the null space of H: least squares is reached, the residual cannot fall
# further). Exact solves (ETA_MAX = 1e-10) cost 3-10x the HVPs and, on probes of width-8
# nets whose data leave directions unexcited, still stall at ||g|| / g_ref ~ 5e-10 after 50
# iterations on ill-conditioned Hessians (eigenvalues down to 1e-8 lam_ref); they do not make
# the polished point the canonical one either (see ``balance``), so they buy nothing.
# ETA_LS = 1e-6: past it the residual lies in H's numerical null space to six digits and
# further iterations only lengthen the step along near-null directions (the line search
# then cuts it back); it is scale-free, like every other test here.
ETA_MAX = 0.1
ETA_EXP = 0.5
ETA_LS = 1e-6
# Near a degenerate critical point with unused units at zero the loss is, in those
# units, homogeneous of degree K in the weights, so the exact Newton step d = -x / (K-1)
# only shrinks the distance x by (K-2)/(K-1). Each iteration therefore also tries the
# extrapolated step (K-1) d (EXTRAP * (K-1); one more gradient) and keeps whichever
# of the two gives the smaller ||g||: on such points it lands on the critical set in
# one step, elsewhere the plain step wins and nothing changes.
EXTRAP = 1.0
# Number of vectors of length n in ``work``.
N_VECS = 12


@njit(**JIT)
def polish_work_size(n):
    """Length of the float64 ``work`` buffer ``polish`` needs for n parameters."""
    return N_VECS * n


@njit(**JIT)
def _axpy_into(out, x, a, y):
    """out = x + a y."""
    for i in range(out.size):
        out[i] = x[i] + a * y[i]


@njit(**JIT)
def minres(op, theta, b, eta, eta_ls, max_inner, x, vecs):
    """Approximate solution x of H x = b by MINRES (x0 = 0); returns (||r||, iterations).

    H is the Hessian of the operator ``op`` (``kernels.operator``) at theta, its
    workspace prepared there. Stops when the residual
    estimate phibar = ||b - H x|| <= eta ||b||, when ||H r|| <= ETA_LS ||H|| ||r||
    (least squares reached on a singular H), on a Lanczos breakdown (the Krylov
    space is invariant: x is exact there), or after ``max_inner`` iterations.
    ``vecs`` is a (7, n) block of scratch vectors. Paige and Saunders' recurrences
    as in scipy.sparse.linalg.minres without a preconditioner.
    """
    n = b.size
    r1 = vecs[0]
    r2 = vecs[1]
    y = vecs[2]
    v = vecs[3]
    w = vecs[4]
    w1 = vecs[5]
    w2 = vecs[6]
    for i in range(n):
        x[i] = 0.0
        r1[i] = b[i]
        r2[i] = b[i]
        y[i] = b[i]
        w[i] = 0.0
        w2[i] = 0.0
    beta1 = np.sqrt(dot(b, b))
    if beta1 == 0.0:
        return 0.0, 0
    oldb = 0.0
    beta = beta1
    dbar = 0.0
    epsln = 0.0
    phibar = beta1
    tnorm2 = 0.0
    cs = -1.0
    sn = 0.0
    itn = 0
    while itn < max_inner:
        itn += 1
        s = 1.0 / beta
        for i in range(n):
            v[i] = s * y[i]
        hvp_op(op, theta, v, y)
        if itn >= 2:
            c = beta / oldb
            for i in range(n):
                y[i] -= c * r1[i]
        alfa = dot(v, y)
        c = alfa / beta
        for i in range(n):
            y[i] -= c * r2[i]
            r1[i] = r2[i]
            r2[i] = y[i]
        oldb = beta
        beta = np.sqrt(dot(y, y))
        tnorm2 += alfa * alfa + oldb * oldb + beta * beta
        # plane rotation eliminating the subdiagonal of the tridiagonal
        oldeps = epsln
        delta = cs * dbar + sn * alfa
        gbar = sn * dbar - cs * alfa
        epsln = sn * beta
        dbar = -cs * beta
        root = np.sqrt(gbar * gbar + dbar * dbar)
        gamma = max(np.sqrt(gbar * gbar + beta * beta), 1e-300)
        cs = gbar / gamma
        sn = beta / gamma
        phi = cs * phibar
        phibar = sn * phibar
        denom = 1.0 / gamma
        for i in range(n):
            t = w2[i]
            w2[i] = w[i]
            w1[i] = t
            w[i] = (v[i] - oldeps * w1[i] - delta * w2[i]) * denom
            x[i] += phi * w[i]
        anorm = np.sqrt(tnorm2)
        if phibar <= eta * beta1:
            break
        if root <= eta_ls * anorm:
            break  # ||H r|| / ||r|| (of the previous iterate) small next to ||H||: least squares
        if beta <= 1e-14 * anorm:
            break  # Lanczos breakdown: the Krylov space is invariant, x is exact in it
    return phibar, itn


@njit(**JIT)
def polish(theta, dims, poff, noff, Cxx, Cyx, yy, ws, work, g_ref, tol, max_newton, max_inner, out):
    """``polish_op`` on the deep linear network (statistics form)."""
    op = StatsObjective(dims, poff, noff, Cxx, Cyx, yy, ws)
    polish_op(op, theta, work, g_ref, tol, max_newton, max_inner, out)


@njit(**JIT)
def polish_op(op, theta, work, g_ref, tol, max_newton, max_inner, out):
    """Newton-MR on any operator with the default forcing terms (``ETA_MAX``,
    ``ETA_EXP``, ``ETA_LS``) and extrapolation (K - 1) d; see ``newton_mr``."""
    newton_mr(op, theta, work, g_ref, tol, max_newton, max_inner, ETA_MAX, ETA_EXP, ETA_LS,
              EXTRAP * (op.dims.size - 2), out)  # fmt: skip


@njit(**JIT)
def newton_mr(op, theta, work, g_ref, tol, max_newton, max_inner, eta_max, eta_exp, eta_ls,
              extrap, out):  # fmt: skip
    """Newton-MR from theta (overwritten by the polished point) to a critical point of
    the operator ``op`` (``kernels.operator``: any network; ``op.ws`` is left prepared
    at the final theta).

    Stops when ||g|| / g_ref <= tol, after ``max_newton`` Newton iterations, or
    when the line search finds no acceptable step (then theta is the last
    accepted point). ``out`` (6): final ||g|| / g_ref, Newton iterations, HVPs,
    1.0 if converged (||g|| / g_ref <= tol) else 0.0, ||theta_end - theta_start||,
    final loss. ``g_ref`` = sqrt(lam_ref * gap_scale) has the units of a gradient,
    so ||g|| / g_ref is invariant under rescaling X, Y and W together.
    """
    n = theta.size
    vecs = work.reshape(N_VECS, n)
    g = vecs[0]
    gt = vecs[1]
    start = vecs[2]
    base = vecs[3]
    d = vecs[4]
    mr = vecs[5:]
    copy1(start, theta)
    loss = loss_grad_op(op, theta, g)
    gg = dot(g, g)
    it = 0
    hvps = 0
    while np.sqrt(gg) > tol * g_ref and it < max_newton:
        gnorm = np.sqrt(gg)
        eta = min(eta_max, (gnorm / g_ref) ** eta_exp)
        for i in range(n):
            gt[i] = -g[i]
        rnorm, k = minres(op, theta, gt, eta, eta_ls, max_inner, d, mr)
        hvps += k
        it += 1
        slope = -(gg - min(rnorm * rnorm, gg))  # <H g, d> = -(||g||^2 - ||r||^2)
        copy1(base, theta)
        ggx = np.inf
        if extrap > 1.0:
            _axpy_into(theta, base, extrap, d)
            loss_grad_op(op, theta, gt)
            ggx = dot(gt, gt)
        alpha = 1.0
        accepted = False
        for _ in range(MAX_HALVINGS + 1):
            _axpy_into(theta, base, alpha, d)
            lt = loss_grad_op(op, theta, gt)
            ggt = dot(gt, gt)
            if ggt <= gg + 2.0 * RHO * alpha * slope:
                accepted = True
                break
            alpha *= 0.5
        if ggx < (ggt if accepted else gg + 2.0 * RHO * slope):
            _axpy_into(theta, base, extrap, d)  # the extrapolated step is better: take it
            lt = loss_grad_op(op, theta, gt)
            ggt = dot(gt, gt)
        elif not accepted:
            copy1(theta, base)
            loss = loss_grad_op(op, theta, g)
            gg = dot(g, g)
            break
        loss = lt
        gg = ggt
        copy1(g, gt)
    s = 0.0
    for i in range(n):
        t = theta[i] - start[i]
        s += t * t
    rel = np.sqrt(gg) / g_ref
    out[0] = rel
    out[1] = it
    out[2] = hvps
    out[3] = 1.0 if rel <= tol else 0.0
    out[4] = np.sqrt(s)
    out[5] = loss


@njit(**JIT)
def occupancy(theta, dims, poff, noff, ws, U, G, out):
    """out[i] = u_i^T P g_i, i < r: the occupancy of mode i, P = W_K ... W_1.

    U (d_y, r) holds eigenvectors u_i of Sigma = Cyx Cxx^+ Cyx^T with eigenvalues
    l_i > 0 and G (d_x, r) the columns g_i = Cyx^T u_i / l_i. At a critical point
    P = U_S U_S^T Cyx Cxx^+, so u_i^T P Cyx^T u_i / l_i = [i in S] u_i^T Sigma u_i / l_i
    = [i in S] (u_i^T U_S U_S^T is u_i^T or 0): 1 for a learned mode, 0 otherwise.
    Leaves the prefix products of theta in ``ws`` (an HVP needs a gradient first).
    """
    K = dims.size - 1
    pre = ws_views(ws, dims, noff)[0]
    prefix(theta, dims, poff, noff, pre)
    P = node(pre, dims, noff, K)
    d_y, d_x = P.shape
    for c in range(U.shape[1]):
        s = 0.0
        for a in range(d_y):
            t = 0.0
            for b in range(d_x):
                t += P[a, b] * G[b, c]
            s += U[a, c] * t
        out[c] = s


@njit(**JIT)
def balance(theta, dims, poff, noff, ws, rank):
    """Replace theta by the balanced rank-``rank`` factorisation of its product P.

    With P = W_K ... W_1 = Q diag(s) R^T (SVD, s descending) and D = diag(s_1..s_r)^(1/K),
    r = ``rank``: W_1 = [D R_r^T; 0], W_k = [D 0; 0 0] (1 < k < K), W_K = [Q_r D 0]:
    every layer carries D (W_{k+1}^T W_{k+1} = W_k W_k^T) and every unused hidden unit
    is exactly zero. If P is a critical product U_S U_S^T Cyx Cxx^+ and r = |S| this is
    the canonical member of its critical family (``theory.critical_point``): the one
    whose Hessian decides Kawaguchi's class. Newton-MR lands on some member of the
    family, and next to a bad saddle the family also holds strict members (unused units
    partly non-zero, e.g. components along directions the data never excite, which GD
    leaves at the init scale); their negative curvature shrinks with that scale, like
    the local probe's. Allocates the SVD of the (d_y, d_x) product.
    """
    K = dims.size - 1
    pre = ws_views(ws, dims, noff)[0]
    prefix(theta, dims, poff, noff, pre)
    P = node(pre, dims, noff, K).copy()
    Q, s, Rt = np.linalg.svd(P)
    r = min(rank, s.size)
    theta[:] = 0.0
    for k in range(1, K + 1):
        W = weight(theta, dims, poff, k)
        for i in range(r):
            root = s[i] ** (1.0 / K)
            if K == 1:
                for a in range(W.shape[0]):
                    for b in range(W.shape[1]):
                        W[a, b] += Q[a, i] * s[i] * Rt[i, b]
            elif k == 1:
                for b in range(W.shape[1]):
                    W[i, b] = root * Rt[i, b]
            elif k == K:
                for a in range(W.shape[0]):
                    W[a, i] = Q[a, i] * root
            else:
                W[i, i] = root
