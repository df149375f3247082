"""Exact statistics: Wilson intervals, quantiles, bootstrap, log-log fits, Kaplan-Meier.

No approximation beyond the stated method: quantiles are exact order statistics
with linear interpolation, the bootstrap is the plain percentile bootstrap with a
seeded generator (reproducible for a given seed). Ratio intervals over more than
``BOOTSTRAP_MAX_N`` runs use the delta method instead (see :func:`bootstrap_ratios`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import special as _sp  # norm and t quantiles; scipy.stats costs 0.5 s more to import

__all__ = [
    "Fit",
    "KaplanMeier",
    "BOOTSTRAP_MAX_N",
    "bootstrap_ratios",
    "delta_ratios",
    "fit_line",
    "kaplan_meier",
    "quantiles",
    "wilson",
]


def _z(conf: float) -> float:
    if not 0 < conf < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {conf}")
    return float(_sp.ndtri(0.5 + conf / 2))  # the normal quantile, as scipy.stats.norm.ppf


def wilson(k, n, conf: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion k / n (vectorised).

    With z the (1 + conf) / 2 normal quantile and p = k / n::

        centre = (k + z^2 / 2) / (n + z^2)
        half   = z / (n + z^2) * sqrt(k (n - k) / n + z^2 / 4)

    and the interval is [centre - half, centre + half] (no continuity correction;
    what ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")`` returns).
    n = 0 gives NaN.
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    z = _z(conf)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (k + z * z / 2) / (n + z * z)
        half = z / (n + z * z) * np.sqrt(k * (n - k) / n + z * z / 4)
        lo = np.where(n > 0, np.clip(centre - half, 0, 1), np.nan)
        hi = np.where(n > 0, np.clip(centre + half, 0, 1), np.nan)
        lo = np.where(k == 0, 0.0 * n, lo)  # exact ends (rounding would leave ~1e-17)
        hi = np.where((k == n) & (n > 0), 1.0, hi)
    return lo, hi


def quantiles(x, q) -> np.ndarray:
    """Exact sample quantiles with linear interpolation between order statistics.

    For sorted x_(0..n-1): h = (n - 1) q, Q(q) = x_(floor h) + (h - floor h)
    (x_(floor h + 1) - x_(floor h)) (Hyndman-Fan type 7; NumPy's default and DuckDB's
    ``quantile_cont``). The median is Q(0.5). NaN for an empty sample.
    """
    x = np.asarray(x, dtype=float)
    q = np.asarray(q, dtype=float)
    if x.size == 0:
        return np.full(q.shape, np.nan)
    return np.quantile(x, q, method="linear")


#: Above this many resampling units, :func:`bootstrap_ratios` uses the delta method
#: (``method="auto"``): the bootstrap costs n x n_boot random draws (1000 replicates of
#: 1,000,000 runs: 13-18 s of CPU), while at this size its percentile interval and the
#: delta-method interval agree (tests/test_analysis.py checks it on heavy-tailed data).
BOOTSTRAP_MAX_N = 50_000


def delta_ratios(
    num: np.ndarray, den: np.ndarray, conf: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ratios of sums sum_i num[i, j] / sum_i den[i] with delta-method (normal) intervals.

    R_j = sum num_j / sum den; linearised, R_j - est ~ mean(z_j) / mean(den) with
    z_ij = num_ij - R_j den_i, so se_j = sd(z_j) / (sqrt(n) mean(den)) (sd with n - 1)
    and the interval is R_j +- z_{(1+conf)/2} se_j, the large-sample limit of the
    bootstrap's. Returns (estimate, lo, hi), each (m,); NaN intervals for n < 2.
    """
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    if num.ndim == 1:
        num = num[:, None]
    n, m = num.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        est = num.sum(axis=0) / den.sum()
        if n < 2:
            nan = np.full(m, np.nan)
            return est, nan, nan.copy()
        z = num - den[:, None] * est[None, :]
        se = z.std(axis=0, ddof=1) / (math.sqrt(n) * den.mean())
    half = _z(conf) * se
    return est, est - half, est + half


