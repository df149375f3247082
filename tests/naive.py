"""Slow, obviously correct references for the kernels.

Everything here is plain NumPy written straight from the definitions:
L(W) = 1/2 ||W_K ... W_1 X - Y||_F^2. The Hessian reference differentiates
the naive gradient by the complex step (exact to rounding for analytic
functions, no subtraction error), which is independent of the analytic
HVP formula the kernels use.
"""

from __future__ import annotations

import numpy as np


def product(weights, d0=None):
    """W_K ... W_1 (identity of size d0 for an empty chain)."""
    P = np.eye(weights[0].shape[1] if d0 is None else d0, dtype=weights[0].dtype)
    for W in weights:
        P = W @ P
    return P


def loss(weights, X, Y):
    R = product(weights) @ X - Y
    return 0.5 * np.sum(R * R)


def gradient(weights, X, Y):
    """dL/dW_k = (W_K..W_{k+1})^T (P X - Y) X^T (W_{k-1}..W_1)^T, layer by layer."""
    K = len(weights)
    R = product(weights) @ X - Y
    grads = []
    for k in range(K):
        A = np.eye(weights[-1].shape[0], dtype=R.dtype)
        for W in reversed(weights[k + 1 :]):
            A = A @ W
        B = np.eye(weights[0].shape[1], dtype=R.dtype)
        for W in weights[:k]:
            B = W @ B
        grads.append(A.T @ R @ X.T @ B.T)
    return grads


def flat(weights):
    return np.concatenate([w.ravel() for w in weights])


def unflat(theta, shapes):
    out, o = [], 0
    for r, c in shapes:
        out.append(theta[o : o + r * c].reshape(r, c))
        o += r * c
    return out


def hessian(weights, X, Y, h=1e-20):
    """Dense Hessian by complex-step differentiation of ``gradient``."""
    shapes = [w.shape for w in weights]
    theta = flat(weights).astype(np.complex128)
    n = theta.size
    H = np.empty((n, n))
    for j in range(n):
        t = theta.copy()
        t[j] += 1j * h
        H[:, j] = flat(gradient(unflat(t, shapes), X.astype(complex), Y.astype(complex))).imag / h
    return H


def fd_gradient(weights, X, Y, eps=1e-6):
    """Central finite differences of ``loss``."""
    shapes = [w.shape for w in weights]
    theta = flat(weights)
    g = np.empty_like(theta)
    for j in range(theta.size):
        tp, tm = theta.copy(), theta.copy()
        tp[j] += eps
        tm[j] -= eps
        g[j] = (loss(unflat(tp, shapes), X, Y) - loss(unflat(tm, shapes), X, Y)) / (2 * eps)
    return unflat(g, shapes)


# --- networks with activations (sweepengine.nonlinear) -------------------------------
# s on the hidden layers only; left derivative at a relu/leaky_relu kink


def act(z, name, alpha=0.01):
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, alpha * z)
    if name == "tanh":
        return np.tanh(z)
    return z


def dact(z, name, alpha=0.01):
    if name == "relu":
        return np.where(z > 0, 1.0, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, alpha)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    return np.ones_like(z)


def net_forward(weights, X, name, alpha=0.01):
    """([Z_1..Z_K], [A_0..A_{K-1}]): pre-activations and layer inputs."""
    Zs, As = [], [X]
    for k, W in enumerate(weights):
        Z = W @ As[-1]
        Zs.append(Z)
        if k < len(weights) - 1:
            As.append(act(Z, name, alpha))
    return Zs, As


def net_loss(weights, X, Y, name, alpha=0.01, wd=0.0):
    Zs, _ = net_forward(weights, X, name, alpha)
    R = Zs[-1] - Y
    return 0.5 * np.sum(R * R) + 0.5 * wd * sum(np.sum(W * W) for W in weights)


def net_gradient(weights, X, Y, name, alpha=0.01, wd=0.0):
    """Backpropagation written out layer by layer."""
    Zs, As = net_forward(weights, X, name, alpha)
    D = Zs[-1] - Y
    grads = [None] * len(weights)
    for k in range(len(weights) - 1, -1, -1):
        grads[k] = D @ As[k].T + wd * weights[k]
        if k > 0:
            D = dact(Zs[k - 1], name, alpha) * (weights[k].T @ D)
    return grads


def net_fd_gradient(weights, X, Y, name, alpha=0.01, wd=0.0, eps=1e-6):
    shapes = [w.shape for w in weights]
    theta = flat(weights)
    g = np.empty_like(theta)
    for j in range(theta.size):
        tp, tm = theta.copy(), theta.copy()
        tp[j] += eps
        tm[j] -= eps
        lp = net_loss(unflat(tp, shapes), X, Y, name, alpha, wd)
        lm = net_loss(unflat(tm, shapes), X, Y, name, alpha, wd)
        g[j] = (lp - lm) / (2 * eps)
    return g


def net_fd_hvp(weights, X, Y, v, name, alpha=0.01, wd=0.0, eps=1e-6):
    """Central differences of ``net_gradient`` along the flat direction v."""
    shapes = [w.shape for w in weights]
    theta = flat(weights)
    gp = flat(net_gradient(unflat(theta + eps * v, shapes), X, Y, name, alpha, wd))
    gm = flat(net_gradient(unflat(theta - eps * v, shapes), X, Y, name, alpha, wd))
    return (gp - gm) / (2 * eps)
