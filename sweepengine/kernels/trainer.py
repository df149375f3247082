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
from .objective import loss_grad_data_o, loss_grad_stats_o, loss_stats_o, sq_norm, ws_size
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


@njit(**JIT)
def _probe(theta, dims, poff, noff, Cxx, Cyx, yy, ws, gbuf, cfg, seed, out):
    """Extreme Hessian eigenvalues at theta: out[0:5] = lam_min, lam_max, errs, iters."""
    loss_grad_stats_o(theta, dims, poff, noff, Cxx, Cyx, yy, ws, gbuf)
    lanczos_extremes(theta, dims, Cxx, ws, int(cfg[C_LZ_ITER]), cfg[C_LZ_TOL], seed, out)


@njit(**JIT)
def train_one(theta, dims, Cxx, Cyx, yy, X, Y, opt, h, seed, max_steps, rec_every, cfg,
              losses, iout, fout, stalls):  # fmt: skip
    """Train one run in place; fills its rows of the output arrays."""
    n = theta.size
    m = X.shape[1]
    poff, noff = param_offsets(dims), node_offsets(dims)
    ws = np.zeros(ws_size(dims))
    g = np.empty(n)
    buf1 = np.zeros(n)  # momentum / Adam first moment
    buf2 = np.zeros(n)  # Adam second moment
    probe_theta = np.empty(n)
    gprobe = np.empty(n)
    probe_out = np.zeros(5)
    window = int(cfg[C_WINDOW])
    ring = np.empty(window)
    rng = np.empty(1, dtype=np.uint64)
    rng[0] = seed
    lr = h[0]
    # mini-batch buffers (size 1 when unused)
    bsz = int(h[1]) if opt == SGD else 1
    bsz = min(bsz, m)
    perm = np.arange(m)
    Xb = np.empty((dims[0], bsz))
    Yb = np.empty((dims[dims.size - 1], bsz))
    Rb = np.empty((dims[dims.size - 1], bsz))
    lstar = cfg[C_LSTAR]
    gscale = cfg[C_GAP_SCALE]
    max_stalls = stalls.shape[0]
    losses[:] = np.nan
    status = MAX_STEPS
    to_target = -1
    n_stalls = 0
    kicks = 0
    last_kick = -(1 << 60)
    in_stall = False
    start = 0
    min_g = np.inf
    probe_step = 0
    probe_loss = 0.0
    l = 0.0
    gnorm = 0.0
    t = 0
    for t in range(max_steps + 1):
        if opt == SGD:
            l = loss_stats_o(theta, dims, poff, noff, Cxx, Cyx, yy, ws)
            for i in range(bsz):  # partial Fisher-Yates: a uniform b-subset
                j = i + int(next_uniform(rng) * (m - i))
                perm[i], perm[j] = perm[j], perm[i]
                Xb[:, i] = X[:, perm[i]]
                Yb[:, i] = Y[:, perm[i]]
            loss_grad_data_o(theta, dims, poff, noff, Xb, Yb, ws, Rb, g)
            s = m / bsz
            for i in range(n):
                g[i] *= s
        else:
            l = loss_grad_stats_o(theta, dims, poff, noff, Cxx, Cyx, yy, ws, g)
        if t % rec_every == 0:
            losses[t // rec_every] = l
        gnorm = np.sqrt(sq_norm(g))
        if not (np.isfinite(l) and np.isfinite(gnorm)) or l > cfg[C_DIV_LIMIT]:
            status = DIVERGED
            break
        gap = (l - lstar) / gscale
        if gap <= cfg[C_TARGET] and to_target < 0:
            to_target = t
            if cfg[C_STOP_AT_TARGET] != 0.0:
                status = CONVERGED
        # stall tracking on the relative gap
        flat = False
        if t >= window:
            old = ring[t % window]
            flat = (old - gap) < cfg[C_REL_DROP] * old and gap > cfg[C_MIN_GAP]
        ring[t % window] = gap
        ending = status == CONVERGED or t == max_steps
        if flat and not in_stall:
            in_stall = True
            start = t - window
            min_g = np.inf
        if in_stall and flat and gnorm < min_g:
            min_g = gnorm
            probe_step = t
            probe_loss = l
            probe_theta[:] = theta
        if in_stall and (not flat or ending):
            in_stall = False
            if t - start >= cfg[C_MIN_LENGTH]:
                if n_stalls < max_stalls:
                    row = stalls[n_stalls]
                    row[S_START] = start
                    row[S_END] = t
                    row[S_PROBE] = probe_step
                    row[S_LOSS] = probe_loss
                    row[S_GNORM] = min_g
                    pt = probe_theta
                    _probe(pt, dims, poff, noff, Cxx, Cyx, yy, ws, gprobe, cfg, seed, probe_out)
                    row[S_LMIN : S_ITERS + 1] = probe_out
                n_stalls += 1
        if status == CONVERGED or t == max_steps:
            break
        # optimizer update
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
            radius, gtol, interval = h[1], h[2], h[3]
            if gnorm <= gtol and t - last_kick >= interval:
                for i in range(n):
                    buf1[i] = next_normal(rng)
                u = next_uniform(rng) ** (1.0 / n)
                c = radius * u / np.sqrt(sq_norm(buf1))
                for i in range(n):
                    theta[i] += c * buf1[i]
                last_kick = t
                kicks += 1
            for i in range(n):
                theta[i] -= lr * g[i]
    iout[I_STATUS] = status
    iout[I_STEPS] = t
    iout[I_TO_TARGET] = to_target
    iout[I_NSTALLS] = n_stalls
    iout[I_KICKS] = kicks
    fout[F_LOSS] = l
    fout[F_GNORM] = gnorm
    fout[F_LMIN:] = np.nan
    if status != DIVERGED and cfg[C_FINAL_PROBE] != 0.0:
        _probe(theta, dims, poff, noff, Cxx, Cyx, yy, ws, gprobe, cfg, seed, probe_out)
        fout[F_LMIN:] = probe_out[:4]


@njit(**JIT_PARALLEL)
def train_batch(theta, dims, Cxx, Cyx, yy, X, Y, opt, hyper, seeds, max_steps, rec_every, cfg,
                losses, iout, fout, stalls):  # fmt: skip
    """Train B runs of one shape: theta (B, n) in place; outputs indexed by run."""
    for b in prange(theta.shape[0]):
        train_one(theta[b], dims, Cxx, Cyx, yy, X, Y, opt, hyper[b], seeds[b], max_steps,
                  rec_every, cfg, losses[b], iout[b], fout[b], stalls[b])  # fmt: skip
