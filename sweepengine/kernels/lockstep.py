"""Lock-step trainer for narrow networks: a block of runs steps together.

Arrays are structure-of-arrays with the run ("lane") index innermost: entry r
of theta, of a node buffer or of the gradient is row r of a (rows, lanes) array,
so every product works on 4-wide vectors of lanes (``simd``), 8 lanes at a
time, the lane count padded to a multiple of 8 with zero lanes. Each entry is
accumulated in the same order (p ascending, from 0.0) as ``linalg._gemm`` sums
it for one run, and lanes never mix, so for widths up to ``MAX_WIDTH`` (where
``linalg.mm`` always uses ``_gemm``) a run's numbers are bit-identical to
``trainer.train_one`` whatever the block it lands in. Optimizer updates run over
the whole block in the same per-entry arithmetic as ``trainer.update``; per-run
bookkeeping and probes are the trainer's own functions.
"""

import numpy as np
from numba import njit

from .._config import JIT
from .chain import node_offsets, param_offsets
from .linalg import copy1, copy2
from .simd import add4, load4, madd4, madd4s, splat4, store4, zero4
from .state import GD, MOMENTUM, NESTEROV, PGD, RING, new_states
from .trainer import (
    A_END_STALL,
    A_SAVE_PROBE,
    A_STOP,
    draw_kick,
    end_stall,
    finish,
    kick_due,
    reset_state,
    track,
)

BLOCK = 16  # runs per lock-step block (fixed: results never depend on B)
LANE_GROUP = 8  # the product kernels work on 8 lanes (two 4-wide vectors) at a time
# Widest layer for which the lock-step path is used. Measured, B = 64, 2 threads,
# run-steps/s per-run vs lock-step: d = 10 0.7M vs 2.0M, d = 14 436k vs 791k,
# d = 15 409k vs 662k; d = 16 (where the per-run blocks fit exactly) a tie at H = 2,
# 140k vs 126k at H = 8. Must stay <= 48 (``linalg.SIMD_GEMM``) for bit-identity.
MAX_WIDTH = 15
# Batches smaller than this run one by one (measured at d = 8: a block of one run
# does 153k steps/s against 392k for the per-run kernel; a block of 16 does ~960k
# run-steps/s per thread).
MIN_BATCH = 8


@njit(**JIT)
def _lanes_mm(A, a0, ai, ap, B, b0, bp, bj, out, o0, m, k, n):
    """Per lane: out[o0 + i*n + j] = sum_p A[a0 + i*ai + p*ap] B[b0 + p*bp + j*bj].

    Rows of the (rows, lanes) arrays hold one matrix entry of every lane; the
    strides select the product (A B, A^T B or A B^T). Each entry is summed from
    0.0 with p ascending, as ``linalg._gemm`` sums it for one run. Blocks of
    2 rows x 2 columns x 8 lanes (8 vector accumulators); an odd last row or
    column repeats its predecessor's (the duplicates store the same values).
    """
    nb = out.shape[1]
    for q in range(0, nb, 8):
        for i0 in range(0, m, 2):
            i1 = min(i0 + 1, m - 1)
            for j0 in range(0, n, 2):
                j1 = min(j0 + 1, n - 1)
                c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = zero4()
                for p in range(k):
                    ra0, ra1 = a0 + i0 * ai + p * ap, a0 + i1 * ai + p * ap
                    rb0, rb1 = b0 + p * bp + j0 * bj, b0 + p * bp + j1 * bj
                    x0, x1 = load4(A, ra0, q), load4(A, ra0, q + 4)
                    y0, y1 = load4(A, ra1, q), load4(A, ra1, q + 4)
                    u0, u1 = load4(B, rb0, q), load4(B, rb0, q + 4)
                    v0, v1 = load4(B, rb1, q), load4(B, rb1, q + 4)
                    c0, c1 = madd4(c0, x0, u0), madd4(c1, x1, u1)
                    c2, c3 = madd4(c2, x0, v0), madd4(c3, x1, v1)
                    c4, c5 = madd4(c4, y0, u0), madd4(c5, y1, u1)
                    c6, c7 = madd4(c6, y0, v0), madd4(c7, y1, v1)
                r0, r1 = o0 + i0 * n, o0 + i1 * n
                store4(out, r0 + j0, q, c0)
                store4(out, r0 + j0, q + 4, c1)
                store4(out, r0 + j1, q, c2)
                store4(out, r0 + j1, q + 4, c3)
                store4(out, r1 + j0, q, c4)
                store4(out, r1 + j0, q + 4, c5)
                store4(out, r1 + j1, q, c6)
                store4(out, r1 + j1, q + 4, c7)


