"""Fused trainer for networks with an activation and weight decay (data form).

    L = 1/2 ||W_K s(... s(W_1 X)) - Y||_F^2 + lam/2 ||theta||^2      (``activation``)

The per-run loop is ``trainer.train_one``'s with the loss and gradient of
``activation.loss_grad`` in place of the statistics form, and it calls the linear
trainer's own bookkeeping: ``trainer.reset_state``, ``trainer.track`` (recording,
stop checks and the stall rule: the same code, on the same ``state`` records),
``trainer.update`` (gd, momentum, nesterov, adam, pgd with ``kick_due`` /
``draw_kick``; sgd's plain step). Mini-batch SGD samples its b columns exactly as
``trainer.train_one`` does (a partial Fisher-Yates shuffle driven by the run's
counter-based stream, one ``next_uniform`` per column), takes the data-term
gradient on them scaled by m / b and adds the full weight-decay term lam theta;
the recorded loss is the full loss.

What differs from the linear trainer:

- ``CONFIG`` is one record *per run* (``cfgs[b]``): L* is unknown, so ``lstar`` is a
  floor given by the caller and ``gap_scale`` / ``g_ref`` / ``div_limit`` may differ
  per run (``sweepengine.nltraining`` fills them; docs/nonlinear.md, "Trainer").
- The stall examination (``examine_stall``) has no modes, no balancing and no
  Kawaguchi rank: a stall that shadows W = 0 (``shadows_origin``) is examined at
  W = 0 itself; otherwise from the probe point, Newton-MR on the exact nonlinear HVPs
  (``newton_mr``, the algorithm and constants of ``polish.newton_mr``: MINRES with
  the same forcing terms, line search on ||g||^2 and extrapolated step (K-1) d),
  then the Hessian's extremes there by Lanczos on the same HVPs (``lanczos_extremes``,
  ``spectrum.lanczos_extremes``'s algorithm) and, at a PSD polished point, the
  higher-order test ``descent.descent_test`` (non-strict saddle or minimum).
  ``kawaguchi_rank`` is written -1.
  ``polish.newton_mr`` and ``spectrum.lanczos_extremes`` call the linear HVP directly
  (no callback), hence the copies here.

Bit-identical whatever the batch size or slicing: each run owns its buffers and RNG.

Numba's on-disk cache keys this module's compiled code on this file alone, not on
``activation.py`` or ``descent.py``, whose kernels are compiled into it: after a change
there, change this file too (or clear ``NUMBA_CACHE_DIR``), or cached trainers keep
running the old code. (Last for ``activation.loss_grad_at``, offsets computed once.)
"""

import numpy as np
from numba import njit

from .._config import JIT
from .activation import data_offsets, hvp_prepared, loss, loss_grad, loss_grad_at, ws_size
from .chain import param_offsets
from .descent import N_OUT, descent_test
from .linalg import copy1, dot
from .objective import sq_norm
from .polish import ETA_EXP, ETA_LS, ETA_MAX, EXTRAP, MAX_HALVINGS, N_VECS, RHO
from .rng import next_uniform
from .spectrum import _ritz_extremes, _start_vector
from .state import DIVERGED, RING, SGD, new_states
from .trainer import A_END_STALL, A_SAVE_PROBE, A_STOP, reset_state, track, update


@njit(**JIT)
def minres(theta, dims, X, act, alpha, lam, ws, b, eta, eta_ls, max_inner, x, vecs):
    """``polish.minres`` with the nonlinear HVP (``ws`` prepared by ``loss_grad`` at theta)."""
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
        hvp_prepared(theta, dims, X, act, alpha, lam, ws, v, y)
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
            break
        if beta <= 1e-14 * anorm:
            break
    return phibar, itn


@njit(**JIT)
def _step_to(theta, base, a, d):
    for i in range(theta.size):
        theta[i] = base[i] + a * d[i]


