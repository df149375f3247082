"""Fused trainers: the whole optimisation loop of B runs in one compiled call.

``train_batch`` runs ``prange`` over runs; each run owns its buffers and its
counter-based RNG state, and no value crosses runs, so results are bit-identical
whatever the batch size or thread count.

Per step: loss and gradient (sufficient-statistics form; mini-batch SGD uses the
data form on the sampled columns, scaled by m / b, and the full loss from the
statistics), record, stop checks, stall tracking, optimizer update. Stalls are
tracked online on the relative gap and probed (Lanczos on exact HVPs) at their
smallest-gradient point.
"""

import numpy as np
from numba import njit, prange

from .._config import JIT, JIT_PARALLEL
from .chain import node_offsets, param_offsets
from .objective import loss_grad_data_at, loss_grad_stats_at, loss_stats_at, sq_norm, ws_size
from .rng import next_normal, next_uniform
from .spectrum import lanczos_extremes

# optimizer codes (see sweepengine.options.OPTIMIZERS)
GD, MOMENTUM, NESTEROV, SGD, ADAM, PGD = 0, 1, 2, 3, 4, 5
# status codes
CONVERGED, MAX_STEPS, DIVERGED = 0, 1, 2

# cfg slots (float64 vector)
C_WINDOW, C_REL_DROP, C_MIN_LENGTH, C_MIN_GAP = 0, 1, 2, 3
C_MAX_STALLS, C_LZ_ITER, C_LZ_TOL, C_TARGET = 4, 5, 6, 7
C_LSTAR, C_GAP_SCALE, C_DIV_LIMIT, C_STOP_AT_TARGET, C_FINAL_PROBE = 8, 9, 10, 11, 12
N_CFG = 13

# per-run integer outputs
I_STATUS, I_STEPS, I_TO_TARGET, I_NSTALLS, I_KICKS = 0, 1, 2, 3, 4
N_IOUT = 5
# per-run float outputs
F_LOSS, F_GNORM, F_LMIN, F_LMAX, F_EMIN, F_EMAX = 0, 1, 2, 3, 4, 5
N_FOUT = 6
# per-stall fields
S_START, S_END, S_PROBE, S_LOSS, S_GNORM, S_LMIN, S_LMAX, S_EMIN, S_EMAX, S_ITERS = range(10)
N_SFIELDS = 10

# per-run bookkeeping state shared by both drivers: integers and floats
SI_STATUS, SI_TO_TARGET, SI_NSTALLS, SI_KICKS, SI_LAST_KICK, SI_IN_STALL = 0, 1, 2, 3, 4, 5
SI_START, SI_PROBE_STEP, SI_DONE = 6, 7, 8
N_SI = 9
SF_MIN_G, SF_PROBE_LOSS, SF_L, SF_GNORM = 0, 1, 2, 3
N_SF = 4
# what the driver must do after ``track``
A_SAVE_PROBE, A_END_STALL, A_STOP = 1, 2, 4


@njit(**JIT)
def _probe(theta, dims, poff, noff, Cxx, Cyx, yy, ws, gbuf, cfg, seed, out):
    """Extreme Hessian eigenvalues at theta: out[0:5] = lam_min, lam_max, errs, iters."""
    loss_grad_stats_at(theta, dims, poff, noff, Cxx, Cyx, yy, ws, gbuf)
    lanczos_extremes(theta, dims, Cxx, ws, int(cfg[C_LZ_ITER]), cfg[C_LZ_TOL], seed, out)


@njit(**JIT)
def new_state():
    si = np.zeros(N_SI, dtype=np.int64)
    si[SI_STATUS] = MAX_STEPS
    si[SI_TO_TARGET] = -1
    si[SI_LAST_KICK] = -(1 << 60)
    sf = np.zeros(N_SF)
    sf[SF_MIN_G] = np.inf
    return si, sf