@njit(**JIT)
def dot_lanes(A, B, acc, out):
    """out[b] = sum_i A[i, b] B[i, b] for every lane b of two (n, lanes) arrays, each in
    ``linalg.dot``'s order (four partial sums, i mod 4); ``acc`` is (4, lanes) scratch."""
    n, nb = A.shape
    n4 = n - n % 4
    for q in range(0, nb, 4):
        s0 = s1 = s2 = s3 = zero4()
        for i in range(0, n4, 4):
            s0 = madd4(s0, load4(A, i, q), load4(B, i, q))
            s1 = madd4(s1, load4(A, i + 1, q), load4(B, i + 1, q))
            s2 = madd4(s2, load4(A, i + 2, q), load4(B, i + 2, q))
            s3 = madd4(s3, load4(A, i + 3, q), load4(B, i + 3, q))
        for i in range(n4, n):
            s0 = madd4(s0, load4(A, i, q), load4(B, i, q))
        store4(acc, 0, q, s0)
        store4(acc, 1, q, s1)
        store4(acc, 2, q, s2)
        store4(acc, 3, q, s3)
    for b in range(nb):
        out[b] = (acc[0, b] + acc[1, b]) + (acc[2, b] + acc[3, b])


@njit(**JIT)
def dot_lanes_shared(A, v, acc, out):
    """``dot_lanes`` with one vector v (n,) shared by every lane."""
    n, nb = A.shape
    n4 = n - n % 4
    for q in range(0, nb, 4):
        s0 = s1 = s2 = s3 = zero4()
        for i in range(0, n4, 4):
            s0 = madd4s(s0, v[i], load4(A, i, q))
            s1 = madd4s(s1, v[i + 1], load4(A, i + 1, q))
            s2 = madd4s(s2, v[i + 2], load4(A, i + 2, q))
            s3 = madd4s(s3, v[i + 3], load4(A, i + 3, q))
        for i in range(n4, n):
            s0 = madd4s(s0, v[i], load4(A, i, q))
        store4(acc, 0, q, s0)
        store4(acc, 1, q, s1)
        store4(acc, 2, q, s2)
        store4(acc, 3, q, s3)
    for b in range(nb):
        out[b] = (acc[0, b] + acc[1, b]) + (acc[2, b] + acc[3, b])