@njit(**JIT)
def newton_mr(theta, dims, X, Y, act, alpha, lam, ws, work, g_ref, tol, max_newton, max_inner,
              out):  # fmt: skip
    """``polish.newton_mr`` (default forcing terms, extrapolation (K-1) d) on the nonlinear
    loss; theta is overwritten by the polished point and ``ws`` is left prepared there.
    ``work``: ``polish.polish_work_size(n)``. ``out`` (6): ||g|| / g_ref, Newton
    iterations, HVPs, converged (1.0 / 0.0), ||theta_end - theta_start||, final loss."""
    n = theta.size
    extrap = EXTRAP * (dims.size - 2)
    vecs = work[: N_VECS * n].reshape(N_VECS, n)
    g = vecs[0]
    gt = vecs[1]
    start = vecs[2]
    base = vecs[3]
    d = vecs[4]
    mr = vecs[5:]
    copy1(start, theta)
    l = loss_grad(theta, dims, X, Y, act, alpha, lam, ws, g)
    gg = dot(g, g)
    it = 0
    hvps = 0
    while np.sqrt(gg) > tol * g_ref and it < max_newton:
        gnorm = np.sqrt(gg)
        eta = min(ETA_MAX, (gnorm / g_ref) ** ETA_EXP)
        for i in range(n):
            gt[i] = -g[i]
        rnorm, k = minres(theta, dims, X, act, alpha, lam, ws, gt, eta, ETA_LS, max_inner, d, mr)
        hvps += k
        it += 1
        slope = -(gg - min(rnorm * rnorm, gg))
        copy1(base, theta)
        ggx = np.inf
        if extrap > 1.0:
            _step_to(theta, base, extrap, d)
            loss_grad(theta, dims, X, Y, act, alpha, lam, ws, gt)
            ggx = dot(gt, gt)
        a = 1.0
        accepted = False
        lt = l
        ggt = gg
        for _ in range(MAX_HALVINGS + 1):
            _step_to(theta, base, a, d)
            lt = loss_grad(theta, dims, X, Y, act, alpha, lam, ws, gt)
            ggt = dot(gt, gt)
            if ggt <= gg + 2.0 * RHO * a * slope:
                accepted = True
                break
            a *= 0.5
        if ggx < (ggt if accepted else gg + 2.0 * RHO * slope):
            _step_to(theta, base, extrap, d)
            lt = loss_grad(theta, dims, X, Y, act, alpha, lam, ws, gt)
            ggt = dot(gt, gt)
        elif not accepted:
            copy1(theta, base)
            l = loss_grad(theta, dims, X, Y, act, alpha, lam, ws, g)
            gg = dot(g, g)
            break
        l = lt
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
    out[5] = l


@njit(**JIT)
def lanczos_extremes(theta, dims, X, act, alpha, lam, ws, maxiter, tol, seed, out):
    """``spectrum.lanczos_extremes`` on the nonlinear HVP (``ws`` prepared at theta):
    out = (lam_min, lam_max, err_min, err_max, iterations). Capped at n iterations: with
    full re-orthogonalisation the n-th gives the exact extremes (bounds 0)."""
    n = theta.size
    m = min(maxiter, n)
    Q = np.empty((m, n))
    a_ = np.zeros(m)
    b_ = np.zeros(m)
    w = np.empty(n)
    coef = np.empty(m)
    Q[0] = _start_vector(n, seed)
    scale = 0.0
    lo = hi = elo = ehi = 0.0
    j = 0
    for j in range(m):
        hvp_prepared(theta, dims, X, act, alpha, lam, ws, Q[j], w)
        a = dot(Q[j], w)
        a_[j] = a
        for _ in range(2):
            for i in range(j + 1):
                coef[i] = dot(Q[i], w)
            for i in range(j + 1):
                c = coef[i]
                for t in range(n):
                    w[t] -= c * Q[i, t]
        b = np.sqrt(dot(w, w))
        b_[j] = b
        scale = max(scale, abs(a), b)
        breakdown = b <= 1e-13 * scale or scale == 0.0
        if breakdown or j == n - 1:
            b_[j] = 0.0
        if breakdown or j == m - 1 or j % 4 == 3:
            lo, hi, elo, ehi = _ritz_extremes(a_, b_, j)
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


ORIGIN_BAND = 1e-3  # origin test: the ray to 0 stays within this x gap_scale of L(0)
ORIGIN_RAY = 8  # ... at t = 1, 1/2, .., 2^-ORIGIN_RAY along the ray
ORIGIN_EULER = 0.1  # ... and H theta = (K - 1) grad within this x ||H theta|| at the probe


