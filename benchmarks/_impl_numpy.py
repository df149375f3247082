"""Plain NumPy, written as a user who knows the formulas would write it.

Forward with prefix products B_{k+1} = W_k ... W_1, backpropagated errors
E_K = G, E_{k-1} = W_k^T E_k, gradient dL/dW_k = E_k B_k^T. The HVP
differentiates those along V (forward over the gradient):
dB_{k+1} = V_k B_k + W_k dB_k, dE_{k-1} = V_k^T E_k + W_k^T dE_k,
(HV)_k = dE_k B_k^T + E_k dB_k^T, with dE_K = dP Cxx (or dP X X^T).
The HVP functions also return the loss and gradient they pass through, so they
do the same work as sweepengine's ``loss_grad_*`` + ``hvp_prepared`` and JAX's
``jvp(grad)``.
"""

from __future__ import annotations

import numpy as np


def _prefix(Ws):
    pre = [Ws[0]]
    for W in Ws[1:]:
        pre.append(W @ pre[-1])
    return pre


def _backprop(Ws, pre, G):
    K = len(Ws)
    grads = [None] * K
    E = G
    for k in range(K - 1, -1, -1):
        grads[k] = E @ pre[k - 1].T if k else E
        if k:
            E = Ws[k].T @ E
    return grads


def loss_grad_stats(Ws, Cxx, Cyx, yy):
    pre = _prefix(Ws)
    P = pre[-1]
    M = P @ Cxx
    loss = 0.5 * (np.vdot(M, P) - 2.0 * np.vdot(P, Cyx) + yy)
    return loss, _backprop(Ws, pre, M - Cyx)


def loss_grad_data(Ws, X, Y):
    pre = _prefix(Ws)
    R = pre[-1] @ X - Y
    return 0.5 * np.vdot(R, R), _backprop(Ws, pre, R @ X.T)


def _hvp(Ws, Vs, pre, G, dG_of):
    """(gradient, HVP) from the prefix products and G = dL/dP."""
    K = len(Ws)
    dpre = [Vs[0]]
    for k in range(1, K):
        dpre.append(Vs[k] @ pre[k - 1] + Ws[k] @ dpre[-1])
    E, dE = G, dG_of(dpre[-1])
    grads, out = [None] * K, [None] * K
    for k in range(K - 1, -1, -1):
        grads[k] = E @ pre[k - 1].T if k else E
        out[k] = dE @ pre[k - 1].T + E @ dpre[k - 1].T if k else dE
        if k:
            E, dE = Ws[k].T @ E, Vs[k].T @ E + Ws[k].T @ dE
    return grads, out


def hvp_stats(Ws, Vs, Cxx, Cyx, yy):
    """(loss, gradient, H V) from statistics."""
    pre = _prefix(Ws)
    P = pre[-1]
    M = P @ Cxx
    loss = 0.5 * (np.vdot(M, P) - 2.0 * np.vdot(P, Cyx) + yy)
    return (loss, *_hvp(Ws, Vs, pre, M - Cyx, lambda dP: dP @ Cxx))


def hvp_data(Ws, Vs, X, Y):
    """(loss, gradient, H V) from data."""
    pre = _prefix(Ws)
    R = pre[-1] @ X - Y
    return (0.5 * np.vdot(R, R), *_hvp(Ws, Vs, pre, R @ X.T, lambda dP: (dP @ X) @ X.T))


def _flat(parts):
    return np.concatenate([np.ravel(a) for a in parts])


def kernel_cases(p):
    Ws, Vs = p.weights, p.direction
    X, Y, Cxx, Cyx, yy = p.X, p.Y, p.Cxx, p.Cyx, p.yy
    cases = {
        "stats/grad": lambda: loss_grad_stats(Ws, Cxx, Cyx, yy),
        "data/grad": lambda: loss_grad_data(Ws, X, Y),
        "stats/hvp": lambda: hvp_stats(Ws, Vs, Cxx, Cyx, yy),
        "data/hvp": lambda: hvp_data(Ws, Vs, X, Y),
    }
    ls, gs = loss_grad_stats(Ws, Cxx, Cyx, yy)
    ld, gd = loss_grad_data(Ws, X, Y)
    checks = {
        "stats/loss": np.array([ls]),
        "stats/grad": _flat(gs),
        "stats/hvp": _flat(hvp_stats(Ws, Vs, Cxx, Cyx, yy)[2]),
        "data/loss": np.array([ld]),
        "data/grad": _flat(gd),
        "data/hvp": _flat(hvp_data(Ws, Vs, X, Y)[2]),
    }
    return cases, checks
