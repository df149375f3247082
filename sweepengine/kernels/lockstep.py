"""Lock-step trainer for narrow networks: a block of runs steps together.

Arrays are structure-of-arrays with the run index innermost, W_k of run b at
``theta[poff[k-1]:poff[k], b]`` viewed as (d_k, d_{k-1}, nb), so every product
is a loop over runs that the compiler vectorises. Each entry is accumulated in
the same order (p ascending, from 0.0) as ``linalg.mm``'s loop path, and runs
never mix, so for widths up to 8 (where ``mm`` always loops) a run's numbers are
bit-identical to ``trainer.train_one`` whatever the block it lands in. Optimizer
updates run over the whole block in the same per-entry arithmetic as
``trainer.update``; per-run bookkeeping and probes are the trainer's own functions.
"""

import numpy as np
from numba import njit, prange

from .._config import JIT, JIT_PARALLEL
from .chain import node_offsets, param_offsets
from .objective import ws_size
from .trainer import (
    A_END_STALL,
    A_SAVE_PROBE,
    A_STOP,
    C_WINDOW,
    GD,
    MOMENTUM,
    NESTEROV,
    PGD,
    SI_DONE,
    draw_kick,
    end_stall,
    finish,
    kick_due,
    new_state,
    track,
)

BLOCK = 16  # runs per lock-step block (fixed: results never depend on B)
MAX_WIDTH = 8  # widest layer for which the lock-step path is used
# Batches smaller than this run one by one (measured at d = 8: a block of one run
# does 153k steps/s against 392k for the per-run kernel; a block of 16 does ~960k
# run-steps/s per thread).
MIN_BATCH = 8


@njit(**JIT)
def _w(theta, dims, poff, k):
    """W_k of every run in the block: (d_k, d_{k-1}, nb)."""
    return theta[poff[k - 1] : poff[k]].reshape((dims[k], dims[k - 1], theta.shape[1]))


@njit(**JIT)
def _node(buf, dims, noff, k):
    """Node k of every run: (d_k, d_0, nb)."""
    return buf[noff[k] : noff[k + 1]].reshape((dims[k], dims[0], buf.shape[1]))


@njit(**JIT)
def _mm_nn(A, B, out):
    """out[:, :, b] = A[:, :, b] @ B[:, :, b]."""
    m, k, nb = A.shape
    n = B.shape[1]
    for i in range(m):
        for j in range(n):
            for b in range(nb):
                out[i, j, b] = 0.0
        for p in range(k):
            for j in range(n):
                for b in range(nb):
                    out[i, j, b] += A[i, p, b] * B[p, j, b]


@njit(**JIT)
def _mm_tn(A, B, out):
    """out[:, :, b] = A[:, :, b]^T @ B[:, :, b]."""
    k, m, nb = A.shape
    n = B.shape[1]
    for i in range(m):
        for j in range(n):
            for b in range(nb):
                out[i, j, b] = 0.0
        for p in range(k):
            for j in range(n):
                for b in range(nb):
                    out[i, j, b] += A[p, i, b] * B[p, j, b]


@njit(**JIT)
def _mm_nt(A, B, out):
    """out[:, :, b] = A[:, :, b] @ B[:, :, b]^T."""
    m, k, nb = A.shape
    n = B.shape[0]
    for i in range(m):
        for j in range(n):
            for b in range(nb):
                out[i, j, b] = 0.0
        for p in range(k):
            for j in range(n):
                for b in range(nb):
                    out[i, j, b] += A[i, p, b] * B[j, p, b]


@njit(**JIT)
def _mm_shared(A, S, out):
    """out[:, :, b] = A[:, :, b] @ S (S the same for every run)."""
    m, k, nb = A.shape
    n = S.shape[1]
    for i in range(m):
        for j in range(n):
            for b in range(nb):
                out[i, j, b] = 0.0
        for p in range(k):
            for j in range(n):
                s = S[p, j]
                for b in range(nb):
                    out[i, j, b] += A[i, p, b] * s


@njit(**JIT)
def dot_lanes(A, B, acc, out):
    """out[b] = sum_i A[i, b] B[i, b] for every lane b of two (n, nb) arrays, each in
    ``linalg.dot``'s order (four partial sums); ``acc`` is (4, nb) scratch."""
    n, nb = A.shape
    acc[:, :] = 0.0
    n4 = n - n % 4
    for i in range(0, n4, 4):
        for q in range(4):
            for b in range(nb):
                acc[q, b] += A[i + q, b] * B[i + q, b]
    for i in range(n4, n):
        for b in range(nb):
            acc[0, b] += A[i, b] * B[i, b]
    for b in range(nb):
        out[b] = (acc[0, b] + acc[1, b]) + (acc[2, b] + acc[3, b])


