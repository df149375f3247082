"""Initial weights for deep linear networks.

Schemes (``scale`` is a positive number; ``gaussian`` also takes one per layer):

- ``gaussian``: entries of W_k i.i.d. N(0, scale_k^2).
- ``orthogonal``: W_k = scale * Q_k with Q_k (semi-)orthogonal (orthonormal rows
  or columns, whichever is fewer), drawn from the Haar measure.
- ``balanced``: Arora, Cohen, Golowich and Hu (ICLR 2019): draw an end-to-end
  matrix A (d_K, d_0) with N(0, scale^2) entries, take its SVD truncated to
  the narrowest layer, A_r = U S V^T, and set W_K = U S^{1/K}, W_k = S^{1/K}
  (embedded), W_1 = S^{1/K} V^T, so W_{k+1}^T W_{k+1} = W_k W_k^T (balanced) and
  the product is A_r.
- ``zero_perturbed``: W = 0 plus a perturbation uniform on the sphere of radius
  ``scale`` in the full parameter space (||theta||_2 = scale exactly).

All schemes draw their randomness from standard normals of a counter-based
stream (splitmix64, ``kernels.rng``) keyed by the seed alone: fast enough to
initialise a chunk of thousands of runs in one call, and the same numbers on
every machine and NumPy version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._haar import haar_orthonormal
from ._layout import n_params, unflatten
from ._validate import as_dims
from .kernels.rng import init_normals
from .options import check_init


def _seeds(seeds) -> np.ndarray:
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int | np.integer)]
    bad += [s for s in seeds if not bad and not 0 <= int(s) < 2**64]
    if bad:
        raise ValueError(f"seeds must be integers in [0, 2**64), got {bad[0]!r}")
    return np.array([int(s) for s in seeds], dtype=np.uint64)


def _haar(z: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """A rows x cols matrix with orthonormal rows or columns (Haar distributed) from normals z."""
    q = haar_orthonormal(z.reshape(max(rows, cols), min(rows, cols)))
    return q if rows >= cols else q.T


def init_weights(dims: Sequence[int], scheme: str = "gaussian", scale=1.0, seed: int = 0):
    """Weights [W_1, ..., W_K] for layer sizes ``dims`` = (d_0, ..., d_K)."""
    d = as_dims(dims)
    return unflatten(init_batch(d, scheme, [scale], [seed])[0], d, copy=False)


def init_batch(dims: Sequence[int], scheme: str, scales: Sequence, seeds: Sequence[int]):
    """Flat initial weights of B runs, (B, n_params): row b = ``init_weights(dims, scheme,
    scales[b], seeds[b])`` flattened, validated once and drawn in one compiled call.

    Every scheme starts from standard normals of a counter-based stream keyed by the
    seed (``kernels.rng.init_normals``), so a run's weights depend on its seed alone.
    """
    d = as_dims(dims)
    K = d.size - 1
    if len(scales) != len(seeds):
        raise ValueError(f"got {len(scales)} scales for {len(seeds)} seeds (one each per run)")
    seed_arr = _seeds(seeds)
    checked: dict[Any, tuple[float, ...]] = {}
    per_run = []
    for s in scales:
        key = tuple(s) if isinstance(s, list | tuple) else s
        if key not in checked:
            checked[key] = check_init(scheme, s, K)
        per_run.append(checked[key])
    n = n_params(d)
    sizes = d[1:] * d[:-1]
    B = len(per_run)
    Z = np.empty((B, max(n, int(d[-1] * d[0]))))
    init_normals(seed_arr, Z)
    if scheme == "gaussian":
        S = np.array([s * K if len(s) == 1 else s for s in per_run], dtype=np.float64)
        return np.repeat(S, sizes, axis=1) * Z[:, :n]
    s0 = np.array([s[0] for s in per_run])
    if scheme == "zero_perturbed":
        Z = Z[:, :n]
        return (s0 / np.linalg.norm(Z, axis=1))[:, None] * Z
    theta = np.empty((B, n))
    offs = np.concatenate([[0], np.cumsum(sizes)])
    for b in range(B):
        if scheme == "orthogonal":
            for k in range(K):
                z = Z[b, offs[k] : offs[k + 1]]
                W = s0[b] * _haar(z, int(d[k + 1]), int(d[k]))
                theta[b, offs[k] : offs[k + 1]] = W.ravel()
        else:  # balanced
            A = s0[b] * Z[b, : d[-1] * d[0]].reshape(int(d[-1]), int(d[0]))
            theta[b] = np.concatenate([W.ravel() for W in balanced_factors(A, d)])
    return theta


def balanced_factors(A: np.ndarray, dims) -> list[np.ndarray]:
    """Balanced factorisation of A (d_K, d_0), truncated to rank min(dims)."""
    d = as_dims(dims)
    K = d.size - 1
    r = int(d.min())
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    root = s[:r] ** (1.0 / K)
    Ws = []
    for k in range(K):
        W = np.zeros((int(d[k + 1]), int(d[k])))
        if k == 0 and k == K - 1:
            W[:, :] = (U[:, :r] * root**K) @ Vt[:r]
        elif k == 0:
            W[:r, :] = root[:, None] * Vt[:r]
        elif k == K - 1:
            W[:, :r] = U[:, :r] * root
        else:
            W[:r, :r] = np.diag(root)
        Ws.append(W)
    return Ws
