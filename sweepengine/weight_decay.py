"""Deep linear networks with weight decay: the critical point W = 0.

    L_lam(W) = 1/2 ||W_K ... W_1 X - Y||_F^2 + lam/2 ||theta||^2,   Cyx = Y X^T

At W = 0 (K >= 2) every layer's gradient is a product that holds another zero
layer, so W = 0 is a critical point for every lam. Its Hessian
(parameters ordered as ``sweepengine._layout``: W_1..W_K, each row-major):

- K = 1: kron(I_{d_1}, Cxx) + lam I (convex; W = 0 is critical only if Cyx = 0);
- K = 2: lam I plus the off-diagonal block d^2 L / dW_1[h, i] dW_2[a, h] = -Cyx[a, i]:
  the quadratic form is lam ||V||^2 - 2 <V_2 V_1, Cyx>, whose eigenvalues are
  lam +- sigma_i(Cyx) (each d_1 times) and lam for the rest, so W = 0 is a strict
  local minimum iff lam > sigma_max(Cyx), a strict saddle iff lam < sigma_max(Cyx)
  and degenerate (PSD, singular: the second-order test does not decide) at equality;
- K >= 3: the data term starts at order K >= 3 in the weights, so the Hessian is
  lam I: a strict local minimum for every lam > 0 (and the zero matrix at lam = 0).

See docs/maths.md, "Weight decay".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ._validate import as_matrix

CLASSES = ("not_critical", "strict_minimum", "strict_saddle", "degenerate")


class ZeroPoint(NamedTuple):
    """W = 0 under weight decay: its Hessian and what the Hessian says.

    ``classification``: "not_critical" (K = 1 with Cyx != 0), "strict_minimum"
    (Hessian positive definite), "strict_saddle" (a negative eigenvalue) or
    "degenerate" (PSD and singular: higher orders decide). ``threshold`` is
    sigma_max(Cyx), the weight decay above which W = 0 is a minimum for K = 2
    (0 for K >= 3, nan for K = 1).
    """

    hessian: np.ndarray
    lam_min: float
    lam_max: float
    classification: str
    threshold: float


def zero_point_hessian(X, Y, hidden_widths: Sequence[int], weight_decay: float) -> ZeroPoint:
    """Hessian of L + weight_decay/2 ||theta||^2 at W = 0 and its classification.

    ``hidden_widths`` (d_1, ..., d_{K-1}); X (d_0, m), Y (d_K, m). Written from the
    closed forms above (not from the kernels, which the tests compare it with).
    """
    X = as_matrix(X, "X")
    Y = as_matrix(Y, "Y", None, X.shape[1])
    widths = [int(w) for w in hidden_widths]
    if any(w < 1 for w in widths):
        raise ValueError(f"hidden_widths must be positive integers, got {list(hidden_widths)!r}")
    lam = float(weight_decay)
    if not (np.isfinite(lam) and lam >= 0):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    dims = [X.shape[0], *widths, Y.shape[0]]
    K = len(dims) - 1
    sizes = [dims[k + 1] * dims[k] for k in range(K)]
    n = sum(sizes)
    Cyx = Y @ X.T
    H = lam * np.eye(n)
    critical = True
    threshold = 0.0
    if K == 1:
        H += np.kron(np.eye(dims[1]), X @ X.T)
        critical = not np.any(Cyx)
        threshold = float("nan")
    elif K == 2:
        d0, d1, d2 = dims
        for h in range(d1):
            for i in range(d0):
                for a in range(d2):
                    r, c = h * d0 + i, sizes[0] + a * d1 + h
                    H[r, c] = H[c, r] = -Cyx[a, i]
        threshold = float(np.linalg.norm(Cyx, 2))
    ev = np.linalg.eigvalsh(H)
    lo, hi = float(ev[0]), float(ev[-1])
    tol = n * np.finfo(float).eps * max(abs(lo), abs(hi), 1e-300)
    if not critical:
        cls = "not_critical"
    elif lo > tol:
        cls = "strict_minimum"
    elif lo < -tol:
        cls = "strict_saddle"
    else:
        cls = "degenerate"
    return ZeroPoint(H, lo, hi, cls, threshold)