@njit(**JIT)
def dot_lanes_shared(A, v, acc, out):
    """``dot_lanes`` with one vector v (n,) shared by every lane."""
    n, nb = A.shape
    acc[:, :] = 0.0
    n4 = n - n % 4
    for i in range(0, n4, 4):
        for q in range(4):
            for b in range(nb):
                acc[q, b] += A[i + q, b] * v[i + q]
    for i in range(n4, n):
        for b in range(nb):
            acc[0, b] += A[i, b] * v[i]
    for b in range(nb):
        out[b] = (acc[0, b] + acc[1, b]) + (acc[2, b] + acc[3, b])


@njit(**JIT)
def loss_grad_block(theta, dims, poff, noff, Cxx, Cyx, yy, pre, E, G, M, grad, L, acc, f):
    """Loss (into L) and gradient (into grad, (n, nb)) of every run, statistics form.

    ``acc`` (4, nb) and ``f`` (2, nb) are scratch for the loss's two sums."""
    K = dims.size - 1
    nb = theta.shape[1]
    d0 = dims[0]
    # prefix products, node 0 = I
    P0 = _node(pre, dims, noff, 0)
    for i in range(d0):
        for j in range(d0):
            for b in range(nb):
                P0[i, j, b] = 1.0 if i == j else 0.0
    for k in range(1, K + 1):
        W = _w(theta, dims, poff, k)
        cur = _node(pre, dims, noff, k)
        if k == 1:
            cur[:, :, :] = W
        else:
            _mm_nn(W, _node(pre, dims, noff, k - 1), cur)
    P = _node(pre, dims, noff, K)
    _mm_shared(P, Cxx, M)
    # L = 1/2 (tr(M P^T) - 2 tr(P Cyx^T) + yy), each sum in the order of objective.frob
    o = P.shape[0] * P.shape[1]
    P2 = P.reshape((o, nb))
    dot_lanes(M.reshape((o, nb)), P2, acc, f[0])
    dot_lanes_shared(P2, Cyx.reshape(o), acc, f[1])
    for b in range(nb):
        L[b] = 0.5 * (f[0, b] - 2.0 * f[1, b] + yy)
    for i in range(G.shape[0]):
        for j in range(G.shape[1]):
            for b in range(nb):
                G[i, j, b] = M[i, j, b] - Cyx[i, j]
    # backpropagated errors E_K = G, E_{k-1} = W_k^T E_k
    _node(E, dims, noff, K)[:, :, :] = G
    for k in range(K, 1, -1):
        _mm_tn(_w(theta, dims, poff, k), _node(E, dims, noff, k), _node(E, dims, noff, k - 1))
    # grad_k = E_k B_k^T
    for k in range(1, K + 1):
        out = _w(grad, dims, poff, k)
        if k == 1:
            out[:, :, :] = _node(E, dims, noff, 1)
        else:
            _mm_nt(_node(E, dims, noff, k), _node(pre, dims, noff, k - 1), out)


@njit(**JIT)
def _update_block(opt, hyper, lr, t, soa, g, buf1, buf2):
    """One optimizer step of every lane: ``trainer.update``'s arithmetic, entry by entry.

    ``lr[b]`` is 0 for lanes that have stopped (their weights are then left as
    they are). PGD's kicks are applied by the caller before this gradient step.
    """
    n, nb = soa.shape
    if opt == GD or opt == PGD:
        for i in range(n):
            for b in range(nb):
                soa[i, b] -= lr[b] * g[i, b]
    elif opt == MOMENTUM:
        for i in range(n):
            for b in range(nb):
                buf1[i, b] = hyper[b, 1] * buf1[i, b] + g[i, b]
                soa[i, b] -= lr[b] * buf1[i, b]
    elif opt == NESTEROV:
        for i in range(n):
            for b in range(nb):
                beta = hyper[b, 1]
                buf1[i, b] = beta * buf1[i, b] + g[i, b]
                soa[i, b] -= lr[b] * (g[i, b] + beta * buf1[i, b])
    else:  # ADAM
        c1 = np.empty(nb)
        c2 = np.empty(nb)
        for b in range(nb):
            c1[b] = 1.0 - hyper[b, 1] ** (t + 1)
            c2[b] = 1.0 - hyper[b, 2] ** (t + 1)
        for i in range(n):
            for b in range(nb):
                b1, b2, eps = hyper[b, 1], hyper[b, 2], hyper[b, 3]
                buf1[i, b] = b1 * buf1[i, b] + (1.0 - b1) * g[i, b]
                buf2[i, b] = b2 * buf2[i, b] + (1.0 - b2) * g[i, b] * g[i, b]
                soa[i, b] -= lr[b] * (buf1[i, b] / c1[b]) / (np.sqrt(buf2[i, b] / c2[b]) + eps)