@njit(**JIT)
def loss_grad_block(soa, dims, poff, noff, cxx, cyx, yy, pre, E, M, grad, L, acc, f):
    """Loss (into L) and gradient (into grad, (n, lanes)) of every lane, statistics form.

    ``soa`` (n, lanes) holds the weights, ``pre``/``E`` (S, lanes) the node
    buffers, ``M`` (d_K d_0, lanes) = P Cxx; ``cxx`` is Cxx flattened into every
    lane (d_0 d_0, lanes) and ``cyx`` Cyx flattened; ``acc``
    (4, lanes) and ``f`` (2, lanes) are scratch for the loss's two sums.
    """
    K = dims.size - 1
    d0 = dims[0]
    # prefix products: node 0 = I, node k = W_k node k-1
    _identity_rows(pre, d0)
    _copy_rows(soa, 0, pre, noff[1], dims[1] * d0)
    for k in range(2, K + 1):
        _lanes_mm(soa, poff[k - 1], dims[k - 1], 1, pre, noff[k - 1], d0, 1, pre, noff[k],
                  dims[k], dims[k - 1], d0)  # fmt: skip
    _lanes_mm(pre, noff[K], d0, 1, cxx, 0, d0, 1, M, 0, dims[K], d0, d0)
    # L = 1/2 (tr(M P^T) - 2 tr(P Cyx^T) + yy), each sum in the order of objective.frob
    P = pre[noff[K] : noff[K + 1]]
    dot_lanes(M, P, acc, f[0])
    dot_lanes_shared(P, cyx, acc, f[1])
    for b in range(L.size):
        L[b] = 0.5 * (f[0, b] - 2.0 * f[1, b] + yy)
    # backpropagated errors: E_K = G = M - Cyx, E_{k-1} = W_k^T E_k
    e = noff[K]
    for r in range(cyx.size):
        c = splat4(-cyx[r])
        for q in range(0, M.shape[1], 4):
            store4(E, e + r, q, add4(load4(M, r, q), c))
    for k in range(K, 1, -1):
        _lanes_mm(soa, poff[k - 1], 1, dims[k - 1], E, noff[k], d0, 1, E, noff[k - 1],
                  dims[k - 1], dims[k], d0)  # fmt: skip
    # grad_k = E_k B_k^T (B_1 = I)
    _copy_rows(E, noff[1], grad, 0, dims[1] * d0)
    for k in range(2, K + 1):
        _lanes_mm(E, noff[k], d0, 1, pre, noff[k - 1], 1, d0, grad, poff[k - 1],
                  dims[k], d0, dims[k - 1])  # fmt: skip


@njit(**JIT)
def _copy_rows(src, s0, dst, t0, rows):
    """dst[t0 + r] = src[s0 + r] for r < rows, every lane (explicit vector moves)."""
    for r in range(rows):
        for q in range(0, dst.shape[1], 4):
            store4(dst, t0 + r, q, load4(src, s0 + r, q))


@njit(**JIT)
def _identity_rows(buf, d):
    """Rows 0..d*d-1 of ``buf`` = the entries of I_d, every lane."""
    zero, one = zero4(), splat4(1.0)
    for i in range(d):
        for j in range(d):
            for q in range(0, buf.shape[1], 4):
                store4(buf, i * d + j, q, one if i == j else zero)


@njit(**JIT)
def _update_block(opt, hyper, lr, t, soa, g, buf1, buf2, nb):
    """One optimizer step of the first ``nb`` lanes: ``trainer.update``'s arithmetic,
    entry by entry.

    ``lr[b]`` is 0 for lanes that have stopped (their weights are then left as
    they are). PGD's kicks are applied by the caller before this gradient step.
    """
    n = soa.shape[0]
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
def _kick(soa, b, kick, h, t, rng, gnorm, st):
    """PGD's perturbation of lane b when its gradient is small (``trainer.update``)."""
    if kick_due(h, t, gnorm, st):
        c = draw_kick(kick, h, rng, st, t)
        for i in range(kick.size):
            soa[i, b] += c * kick[i]


