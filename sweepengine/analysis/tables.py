"""Grouped answers: one row per group of runs, grouped by any sweep axis or combination.

Axes (``by``): ``depth``, ``width`` (the narrowest hidden width, ``min_width``),
``widths`` (all hidden widths, as text such as ``"4x4"``), ``init_scheme``,
``init_scale``, ``optimizer``, ``lr``, ``problem``, ``activation``,
``weight_decay``, or any other runs column. ``by=()`` is the whole sweep.

Which runs count: every run whose status is not ``failed`` (a failed run has no
training to analyse); :func:`outcomes` counts all runs. A run *has* a stall of
class c when ``steps_in_c > 0`` (the runs counters cover every stall, also those
beyond ``max_stalls`` that have no row in the stalls table).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from .load import AnalysisError, Results
from .stats import bootstrap_ratios, fit_line, kaplan_meier, quantiles, wilson
from .v2 import ALL_STALL_CLASSES, DERIVED_CLASSES, STALL_CLASSES

__all__ = [
    "AXES",
    "INDEPENDENCE_MEASURES",
    "depth_scaling",
    "independence_summary",
    "nonlinear_mask",
    "outcomes",
    "runs_frame",
    "saddle_frequency",
    "scale_scaling",
    "stall_prediction",
    "stall_prediction_by",
    "survival",
    "theoretical_scale_slope",
    "time_shares",
    "time_to_best",
    "time_to_target",
]

AXES = ("depth", "width", "widths", "init_scheme", "init_scale", "optimizer", "lr", "problem")
STATUSES = ("converged", "diverged", "max_steps", "failed")
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def _by(by) -> list[str]:
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    return list(by)


def runs_frame(res: Results, by=(), extra=(), *, columns=None) -> pd.DataFrame:
    """Runs as a DataFrame with the grouping columns ready (``width``, ``widths``).

    ``columns``: the runs columns needed besides ``by`` and ``extra`` (None: all).
    """
    cols = set(_by(by)) | set(extra)
    names = res.runs.column_names if isinstance(res.runs, pa.Table) else list(res.runs.columns)
    unknown = [c for c in cols if c not in names and c != "width"]
    if unknown:
        raise AnalysisError(f"unknown axis or column(s) {unknown}; axes: {list(AXES)}")
    if columns is None:
        want = None
    else:
        want = list(dict.fromkeys([*columns, *_by(by), *extra]))
        want = [("min_width" if c == "width" else c) for c in want]
    df = res.frame(want)
    if "width" in cols:
        df = df.assign(width=df["min_width"])
    if "widths" in cols:
        df = df.assign(widths=_widths_text(res))
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise AnalysisError(f"unknown axis or column(s) {missing}; axes: {list(AXES)}")
    return df


def _widths_text(res: Results) -> np.ndarray:
    """Hidden widths as text, "4x4" ("-" for depth 0), computed in Arrow when possible."""
    w = res.runs.column("widths") if isinstance(res.runs, pa.Table) else None
    if w is None:
        return np.array(["x".join(str(int(x)) for x in ws) or "-" for ws in res.runs["widths"]])
    import pyarrow.compute as pc

    text = pc.binary_join(pc.cast(w, pa.list_(pa.string())), "x")
    text = pc.if_else(pc.equal(pc.list_value_length(w), 0), "-", text)
    return text.to_numpy(zero_copy_only=False)


def _groups(df: pd.DataFrame, by: list[str]):
    """(key dict, sub-frame) per group, sorted by key."""
    if not by:
        yield {}, df
        return
    for key, sub in df.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        yield dict(zip(by, key, strict=True)), sub


def _run_columns(res: Results) -> list[str]:
    t = res.runs
    return t.column_names if isinstance(t, pa.Table) else list(t.columns)


def _analysed(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] != "failed"]


def saddle_frequency(
    res: Results, by=("depth",), stall_class: str = "bad_saddle", conf: float = 0.95
) -> pd.DataFrame:
    """Fraction of runs with at least one stall of ``stall_class``, with a Wilson interval.

    Per group: n = runs not failed, k = those with ``steps_in_<class> > 0``,
    fraction = k / n, [lo, hi] the Wilson score interval (:func:`stats.wilson`).
    """
    if stall_class not in ALL_STALL_CLASSES:
        raise AnalysisError(f"unknown stall class {stall_class!r}; valid: {ALL_STALL_CLASSES}")
    by = _by(by)
    col = f"steps_in_{stall_class}"
    df = _analysed(runs_frame(res, by, columns=["status", col]))
    rows = []
    for key, sub in _groups(df, by):
        n = len(sub)
        k = int((sub[col] > 0).sum())
        lo, hi = wilson(k, n, conf)
        rows.append({**key, "n": n, "k": k, "fraction": k / n if n else np.nan,
                     "lo": float(lo), "hi": float(hi)})  # fmt: skip
    return pd.DataFrame(rows, columns=[*by, "n", "k", "fraction", "lo", "hi"])


SHARE_PARTS = (*STALL_CLASSES, "descent")


def time_shares(
    res: Results, by=("depth",), *, n_boot: int = 1000, seed: int = 0, conf: float = 0.95
) -> pd.DataFrame:
    """Share of training time spent in stalls of each class and in descent (the rest).

    Pooled over the runs of a group: share_c = sum_i time_in_c[i] / sum_i T[i] with
    T = steps x time_unit the run's training time, and descent = 1 - sum_c share_c.
    Intervals: percentile bootstrap over runs (:func:`stats.bootstrap_ratios`; for a
    group of more than ``stats.BOOTSTRAP_MAX_N`` runs the delta-method interval, which
    agrees with it there and costs no resampling) taken in run-id order, the g-th
    group (in sorted order) seeded with ``seed + g``: the same numbers whatever the
    files' layout (parts or compacted). Columns ``<part>``,
    ``<part>_lo``, ``<part>_hi`` for each class and ``descent``; ``n`` runs and
    ``total_time``. The derived class ``minimum_above_best`` (nonlinear runs, see
    ``load``) is a part only when some run spent time in it.
    """
    by = _by(by)
    derived = [c for c in DERIVED_CLASSES if f"time_in_{c}" in _run_columns(res)]
    cols = ["run_id", "status", "steps", "time_unit",
            *(f"time_in_{c}" for c in (*STALL_CLASSES, *derived))]  # fmt: skip
    df = _analysed(runs_frame(res, by, columns=cols))
    derived = [c for c in derived if (df[f"time_in_{c}"] > 0).any()]
    classes = (*STALL_CLASSES, *derived)
    parts = (*classes, "descent")
    # resample in run-id order: the intervals do not depend on how the files are laid out
    df = df.sort_values("run_id", kind="stable")
    rows = []
    for g, (key, sub) in enumerate(_groups(df, by)):
        total = sub["steps"].to_numpy(float) * sub["time_unit"].to_numpy(float)
        stalled = np.column_stack([sub[f"time_in_{c}"].to_numpy(float) for c in classes])
        num = np.column_stack([stalled, total - stalled.sum(axis=1)])
        est, lo, hi = bootstrap_ratios(num, total, n_boot=n_boot, seed=seed + g, conf=conf)
        row = {**key, "n": len(sub), "total_time": float(total.sum())}
        for j, part in enumerate(parts):
            row[part], row[f"{part}_lo"], row[f"{part}_hi"] = est[j], lo[j], hi[j]
        rows.append(row)
    cols = [*by, "n", "total_time"] + [f"{p}{s}" for p in parts for s in ("", "_lo", "_hi")]
    return pd.DataFrame(rows, columns=cols)


def time_to_target(
    res: Results,
    by=("depth",),
    q=QUANTILES,
    split: str | None = "bad_saddle",
    *,
    column: str = "time_to_target",
) -> pd.DataFrame:
    """Time to reach the target gap: exact quantiles, for runs with and without a stall.

    Per group and (when ``split`` names a class) per ``with_<split>`` in (True, False):
    n runs (not failed), n_reached (``column`` not null), fraction reached,
    and the quantiles ``q`` (:func:`stats.quantiles`, type 7) of ``column``
    over the runs that reached the target (columns ``q10``, ``q25``, ``median``, ...).
    Runs that never reach the target are counted in n, not in the quantiles.
    ``km_median``: the Kaplan-Meier median over all n runs, a run that never reached
    the target censored at its last step (training time T = steps x time_unit): the
    smallest t with S(t) <= 1/2, NaN when fewer than half the runs are known to have
    reached it by then.

    ``column``: ``"time_to_target"`` (the trainer's: within target_gap of L* for deep
    linear runs; of the floor 0 for nonlinear runs) or ``"time_to_best"`` (within
    target_gap x gap_scale of the configuration's best final loss for nonlinear runs,
    of L* for linear ones: comparable across activations and weight decays; see
    ``load.best_target_times``, resolution ``record_every`` steps for nonlinear runs).
    With ``"time_to_best"`` and a directory without curves the nonlinear runs, whose
    time is then unknown, are left out.
    """
    if column not in ("time_to_target", "time_to_best"):
        raise AnalysisError(f"column must be 'time_to_target' or 'time_to_best', got {column!r}")
    by = _by(by)
    cols = ["status", "steps", "time_unit", column] + ([f"steps_in_{split}"] if split else [])
    df = runs_frame(res, by, columns=cols)
    if column == "time_to_best" and not res.has_curves:
        df = df[~nonlinear_mask(res)]
    df = _analysed(df)
    keys = list(by)
    if split is not None:
        flag = f"with_{split}"
        df = df.assign(**{flag: df[f"steps_in_{split}"] > 0})
        keys.append(flag)
    names = ["median" if x == 0.5 else f"q{round(100 * x):02d}" for x in q]
    rows = []
    for key, sub in _groups(df, keys):
        t = sub[column].dropna().to_numpy(float)
        row = {**key, "n": len(sub), "n_reached": t.size,
               "reached": t.size / len(sub) if len(sub) else np.nan}  # fmt: skip
        row.update(zip(names, quantiles(t, q).tolist(), strict=True))
        row["km_median"] = _km_median(sub, column)
        rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, "n", "n_reached", "reached", *names, "km_median"])


def _km_median(sub: pd.DataFrame, column: str) -> float:
    """Kaplan-Meier median time to target; runs that never reached it censored at T."""
    t = sub[column].to_numpy(float)
    reached = np.isfinite(t)
    total = sub["steps"].to_numpy(float) * sub["time_unit"].to_numpy(float)
    d = np.where(reached, t, total)
    ok = np.isfinite(d) & (d >= 0)
    if not ok.any():
        return np.nan
    return kaplan_meier(d[ok], reached[ok]).median()


def time_to_best(res: Results, by=("depth",), q=QUANTILES,
                 split: str | None = None) -> pd.DataFrame:  # fmt: skip
    """:func:`time_to_target` on ``time_to_best``: the time to come within target_gap x
    gap_scale of the configuration's best final loss (nonlinear runs; L* for deep linear
    runs), the same measure for every activation and weight decay."""
    return time_to_target(res, by, q, split, column="time_to_best")


def slowdown(res: Results, by=("depth",)) -> pd.DataFrame:
    """Median time to target with / without a bad-saddle stall, and their ratio, per group."""
    by = _by(by)
    t = time_to_target(res, by, q=(0.5,))
    rows = []
    groups = t.groupby(by, sort=True) if by else [((), t)]
    for key, sub in groups:
        key = key if isinstance(key, tuple) else (key,)
        flag = sub["with_bad_saddle"].to_numpy(dtype=bool)
        w, wo = sub.loc[flag], sub.loc[~flag]
        mw = float(w["median"].iloc[0]) if len(w) else np.nan
        mwo = float(wo["median"].iloc[0]) if len(wo) else np.nan
        rows.append({**dict(zip(by, key, strict=True)),
                     "n_with": int(w["n"].sum()), "n_without": int(wo["n"].sum()),
                     "median_with": mw, "median_without": mwo,
                     "ratio": mw / mwo if mwo else np.nan})  # fmt: skip
    return pd.DataFrame(
        rows, columns=[*by, "n_with", "n_without", "median_with", "median_without", "ratio"]
    )


def theoretical_scale_slope(depth: int) -> tuple[float, str]:
    """Slope of log(time to target) against log(init scale) from Saxe et al. (2014).

    K = H + 1 layers, per-layer scale a: the plateau lasts ~ a^-(K-2) / ((K-2) s) for
    K >= 3 (slope -(K-2)), ~ log(1/a) / s for K = 2 (slope 0 in the limit, a log
    law), and K = 1 is convex with no plateau (slope 0). See docs/maths.md.
    """
    k = int(depth) + 1
    if k >= 3:
        return float(-(k - 2)), f"-(K-2) = {-(k - 2)}"
    if k == 2:
        return 0.0, "log law: t ~ log(1/scale)"
    return 0.0, "no plateau (K = 1)"


def _fit_rows(df, by, x, xlog, conf, theory):
    rows = []
    for key, sub in _groups(df, by):
        sub = sub.dropna(subset=["time_to_target"])
        sub = sub[sub["time_to_target"] > 0]
        xs = np.log(sub[x].to_numpy(float)) if xlog else sub[x].to_numpy(float)
        f = fit_line(xs, np.log(sub["time_to_target"].to_numpy(float)), conf)
        th, note = theory(key)
        rows.append({**key, "n": len(sub), "levels": sub[x].nunique(),
                     "slope": f.slope if f else np.nan, "lo": f.lo if f else np.nan,
                     "hi": f.hi if f else np.nan, "se": f.se if f else np.nan,
                     "intercept": f.intercept if f else np.nan,
                     "theory": th, "theory_note": note})  # fmt: skip
    cols = [*by, "n", "levels", "slope", "lo", "hi", "se", "intercept", "theory", "theory_note"]
    return pd.DataFrame(rows, columns=cols)


def scale_scaling(res: Results, by=("depth",), conf: float = 0.95) -> pd.DataFrame:
    """Exponent of time to target in init scale: log-log least squares per group.

    Over the runs of a group that reached the target: ln t = c + b ln(init_scale),
    b with its t interval (:func:`stats.fit_line`), next to the theoretical slope
    (:func:`theoretical_scale_slope`, needs ``depth`` in ``by``; else NaN).
    """
    by = _by(by)
    df = _analysed(runs_frame(res, by, columns=["status", "time_to_target", "init_scale"]))

    def theory(key):
        if "depth" in key:
            return theoretical_scale_slope(key["depth"])
        return np.nan, "group by depth for the theoretical slope"

    return _fit_rows(df, by, "init_scale", True, conf, theory)


def depth_scaling(res: Results, by=("init_scale",), conf: float = 0.95) -> pd.DataFrame:
    """Growth rate of time to target with depth: ln t = c + b H, per group.

    b is the fitted log-time per hidden layer with its t interval. Saxe et al.'s
    law t ~ a^-(K-2) / (K-2) gives, for a per-layer scale a, d ln t / dK -> ln(1/a)
    as K grows (exponential in depth; Shamir 2019); for ``balanced`` init the
    per-layer scale is a = scale^(1/K) of the end-to-end draw, so no single number
    applies and ``theory`` is ln(1/init_scale) only as the K -> infinity rate for a
    per-layer scale equal to ``init_scale`` (gaussian entries scale x sqrt(width) per
    layer: treat it as an order of magnitude). Uses runs with depth >= 2.
    """
    by = _by(by)
    df = _analysed(runs_frame(res, by, columns=["status", "time_to_target", "depth"]))
    df = df[df["depth"] >= 2]

    def theory(key):
        if "init_scale" in key:
            return float(np.log(1 / key["init_scale"])), "ln(1/scale), K -> inf"
        return np.nan, "group by init_scale for the theoretical rate"

    return _fit_rows(df, by, "depth", False, conf, theory)


def outcomes(res: Results, by=("depth",), conf: float = 0.95) -> pd.DataFrame:
    """Fractions of runs converged (to L*), diverged, out of budget (max_steps), failed.

    Per group over all runs, each with its Wilson interval (columns ``<status>``,
    ``<status>_lo``, ``<status>_hi``).
    """
    by = _by(by)
    df = runs_frame(res, by, columns=["status"])
    rows = []
    for key, sub in _groups(df, by):
        n = len(sub)
        row = {**key, "n": n}
        for s in STATUSES:
            k = int((sub["status"] == s).sum())
            lo, hi = wilson(k, n, conf)
            row[s], row[f"{s}_lo"], row[f"{s}_hi"] = k / n, float(lo), float(hi)
        rows.append(row)
    cols = [*by, "n"] + [f"{s}{x}" for s in STATUSES for x in ("", "_lo", "_hi")]
    return pd.DataFrame(rows, columns=cols)


def stall_durations(res: Results, by=()) -> pd.DataFrame:
    """One row per stall: duration (end_time - start_time) and censoring, with run axes.

    A stall whose ``end_step`` equals its run's ``steps`` lasted until the run
    ended (the run stopped inside it): it is censored (``observed`` False).
    """
    by = _by(by)
    axes = [c for c in by if c != "stall_class"]
    runs = runs_frame(res, axes, columns=["steps"])
    s = res.stalls_frame(["run_id", "run_row", "stall_index", "start_step", "end_step",
                          "start_time", "end_time", "stall_class"])  # fmt: skip
    row = s["run_row"].to_numpy()
    for c in dict.fromkeys(["steps", *axes]):  # the run's columns, by row (no join)
        s[c] = runs[c].to_numpy()[row]
    s["duration"] = s["end_time"] - s["start_time"]
    s["observed"] = s["end_step"] != s["steps"]
    return s


def survival(res: Results, by=("stall_class",)) -> dict[tuple, object]:
    """Kaplan-Meier escape-time curves: {group key tuple: :class:`stats.KaplanMeier`}.

    Durations are ``end_time - start_time`` (training-time units); stalls that last
    until their run ends are censored, not dropped. ``by`` may mix ``stall_class``
    with run axes.
    """
    by = _by(by)
    s = stall_durations(res, by)
    out = {}
    for key, sub in _groups(s, by):
        out[tuple(key.values())] = kaplan_meier(sub["duration"].to_numpy(float),
                                                sub["observed"].to_numpy(bool))  # fmt: skip
    return out


def survival_summary(res: Results, by=("stall_class",)) -> pd.DataFrame:
    """Per group: stalls, escapes observed, censored, and the Kaplan-Meier median escape time."""
    by = _by(by)
    rows = []
    for key, km in survival(res, by).items():
        rows.append({**dict(zip(by, key, strict=True)), "n": km.n, "escaped": km.n_events,
                     "censored": km.n_censored, "median_escape": km.median()})  # fmt: skip
    return pd.DataFrame(rows, columns=[*by, "n", "escaped", "censored", "median_escape"])


# -- nonlinear runs (issue 14): activation and weight decay ------------------------------

#: The independence-gap measures (``sweepengine.independence``), per run at the final
#: weights and per stall at its probe point; measured for relu and leaky_relu only.
INDEPENDENCE_MEASURES = ("path_activation_rate", "input_dependence",
                         "path_dependence_shared", "path_dependence_disjoint")  # fmt: skip
#: The stall classes that count as "a saddle stall" in :func:`stall_prediction`.
SADDLE_CLASSES = ("strict_saddle", "bad_saddle")


def nonlinear_mask(res: Results) -> np.ndarray:
    """Per run: True for a nonlinear net (an activation other than linear, or weight
    decay): L* unknown, ``global_min`` NaN, gaps from the floor 0 (docs/nonlinear.md)."""
    df = res.frame(["activation", "weight_decay"])
    act = df["activation"].fillna("linear").to_numpy(dtype=object)
    wd = df["weight_decay"].to_numpy(dtype=float)
    return (act != "linear") | (np.nan_to_num(wd) != 0)


def _has(res: Results, table: str, columns) -> bool:
    """Whether the runs / stalls table has ``columns`` (in memory or in the files)."""
    t = res.fetch(table, list(columns))
    names = t.column_names if isinstance(t, pa.Table) else list(t.columns)
    return all(c in names for c in columns)


def independence_summary(res: Results, by=("activation", "depth")) -> pd.DataFrame:
    """Means of the independence-gap measures per group, over the runs where they are
    defined (relu / leaky_relu nets with a hidden layer), at the final weights
    (``<measure>``) and at the stalls' probe points (``stall_<measure>``, when the
    stalls table has them), with ``n`` runs and ``n_stalls`` stalls measured. The
    independence model's values: path activation rate rho (a free parameter),
    input dependence 0, path dependence 0."""
    by = _by(by)
    cols = list(INDEPENDENCE_MEASURES)
    out_cols = [*by, "n", *cols, "n_stalls", *(f"stall_{c}" for c in cols)]
    if not _has(res, "runs", cols):
        return pd.DataFrame(columns=out_cols)
    df = _analysed(runs_frame(res, by, columns=["status", *cols]))
    df = df[np.isfinite(df["path_activation_rate"].to_numpy(float))]
    stalls = None
    if len(res.stalls) and _has(res, "stalls", cols):
        s = res.stalls_frame(["run_row", *cols])
        allruns = runs_frame(res, by, columns=["status"])
        for c in by:
            s[c] = allruns[c].to_numpy()[s["run_row"].to_numpy()]
        stalls = s[np.isfinite(s["path_activation_rate"].to_numpy(float))]
    rows = []
    for key, sub in _groups(df, by):
        row = {
            **key,
            "n": len(sub),
            **{
                c: float(np.nanmean(sub[c].to_numpy(float))) if sub[c].notna().any() else np.nan
                for c in cols
            },
        }
        st = stalls
        if st is not None:
            for c, v in key.items():
                st = st[st[c] == v]
            row["n_stalls"] = len(st)
            for c in cols:
                v = st[c].to_numpy(float)
                row[f"stall_{c}"] = float(np.nanmean(v)) if np.isfinite(v).any() else np.nan
        else:
            row["n_stalls"] = 0
        rows.append(row)
    return pd.DataFrame(rows, columns=out_cols)


def _prediction_columns(measure: str) -> list[str]:
    return [measure, "status", *(f"steps_in_{c}" for c in SADDLE_CLASSES)]


def _saddle_runs(df: pd.DataFrame, measure: str) -> tuple[np.ndarray, np.ndarray]:
    """(measure, had a saddle stall) over the runs of ``df`` with ``measure`` defined."""
    x = df[measure].to_numpy(float)
    ok = np.isfinite(x)
    y = sum(df[f"steps_in_{c}"].to_numpy(float) for c in SADDLE_CLASSES) > 0
    return x[ok], np.asarray(y, dtype=bool)[ok]


def _point_biserial(x: np.ndarray, y: np.ndarray, conf: float) -> dict:
    """{n, k, r, lo, hi}: the correlation of x with the 0/1 variable y and its Fisher-z
    interval; r NaN when either is constant or n < 4."""
    from .stats import _z

    n, k = int(x.size), int(y.sum())
    out = {"n": n, "k": k, "r": np.nan, "lo": np.nan, "hi": np.nan}
    if n >= 4 and 0 < k < n and np.ptp(x) > 0:
        r = float(np.corrcoef(x, y.astype(float))[0, 1])
        half = _z(conf) / np.sqrt(n - 3)
        zr = np.arctanh(np.clip(r, -0.999999, 0.999999))
        out.update(r=r, lo=float(np.tanh(zr - half)), hi=float(np.tanh(zr + half)))
    return out


def stall_prediction_by(res: Results, by=("depth",), measure: str = "input_dependence", *,
                        conf: float = 0.95) -> pd.DataFrame:  # fmt: skip
    """:func:`stall_prediction`'s point-biserial r within each group of ``by`` (one row
    per group with runs that have ``measure``: the group's values, n, k, r, lo, hi), so
    that a correlation driven by the groups (depth: H = 1 nets cannot have a bad saddle)
    can be told from one within them."""
    by = list(_by(by))
    cols = [*by, "n", "k", "r", "lo", "hi"]
    if not _has(res, "runs", [measure]):
        return pd.DataFrame(columns=cols)
    df = _analysed(runs_frame(res, by, columns=_prediction_columns(measure)))
    rows = []
    for key, g in df.groupby(by, sort=True):
        x, y = _saddle_runs(g, measure)
        if x.size:
            key = key if isinstance(key, tuple) else (key,)
            rows.append({**dict(zip(by, key, strict=True)), **_point_biserial(x, y, conf)})
    return pd.DataFrame(rows, columns=cols)


def stall_prediction(res: Results, measure: str = "input_dependence", *, bins: int = 4,
                     conf: float = 0.95) -> tuple[dict, pd.DataFrame]:  # fmt: skip
    """Does the distance from the independence model predict saddle stalls?

    Over the runs with ``measure`` defined (at the final weights): the point-biserial
    correlation r between ``measure`` and "the run had a saddle stall" (a stall classed
    strict_saddle or bad_saddle: ``steps_in_<class> > 0``), with the Fisher-z interval
    tanh(atanh r +- z / sqrt(n - 3)); and the fraction of runs with a saddle stall per
    quantile bin of ``measure`` (Wilson intervals). Returns ({n, k, r, lo, hi}, bins
    frame with columns lo_edge, hi_edge, n, k, fraction, lo, hi). r is NaN when either
    variable is constant or n < 4.
    """
    empty = pd.DataFrame(columns=["lo_edge", "hi_edge", "n", "k", "fraction", "lo", "hi"])
    if not _has(res, "runs", [measure]):
        return _point_biserial(np.empty(0), np.empty(0, dtype=bool), conf), empty
    x, y = _saddle_runs(_analysed(runs_frame(res, columns=_prediction_columns(measure))),
                        measure)  # fmt: skip
    summary = _point_biserial(x, y, conf)
    n = summary["n"]
    if n == 0:
        return summary, empty
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
    if edges.size < 2:
        edges = np.array([x.min(), x.max()])
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, edges.size - 2)
    rows = []
    for b in range(edges.size - 1):
        sel = idx == b
        nb, kb = int(sel.sum()), int(y[sel].sum())
        lo, hi = wilson(kb, nb, conf)
        rows.append(
            {
                "lo_edge": edges[b],
                "hi_edge": edges[b + 1],
                "n": nb,
                "k": kb,
                "fraction": kb / nb if nb else np.nan,
                "lo": float(lo),
                "hi": float(hi),
            }
        )
    return summary, pd.DataFrame(rows, columns=empty.columns)