@njit(**JIT)
def shadows_origin(probe, dims, X, Y, act, alpha, lam, ws, g, buf, gap_scale):
    """Whether a stall whose probe point is ``probe`` shadows W = 0 (docs/nonlinear.md,
    "Stall examination"): K >= 3 and no weight decay (W = 0 is then a critical point
    whose Hessian vanishes, every activation here having s(0) = 0; with decay it is a
    strict minimum, Hessian lam I, which Newton-MR reaches), and at the probe point

    - the gradient is not 0 (a dead relu net at the level of L(0) does not move);
    - the loss is homogeneous of degree K there, as the network output is near 0:
      Euler's relation for the gradient, H theta = (K - 1) grad, holds within
      ORIGIN_EULER x ||H theta|| (a net with one layer of order one and the others
      near 0 is not in that regime: tanh saturates; its critical point is not 0);
    - the loss along the ray t x probe, t = 1, 1/2, .., 2^-ORIGIN_RAY, stays within
      ORIGIN_BAND x gap_scale of L(0): the probe point lies on the level set of W = 0
      that gradient flow from small weights follows.

    ``ws`` prepared at the probe point (``loss_grad``) and ``g`` its gradient there, as
    ``examine_stall`` leaves them; ``buf``: 2n scratch values. Leaves ``ws`` prepared at
    an arbitrary point."""
    K = dims.size - 1
    if K < 3 or lam != 0.0:
        return False
    n = probe.size
    gg = dot(g, g)
    if not gg > 0.0:
        return False
    hv = buf[n : 2 * n]
    hvp_prepared(probe, dims, X, act, alpha, lam, ws, probe, hv)
    rr = 0.0
    for i in range(n):
        r = hv[i] - (K - 1) * g[i]
        rr += r * r
    if not rr <= ORIGIN_EULER * ORIGIN_EULER * dot(hv, hv):
        return False
    ray = buf[:n]
    for i in range(n):
        ray[i] = 0.0
    l0 = loss(ray, dims, X, Y, act, alpha, lam, ws)
    band = ORIGIN_BAND * gap_scale
    t = 1.0
    for _ in range(ORIGIN_RAY + 1):
        for i in range(n):
            ray[i] = t * probe[i]
        if not abs(loss(ray, dims, X, Y, act, alpha, lam, ws) - l0) <= band:
            return False
        t *= 0.5
    return True


