"""Loss and gradient of L(W) = 1/2 ||W_K ... W_1 X - Y||_F^2.

Two forms share one backward pass: the data form (X, Y) and the
sufficient-statistics form (Cxx = X X^T, Cyx = Y X^T, yy = tr Y Y^T) where
L = 1/2 (tr(P Cxx P^T) - 2 tr(P Cyx^T) + yy) and G = dL/dP = P Cxx - Cyx,
whose cost per step does not depend on the number of samples.

Workspace ``ws`` (one float64 vector, see ``ws_size``): four node buffers
(prefix, backprop errors, and their directional derivatives for the HVP),
G, M = P Cxx, and a scratch block.
"""

from numba import njit

from .._config import JIT
from .chain import backprop, node, node_offsets, param_offsets, prefix, weight
from .linalg import copy2, dot, mm, mm_nt
from .simd import view1, view2


@njit(**JIT)
def ws_size(dims):
    K = dims.size - 1
    S = node_offsets(dims)[K + 1]
    out_sz = dims[K] * dims[0]
    scratch = 0
    for k in range(K + 1):
        scratch = max(scratch, dims[k] * dims[0])
    for k in range(1, K + 1):
        scratch = max(scratch, dims[k] * dims[k - 1])
    return 4 * S + 2 * out_sz + scratch


@njit(**JIT)
def ws_views(ws, dims, noff):
    """(pre, E, dB, dE, G, M, scratch) views into the workspace."""
    K = dims.size - 1
    S = noff[K + 1]
    o = dims[K] * dims[0]
    G = view2(ws, 4 * S, dims[K], dims[0])
    M = view2(ws, 4 * S + o, dims[K], dims[0])
    rest = ws.size - 4 * S - 2 * o
    return (view1(ws, 0, S), view1(ws, S, S), view1(ws, 2 * S, S), view1(ws, 3 * S, S), G, M,
            view1(ws, 4 * S + 2 * o, rest))  # fmt: skip


@njit(**JIT)
def frob(A, B):
    """tr(A B^T) = sum_ij A_ij B_ij of two C-contiguous matrices (``linalg.dot`` order)."""
    m, n = A.shape
    if n % 4 != 0:
        return dot(A.reshape(A.size), B.reshape(B.size))
    # rows of a multiple of 4: flat index i*n + j falls in partial sum j % 4, as in dot
    s0 = s1 = s2 = s3 = 0.0
    for i in range(m):
        for j in range(0, n, 4):
            s0 += A[i, j] * B[i, j]
            s1 += A[i, j + 1] * B[i, j + 1]
            s2 += A[i, j + 2] * B[i, j + 2]
            s3 += A[i, j + 3] * B[i, j + 3]
    return (s0 + s1) + (s2 + s3)


@njit(**JIT)
def loss_stats_at(theta, dims, poff, noff, Cxx, Cyx, yy, ws):
    """L from sufficient statistics; leaves prefix products and M = P Cxx in ws.

    ``poff``/``noff`` are ``param_offsets(dims)``/``node_offsets(dims)``, computed once
    by the caller (the ``_o`` kernels never allocate).
    """
    K = dims.size - 1
    pre, _, _, _, _, M, _ = ws_views(ws, dims, noff)
    prefix(theta, dims, poff, noff, pre)
    P = node(pre, dims, noff, K)
    mm(P, Cxx, M)
    return 0.5 * (frob(M, P) - 2.0 * frob(P, Cyx) + yy)


@njit(**JIT)
def loss_stats(theta, dims, Cxx, Cyx, yy, ws):
    """L from sufficient statistics (see ``loss_stats_at``)."""
    return loss_stats_at(theta, dims, param_offsets(dims), node_offsets(dims), Cxx, Cyx, yy, ws)


@njit(**JIT)
def assemble_grad(theta, dims, poff, noff, pre, E, grad, scratch):
    """grad_k = E_k B_k^T for k = 1..K (B_1 = I); ``scratch`` is the workspace's."""
    K = dims.size - 1
    for k in range(1, K + 1):
        out = weight(grad, dims, poff, k)
        if k == 1:
            copy2(out, node(E, dims, noff, 1))
        else:
            mm_nt(node(E, dims, noff, k), node(pre, dims, noff, k - 1), out, scratch)


@njit(**JIT)
def loss_grad_stats_at(theta, dims, poff, noff, Cxx, Cyx, yy, ws, grad):
    """L and dL/dW (into ``grad``, laid out like theta) from statistics."""
    l = loss_stats_at(theta, dims, poff, noff, Cxx, Cyx, yy, ws)
    pre, E, _, _, G, M, scratch = ws_views(ws, dims, noff)
    for i in range(G.shape[0]):
        for j in range(G.shape[1]):
            G[i, j] = M[i, j] - Cyx[i, j]
    backprop(theta, dims, poff, noff, G, E)
    assemble_grad(theta, dims, poff, noff, pre, E, grad, scratch)
    return l


@njit(**JIT)
def loss_grad_stats(theta, dims, Cxx, Cyx, yy, ws, grad):
    """L and dL/dW from statistics (see ``loss_grad_stats_at``)."""
    poff, noff = param_offsets(dims), node_offsets(dims)
    return loss_grad_stats_at(theta, dims, poff, noff, Cxx, Cyx, yy, ws, grad)


@njit(**JIT)
def loss_data_at(theta, dims, poff, noff, X, Y, ws, R):
    """L = 1/2 ||P X - Y||^2; leaves prefix products in ws and the residual in R."""
    K = dims.size - 1
    pre = ws_views(ws, dims, noff)[0]
    prefix(theta, dims, poff, noff, pre)
    mm(node(pre, dims, noff, K), X, R)
    s = 0.0
    for i in range(R.shape[0]):
        for j in range(R.shape[1]):
            r = R[i, j] - Y[i, j]
            R[i, j] = r
            s += r * r
    return 0.5 * s


@njit(**JIT)
def loss_data(theta, dims, X, Y, ws, R):
    """L from the data (see ``loss_data_at``)."""
    return loss_data_at(theta, dims, param_offsets(dims), node_offsets(dims), X, Y, ws, R)


@njit(**JIT)
def loss_grad_data_at(theta, dims, poff, noff, X, Y, ws, R, grad):
    """L and dL/dW from the data; G = (P X - Y) X^T."""
    l = loss_data_at(theta, dims, poff, noff, X, Y, ws, R)
    pre, E, _, _, G, _, scratch = ws_views(ws, dims, noff)
    mm(R, X.T, G)
    backprop(theta, dims, poff, noff, G, E)
    assemble_grad(theta, dims, poff, noff, pre, E, grad, scratch)
    return l


@njit(**JIT)
def loss_grad_data(theta, dims, X, Y, ws, R, grad):
    """L and dL/dW from the data (see ``loss_grad_data_at``)."""
    poff, noff = param_offsets(dims), node_offsets(dims)
    return loss_grad_data_at(theta, dims, poff, noff, X, Y, ws, R, grad)


@njit(**JIT)
def sq_norm(v):
    """sum_i v_i^2 (``linalg.dot`` order: four partial sums, not one latency-bound chain)."""
    return dot(v, v)
