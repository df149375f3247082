"""Fused trainers: the whole optimisation loop of B runs in one compiled call.

``train_batch`` loops over the runs of a slice (``training`` gives slices to
threads: the kernels release the GIL); each run owns its buffers and its
counter-based RNG state, and no value crosses runs, so results are bit-identical
whatever the batch size, slicing or thread count. The drivers are plain serial
kernels, not ``parallel=True`` ones: a parallel loop would be compiled a second
time around the whole trainer (measured: 14 s more of a cold compile).

Per step: loss and gradient (sufficient-statistics form; mini-batch SGD uses the
data form on the sampled columns, scaled by m / b, and the full loss from the
statistics), record, stop checks, stall tracking, optimizer update. Stalls are
detected on the relative gap against training *time* (``RUN_IN.dt`` per step, so
one trajectory gives one record at any stable learning rate); the driver keeps the
probe point of each (the smallest gradient norm seen in it) and
``examine_runs``, called after the driver on the same runs, examines them
(``examine_stall``): the Hessian at the probe point, then the critical point it
shadows, reached by Newton-MR from the probe point, its Hessian, its mode
occupancies and Kawaguchi's rank; and it probes the final point's Hessian.
Examination reads nothing but the probe point, so doing it after training gives
the same numbers, and keeping it out of the drivers keeps their compile small
(a cold first sweep compiles a driver and the examination side by side in two
workers). Inputs, settings, state and outputs are the named records of ``state``.
"""

import numpy as np
from numba import njit

from .._config import JIT
from .chain import node_offsets, param_offsets, weight
from .linalg import copy1
from .objective import (
    loss_grad_data_at,
    loss_grad_stats_at,
    loss_stats_at,
    sq_norm,
    ws_size,
)
from .polish import balance, occupancy, polish, polish_work_size
from .rng import next_normal, next_uniform
from .spectrum import lanczos_extremes
from .state import (
    ADAM,
    CONVERGED,
    DIVERGED,
    GD,
    MAX_STEPS,
    MOMENTUM,
    NESTEROV,
    RING,
    SGD,
    new_states,
)

# what the driver must do after ``track``
A_SAVE_PROBE, A_END_STALL, A_STOP = 1, 2, 4


@njit(**JIT)
def reset_state(st):
    """A run's bookkeeping before its first step."""
    st.status = MAX_STEPS
    st.to_target = -1
    st.n_stalls = 0
    st.kicks = 0
    st.last_kick = -(1 << 60)
    st.in_stall = False
    st.start = 0
    st.probe_step = 0
    st.done = False
    st.min_g = np.inf
    st.probe_loss = np.nan
    st.loss = np.nan
    st.gnorm = np.nan
    st.prev_gap = np.nan
    st.rise = 0.0
    st.start_gap = np.nan
    st.n_unstable = 0
    st.unstable_steps = 0