@njit(**JIT)
def examine_stall(row, probe_theta, dims, X, Y, act, alpha, lam, ws, gbuf, work, cfg, seed):
    """The Hessian at the probe point (local view), then unless ``cfg.polish`` is off:
    W = 0 itself where the stall shadows it (``shadows_origin``: no Newton-MR), else
    Newton-MR from there to ||grad|| / g_ref <= ``polish_tol`` (at most ``rough_newton``
    + ``polish_newton`` steps: the linear trainer's two passes, with no balancing between
    them), the Hessian extremes at the point reached and, where it converged with
    lambda_min >= -psd_tol x lam_ref (PSD), the higher-order test of
    ``descent.descent_test`` (``nullity``, ``descent_*``; lam_ref = g_ref^2 /
    gap_scale)."""
    lz = np.empty(5)
    loss_grad(probe_theta, dims, X, Y, act, alpha, lam, ws, gbuf)
    lanczos_extremes(probe_theta, dims, X, act, alpha, lam, ws, cfg.lz_iter, cfg.lz_tol, seed, lz)
    row.local_lam_min, row.local_lam_max = lz[0], lz[1]
    row.local_err_min, row.local_err_max = lz[2], lz[3]
    row.lanczos_iters = int(lz[4])
    row.polished = False
    row.polish_converged = False
    row.polish_iters = 0
    row.polish_hvps = 0
    row.polish_grad_rel = np.nan
    row.polish_distance = np.nan
    row.polish_loss = np.nan
    row.lam_min = row.lam_max = row.err_min = row.err_max = np.nan
    row.kawaguchi_rank = -1
    row.nullity = -1
    row.descent_drop = np.nan
    row.descent_radius = np.nan
    row.descent_evals = 0
    if not cfg.polish:
        return
    n = probe_theta.size
    x = work[:n]
    res = np.empty(6)
    if shadows_origin(probe_theta, dims, X, Y, act, alpha, lam, ws, gbuf, work[n : 3 * n],
                      cfg.gap_scale):  # fmt: skip
        # the critical point is W = 0 itself: no Newton-MR (iterations 0), distance
        # from the probe point, its gradient (0 exactly) and loss
        for i in range(n):
            x[i] = 0.0
        res[5] = loss_grad(x, dims, X, Y, act, alpha, lam, ws, gbuf)
        res[0] = np.sqrt(dot(gbuf, gbuf)) / cfg.g_ref
        res[1] = 0.0
        res[2] = 0.0
        res[3] = 1.0 if res[0] <= cfg.polish_tol else 0.0
        res[4] = np.sqrt(dot(probe_theta, probe_theta))
    else:
        copy1(x, probe_theta)
        newton_mr(x, dims, X, Y, act, alpha, lam, ws, work[n:], cfg.g_ref, cfg.polish_tol,
                  cfg.rough_newton + cfg.polish_newton, cfg.polish_inner, res)  # fmt: skip
    row.polished = True
    row.polish_grad_rel = res[0]
    row.polish_iters = int(res[1])
    row.polish_hvps = int(res[2])
    row.polish_converged = res[3] != 0.0
    row.polish_distance = res[4]
    row.polish_loss = res[5]
    lanczos_extremes(x, dims, X, act, alpha, lam, ws, cfg.lz_iter, cfg.lz_tol, seed, lz)
    row.lam_min, row.lam_max, row.err_min, row.err_max = lz[0], lz[1], lz[2], lz[3]
    lam_ref = cfg.g_ref * cfg.g_ref / cfg.gap_scale
    if row.polish_converged and lz[0] >= -cfg.psd_tol * lam_ref:
        d = np.empty(N_OUT)
        descent_test(x, dims, X, Y, act, alpha, lam, ws, cfg.gap_scale, lam_ref, cfg.psd_tol,
                     seed, d)  # fmt: skip
        row.nullity = int(d[0])
        row.descent_drop = d[1]
        row.descent_radius = d[2]
        row.descent_evals = int(d[3])


@njit(**JIT)
def end_stall(t, st, stalls, probe_theta, dims, X, Y, act, alpha, lam, ws, gbuf, work, cfg,
              seed):  # fmt: skip
    """``trainer.end_stall``'s rule (unstable stretches left out and counted; recorded if
    there is room, counted either way), with the nonlinear ``examine_stall``."""
    if st.status == DIVERGED:
        t -= 1
    if not (st.rise <= cfg.rel_drop * st.start_gap):
        st.n_unstable += 1
        st.unstable_steps += t - st.start
        return
    i = st.n_stalls
    if i < stalls.shape[0]:
        row = stalls[i]
        row.start = st.start
        row.end = t
        row.probe = st.probe_step
        row.loss = st.probe_loss
        row.gnorm = st.min_g
        row.rise = st.rise
        row.start_gap = st.start_gap
        examine_stall(row, probe_theta, dims, X, Y, act, alpha, lam, ws, gbuf, work, cfg, seed)
    st.n_stalls = i + 1


@njit(**JIT)
def finish(t, theta, st, out, dims, X, Y, act, alpha, lam, ws, gbuf, cfg, seed):
    """``trainer.finish`` with the nonlinear Hessian at the final point."""
    out.status = st.status
    out.steps = t
    out.to_target = st.to_target
    out.n_stalls = st.n_stalls
    out.n_unstable = st.n_unstable
    out.unstable_steps = st.unstable_steps
    out.kicks = st.kicks
    out.loss = st.loss
    out.grad_norm = st.gnorm
    out.lam_min = out.lam_max = out.err_min = out.err_max = np.nan
    if st.status != DIVERGED and cfg.final_probe:
        lz = np.empty(5)
        loss_grad(theta, dims, X, Y, act, alpha, lam, ws, gbuf)
        lanczos_extremes(theta, dims, X, act, alpha, lam, ws, cfg.lz_iter, cfg.lz_tol, seed, lz)
        out.lam_min, out.lam_max, out.err_min, out.err_max = lz[0], lz[1], lz[2], lz[3]


