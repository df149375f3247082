"""The independence model of Kawaguchi 2016, Section 3 (after Choromanska et al. 2015).

A ReLU network's output is a sum over paths. A path from input coordinate i_0 to
output coordinate i_K is one unit per layer, (i_0, i_1, ..., i_K), with weight
w_path = W_K[i_K, i_{K-1}] ... W_1[i_1, i_0]; for sample n,

    Yhat[j, n] = q sum_{paths ending at j} X[i_0, n] A[n, path] w_path

where A[n, path] = 1 iff every hidden unit on the path is active on sample n
(exact for relu, s(z) = 1[z > 0] z; the output layer is linear). This is the
path form of the network output in Section 3 of the paper (the slides in
/work/shared/seeds/004 write it as q sum_i sum_j X_{i,j} A_{i,j} prod_k
W^{(k)}_{i,j}, "the A_{i,j} are independent Bernoulli r.v. with mean rho", and
state that under this assumption "among others" there is an equivalence with a
linear network; the seeds give no equation numbers). The independence model
replaces A by independent Bernoulli(rho) variables, independent of X and W
(the paper's assumptions A1p-m and A5u-m). Then

    E_A[Yhat] = q rho W_K ... W_1 X                                  (the reduction)

and the loss the paper analyses, 1/2 ||E_A[Yhat] - Y||_F^2, is the deep linear
loss of the weights with W_K scaled by q rho (``expected_output_loss``). The
expectation of the loss itself adds the variance of Yhat:

    E_A[1/2 ||Yhat - Y||^2] = 1/2 ||q rho P X - Y||^2
                              + 1/2 q^2 rho (1 - rho) sum((W_K^2 ... W_1^2) X^2)

(squares entrywise: sum over samples and paths of (X[i_0, n] w_path)^2;
``expected_loss``). Citation detail (Section 3, its Corollary on the nonlinear
loss surface) is as the seeds give it; check equation numbers against the paper.

Measurements on a trained ReLU net (``activation_patterns``,
``path_activation_rate``, ``input_dependence``, ``path_dependence``) say how far
the net is from the model's assumptions. Paths are enumerated, so keep nets small.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._layout import dims_of
from ._validate import as_data, as_matrix, as_weights

MAX_PATHS = 1 << 20  # enumeration limit (paths x samples arrays are formed)


def _check_q_rho(q, rho) -> tuple[float, float]:
    q, rho = float(q), float(rho)
    if not np.isfinite(q):
        raise ValueError(f"q must be a finite number, got {q!r}")
    if not (0.0 <= rho <= 1.0):
        raise ValueError(f"rho must lie in [0, 1], got {rho!r}")
    return q, rho


def _weights_x(weights, X):
    ws = as_weights(weights)
    X = as_matrix(X, "X", ws[0].shape[1])
    return ws, X


def paths(dims) -> np.ndarray:
    """Every path as a row (i_0, i_1, ..., i_K), in row-major order of the indices."""
    dims = [int(d) for d in dims]
    n = int(np.prod(dims))
    if n > MAX_PATHS:
        raise ValueError(f"the net has {n} paths, more than MAX_PATHS = {MAX_PATHS}")
    return np.indices(dims).reshape(len(dims), -1).T.copy()


def path_weights(weights) -> tuple[np.ndarray, np.ndarray]:
    """(paths, w_path): the paths and the product of the weights along each."""
    ws = as_weights(weights)
    P = paths(dims_of(ws))
    w = np.ones(P.shape[0])
    for k, W in enumerate(ws):
        w *= W[P[:, k + 1], P[:, k]]
    return P, w


def path_output(weights, X, A=None, q: float = 1.0) -> np.ndarray:
    """Yhat = q sum over paths of X[i_0, n] A[n, path] w_path, shape (d_K, m).

    ``A`` (m, n_paths) of path activations (0/1, or any weights); None means all
    ones, which gives q W_K ... W_1 X exactly (up to summation order).
    """
    ws, X = _weights_x(weights, X)
    q = float(q)
    P, w = path_weights(ws)
    m, dK = X.shape[1], ws[-1].shape[0]
    contrib = X[P[:, 0], :].T * w  # (m, n_paths)
    if A is not None:
        A = np.asarray(A, dtype=np.float64)
        if A.shape != contrib.shape:
            raise ValueError(f"A has shape {A.shape}, expected (m, n_paths) = {contrib.shape}")
        contrib = contrib * A
    out = np.zeros((m, dK))
    for j in range(dK):
        out[:, j] = contrib[:, P[:, -1] == j].sum(axis=1)
    return q * out.T


def sample_activations(n_samples: int, n_paths: int, rho: float, rng) -> np.ndarray:
    """A (m, n_paths) of independent Bernoulli(rho) path activations."""
    return (rng.random((n_samples, n_paths)) < rho).astype(np.float64)


def _product(ws) -> np.ndarray:
    P = ws[0]
    for W in ws[1:]:
        P = W @ P
    return P


def expected_output(weights, X, q: float, rho: float) -> np.ndarray:
    """E_A[Yhat] = q rho W_K ... W_1 X under the independence model."""
    ws, X = _weights_x(weights, X)
    q, rho = _check_q_rho(q, rho)
    return q * rho * (_product(ws) @ X)


def expected_output_loss(weights, X, Y, q: float, rho: float) -> float:
    """1/2 ||E_A[Yhat] - Y||_F^2: the deep linear loss with W_K scaled by q rho."""
    ws = as_weights(weights)
    X, Y = as_data(X, Y, ws)
    R = expected_output(ws, X, q, rho) - Y
    return 0.5 * float(np.sum(R * R))


def expected_loss(weights, X, Y, q: float, rho: float) -> float:
    """E_A[1/2 ||Yhat - Y||^2] = ``expected_output_loss`` + 1/2 q^2 rho (1 - rho) V,
    V = sum((W_K^2 ... W_1^2) X^2) (entrywise squares)."""
    ws = as_weights(weights)
    X, Y = as_data(X, Y, ws)
    q, rho = _check_q_rho(q, rho)
    V = float(np.sum(_product([W * W for W in ws]) @ (X * X)))
    return expected_output_loss(ws, X, Y, q, rho) + 0.5 * q * q * rho * (1.0 - rho) * V


class MonteCarlo(NamedTuple):
    """Means over independent draws of A and their standard errors (std / sqrt(n))."""

    output: np.ndarray
    output_se: np.ndarray
    loss: float
    loss_se: float
    draws: int


def monte_carlo(weights, X, Y, q: float, rho: float, draws: int = 200, seed: int = 0):
    """Estimate E_A[Yhat] and E_A[1/2 ||Yhat - Y||^2] from ``draws`` draws of A."""
    ws = as_weights(weights)
    X, Y = as_data(X, Y, ws)
    q, rho = _check_q_rho(q, rho)
    if int(draws) < 2:
        raise ValueError(f"draws must be an integer >= 2, got {draws!r}")
    rng = np.random.default_rng(seed)
    P, _ = path_weights(ws)
    outs, losses = [], []
    for _ in range(int(draws)):
        A = sample_activations(X.shape[1], P.shape[0], rho, rng)
        out = path_output(ws, X, A, q)
        outs.append(out)
        losses.append(0.5 * float(np.sum((out - Y) ** 2)))
    o, l = np.array(outs), np.array(losses)
    n = o.shape[0]
    return MonteCarlo(
        o.mean(0), o.std(0, ddof=1) / np.sqrt(n), float(l.mean()),
        float(l.std(ddof=1) / np.sqrt(n)), n,
    )  # fmt: skip


# --- measurements on a ReLU net ---------------------------------------------------------


def activation_patterns(weights, X) -> list[np.ndarray]:
    """[1[Z_k > 0] for k = 1..K-1]: each hidden layer's (d_k, m) boolean pattern
    in the ReLU net W_K relu(... relu(W_1 X)); a unit at exactly 0 is inactive."""
    ws, X = _weights_x(weights, X)
    out, A = [], X
    for W in ws[:-1]:
        Z = W @ A
        out.append(Z > 0)
        A = np.where(Z > 0, Z, 0.0)
    return out


def path_activation_rate(weights, X) -> float:
    """rho of the net: the fraction of active paths, averaged over the samples.

    A path is active on a sample iff its hidden units all are, so per sample the
    fraction is prod_k (active units in layer k) / d_k (1 for a net with no
    hidden layer).
    """
    pats = activation_patterns(weights, X)
    m = np.asarray(X).shape[1]
    frac = np.ones(m)
    for p in pats:
        frac *= p.mean(axis=0)
    return float(frac.mean())


def _corr_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlations (rows of a) x (rows of b) over columns; nan if a row is constant."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    na, nb = np.sqrt((a * a).sum(1)), np.sqrt((b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (a @ b.T) / np.outer(na, nb)
    c[(na == 0)[:, None] | (nb == 0)[None, :]] = np.nan
    return c


class InputDependence(NamedTuple):
    """How hidden units' activations depend on the input.

    ``corr[u, i]``: Pearson correlation over the samples between unit u's activation
    indicator (units of all hidden layers stacked, layer 1 first) and sign(x_i);
    nan where either is constant. ``max_abs[u]`` = max_i |corr[u, i]|;
    ``mean_max_abs``: its mean over units with a defined value (nan if none);
    ``constant_units``: units active on all samples or on none. The independence
    model (A independent of X) predicts 0 for every entry; with m samples the
    noise of a truly independent unit is about 1/sqrt(m).
    """

    corr: np.ndarray
    max_abs: np.ndarray
    mean_max_abs: float
    constant_units: int


def _hidden_patterns(weights, X):
    """(weights, X, activation patterns), refusing a net without hidden layer."""
    ws, X = _weights_x(weights, X)
    pats = activation_patterns(ws, X)
    if not pats:
        raise ValueError("the net has no hidden layer (K = 1): no activations to measure")
    return ws, X, pats


def input_dependence(weights, X) -> InputDependence:
    """Per-unit correlation of activation indicators with the signs of the inputs."""
    ws, X, pats = _hidden_patterns(weights, X)
    ind = np.vstack(pats).astype(np.float64)
    c = _corr_rows(ind, np.sign(X))
    defined = ~np.all(np.isnan(c), axis=1)
    mx = np.full(c.shape[0], np.nan)
    mx[defined] = np.nanmax(np.abs(c[defined]), axis=1)
    const = int(np.sum(ind.min(1) == ind.max(1)))
    mean = float(np.mean(mx[defined])) if defined.any() else float("nan")
    return InputDependence(c, mx, mean, const)


class PathDependence(NamedTuple):
    """Correlation between the activation indicators of distinct paths.

    Over pairs of distinct hidden-unit tuples (i_1..i_{K-1}) whose indicators vary
    over the samples: ``shared`` is the mean Pearson correlation of pairs sharing
    at least one hidden unit (``n_shared`` pairs), ``disjoint`` of pairs sharing
    none (``n_disjoint``); nan when there is no such pair. ``independent`` is the
    model's value, 0. Full paths that differ only in the input or output index
    share every hidden unit and have identical indicators (correlation 1), which
    the model also treats as independent; they are not counted here.
    """

    shared: float
    disjoint: float
    n_shared: int
    n_disjoint: int
    independent: float


def path_dependence(weights, X) -> PathDependence:
    """Mean correlation of path indicators for paths sharing units vs disjoint paths."""
    ws, X, pats = _hidden_patterns(weights, X)
    hidden = [p.shape[0] for p in pats]
    T = paths(hidden)  # hidden-unit tuples
    if T.shape[0] > 4096:
        raise ValueError(f"{T.shape[0]} hidden-unit paths: at most 4096 (pairs are formed)")
    G = np.ones((T.shape[0], X.shape[1]))
    for k, p in enumerate(pats):
        G *= p[T[:, k], :]
    C = _corr_rows(G, G)
    share = np.zeros(C.shape, dtype=bool)
    for k in range(T.shape[1]):
        share |= T[:, k][:, None] == T[:, k][None, :]
    upper = np.triu(np.ones(C.shape, dtype=bool), 1) & ~np.isnan(C)
    s, d = C[upper & share], C[upper & ~share]
    return PathDependence(
        float(s.mean()) if s.size else float("nan"),
        float(d.mean()) if d.size else float("nan"),
        int(s.size), int(d.size), 0.0,
    )  # fmt: skip
