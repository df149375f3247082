"""Stall records: which modes a stall has learned, and the class of the point it shadows.

The trainer records raw numbers per stall (``kernels.state.STALL_OUT``): where it
began and ended, the Hessian at its probe point, and the critical point reached
from there by Newton-MR (its loss, gradient norm, Hessian extremes, mode
occupancies, Kawaguchi's rank). The rules that turn those numbers into the
learned set S and a class live here, in NumPy, so analysis can re-apply them to
the same Parquet rows with other tolerances (docs/maths.md, "Stalls").
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

# classes of the critical point a stall shadows; `unresolved`: no critical point was
# confirmed. (Flat stretches where the loss rose or oscillated are not stalls: the
# trainer leaves them out and counts them per run as `unstable`.)
STALL_CLASSES = ("strict_saddle", "bad_saddle", "minimum", "unresolved")
# the old rule on the Hessian at the probe point, kept as `local_class`
LOCAL_CLASSES = ("strict_saddle", "bad_saddle", "minimum")


def classify(lam_min, err_min, gap_rel, lam_ref, *, neg_tol: float, min_gap: float) -> np.ndarray:
    """The local class, from the Hessian at a probe point (vectorised).

    strict_saddle where lam_min < -max(neg_tol * lam_ref, 3 * err_min): a negative
    curvature that is clearly beyond Lanczos error and not negligible against the
    problem's curvature scale lam_ref. Otherwise bad_saddle where the relative gap
    is above ``min_gap``, else minimum. It depends on how close the run came to the
    critical point (near a bad saddle lam_min shrinks with the init scale), which is
    why the stall's class is that of the polished point (:func:`classify_critical`).
    """
    lam_min = np.asarray(lam_min, dtype=float)
    thresh = np.maximum(neg_tol * np.asarray(lam_ref, dtype=float), 3.0 * np.asarray(err_min))
    strict = lam_min < -thresh
    above = np.asarray(gap_rel, dtype=float) > min_gap
    return np.where(strict, "strict_saddle", np.where(above, "bad_saddle", "minimum"))


def classify_critical(
    converged, polish_loss, level, rel_lam_min, *, lstar, gap_scale, psd_tol, level_tol
) -> np.ndarray:
    """The class of the critical point each stall shadows (vectorised).

    In order: ``unresolved`` where polishing did not converge or reached a point whose loss is
    not the analytic level of its learned set S (|loss - level| > level_tol x
    gap_scale); ``minimum`` where that level is L* (within level_tol x gap_scale);
    ``strict_saddle`` where the polished Hessian's lambda_min < -psd_tol x lam_ref
    (``rel_lam_min`` = lambda_min / lam_ref); else ``bad_saddle`` (PSD, above L*).
    """
    ok = np.asarray(converged, dtype=bool) & (
        np.abs(np.asarray(polish_loss, dtype=float) - level) <= level_tol * gap_scale
    )
    at_min = np.asarray(level, dtype=float) - lstar <= level_tol * gap_scale
    strict = np.asarray(rel_lam_min, dtype=float) < -psd_tol
    return np.where(~ok, "unresolved", np.where(at_min, "minimum", np.where(
        strict, "strict_saddle", "bad_saddle")))  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Stall:
    """One stall: a stretch where the relative gap fell by less than ``rel_drop`` per
    detection window of training time, while above ``min_gap``.

    Steps are optimizer steps, times are in the problem's time unit (``*_time`` =
    steps x the run's ``time_unit``, docs/maths.md). ``probe_step``: the smallest
    gradient norm in the stall. ``modes``: the learned set S (sorted 0-based indices
    of the eigen-directions of Sigma) at the shadowed critical point, with
    ``critical_value`` its analytic level 1/2 (yy - sum_{i in S} l_i) and
    ``critical_rank`` = |S|; ``nearest_value``/``nearest_rank``: the level nearest
    the probe loss (a cross-check). ``local_*``: the Hessian at the probe point
    (``local_class`` its threshold class). ``polish_*``: Newton-MR from the probe
    point; ``lam_min``/``lam_max``: the Hessian at the point it reached;
    ``rel_lam_min`` = lam_min / lam_ref; ``kawaguchi_rank``: rank(W_{K-1}..W_2)
    there. ``stall_class`` is the class of that critical point. Nonlinear runs only
    (``nltraining``): ``nullity`` (Hessian eigenvalues within psd_tol x lam_ref of 0 at
    the polished point; -1 where the higher-order test was not run), ``descent_drop``
    ((L* - L) / gap_scale at the higher-order descent it found: > 0 for a non-strict
    saddle, 0 for none, NaN not run) and ``descent_radius`` (where, / sqrt(gap_scale /
    lam_ref)); docs/nonlinear.md, "Non-strict saddles".
    """

    start: int
    end: int
    probe_step: int
    start_time: float
    end_time: float
    probe_time: float
    loss: float
    gap: float
    gap_rel: float
    modes: tuple[int, ...]
    occupancy: tuple[float, ...]
    critical_value: float
    critical_rank: int
    nearest_value: float
    nearest_rank: int
    min_grad_norm: float
    local_lam_min: float
    local_lam_max: float
    local_rel_lam_min: float
    local_class: str
    lanczos_iters: int
    polish_converged: bool
    polish_iters: int
    polish_grad_rel: float
    polish_distance: float
    polish_loss: float
    lam_min: float
    lam_max: float
    lam_min_err: float
    rel_lam_min: float
    kawaguchi_rank: int
    stall_class: str
    nullity: int = -1
    descent_drop: float = math.nan
    descent_radius: float = math.nan

    @property
    def length(self) -> int:
        """Steps from start to end."""
        return self.end - self.start

    @property
    def duration(self) -> float:
        """Training time from start to end."""
        return self.end_time - self.start_time