@njit(**JIT)
def _kick(soa, b, kick, h, t, rng, gnorm, si):
    """PGD's perturbation of lane b when its gradient is small (``trainer.update``)."""
    if kick_due(h, t, gnorm, si):
        c = draw_kick(kick, h, rng, si, t)
        for i in range(kick.size):
            soa[i, b] += c * kick[i]


@njit(**JIT)
def train_block(theta, dims, Cxx, Cyx, yy, opt, hyper, seeds, max_steps, rec_every, cfg,
                losses, iout, fout, stalls):  # fmt: skip
    """Train the runs of theta (nb, n) in lock-step; outputs indexed like theta's rows.

    Weights, gradients and optimizer buffers stay in structure-of-arrays form
    (n, nb) throughout: per-lane work is only the scalar bookkeeping (``track``),
    stall probes and PGD kicks. A lane that stops is zeroed and frozen (lr 0).
    """
    nb, n = theta.shape
    poff, noff = param_offsets(dims), node_offsets(dims)
    S = noff[dims.size]
    K = dims.size - 1
    soa = np.ascontiguousarray(theta.T)  # (n, nb)
    g = np.empty((n, nb))
    pre = np.empty((S, nb))
    E = np.empty((S, nb))
    G = np.empty((dims[K], dims[0], nb))
    M = np.empty((dims[K], dims[0], nb))
    L = np.empty(nb)
    gn2 = np.empty(nb)
    acc = np.empty((4, nb))
    f = np.empty((2, nb))
    lr = np.empty(nb)
    buf1 = np.zeros((n, nb))
    buf2 = np.zeros((n, nb))
    ws = np.zeros(ws_size(dims))  # for probes, one run at a time
    gprobe = np.empty(n)
    probe_out = np.zeros(5)
    kick = np.empty(n)
    probe = np.empty((nb, n))
    rings = np.empty((nb, int(cfg[C_WINDOW])))
    rngs = np.empty((nb, 1), dtype=np.uint64)
    states_i = np.empty((nb, 9), dtype=np.int64)
    states_f = np.empty((nb, 4))
    last = np.zeros(nb, dtype=np.int64)
    for b in range(nb):
        si, sf = new_state()
        states_i[b] = si
        states_f[b] = sf
        rngs[b, 0] = seeds[b]
        losses[b, :] = np.nan
        lr[b] = hyper[b, 0]
    active = nb
    for t in range(max_steps + 1):
        if active == 0:
            break
        loss_grad_block(soa, dims, poff, noff, Cxx, Cyx, yy, pre, E, G, M, g, L, acc, f)
        dot_lanes(g, g, acc, gn2)  # squared gradient norms, summed as trainer's sq_norm
        for b in range(nb):
            si = states_i[b]
            if si[SI_DONE] != 0:
                continue
            sf = states_f[b]
            gnorm = np.sqrt(gn2[b])
            action = track(t, L[b], gnorm, si, sf, rings[b], cfg, max_steps, rec_every, losses[b])
            if action & A_SAVE_PROBE:
                probe[b, :] = soa[:, b]
            if action & A_END_STALL:
                end_stall(t, si, sf, stalls[b], probe[b], dims, poff, noff, Cxx, Cyx, yy, ws,
                          gprobe, cfg, seeds[b], probe_out)  # fmt: skip
            if action & A_STOP:
                si[SI_DONE] = 1
                last[b] = t
                theta[b, :] = soa[:, b]
                active -= 1
                lr[b] = 0.0
                soa[:, b] = 0.0
                buf1[:, b] = 0.0
                buf2[:, b] = 0.0
                continue
            if opt == PGD:
                _kick(soa, b, kick, hyper[b], t, rngs[b], gnorm, si)
        _update_block(opt, hyper, lr, t, soa, g, buf1, buf2)
    for b in range(nb):
        finish(last[b], theta[b], states_i[b], states_f[b], dims, poff, noff, Cxx, Cyx, yy, ws,
               gprobe, cfg, seeds[b], probe_out, iout[b], fout[b])  # fmt: skip


@njit(**JIT_PARALLEL)
def train_batch_lockstep(theta, dims, Cxx, Cyx, yy, X, Y, opt, hyper, seeds, max_steps,
                         rec_every, cfg, losses, iout, fout, stalls):  # fmt: skip
    """``trainer.train_batch`` for narrow nets (no SGD): blocks of BLOCK runs in lock-step."""
    B = theta.shape[0]
    nblocks = (B + BLOCK - 1) // BLOCK
    for blk in prange(nblocks):
        a = blk * BLOCK
        z = min(B, a + BLOCK)
        train_block(theta[a:z], dims, Cxx, Cyx, yy, opt, hyper[a:z], seeds[a:z], max_steps,
                    rec_every, cfg, losses[a:z], iout[a:z], fout[a:z], stalls[a:z])  # fmt: skip
