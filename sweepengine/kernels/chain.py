"""Matrix-chain products of a deep linear network.

With W_k of shape (d_k, d_{k-1}), the prefix products are
B_{k+1} = W_k ... W_1 (node k, shape (d_k, d_0); node 0 is I) and the end-to-end
product is P = B_{K+1} (node K). The backpropagated errors are
E_k = (W_K ... W_{k+1})^T G (node k, shape (d_k, d_0)), E_K = G, so that
dL/dW_k = E_k B_k^T with G = dL/dP. Suffix products are never formed.
"""

import numpy as np
from numba import njit

from .._config import JIT
from .linalg import copy2, mm, set_identity
from .simd import view2


@njit(**JIT)
def param_offsets(dims):
    """Start of W_k (k = 1..K) in theta at index k-1; total length last."""
    K = dims.size - 1
    off = np.zeros(K + 1, dtype=np.int64)
    for k in range(K):
        off[k + 1] = off[k] + dims[k + 1] * dims[k]
    return off


@njit(**JIT)
def node_offsets(dims):
    """Start of node k (a (d_k, d_0) block) in a node buffer; total length last."""
    K = dims.size - 1
    off = np.zeros(K + 2, dtype=np.int64)
    for k in range(K + 1):
        off[k + 1] = off[k] + dims[k] * dims[0]
    return off


@njit(inline="always", **JIT)
def weight(theta, dims, poff, k):
    """View of W_k (1-based k) inside theta."""
    return view2(theta, poff[k - 1], dims[k], dims[k - 1])


@njit(inline="always", **JIT)
def node(buf, dims, noff, k):
    """View of node k (shape (d_k, d_0)) inside a node buffer."""
    return view2(buf, noff[k], dims[k], dims[0])


@njit(**JIT)
def prefix(theta, dims, poff, noff, pre):
    """Fill node k of ``pre`` with W_k ... W_1 for k = 0..K (node 0 = I)."""
    K = dims.size - 1
    set_identity(node(pre, dims, noff, 0))
    for k in range(1, K + 1):
        W = weight(theta, dims, poff, k)
        cur = node(pre, dims, noff, k)
        if k == 1:
            copy2(cur, W)
        else:
            mm(W, node(pre, dims, noff, k - 1), cur)


@njit(**JIT)
def backprop(theta, dims, poff, noff, G, E):
    """Fill node k of ``E`` with (W_K ... W_{k+1})^T G for k = 1..K."""
    K = dims.size - 1
    copy2(node(E, dims, noff, K), G)
    for k in range(K, 1, -1):
        mm(weight(theta, dims, poff, k).T, node(E, dims, noff, k), node(E, dims, noff, k - 1))
