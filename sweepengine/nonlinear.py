"""Networks with activations and weight decay: loss, gradient, HVP, Hessian, extremes.

    f(X) = W_K s(W_{K-1} ... s(W_1 X)),   L = 1/2 ||f(X) - Y||_F^2 + wd/2 ||theta||^2

with s on the hidden layers only (the output layer is linear), s one of
``ACTIVATIONS``: "linear", "relu", "leaky_relu" (slope ``alpha`` for z <= 0) and
"tanh". Kink convention (relu, leaky_relu): s'(0) = 0 (relu) and alpha
(leaky_relu), the same in the gradient and the HVP, and s'' = 0. With
"linear" and ``weight_decay=0`` every function equals its linear counterpart in
``sweepengine.landscape`` to rounding.

Public names are prefixed ``nonlinear_`` in ``sweepengine`` (``nonlinear_loss``,
...), so they never clash with the linear ``loss``, ``gradient``, ... Each takes
the weights [W_1, ..., W_K] (W_k of shape (d_k, d_{k-1})), X (d_0, m) and
Y (d_K, m), validates everything (clear ``ValueError``) before compiled code runs,
and calls the kernels in ``sweepengine.kernels.activation``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._layout import dims_of, flatten
from ._validate import as_data, as_direction, as_weights
from .kernels import activation as _k
from .options import ACTIVATIONS as ACTIVATIONS  # re-exported (nltraining)
from .options import check_network

_CODES = {"linear": _k.LINEAR, "relu": _k.RELU, "leaky_relu": _k.LEAKY_RELU, "tanh": _k.TANH}
# nonlinear_hessian_extremes is dense only, up to this many parameters (Lanczos on these
# HVPs: sweepengine.hessian_extremes_info(..., activation=...), via _lanczos)
DENSE_MAX = 2000


class _Net(NamedTuple):
    theta: np.ndarray
    dims: np.ndarray
    shapes: list
    X: np.ndarray
    Y: np.ndarray
    act: int
    alpha: float
    wd: float


def _options(activation, alpha, weight_decay) -> tuple[int, float, float]:
    activation, alpha, wd = check_network(activation, alpha, weight_decay)
    return _CODES[activation], alpha, wd


def _net(weights, X, Y, activation, alpha, weight_decay) -> _Net:
    act, alpha, wd = _options(activation, alpha, weight_decay)
    ws = as_weights(weights)
    if X is None or Y is None:
        raise ValueError("X (d_0, m) and Y (d_K, m) are required")
    X, Y = as_data(X, Y, ws)
    return _Net(flatten(ws), dims_of(ws), [w.shape for w in ws], X, Y, act, alpha, wd)


def _split(vec: np.ndarray, shapes) -> list[np.ndarray]:
    out, o = [], 0
    for r, c in shapes:
        out.append(vec[o : o + r * c].reshape(r, c))
        o += r * c
    return out


def _workspace(p: _Net) -> np.ndarray:
    return np.zeros(int(_k.ws_size(p.dims, p.X.shape[1])))


def _prepare(p: _Net) -> tuple[float, np.ndarray, np.ndarray]:
    ws = _workspace(p)
    g = np.empty_like(p.theta)
    l = _k.loss_grad(p.theta, p.dims, p.X, p.Y, p.act, p.alpha, p.wd, ws, g)
    return float(l), g, ws


def nonlinear_loss(weights, X, Y, activation="linear", alpha=0.01, weight_decay=0.0) -> float:
    """L = 1/2 ||W_K s(... s(W_1 X)) - Y||_F^2 + weight_decay/2 ||theta||^2."""
    p = _net(weights, X, Y, activation, alpha, weight_decay)
    return float(_k.loss(p.theta, p.dims, p.X, p.Y, p.act, p.alpha, p.wd, _workspace(p)))


def nonlinear_loss_and_gradient(
    weights, X, Y, activation="linear", alpha=0.01, weight_decay=0.0
) -> tuple[float, list[np.ndarray]]:
    """(L, [dL/dW_1, ..., dL/dW_K]) by backpropagation; dL/dW_k includes weight_decay W_k."""
    p = _net(weights, X, Y, activation, alpha, weight_decay)
    l, g, _ = _prepare(p)
    return l, _split(g, p.shapes)


def nonlinear_gradient(
    weights, X, Y, activation="linear", alpha=0.01, weight_decay=0.0
) -> list[np.ndarray]:
    """[dL/dW_1, ..., dL/dW_K], each shaped like its W_k."""
    return nonlinear_loss_and_gradient(weights, X, Y, activation, alpha, weight_decay)[1]


def nonlinear_hvp(
    weights, X, Y, direction, activation="linear", alpha=0.01, weight_decay=0.0
) -> list[np.ndarray]:
    """Exact Hessian-vector product H V (R-operator: Gauss-Newton plus residual terms).

    ``direction``: a list shaped like ``weights`` or a flat vector; returns a list.
    At a relu/leaky_relu kink the result is that of the z <= 0 piece (s'' = 0).
    """
    p = _net(weights, X, Y, activation, alpha, weight_decay)
    v = as_direction(direction, _split(p.theta, p.shapes))
    if not v.flags.writeable:
        v = v.copy()
    _, _, ws = _prepare(p)
    out = np.empty_like(p.theta)
    _k.hvp_prepared(p.theta, p.dims, p.X, p.act, p.alpha, p.wd, ws, v, out)
    return _split(out, p.shapes)


def _dense(p: _Net) -> np.ndarray:
    n = p.theta.size
    _, _, ws = _prepare(p)
    H = np.empty((n, n))
    _k.hessian_prepared(p.theta, p.dims, p.X, p.act, p.alpha, p.wd, ws, H)
    return H


def _lanczos(p: _Net, maxiter: int, tol: float, seed: int) -> np.ndarray:
    """(lam_min, lam_max, err_min, err_max, iterations) by Lanczos on the exact HVPs
    (the trainer's ``kernels.nltrainer.lanczos_extremes``; at most n iterations)."""
    from .kernels import nltrainer  # on first use: it loads the trainer's modules

    _, _, ws = _prepare(p)
    out = np.zeros(5)
    nltrainer.lanczos_extremes(p.theta, p.dims, p.X, p.Y, p.act, p.alpha, p.wd, ws, maxiter,
                               tol, seed, out)  # fmt: skip
    return out


def nonlinear_hessian(
    weights, X, Y, activation="linear", alpha=0.01, weight_decay=0.0
) -> np.ndarray:
    """Dense Hessian (n x n) by n HVPs; parameters ordered W_1..W_K, each row-major."""
    return _dense(_net(weights, X, Y, activation, alpha, weight_decay))


def nonlinear_hessian_extremes(
    weights, X, Y, activation="linear", alpha=0.01, weight_decay=0.0
) -> tuple[float, float]:
    """(lam_min, lam_max) of the Hessian by ``eigvalsh`` of the dense Hessian.

    Dense only (``kernels.spectrum``'s Lanczos is bound to the linear HVP and takes
    no HVP callback), so at most ``DENSE_MAX`` parameters; the dense Hessian is
    symmetrised, (H + H^T) / 2, before the eigen-decomposition.
    """
    p = _net(weights, X, Y, activation, alpha, weight_decay)
    if p.theta.size > DENSE_MAX:
        raise ValueError(
            f"nonlinear_hessian_extremes is dense only: at most {DENSE_MAX} parameters, "
            f"got {p.theta.size}"
        )
    H = _dense(p)
    ev = np.linalg.eigvalsh(0.5 * (H + H.T))
    return float(ev[0]), float(ev[-1])
