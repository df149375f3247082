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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._layout import n_params, unflatten
from .options import check_init


def _dims(dims) -> np.ndarray:
    d = np.asarray(dims)
    if d.ndim != 1 or d.size < 2 or not np.issubdtype(d.dtype, np.integer) or (d < 1).any():
        raise ValueError(
            "dims must be a sequence (d_0, ..., d_K) of at least two positive integers, "
            f"got {dims!r}"
        )
    return d.astype(np.int64)


def _haar(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A rows x cols matrix with orthonormal rows or columns (Haar distributed)."""
    big, small = max(rows, cols), min(rows, cols)
    q, r = np.linalg.qr(rng.standard_normal((big, small)))
    q = q * np.sign(np.diag(r))
    return q if rows >= cols else q.T


def init_weights(dims: Sequence[int], scheme: str = "gaussian", scale=1.0, seed: int = 0):
    """Weights [W_1, ..., W_K] for layer sizes ``dims`` = (d_0, ..., d_K)."""
    d = _dims(dims)
    K = d.size - 1
    scales = check_init(scheme, scale, K)
    rng = np.random.default_rng(seed)
    shapes = [(int(d[k + 1]), int(d[k])) for k in range(K)]
    if scheme == "gaussian":
        s = scales * K if len(scales) == 1 else scales
        return [s[k] * rng.standard_normal(shape) for k, shape in enumerate(shapes)]
    if scheme == "orthogonal":
        return [scales[0] * _haar(rng, *shape) for shape in shapes]
    if scheme == "zero_perturbed":
        v = rng.standard_normal(n_params(d))
        return unflatten(scales[0] * v / np.linalg.norm(v), d)
    # balanced
    A = scales[0] * rng.standard_normal((int(d[-1]), int(d[0])))
    return balanced_factors(A, d)


def balanced_factors(A: np.ndarray, dims) -> list[np.ndarray]:
    """Balanced factorisation of A (d_K, d_0), truncated to rank min(dims)."""
    d = _dims(dims)
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
