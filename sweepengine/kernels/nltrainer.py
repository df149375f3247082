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
  (``polish.polish_op`` on an ``activation.NetObjective``: the linear network's
  solver, forcing terms, line search on ||g||^2 and extrapolated step (K-1) d), then
  the Hessian's extremes there by ``spectrum.lanczos`` on the same HVPs and, at a PSD
  polished point, the higher-order test ``descent.descent_test`` (non-strict saddle
  or minimum). ``kawaguchi_rank`` is written -1.

Bit-identical whatever the batch size or slicing: each run owns its buffers and RNG.

Numba's on-disk cache keys this module's compiled code on this file alone, not on
``activation.py``, ``descent.py``, ``operator.py``, ``polish.py`` or ``spectrum.py``,
whose kernels are compiled into it: after a change there, change this file too (or
clear ``NUMBA_CACHE_DIR``), or cached trainers keep running the old code. (Last for
the shared solvers of ``kernels.operator``.)
"""

import numpy as np
from numba import njit

from .._config import JIT
from .activation import (
    NetObjective,
    data_offsets,
    hvp_prepared,
    loss,
    loss_grad,
    loss_grad_at,
    ws_size,
)
from .chain import param_offsets
from .descent import N_OUT, descent_test
from .linalg import copy1, dot
from .objective import sq_norm
from .polish import N_VECS, polish_op
from .rng import next_uniform
from .spectrum import lanczos
from .state import DIVERGED, RING, SGD, new_states
from .trainer import A_END_STALL, A_SAVE_PROBE, A_STOP, record_stall, reset_state, track, update


@njit(**JIT)
def lanczos_extremes(theta, dims, X, Y, act, alpha, lam, ws, maxiter, tol, seed, out):
    """``spectrum.lanczos`` on the network's Hessian at theta (``ws`` prepared there by
    ``loss_grad``): out = (lam_min, lam_max, err_min, err_max, iterations)."""
    lanczos(NetObjective(dims, X, Y, act, alpha, lam, ws), theta, maxiter, tol, seed, out)


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
    op = NetObjective(dims, X, Y, act, alpha, lam, ws)
    loss_grad(probe_theta, dims, X, Y, act, alpha, lam, ws, gbuf)
    lanczos(op, probe_theta, cfg.lz_iter, cfg.lz_tol, seed, lz)
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
        polish_op(op, x, work[n:], cfg.g_ref, cfg.polish_tol, cfg.rough_newton + cfg.polish_newton,
                  cfg.polish_inner, res)  # fmt: skip
    row.polished = True
    row.polish_grad_rel = res[0]
    row.polish_iters = int(res[1])
    row.polish_hvps = int(res[2])
    row.polish_converged = res[3] != 0.0
    row.polish_distance = res[4]
    row.polish_loss = res[5]
    lanczos(op, x, cfg.lz_iter, cfg.lz_tol, seed, lz)
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
        lanczos_extremes(theta, dims, X, Y, act, alpha, lam, ws, cfg.lz_iter, cfg.lz_tol, seed,
                         lz)  # fmt: skip
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
            i = record_stall(t, st, stalls, cfg)
            if i >= 0:
                examine_stall(stalls[i], probe_theta, dims, X, Y, act, alpha, lam, ws, gprobe,
                              work, cfg, rin.seed)  # fmt: skip
                if i < probes.shape[0]:
                    copy1(probes[i], probe_theta)
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