@njit(**JIT)
def track(t, l, gnorm, si, sf, ring, cfg, max_steps, rec_every, losses):
    """Record step t, check stopping, track stalls; returns A_* flags for the driver."""
    sf[SF_L] = l
    sf[SF_GNORM] = gnorm
    if t % rec_every == 0:
        losses[t // rec_every] = l
    if not (np.isfinite(l) and np.isfinite(gnorm)) or l > cfg[C_DIV_LIMIT]:
        si[SI_STATUS] = DIVERGED
        return A_STOP
    gap = (l - cfg[C_LSTAR]) / cfg[C_GAP_SCALE]
    if gap <= cfg[C_TARGET] and si[SI_TO_TARGET] < 0:
        si[SI_TO_TARGET] = t
        if cfg[C_STOP_AT_TARGET] != 0.0:
            si[SI_STATUS] = CONVERGED
    # stall tracking on the relative gap
    window = ring.size
    flat = False
    if t >= window:
        old = ring[t % window]
        flat = (old - gap) < cfg[C_REL_DROP] * old and gap > cfg[C_MIN_GAP]
    ring[t % window] = gap
    stop = si[SI_STATUS] == CONVERGED or t == max_steps
    action = 0
    if flat and si[SI_IN_STALL] == 0:
        si[SI_IN_STALL] = 1
        si[SI_START] = t - window
        sf[SF_MIN_G] = np.inf
    if si[SI_IN_STALL] != 0 and flat and gnorm < sf[SF_MIN_G]:
        sf[SF_MIN_G] = gnorm
        si[SI_PROBE_STEP] = t
        sf[SF_PROBE_LOSS] = l
        action |= A_SAVE_PROBE
    if si[SI_IN_STALL] != 0 and (not flat or stop):
        si[SI_IN_STALL] = 0
        if t - si[SI_START] >= cfg[C_MIN_LENGTH]:
            action |= A_END_STALL
    if stop:
        action |= A_STOP
    return action


@njit(**JIT)
def end_stall(t, si, sf, stalls, probe_theta, dims, poff, noff, Cxx, Cyx, yy, ws, gbuf, cfg,
              seed, probe_out):  # fmt: skip
    """Record (and probe) the stall that ended at step t, if there is room for it."""
    if si[SI_NSTALLS] < stalls.shape[0]:
        row = stalls[si[SI_NSTALLS]]
        row[S_START] = si[SI_START]
        row[S_END] = t
        row[S_PROBE] = si[SI_PROBE_STEP]
        row[S_LOSS] = sf[SF_PROBE_LOSS]
        row[S_GNORM] = sf[SF_MIN_G]
        _probe(probe_theta, dims, poff, noff, Cxx, Cyx, yy, ws, gbuf, cfg, seed, probe_out)
        row[S_LMIN : S_ITERS + 1] = probe_out
    si[SI_NSTALLS] += 1


@njit(**JIT)
def update(opt, h, t, theta, g, buf1, buf2, rng, gnorm, si):
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
        if kick_due(h, t, gnorm, si):
            c = draw_kick(buf1, h, rng, si, t)
            for i in range(n):
                theta[i] += c * buf1[i]
        for i in range(n):
            theta[i] -= lr * g[i]


@njit(**JIT)
def kick_due(h, t, gnorm, si):
    """PGD: is a kick due (gradient norm <= grad_tol, interval steps since the last)?"""
    return gnorm <= h[2] and t - si[SI_LAST_KICK] >= h[3]


@njit(**JIT)
def draw_kick(kick, h, rng, si, t):
    """A PGD kick: direction into ``kick`` (normals), returns its scale c so that
    c * kick is uniform in the ball of radius h[1]; counts the kick in si."""
    n = kick.size
    for i in range(n):
        kick[i] = next_normal(rng)
    u = next_uniform(rng) ** (1.0 / n)
    si[SI_LAST_KICK] = t
    si[SI_KICKS] += 1
    return h[1] * u / np.sqrt(sq_norm(kick))


@njit(**JIT)
def finish(t, theta, si, sf, dims, poff, noff, Cxx, Cyx, yy, ws, gbuf, cfg, seed, probe_out,
           iout, fout):  # fmt: skip
    """Per-run outputs; the final-point Hessian probe unless the run diverged."""
    iout[I_STATUS] = si[SI_STATUS]
    iout[I_STEPS] = t
    iout[I_TO_TARGET] = si[SI_TO_TARGET]
    iout[I_NSTALLS] = si[SI_NSTALLS]
    iout[I_KICKS] = si[SI_KICKS]
    fout[F_LOSS] = sf[SF_L]
    fout[F_GNORM] = sf[SF_GNORM]
    fout[F_LMIN:] = np.nan
    if si[SI_STATUS] != DIVERGED and cfg[C_FINAL_PROBE] != 0.0:
        _probe(theta, dims, poff, noff, Cxx, Cyx, yy, ws, gbuf, cfg, seed, probe_out)
        fout[F_LMIN:] = probe_out[:4]


@njit(**JIT)
def train_one(theta, dims, Cxx, Cyx, yy, X, Y, opt, h, seed, max_steps, rec_every, cfg,
              losses, iout, fout, stalls):  # fmt: skip
    """Train one run in place; fills its rows of the output arrays."""
    n = theta.size
    m = X.shape[1]
    poff, noff = param_offsets(dims), node_offsets(dims)
    ws = np.zeros(ws_size(dims))
    g = np.empty(n)
    buf1 = np.zeros(n)  # momentum / Adam first moment / PGD kick
    buf2 = np.zeros(n)  # Adam second moment
    probe_theta = np.empty(n)
    gprobe = np.empty(n)
    probe_out = np.zeros(5)
    ring = np.empty(int(cfg[C_WINDOW]))
    rng = np.empty(1, dtype=np.uint64)
    rng[0] = seed
    # mini-batch buffers (size 1 when unused)
    bsz = min(int(h[1]) if opt == SGD else 1, m)
    perm = np.arange(m)
    Xb = np.empty((dims[0], bsz))
    Yb = np.empty((dims[dims.size - 1], bsz))
    Rb = np.empty((dims[dims.size - 1], bsz))
    si, sf = new_state()
    losses[:] = np.nan
    t = 0
    for t in range(max_steps + 1):
        if opt == SGD:
            l = loss_stats_at(theta, dims, poff, noff, Cxx, Cyx, yy, ws)
            for i in range(bsz):  # partial Fisher-Yates: a uniform b-subset
                j = i + int(next_uniform(rng) * (m - i))
                perm[i], perm[j] = perm[j], perm[i]
                Xb[:, i] = X[:, perm[i]]
                Yb[:, i] = Y[:, perm[i]]
            loss_grad_data_at(theta, dims, poff, noff, Xb, Yb, ws, Rb, g)
            s = m / bsz
            for i in range(n):
                g[i] *= s
        else:
            l = loss_grad_stats_at(theta, dims, poff, noff, Cxx, Cyx, yy, ws, g)
        gnorm = np.sqrt(sq_norm(g))
        action = track(t, l, gnorm, si, sf, ring, cfg, max_steps, rec_every, losses)
        if action & A_SAVE_PROBE:
            probe_theta[:] = theta
        if action & A_END_STALL:
            end_stall(t, si, sf, stalls, probe_theta, dims, poff, noff, Cxx, Cyx, yy, ws, gprobe,
                      cfg, seed, probe_out)  # fmt: skip
        if action & A_STOP:
            break
        update(opt, h, t, theta, g, buf1, buf2, rng, gnorm, si)
    finish(t, theta, si, sf, dims, poff, noff, Cxx, Cyx, yy, ws, gprobe, cfg, seed, probe_out,
           iout, fout)  # fmt: skip


@njit(**JIT_PARALLEL)
def train_batch(theta, dims, Cxx, Cyx, yy, X, Y, opt, hyper, seeds, max_steps, rec_every, cfg,
                losses, iout, fout, stalls):  # fmt: skip
    """Train B runs of one shape: theta (B, n) in place; outputs indexed by run."""
    for b in prange(theta.shape[0]):
        train_one(theta[b], dims, Cxx, Cyx, yy, X, Y, opt, hyper[b], seeds[b], max_steps,
                  rec_every, cfg, losses[b], iout[b], fout[b], stalls[b])  # fmt: skip
