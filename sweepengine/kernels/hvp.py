"""Exact Hessian-vector products by forward-mode differentiation of the gradient.

Along V = (V_1..V_K): dB_{k+1} = V_k B_k + W_k dB_k (dB_1 = 0), dP = dB_{K+1},
dG = dP Cxx, dE_K = dG, dE_{k-1} = V_k^T E_k + W_k^T dE_k, and
(H V)_k = dE_k B_k^T + E_k dB_k^T. Needs the prefix products B and errors E at
the current point in the workspace (left there by ``loss_grad_*``).
"""

import numpy as np
from numba import njit

from .._config import JIT
from .chain import node, node_offsets, param_offsets, weight
from .linalg import copy1, copy2, mm, mm_acc, mm_nt
from .objective import loss_grad_data_at, loss_grad_stats_at, ws_views


@njit(**JIT)
def hvp_prepared(theta, dims, Cxx, ws, v, out):
    """out = H(theta) v, using B and E already in ``ws``."""
    hvp_prepared_at(theta, dims, param_offsets(dims), node_offsets(dims), Cxx, ws, v, out)


@njit(**JIT)
def loss_grad_hvp_stats(theta, dims, Cxx, Cyx, yy, ws, grad, v, out):
    """``loss_grad_stats`` then ``hvp_prepared`` in one call (the prepared objective's
    ``hvp``: one dispatch from Python instead of two); returns L."""
    poff, noff = param_offsets(dims), node_offsets(dims)
    l = loss_grad_stats_at(theta, dims, poff, noff, Cxx, Cyx, yy, ws, grad)
    hvp_prepared_at(theta, dims, poff, noff, Cxx, ws, v, out)
    return l


@njit(**JIT)
def loss_grad_hvp_data(theta, dims, X, Y, Cxx, ws, R, grad, v, out):
    """``loss_grad_data`` then ``hvp_prepared`` (Cxx = X X^T) in one call; returns L."""
    poff, noff = param_offsets(dims), node_offsets(dims)
    l = loss_grad_data_at(theta, dims, poff, noff, X, Y, ws, R, grad)
    hvp_prepared_at(theta, dims, poff, noff, Cxx, ws, v, out)
    return l


@njit(**JIT)
def hvp_prepared_at(theta, dims, poff, noff, Cxx, ws, v, out):
    """``hvp_prepared`` with the offsets computed once by the caller."""
    K = dims.size - 1
    pre, E, dB, dE, _, _, scratch = ws_views(ws, dims, noff)
    # directional derivative of the prefix products
    d0 = node(dB, dims, noff, 0)
    for i in range(d0.shape[0]):
        for j in range(d0.shape[1]):
            d0[i, j] = 0.0
    for k in range(1, K + 1):
        Vk = weight(v, dims, poff, k)
        cur = node(dB, dims, noff, k)
        if k == 1:
            copy2(cur, Vk)
        else:
            mm(Vk, node(pre, dims, noff, k - 1), cur)
            mm_acc(weight(theta, dims, poff, k), node(dB, dims, noff, k - 1), cur, scratch)
    # directional derivative of the backpropagated errors
    mm(node(dB, dims, noff, K), Cxx, node(dE, dims, noff, K))
    for k in range(K, 1, -1):
        lower = node(dE, dims, noff, k - 1)
        mm(weight(v, dims, poff, k).T, node(E, dims, noff, k), lower)
        mm_acc(weight(theta, dims, poff, k).T, node(dE, dims, noff, k), lower, scratch)
    # (H v)_k = dE_k B_k^T + E_k dB_k^T
    for k in range(1, K + 1):
        o = weight(out, dims, poff, k)
        if k == 1:
            copy2(o, node(dE, dims, noff, 1))
        else:
            mm_nt(node(dE, dims, noff, k), node(pre, dims, noff, k - 1), o, scratch)
            mm_nt(node(E, dims, noff, k), node(dB, dims, noff, k - 1), o, scratch, True)


@njit(**JIT)
def hessian_prepared(theta, dims, Cxx, ws, H):
    """Dense Hessian, column j = H e_j, with B and E already in ``ws``."""
    n = theta.size
    poff, noff = param_offsets(dims), node_offsets(dims)
    e = np.zeros(n)
    col = np.empty(n)
    for j in range(n):
        e[j] = 1.0
        hvp_prepared_at(theta, dims, poff, noff, Cxx, ws, e, col)
        copy1(H[:, j], col)
        e[j] = 0.0
