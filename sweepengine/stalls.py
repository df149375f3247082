"""Stall records and their classification (strict saddle, bad saddle, minimum).

The rule (documented in ``StallConfig``) is applied in NumPy to the raw numbers
the trainer records, so analysis can re-classify the same Parquet rows with
other thresholds through :func:`classify`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

STALL_CLASSES = ("strict_saddle", "bad_saddle", "minimum")


def classify(lam_min, err_min, gap_rel, lam_ref, *, neg_tol: float, min_gap: float) -> np.ndarray:
    """Vectorised stall class.

    strict_saddle where lam_min < -max(neg_tol * lam_ref, 3 * err_min): a negative
    curvature that is clearly beyond Lanczos error and not negligible against the
    problem's curvature scale lam_ref. Otherwise bad_saddle where the relative gap
    is above ``min_gap``, else minimum.
    """
    lam_min = np.asarray(lam_min, dtype=float)
    thresh = np.maximum(neg_tol * np.asarray(lam_ref, dtype=float), 3.0 * np.asarray(err_min))
    strict = lam_min < -thresh
    above = np.asarray(gap_rel, dtype=float) > min_gap
    return np.where(strict, "strict_saddle", np.where(above, "bad_saddle", "minimum"))


@dataclasses.dataclass(frozen=True)
class Stall:
    """One stall: a stretch where the loss barely moved while above L*.

    Steps are optimizer steps; ``probe_step`` is where the gradient norm was
    smallest and the Hessian was probed. ``gap`` = loss - L*, ``gap_rel`` = gap /
    (L(0) - L*). ``critical_value`` is the nearest analytic critical level
    1/2 (yy - sum_{i in S} l_i) and ``critical_rank`` = |S|. ``rel_lam_min`` =
    lam_min / lam_ref (lam_ref: top Hessian eigenvalue at the balanced global
    minimizer). ``err_*``: Lanczos residual bounds.
    """

    start: int
    end: int
    probe_step: int
    loss: float
    gap: float
    gap_rel: float
    critical_value: float
    critical_rank: int
    min_grad_norm: float
    lam_min: float
    lam_max: float
    err_min: float
    err_max: float
    lanczos_iters: int
    rel_lam_min: float
    stall_class: str

    @property
    def length(self) -> int:
        return self.end - self.start