def bootstrap_ratios(
    num: np.ndarray,
    den: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    conf: float = 0.95,
    method: str = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ratios of sums sum_i num[i, j] / sum_i den[i] with percentile bootstrap intervals.

    ``num`` is (n, m) (one column per ratio), ``den`` is (n,), rows are the
    resampling units (runs). Each replicate draws n rows with replacement (the
    compiled kernel of :mod:`._bootstrap`: a splitmix64 stream keyed by (seed,
    replicate), reproducible whatever the thread count) and recomputes every
    ratio from the same draw, so the ratios of one replicate sum like the point
    estimates do. The interval is the (1 - conf) / 2 and (1 + conf) / 2
    quantiles of the replicates (linear interpolation). Returns (estimate, lo, hi),
    each (m,). With n = 0 everything is NaN.

    ``method``: ``"bootstrap"`` always resamples; ``"delta"`` gives
    :func:`delta_ratios`; ``"auto"`` (default) resamples up to ``BOOTSTRAP_MAX_N``
    rows and uses the delta method above, where the two agree and the bootstrap
    would cost seconds. ``n_boot <= 0`` gives NaN intervals whatever the method.
    """
    if method not in ("auto", "bootstrap", "delta"):
        raise ValueError(f"method must be 'auto', 'bootstrap' or 'delta', got {method!r}")
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    if num.ndim == 1:
        num = num[:, None]
    n, m = num.shape
    if den.shape != (n,):
        raise ValueError(f"den has shape {den.shape}, expected ({n},)")
    if n == 0:
        nan = np.full(m, np.nan)
        return nan, nan.copy(), nan.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        est = num.sum(axis=0) / den.sum()
    if n_boot <= 0:
        nan = np.full(m, np.nan)
        return est, nan, nan.copy()
    if method == "delta" or (method == "auto" and n > BOOTSTRAP_MAX_N):
        return delta_ratios(num, den, conf)
    from ._bootstrap import boot_sums

    rows = np.ascontiguousarray(np.column_stack([num, den]))
    sums = np.empty((n_boot, m + 1))
    boot_sums(rows, np.uint64(seed % 2**64), n_boot, sums)
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = sums[:, :m] / sums[:, m:]
    a = (1 - conf) / 2
    lo, hi = np.nanquantile(reps, [a, 1 - a], axis=0, method="linear")
    return est, lo, hi


@dataclasses.dataclass(frozen=True)
class Fit:
    """Least-squares line y = intercept + slope x with a t interval on the slope.

    ``se`` = sqrt(SSE / (n - 2) / Sxx); interval slope +- t_{n-2, (1+conf)/2} se.
    ``lo``/``hi`` are NaN when n < 3 (no residual degrees of freedom).
    """

    n: int
    slope: float
    intercept: float
    se: float
    lo: float
    hi: float
    r2: float


def fit_line(x, y, conf: float = 0.95) -> Fit | None:
    """Ordinary least squares of y on x (pass logs for a log-log fit).

    slope = Sxy / Sxx with Sxy = sum (x - xbar)(y - ybar), Sxx = sum (x - xbar)^2.
    None when fewer than 2 points or all x equal.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = x.size
    if n < 2 or np.ptp(x) == 0:
        return None
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    if sxx == 0:
        return None
    sxy = float(((x - xm) * (y - ym)).sum())
    syy = float(((y - ym) ** 2).sum())
    slope = sxy / sxx
    intercept = ym - slope * xm
    sse = max(syy - slope * sxy, 0.0)
    r2 = 1.0 - sse / syy if syy > 0 else 1.0
    if n < 3:
        return Fit(n, slope, intercept, math.nan, math.nan, math.nan, r2)
    se = math.sqrt(sse / (n - 2) / sxx)
    t = float(_sp.stdtrit(n - 2, 0.5 + conf / 2))  # Student's t quantile (scipy.stats.t.ppf)
    return Fit(n, slope, intercept, se, slope - t * se, slope + t * se, r2)


@dataclasses.dataclass(frozen=True)
class KaplanMeier:
    """Kaplan-Meier survival estimate S(t) = prod_{t_j <= t} (1 - d_j / n_j).

    One entry per distinct time t_j with at least one event: n_j at risk (durations
    >= t_j, censored ones included: a censoring at t_j is counted as still at risk
    at t_j), d_j events. ``n_censored`` is the total number censored. ``se`` is
    Greenwood's standard error S(t) sqrt(sum d_j / (n_j (n_j - d_j))).
    """

    time: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray
    survival: np.ndarray
    se: np.ndarray
    n: int
    n_events: int
    n_censored: int

    def median(self) -> float:
        """Smallest t_j with S(t_j) <= 1/2; NaN when S never falls to 1/2."""
        hit = np.nonzero(self.survival <= 0.5)[0]
        return float(self.time[hit[0]]) if hit.size else math.nan

    def at(self, t) -> np.ndarray:
        """S(t) as a right-continuous step function (1 before the first event)."""
        i = np.searchsorted(self.time, np.asarray(t, dtype=float), side="right")
        s = np.concatenate([[1.0], self.survival])
        return s[i]


def kaplan_meier(durations, observed) -> KaplanMeier:
    """Kaplan-Meier estimate from durations and event flags (False = censored)."""
    d = np.asarray(durations, dtype=float)
    e = np.asarray(observed, dtype=bool)
    if d.shape != e.shape:
        raise ValueError("durations and observed must have the same shape")
    if np.any(~np.isfinite(d)) or np.any(d < 0):
        raise ValueError("durations must be finite and >= 0")
    order = np.argsort(d, kind="stable")
    d, e = d[order], e[order]
    times = np.unique(d[e])
    # at risk at t: durations >= t
    at_risk = d.size - np.searchsorted(d, times, side="left")
    events = np.searchsorted(d[e], times, side="right") - np.searchsorted(d[e], times, "left")
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(1.0 - events / at_risk)
        g = np.cumsum(np.where(at_risk > events, events / (at_risk * (at_risk - events)), np.inf))
        se = surv * np.sqrt(g)
    se = np.where(surv == 0, 0.0, se)
    return KaplanMeier(
        time=times, at_risk=at_risk.astype(np.int64), events=events.astype(np.int64),
        survival=surv, se=se, n=int(d.size), n_events=int(e.sum()),
        n_censored=int((~e).sum()),
    )  # fmt: skip
