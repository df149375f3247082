"""Loss, gradient, Hessian-vector products, Hessian and its extreme eigenvalues.

Public wrappers: validate and coerce (float64, C-contiguous), allocate the
workspace, then call the compiled kernels in ``sweepengine.kernels``. Each
takes the weights [W_1, ..., W_K] (W_k of shape (d_k, d_{k-1})) and either the
data ``X`` (d_0, m), ``Y`` (d_K, m) or ``stats=Stats(Cxx, Cyx, yy)``. Given
data, each call picks the cheaper form by an operation count (``_use_stats``):
the statistics form costs computing Cyx (and Cxx) first, the data form two
products with m columns per call. For many calls at one data set, use
:func:`sweepengine.objective`, which validates and prepares once.

Each also takes ``activation=`` (``ACTIVATIONS``, default "linear"), ``alpha=``
(the leaky_relu slope) and ``weight_decay=`` (lam/2 ||theta||^2 added to the loss,
default 0), keyword only. The deep linear network keeps its statistics form: weight
decay is added here, exactly (gradient + lam theta, HVP + lam V, Hessian + lam I,
extremes + lam). Any other activation has no sufficient statistics: the call goes to
:mod:`sweepengine.nonlinear` (data form; imported on first such call, so the linear
path never loads its kernels) and ``stats=`` is refused.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from ._layout import dims_of, flatten
from ._validate import _finite, as_data, as_direction, as_stats, as_weights
from .kernels.hvp import hessian_prepared, hvp_prepared
from .kernels.objective import loss_data, loss_grad_data, loss_grad_stats, loss_stats, ws_size
from .kernels.spectrum import lanczos_extremes
from .options import ALPHA, check_network

# Dense eigen-decomposition up to this many parameters under method="auto".
DENSE_MAX = 400


class _Plan(NamedTuple):
    """What depends on the architecture only, computed once per architecture."""

    dims: np.ndarray  # int64 (d_0..d_K); the kernels only read it
    ws_size: int
    n: int
    slices: tuple  # (start, stop, shape) of each W_k in theta
    ends: list  # [(0, d_0) and (d_K, 0) arrays]: first and last shapes, for as_data/as_stats


@functools.lru_cache(maxsize=256)
def _plan(dims_t: tuple[int, ...]) -> _Plan:
    dims = np.array(dims_t, dtype=np.int64)
    slices, o = [], 0
    for k in range(len(dims_t) - 1):
        r, c = dims_t[k + 1], dims_t[k]
        slices.append((o, o + r * c, (r, c)))
        o += r * c
    ends = [np.empty((0, dims_t[0])), np.empty((dims_t[-1], 0))]
    return _Plan(dims, int(ws_size(dims)), o, tuple(slices), ends)


def _split(vec: np.ndarray, plan: _Plan) -> list[np.ndarray]:
    """[W_1, ..., W_K] as views of the flat ``vec``."""
    return [vec[a:b].reshape(shape) for a, b, shape in plan.slices]


class _Problem(NamedTuple):
    theta: np.ndarray
    dims: np.ndarray
    plan: _Plan
    X: np.ndarray | None
    Y: np.ndarray | None
    Cxx: np.ndarray
    Cyx: np.ndarray | None
    yy: float


_EMPTY = np.empty((0, 0))
# per-call cost of the extra NumPy calls of the statistics form, in multiply-adds
_STATS_CALL_COST = 15_000


def _use_stats(dims: np.ndarray, m: int, need_cxx: bool) -> bool:
    """Statistics form for this one call? It computes Cyx (d_K x d_0 x m), tr YY^T and
    Cxx (d_0 x d_0 x m, unless needed anyway) and then products with d_0 columns;
    the data form does P X and R X^T (2 x d_K x d_0 x m) instead."""
    d0, dK = int(dims[0]), int(dims[-1])
    data = 2 * dK * d0 * m
    stats = dK * d0 * m + dK * m + dK * d0 * d0 + (0 if need_cxx else d0 * d0 * m)
    return stats + _STATS_CALL_COST < data


def _chain(weights) -> tuple[np.ndarray, _Plan, list[np.ndarray] | None]:
    """(theta, plan, checked weights or None): a fast path for a list of C-contiguous
    float64 matrices that chain (one finiteness check on theta); else ``as_weights``."""
    if type(weights) is list and weights:
        ok, dims_t = True, None
        for w in weights:
            if not (
                type(w) is np.ndarray and w.dtype == np.float64 and w.ndim == 2
                and w.flags.c_contiguous and w.size
                and (dims_t is None or w.shape[1] == dims_t[-1])
            ):  # fmt: skip
                ok = False
                break
            dims_t = (*(dims_t or (w.shape[1],)), w.shape[0])
        if ok:
            theta = np.concatenate([w.reshape(-1) for w in weights])
            if _finite(theta):
                return theta, _plan(dims_t), None
    ws = as_weights(weights)
    return flatten(ws), _plan(tuple(int(d) for d in dims_of(ws))), ws


def _problem(weights, X, Y, stats, *, need_cxx: bool) -> _Problem:
    theta, plan, ws = _chain(weights)
    dims = plan.dims
    if ws is None:  # as_data and as_stats check shapes against the chain's ends
        ws = plan.ends
    if stats is not None:
        if X is not None or Y is not None:
            raise ValueError("give either X and Y, or stats, not both")
        Cxx, Cyx, yy = as_stats(stats, ws)
        return _Problem(theta, dims, plan, None, None, Cxx, Cyx, yy)
    if X is None or Y is None:
        raise ValueError("X and Y are required (or pass stats=Stats(Cxx, Cyx, yy))")
    X, Y = as_data(X, Y, ws)
    if _use_stats(dims, X.shape[1], need_cxx):
        return _Problem(theta, dims, plan, None, None, X @ X.T, Y @ X.T, float(np.vdot(Y, Y)))
    Cxx = X @ X.T if need_cxx else _EMPTY
    return _Problem(theta, dims, plan, X, Y, Cxx, None, 0.0)


def _network(activation, alpha, weight_decay, stats) -> tuple[str, float, float]:
    """Validated (activation, alpha, weight_decay); ``stats`` only for the linear net."""
    net = check_network(activation, alpha, weight_decay)
    if net[0] != "linear" and stats is not None:
        raise ValueError(
            f"stats= holds the sufficient statistics of the deep linear loss, and a network "
            f"with activation={net[0]!r} has none: pass the data X and Y instead"
        )
    return net


def _nonlinear():
    from . import nonlinear  # on first use: the linear path never imports its kernels

    return nonlinear


def _prepare(p: _Problem) -> tuple[float, np.ndarray, np.ndarray]:
    """Evaluate loss and gradient; return (loss, flat gradient, workspace with B and E)."""
    ws = np.zeros(p.plan.ws_size)
    g = np.empty_like(p.theta)
    if p.X is None:
        l = loss_grad_stats(p.theta, p.dims, p.Cxx, p.Cyx, p.yy, ws, g)
    else:
        R = np.empty((p.dims[-1], p.X.shape[1]))
        l = loss_grad_data(p.theta, p.dims, p.X, p.Y, ws, R, g)
    return l, g, ws


def loss(
    weights, X=None, Y=None, *, stats=None, activation="linear", alpha=ALPHA, weight_decay=0.0
) -> float:
    """L(W) = 1/2 ||W_K ... W_1 X - Y||_F^2 (+ weight_decay/2 ||theta||^2; with an
    activation, W_K s(... s(W_1 X)) in place of the product)."""
    act, alpha, wd = _network(activation, alpha, weight_decay, stats)
    if act != "linear":
        return _nonlinear().nonlinear_loss(weights, X, Y, act, alpha, wd)
    p = _problem(weights, X, Y, stats, need_cxx=False)
    ws = np.zeros(p.plan.ws_size)
    if p.X is None:
        l = float(loss_stats(p.theta, p.dims, p.Cxx, p.Cyx, p.yy, ws))
    else:
        R = np.empty((p.dims[-1], p.X.shape[1]))
        l = float(loss_data(p.theta, p.dims, p.X, p.Y, ws, R))
    return l + 0.5 * wd * float(np.dot(p.theta, p.theta)) if wd else l


def loss_and_gradient(
    weights, X=None, Y=None, *, stats=None, activation="linear", alpha=ALPHA, weight_decay=0.0
) -> tuple[float, list[np.ndarray]]:
    """(L, [dL/dW_1, ..., dL/dW_K]) with dL/dW_k = A_k^T (P Cxx - Cyx) B_k^T (+ weight_decay
    W_k; by backpropagation with an activation)."""
    act, alpha, wd = _network(activation, alpha, weight_decay, stats)
    if act != "linear":
        return _nonlinear().nonlinear_loss_and_gradient(weights, X, Y, act, alpha, wd)
    p = _problem(weights, X, Y, stats, need_cxx=False)
    l, g, _ = _prepare(p)
    if wd:
        l += 0.5 * wd * float(np.dot(p.theta, p.theta))
        g += wd * p.theta
    return float(l), _split(g, p.plan)


def gradient(
    weights, X=None, Y=None, *, stats=None, activation="linear", alpha=ALPHA, weight_decay=0.0
) -> list[np.ndarray]:
    """[dL/dW_1, ..., dL/dW_K], each shaped like its W_k."""
    return loss_and_gradient(weights, X, Y, stats=stats, activation=activation, alpha=alpha,
                             weight_decay=weight_decay)[1]  # fmt: skip


def hvp(
    weights,
    X=None,
    Y=None,
    direction=None,
    *,
    stats=None,
    activation="linear",
    alpha=ALPHA,
    weight_decay=0.0,
) -> list[np.ndarray]:
    """Exact Hessian-vector product H(W) V (analytic, no finite differences).

    ``direction`` is a list shaped like ``weights`` or a flat vector; the result
    is a list shaped like ``weights``. With an activation: the R-operator of
    :func:`sweepengine.nonlinear_hvp` (at a relu kink, the z <= 0 piece's).
    """
    act, alpha, wd = _network(activation, alpha, weight_decay, stats)
    missing = "direction is required: a list shaped like weights or a flat vector"
    if act != "linear":
        if direction is None:
            raise ValueError(missing)
        return _nonlinear().nonlinear_hvp(weights, X, Y, direction, act, alpha, wd)
    p = _problem(weights, X, Y, stats, need_cxx=True)
    if direction is None:
        raise ValueError(missing)
    v = as_direction(direction, _split(p.theta, p.plan))
    if not v.flags.writeable:  # a read-only array is another Numba type
        v = v.copy()
    _, _, ws = _prepare(p)
    out = np.empty_like(p.theta)
    hvp_prepared(p.theta, p.dims, p.Cxx, ws, v, out)
    if wd:
        out += wd * v
    return _split(out, p.plan)


def _linear_hessian(p: _Problem, wd: float) -> np.ndarray:
    _, _, ws = _prepare(p)
    n = p.theta.size
    H = np.empty((n, n))
    hessian_prepared(p.theta, p.dims, p.Cxx, ws, H)
    if wd:
        H.flat[:: n + 1] += wd
    return H


def hessian(
    weights, X=None, Y=None, *, stats=None, activation="linear", alpha=ALPHA, weight_decay=0.0
) -> np.ndarray:
    """Dense Hessian (n x n), parameters ordered W_1..W_K, each flattened row-major."""
    act, alpha, wd = _network(activation, alpha, weight_decay, stats)
    if act != "linear":
        return _nonlinear().nonlinear_hessian(weights, X, Y, act, alpha, wd)
    return _linear_hessian(_problem(weights, X, Y, stats, need_cxx=True), wd)


class Extremes(NamedTuple):
    """Extreme Hessian eigenvalues with error bounds.

    ``err_min``/``err_max``: an eigenvalue of the Hessian lies within this
    distance of ``lam_min``/``lam_max`` (Lanczos residual bound; for the dense
    method n * eps * ||H||). Lanczos values lie inside the spectrum, so
    ``lam_min`` can only overestimate the true smallest eigenvalue.
    """

    lam_min: float
    lam_max: float
    err_min: float
    err_max: float
    method: str
    iterations: int


_METHODS = ("auto", "dense", "lanczos")


def hessian_extremes_info(
    weights,
    X=None,
    Y=None,
    *,
    stats=None,
    method: str = "auto",
    maxiter: int = 300,
    tol: float = 1e-10,
    seed: int = 0,
    activation: str = "linear",
    alpha: float = ALPHA,
    weight_decay: float = 0.0,
) -> Extremes:
    """lam_min and lam_max of the Hessian, with error bounds and diagnostics.

    ``method``: "dense" (eigvalsh of the full Hessian), "lanczos" (Lanczos with
    full re-orthogonalisation on exact HVPs, stopping when both residual bounds
    are below ``tol`` relative to max |lam|), or "auto" (dense up to
    ``DENSE_MAX`` parameters). With an activation the HVPs are the nonlinear ones
    (Lanczos: ``kernels.nltrainer.lanczos_extremes``, at most n iterations).
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if int(maxiter) < 1:
        raise ValueError(f"maxiter must be a positive integer, got {maxiter}")
    if not (tol > 0):
        raise ValueError(f"tol must be positive, got {tol}")
    act, alpha, wd = _network(activation, alpha, weight_decay, stats)
    if act != "linear":
        nl = _nonlinear()
        p = nl._net(weights, X, Y, act, alpha, wd)
        n = p.theta.size
        if method == "dense" or (method == "auto" and n <= DENSE_MAX):
            return _dense_extremes(nl._dense(p))
        out = nl._lanczos(p, int(maxiter), float(tol), int(seed))
    else:
        p = _problem(weights, X, Y, stats, need_cxx=True)
        n = p.theta.size
        if method == "dense" or (method == "auto" and n <= DENSE_MAX):
            return _dense_extremes(_linear_hessian(p, wd))
        _, _, ws = _prepare(p)
        out = np.zeros(5)
        lanczos_extremes(p.theta, p.dims, p.Cxx, ws, int(maxiter), float(tol), int(seed), out)
        if wd:  # the Ritz values of H + wd I on the same Krylov space, same residuals
            out[:2] += wd
    return Extremes(
        float(out[0]), float(out[1]), float(out[2]), float(out[3]), "lanczos", int(out[4])
    )


def _dense_extremes(H: np.ndarray) -> Extremes:
    n = H.shape[0]
    ev = np.linalg.eigvalsh(0.5 * (H + H.T))
    err = n * np.finfo(float).eps * max(abs(ev[0]), abs(ev[-1]))
    return Extremes(float(ev[0]), float(ev[-1]), err, err, "dense", n)


def hessian_extremes(weights, X=None, Y=None, **options) -> tuple[float, float]:
    """(lam_min, lam_max) of the Hessian; see ``hessian_extremes_info`` for options."""
    e = hessian_extremes_info(weights, X, Y, **options)
    return e.lam_min, e.lam_max