@njit(**JIT)
def track(t, l, gnorm, st, ring, rin, cfg, max_steps, rec_every, losses):
    """Record step t, check stopping, track stalls; returns A_* flags for the driver.

    Step t is flat when the relative gap fell by less than ``cfg.rel_drop`` of itself
    since ``rin.window`` steps earlier (one detection window of training time) while
    it is above ``cfg.min_gap``; the gap is kept every ``rin.stride`` steps, so the
    comparison point lies at most stride - 1 steps before the window's start.
    """
    st.loss = l
    st.gnorm = gnorm
    if t % rec_every == 0:
        losses[t // rec_every] = l
    gap = (l - cfg.lstar) / cfg.gap_scale
    if not (np.isfinite(l) and np.isfinite(gnorm)) or l > cfg.div_limit:
        st.status = DIVERGED
        action = A_STOP
        if st.in_stall:  # the loss blew up: the stall before it ended at the last step
            st.in_stall = False
            if t - 1 - st.start >= rin.min_length:
                action |= A_END_STALL
        return action
    if gap <= cfg.target and st.to_target < 0:
        st.to_target = t
        if cfg.stop_at_target:
            st.status = CONVERGED
    w, s = rin.window, rin.stride
    flat = False
    old = np.nan
    if t >= w:
        old = ring[((t - w) // s) % RING]
        flat = (old - gap) < cfg.rel_drop * old and gap > cfg.min_gap
    if t % s == 0:
        ring[(t // s) % RING] = gap
    stop = st.status == CONVERGED or t == max_steps
    action = 0
    if flat and not st.in_stall:
        st.in_stall = True
        st.start = t - w
        st.min_g = np.inf
        st.rise = 0.0
        st.start_gap = old
    if st.in_stall and gap > st.prev_gap:
        st.rise += gap - st.prev_gap
    st.prev_gap = gap
    if st.in_stall and flat and gnorm < st.min_g:
        st.min_g = gnorm
        st.probe_step = t
        st.probe_loss = l
        action |= A_SAVE_PROBE
    if st.in_stall and (not flat or stop):
        st.in_stall = False
        if t - st.start >= rin.min_length:
            action |= A_END_STALL
    if stop:
        action |= A_STOP
    return action


@njit(**JIT)
def middle_rank(theta, dims, poff, tol):
    """Numerical rank of W_{K-1}..W_2 (singular values above ``tol``).

    Kawaguchi 2016, Theorem 2.3 (iv): if it equals p, every saddle has a negative
    Hessian eigenvalue. K = 2: the empty product is I of size d_1; K = 1: -1 (no
    hidden layer, the loss is convex).
    """
    K = dims.size - 1
    if K == 1:
        return -1
    if K == 2:
        return dims[1]
    M = weight(theta, dims, poff, 2).copy()
    for k in range(3, K):
        M = weight(theta, dims, poff, k) @ M
    sv = np.linalg.svd(M)[1]
    r = 0
    for v in sv:
        if v > tol:
            r += 1
    return r


@njit(**JIT)
def examine_stall(row, occ, probe_theta, dims, poff, noff, prob, ws, gbuf, work, cfg, seed):
    """The local Hessian at the probe point, then (unless polishing is off) the
    critical point the stall shadows (docs/maths.md, "The shadowed critical point"):

    1. Newton-MR from the probe point to ||grad|| / g_ref <= ``rough_tol``: close to the
       critical family of the stall's learned set S (same product P);
    2. ``balance``: the balanced rank-|S| factorisation of that P, |S| the rounded
       sum of the mode occupancies, with every unused hidden unit exactly zero (the
       family's canonical member; Newton-MR alone may land on a strict member next to
       a bad saddle, with unused units at the init scale);
    3. Newton-MR again to ``polish_tol``; then the Hessian extremes (Lanczos), the
       occupancies and Kawaguchi's rank(W_{K-1}..W_2) there.
    """
    lz = np.empty(5)
    loss_grad_stats_at(probe_theta, dims, poff, noff, prob.Cxx, prob.Cyx, prob.yy, ws, gbuf)
    lanczos_extremes(probe_theta, dims, prob.Cxx, ws, cfg.lz_iter, cfg.lz_tol, seed, lz)
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
    if not cfg.polish:
        occupancy(probe_theta, dims, poff, noff, ws, prob.U, prob.G, occ)
        return
    n = probe_theta.size
    x = work[:n]
    scratch = work[n:]
    copy1(x, probe_theta)
    rough = np.empty(6)
    fine = np.empty(6)
    polish(x, dims, poff, noff, prob.Cxx, prob.Cyx, prob.yy, ws, scratch, cfg.g_ref,
           cfg.rough_tol, cfg.rough_newton, cfg.polish_inner, rough)  # fmt: skip
    occupancy(x, dims, poff, noff, ws, prob.U, prob.G, occ)
    learned = 0.0
    for v in occ:
        learned += v
    balance(x, dims, poff, noff, ws, max(int(np.rint(learned)), 0))
    polish(x, dims, poff, noff, prob.Cxx, prob.Cyx, prob.yy, ws, scratch, cfg.g_ref,
           cfg.polish_tol, cfg.polish_newton, cfg.polish_inner, fine)  # fmt: skip
    row.polished = True
    row.polish_grad_rel = fine[0]
    row.polish_iters = int(rough[1] + fine[1])
    row.polish_hvps = int(rough[2] + fine[2])
    row.polish_converged = fine[3] != 0.0
    d2 = 0.0
    for i in range(n):
        d2 += (x[i] - probe_theta[i]) ** 2
    row.polish_distance = np.sqrt(d2)
    row.polish_loss = fine[5]
    loss_grad_stats_at(x, dims, poff, noff, prob.Cxx, prob.Cyx, prob.yy, ws, gbuf)
    occupancy(x, dims, poff, noff, ws, prob.U, prob.G, occ)
    lanczos_extremes(x, dims, prob.Cxx, ws, cfg.lz_iter, cfg.lz_tol, seed, lz)
    row.lam_min, row.lam_max, row.err_min, row.err_max = lz[0], lz[1], lz[2], lz[3]
    row.kawaguchi_rank = middle_rank(x, dims, poff, cfg.rank_tol * cfg.mid_scale)


@njit(**JIT)
def record_stall(t, st, stalls, cfg):
    """The stall that ended at step t: left out as unstable if the gap climbed back, in
    all, by more than a flat window may lose (``rise`` > rel_drop x its gap at the start:
    the loss rose or oscillated, no plateau); else counted, and written to its row of
    ``stalls`` if there is room. Returns that row's index, or -1 (unstable, or no room).
    Every trainer's rule: what each then does with the row differs."""
    if st.status == DIVERGED:  # ended by a blow-up at t: it lasted until t - 1
        t -= 1
    if not (st.rise <= cfg.rel_drop * st.start_gap):
        st.n_unstable += 1
        st.unstable_steps += t - st.start
        return -1
    i = st.n_stalls
    st.n_stalls = i + 1
    if i >= stalls.shape[0]:
        return -1
    row = stalls[i]
    row.start = st.start
    row.end = t
    row.probe = st.probe_step
    row.loss = st.probe_loss
    row.gnorm = st.min_g
    row.rise = st.rise
    row.start_gap = st.start_gap
    return i


@njit(**JIT)
def end_stall(t, st, stalls, probes, probe_theta, cfg):
    """``record_stall``, keeping a recorded stall's probe point in ``probes`` (for
    ``examine_runs``)."""
    i = record_stall(t, st, stalls, cfg)
    if i >= 0:
        copy1(probes[i], probe_theta)


@njit(**JIT)
def update(opt, h, t, theta, g, buf1, buf2, rng, gnorm, st):
    """One optimizer step on theta (any 1-D layout) with gradient g."""
    n = theta.size
    lr = h[0]
    if opt == GD or opt == SGD:
        for i in range(n):
            theta[i] -= lr * g[i]
    elif opt == MOMENTUM:
        beta = h[1]
        for i in range(n):
            buf1[i] = beta * buf1[i] + g[i]
            theta[i] -= lr * buf1[i]
    elif opt == NESTEROV:
        beta = h[1]
        for i in range(n):
            buf1[i] = beta * buf1[i] + g[i]
            theta[i] -= lr * (g[i] + beta * buf1[i])
    elif opt == ADAM:
        b1, b2, eps = h[1], h[2], h[3]
        c1 = 1.0 - b1 ** (t + 1)
        c2 = 1.0 - b2 ** (t + 1)
        for i in range(n):
            buf1[i] = b1 * buf1[i] + (1.0 - b1) * g[i]
            buf2[i] = b2 * buf2[i] + (1.0 - b2) * g[i] * g[i]
            theta[i] -= lr * (buf1[i] / c1) / (np.sqrt(buf2[i] / c2) + eps)
    else:  # PGD: uniform kick in a ball of radius r when the gradient is small
        if kick_due(h, t, gnorm, st):
            c = draw_kick(buf1, h, rng, st, t)
            for i in range(n):
                theta[i] += c * buf1[i]
        for i in range(n):
            theta[i] -= lr * g[i]


@njit(**JIT)
def kick_due(h, t, gnorm, st):
    """PGD: is a kick due (gradient norm <= grad_tol, interval steps since the last)?"""
    return gnorm <= h[2] and t - st.last_kick >= h[3]


@njit(**JIT)
def draw_kick(kick, h, rng, st, t):
    """A PGD kick: direction into ``kick`` (normals), returns its scale c so that
    c * kick is uniform in the ball of radius h[1]; counts the kick in st."""
    n = kick.size
    for i in range(n):
        kick[i] = next_normal(rng)
    u = next_uniform(rng) ** (1.0 / n)
    st.last_kick = t
    st.kicks += 1
    return h[1] * u / np.sqrt(sq_norm(kick))


@njit(**JIT)
def finish(t, st, out):
    """Per-run outputs (the final-point Hessian probe is ``examine_runs``'s)."""
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


@njit(**JIT)
def examine_runs(theta, dims, prob, runs_in, cfgs, runs_out, stalls, occ, probes):
    """After a driver: examine the recorded stalls of runs theta (B, n) (their probe
    points are ``probes`` (B, max_stalls, n)) into ``stalls`` and ``occ``, and probe
    the Hessian at each run's final point unless it diverged or ``final_probe`` is off.
    Per run in order, from the run's own seed: the numbers do not depend on the batch."""
    cfg = cfgs[0]
    n = theta.shape[1]
    poff, noff = param_offsets(dims), node_offsets(dims)
    ws = np.zeros(ws_size(dims))
    gbuf = np.empty(n)
    work = np.empty(n + polish_work_size(n))
    lz = np.empty(5)
    for b in range(theta.shape[0]):
        out = runs_out[b]
        seed = runs_in[b].seed
        rows, occ_b, probes_b = stalls[b], occ[b], probes[b]
        for i in range(min(out.n_stalls, rows.shape[0])):
            examine_stall(rows[i], occ_b[i], probes_b[i], dims, poff, noff, prob, ws, gbuf,
                          work, cfg, seed)  # fmt: skip
        if out.status != DIVERGED and cfg.final_probe:
            x = theta[b]
            loss_grad_stats_at(x, dims, poff, noff, prob.Cxx, prob.Cyx, prob.yy, ws, gbuf)
            lanczos_extremes(x, dims, prob.Cxx, ws, cfg.lz_iter, cfg.lz_tol, seed, lz)
            out.lam_min, out.lam_max, out.err_min, out.err_max = lz[0], lz[1], lz[2], lz[3]


@njit(**JIT)
def train_one(theta, dims, prob, opt, rin, max_steps, rec_every, cfgs, losses, out, stalls,
              probes):  # fmt: skip
    """Train one run in place; fills its output records and its stalls' probe points
    (``probes``, for ``examine_runs``). ``cfgs``: the ``CONFIG`` record as a 1-element
    array (one signature for every caller)."""
    cfg = cfgs[0]
    n = theta.size
    X, Y = prob.X, prob.Y
    m = X.shape[1]
    h = rin.hyper
    poff, noff = param_offsets(dims), node_offsets(dims)
    ws = np.zeros(ws_size(dims))
    g = np.empty(n)
    buf1 = np.zeros(n)  # momentum / Adam first moment / PGD kick
    buf2 = np.zeros(n)  # Adam second moment
    probe_theta = np.empty(n)
    ring = np.empty(RING)
    rng = np.empty(1, dtype=np.uint64)
    rng[0] = rin.seed
    # mini-batch buffers (size 1 when unused)
    bsz = min(int(h[1]) if opt == SGD else 1, m)
    perm = np.arange(m)
    Xb = np.empty((dims[0], bsz))
    Yb = np.empty((dims[dims.size - 1], bsz))
    Rb = np.empty((dims[dims.size - 1], bsz))
    # a record does not own its memory: ``state`` must stay referenced until the end
    # (its last use below), or Numba frees the array while ``st`` still points into it
    state = new_states(1)
    st = state[0]
    reset_state(st)
    losses[:] = np.nan
    t = 0
    for t in range(max_steps + 1):
        if opt == SGD:
            l = loss_stats_at(theta, dims, poff, noff, prob.Cxx, prob.Cyx, prob.yy, ws)
            for i in range(bsz):  # partial Fisher-Yates: a uniform b-subset
                j = i + int(next_uniform(rng) * (m - i))
                perm[i], perm[j] = perm[j], perm[i]
                copy1(Xb[:, i], X[:, perm[i]])
                copy1(Yb[:, i], Y[:, perm[i]])
            loss_grad_data_at(theta, dims, poff, noff, Xb, Yb, ws, Rb, g)
            s = m / bsz
            for i in range(n):
                g[i] *= s
        else:
            l = loss_grad_stats_at(theta, dims, poff, noff, prob.Cxx, prob.Cyx, prob.yy, ws, g)
        gnorm = np.sqrt(sq_norm(g))
        action = track(t, l, gnorm, st, ring, rin, cfg, max_steps, rec_every, losses)
        if action & A_SAVE_PROBE:
            copy1(probe_theta, theta)
        if action & A_END_STALL:
            end_stall(t, st, stalls, probes, probe_theta, cfg)
        if action & A_STOP:
            break
        update(opt, h, t, theta, g, buf1, buf2, rng, gnorm, st)
    finish(t, state[0], out)


@njit(**JIT)
def train_batch(theta, dims, prob, opt, runs_in, max_steps, rec_every, cfgs, losses, runs_out,
                stalls, probes):  # fmt: skip
    """Train B runs of one shape: theta (B, n) in place; outputs indexed by run (stalls
    still to examine: ``examine_runs``)."""
    for b in range(theta.shape[0]):
        train_one(theta[b], dims, prob, opt, runs_in[b], max_steps, rec_every, cfgs, losses[b],
                  runs_out[b], stalls[b], probes[b])  # fmt: skip