@njit(**JIT)
def train_one(theta, dims, X, Y, act, alpha, lam, opt, rin, max_steps, rec_every, cfgs, losses,
              out, stalls, probes):  # fmt: skip
    """Train one run in place (``trainer.train_one``'s loop); ``cfgs``: this run's
    ``CONFIG`` record as a 1-element array. ``probes`` (S, n): the probe point of the
    run's i-th recorded stall is copied to ``probes[i]`` for i < S (S = 0: none kept)."""
    cfg = cfgs[0]
    n = theta.size
    m = X.shape[1]
    h = rin.hyper
    ws = np.zeros(ws_size(dims, m))
    g = np.empty(n)
    buf1 = np.zeros(n)
    buf2 = np.zeros(n)
    probe_theta = np.empty(n)
    gprobe = np.empty(n)
    work = np.empty(n + N_VECS * n)
    ring = np.empty(RING)
    rng = np.empty(1, dtype=np.uint64)
    rng[0] = rin.seed
    bsz = min(int(h[1]) if opt == SGD else 1, m)
    perm = np.arange(m)
    Xb = np.empty((dims[0], bsz))
    Yb = np.empty((dims[dims.size - 1], bsz))
    wsb = np.zeros(ws_size(dims, bsz) if opt == SGD else 1)
    poff, noff, noffb = param_offsets(dims), data_offsets(dims, m), data_offsets(dims, bsz)
    state = new_states(1)
    st = state[0]
    reset_state(st)
    losses[:] = np.nan
    t = 0
    for t in range(max_steps + 1):
        if opt == SGD:
            l = loss(theta, dims, X, Y, act, alpha, lam, ws)
            for i in range(bsz):  # partial Fisher-Yates, as trainer.train_one
                j = i + int(next_uniform(rng) * (m - i))
                perm[i], perm[j] = perm[j], perm[i]
                Xb[:, i] = X[:, perm[i]]
                Yb[:, i] = Y[:, perm[i]]
            loss_grad_at(theta, dims, poff, noffb, Xb, Yb, act, alpha, 0.0, wsb, g)
            s = m / bsz
            for i in range(n):
                g[i] *= s
            if lam != 0.0:
                for i in range(n):
                    g[i] += lam * theta[i]
        else:
            l = loss_grad_at(theta, dims, poff, noff, X, Y, act, alpha, lam, ws, g)
        gnorm = np.sqrt(sq_norm(g))
        action = track(t, l, gnorm, st, ring, rin, cfg, max_steps, rec_every, losses)
        if action & A_SAVE_PROBE:
            copy1(probe_theta, theta)
        if action & A_END_STALL:
            i = st.n_stalls
            end_stall(t, st, stalls, probe_theta, dims, X, Y, act, alpha, lam, ws, gprobe, work,
                      cfg, rin.seed)  # fmt: skip
            if st.n_stalls > i and i < stalls.shape[0] and i < probes.shape[0]:
                probes[i, :] = probe_theta
        if action & A_STOP:
            break
        update(opt, h, t, theta, g, buf1, buf2, rng, gnorm, st)
    finish(t, theta, state[0], out, dims, X, Y, act, alpha, lam, ws, gprobe, cfg, rin.seed)


@njit(**JIT)
def train_batch(theta, dims, X, Y, act, alpha, lam, opt, runs_in, max_steps, rec_every, cfgs,
                losses, runs_out, stalls, probes):  # fmt: skip
    """Train B runs of one shape: theta (B, n) in place; ``cfgs`` (B,) ``CONFIG`` records
    (one per run); outputs indexed by run, ``probes`` (B, S, n) the recorded stalls'
    probe points (S = 0: none kept). A serial loop (threads take slices)."""
    for b in range(theta.shape[0]):
        train_one(theta[b], dims, X, Y, act, alpha, lam, opt, runs_in[b], max_steps, rec_every,
                  cfgs[b : b + 1], losses[b], runs_out[b], stalls[b], probes[b])  # fmt: skip


@njit(**JIT)
def initial_losses(theta, dims, X, Y, act, alpha, lam):
    """L(theta_b) for each row of theta (B, n)."""
    ws = np.zeros(ws_size(dims, X.shape[1]))
    out = np.empty(theta.shape[0])
    for b in range(theta.shape[0]):
        out[b] = loss(theta[b], dims, X, Y, act, alpha, lam, ws)
    return out