@njit(**JIT)
def train_block(theta, dims, prob, opt, runs_in, max_steps, rec_every, cfgs, losses, runs_out,
                stalls, probes):  # fmt: skip
    """Train the runs of theta (nb, n) in lock-step; outputs indexed like theta's rows.

    Weights, gradients and optimizer buffers stay in structure-of-arrays form
    (n, lanes) throughout, ``lanes`` = nb padded to a multiple of ``LANE_GROUP``:
    per-lane work is only the scalar bookkeeping (``track``), saving stall probe
    points (examined afterwards: ``trainer.examine_runs``) and PGD kicks. A lane that
    stops is zeroed and frozen (lr 0).
    """
    cfg = cfgs[0]
    nb, n = theta.shape
    lanes = (nb + LANE_GROUP - 1) // LANE_GROUP * LANE_GROUP  # padding lanes stay zero
    poff, noff = param_offsets(dims), node_offsets(dims)
    S = noff[dims.size]
    K = dims.size - 1
    Cxx, Cyx, yy = prob.Cxx, prob.Cyx, prob.yy
    soa = np.zeros((n, lanes))
    copy2(soa[:, :nb], theta.T)
    cyx = Cyx.copy().reshape(Cyx.size)
    cxx = np.empty((Cxx.size, lanes))
    for r in range(Cxx.size):
        cxx[r, :] = Cxx[r // Cxx.shape[1], r % Cxx.shape[1]]
    g = np.empty((n, lanes))
    pre = np.empty((S, lanes))
    E = np.empty((S, lanes))
    M = np.empty((dims[K] * dims[0], lanes))
    L = np.empty(lanes)
    gn2 = np.empty(lanes)
    acc = np.empty((4, lanes))
    f = np.empty((2, lanes))
    lr = np.zeros(lanes)
    buf1 = np.zeros((n, lanes))
    buf2 = np.zeros((n, lanes))
    kick = np.empty(n)
    probe = np.empty((nb, n))
    rings = np.empty((nb, RING))
    rngs = np.empty((nb, 1), dtype=np.uint64)
    states = new_states(nb)
    last = np.zeros(nb, dtype=np.int64)
    for b in range(nb):
        reset_state(states[b])
        rngs[b, 0] = runs_in[b].seed
        losses[b, :] = np.nan
        lr[b] = runs_in[b].hyper[0]
    hyper = np.empty((nb, runs_in[0].hyper.size))
    for b in range(nb):
        copy1(hyper[b], runs_in[b].hyper)
    active = nb
    for t in range(max_steps + 1):
        if active == 0:
            break
        loss_grad_block(soa, dims, poff, noff, cxx, cyx, yy, pre, E, M, g, L, acc, f)
        dot_lanes(g, g, acc, gn2)  # squared gradient norms, summed as trainer's sq_norm
        for b in range(nb):
            st = states[b]
            if st.done:
                continue
            rin = runs_in[b]
            gnorm = np.sqrt(gn2[b])
            action = track(t, L[b], gnorm, st, rings[b], rin, cfg, max_steps, rec_every,
                           losses[b])  # fmt: skip
            if action & A_SAVE_PROBE:
                copy1(probe[b], soa[:, b])
            if action & A_END_STALL:
                end_stall(t, st, stalls[b], probes[b], probe[b], cfg)
            if action & A_STOP:
                st.done = True
                last[b] = t
                copy1(theta[b], soa[:, b])
                active -= 1
                lr[b] = 0.0
                soa[:, b] = 0.0
                buf1[:, b] = 0.0
                buf2[:, b] = 0.0
                continue
            if opt == PGD:
                _kick(soa, b, kick, hyper[b], t, rngs[b], gnorm, st)
        _update_block(opt, hyper, lr, t, soa, g, buf1, buf2, nb)
    for b in range(nb):
        finish(last[b], states[b], runs_out[b])


def train_batch_lockstep(theta, dims, prob, opt, runs_in, max_steps, rec_every, cfgs, losses,
                         runs_out, stalls, probes):  # fmt: skip
    """``trainer.train_batch`` for narrow nets (no SGD): blocks of BLOCK runs in lock-step.

    A Python loop over the compiled blocks (a slice given to a thread by ``training``
    starts at a multiple of BLOCK): a compiled loop around ``train_block`` would make
    LLVM optimise the whole trainer once more in a cold compile (5.8 s measured), for
    a saving of one call per BLOCK runs.
    """
    B = theta.shape[0]
    for a in range(0, B, BLOCK):
        z = min(B, a + BLOCK)
        train_block(theta[a:z], dims, prob, opt, runs_in[a:z], max_steps, rec_every, cfgs,
                    losses[a:z], runs_out[a:z], stalls[a:z], probes[a:z])  # fmt: skip


train_batch_lockstep.compiled = train_block  # the kernel it calls (training checks it)
