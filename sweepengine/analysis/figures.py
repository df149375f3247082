"""Report figures (matplotlib, Agg). Each builder returns (Figure, None) or (None, reason).

Style: every stall class has a colour, a hatch and a marker (:data:`CLASS_STYLE`);
the colours differ in lightness, and hatches/markers carry the distinction in
greyscale. Axes carry units; legends sit outside the data or in free corners.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from .load import Results, read_curves
from .tables import (
    runs_frame,
    saddle_frequency,
    stall_durations,
    survival,
    theoretical_scale_slope,
    time_shares,
    time_to_target,
)
from .v2 import ALL_STALL_CLASSES

__all__ = ["CLASS_STYLE", "FIGURES", "NONLINEAR_FIGURES", "time_label"]

CLASS_STYLE = {
    "bad_saddle": {"color": "#a50f15", "hatch": "xxx", "marker": "o", "label": "bad saddle"},
    "strict_saddle": {
        "color": "#fc9272",
        "hatch": "///",
        "marker": "s",
        "label": "strict saddle",
    },  # fmt: skip
    "minimum": {"color": "#08519c", "hatch": "...", "marker": "^", "label": "minimum"},
    "unstable": {"color": "#9ecae1", "hatch": "\\\\\\", "marker": "D", "label": "unstable"},
    "unresolved": {"color": "#636363", "hatch": "++", "marker": "v", "label": "unresolved"},
    "minimum_above_best": {
        "color": "#6baed6",
        "hatch": "oo",
        "marker": "X",
        "label": "minimum above best",
    },  # fmt: skip
    "descent": {"color": "#f0f0f0", "hatch": "", "marker": "P", "label": "descent"},
}
_LINE_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
_LINE_STYLES = ["-", "--", "-.", ":"]
_GREYS = ["#000000", "#555555", "#999999", "#333333", "#777777", "#bbbbbb"]


def _legend(ax, **kw) -> None:
    """A legend only when something is labelled (matplotlib warns otherwise)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def time_label(res: Results) -> str:
    if res.time_basis == "time":
        return "training time (dimensionless: steps x lr_eff x lam_ref)"
    return "training time (optimizer steps; v1 data has no time unit)"


def _series_axis(df: pd.DataFrame) -> str | None:
    for axis in ("init_scale", "optimizer", "width", "init_scheme", "lr"):
        if axis in df and df[axis].nunique() > 1:
            return axis
    return None


def _fmt(axis: str, v) -> str:
    if axis == "init_scale" or axis == "lr":
        return f"{axis.replace('_', ' ')} {v:g}"
    return f"{axis.replace('_', ' ')} {v}"


def fig_frequency(res: Results):
    """Fraction of runs with >= 1 bad-saddle stall against depth, Wilson 95 % bars."""
    df = runs_frame(res, ["width"], columns=["depth", "init_scale", "optimizer", "init_scheme",
                                             "lr"])  # fmt: skip
    if df["depth"].nunique() < 2:
        return None, "one depth only: no frequency-against-depth plot"
    series = [a for a in ("init_scale", "optimizer") if df[a].nunique() > 1]
    if not series and _series_axis(df):
        series = [_series_axis(df)]
    f = saddle_frequency(res, ["depth", *series])
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 5), layout="constrained")
    groups = [(None, f)] if not series else list(f.groupby(series, sort=True))
    width = 0.08 * (len(groups) - 1)
    for i, (val, sub) in enumerate(groups):
        if val is not None:
            vals = val if isinstance(val, tuple) else (val,)
            val = ", ".join(_fmt(a, v) for a, v in zip(series, vals, strict=True))
        x = sub["depth"].to_numpy(float) + (i * 0.08 - width / 2 if len(groups) > 1 else 0)
        y = 100 * sub["fraction"].to_numpy()
        err = 100 * np.vstack([sub["fraction"] - sub["lo"], sub["hi"] - sub["fraction"]])
        err = np.maximum(err, 0)
        ax.errorbar(x, y, yerr=err, marker=_LINE_MARKERS[i % 8], ls=_LINE_STYLES[i % 4],
                    color=_GREYS[i % 6], capsize=3, mfc="white" if i % 2 else None,
                    label="all runs" if val is None else val)  # fmt: skip
    ax.set_xlabel("depth H (hidden layers)")
    ax.set_ylabel("runs with >= 1 bad-saddle stall (%)")
    ax.set_xticks(sorted(df["depth"].unique()))
    ax.set_ylim(-3, 103)
    fig.suptitle("How often a run meets a bad saddle (95 % Wilson intervals)")
    _legend(ax, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False,
            fontsize=8)  # fmt: skip
    ax.grid(alpha=0.3)
    return fig, None


def fig_time_shares(res: Results):
    """Stacked share of training time per stall class and descent, one bar per depth."""
    sh = time_shares(res, ["depth"], n_boot=0)
    if sh.empty or not np.isfinite(sh["descent"]).any():
        return None, "no training time recorded (all runs failed)"
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    x = np.arange(len(sh))
    bottom = np.zeros(len(sh))
    for part in (*ALL_STALL_CLASSES, "descent"):
        if part not in sh:  # a derived class no run met
            continue
        v = 100 * sh[part].fillna(0).to_numpy()
        if part != "descent" and not v.any():
            continue
        st = CLASS_STYLE[part]
        ax.bar(x, v, bottom=bottom, color=st["color"], hatch=st["hatch"], edgecolor="black",
               linewidth=0.6, label=st["label"])  # fmt: skip
        bottom += v
    ax.set_xticks(x, [f"H = {d}" for d in sh["depth"]])
    ax.set_xlabel("depth H (hidden layers)")
    ax.set_ylabel("share of training time (%)")
    ax.set_ylim(0, 100)
    fig.suptitle("Where the training time goes (pooled over runs)")
    _legend(ax, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig, None


def fig_time_to_target(res: Results):
    """Median time to target against init scale per depth (log-log), IQR bars, theory slopes.

    Medians and quartiles over the runs that reached the target; each theory line is
    anchored at the depth's point of largest init scale.
    """
    df = runs_frame(res, columns=["init_scale"])
    if df["init_scale"].nunique() < 2:
        return None, "one init scale only: no time-to-target-against-scale plot"
    t = time_to_target(res, ["depth", "init_scale"], q=(0.25, 0.5, 0.75), split=None)
    t = t[t["n_reached"] > 0]
    if t.empty:
        return None, "no run reached the target: no time-to-target plot"
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.6), layout="constrained")
    all_x = df["init_scale"].to_numpy(float)
    xx = np.geomspace(all_x.min(), all_x.max(), 50)
    groups = list(t.groupby("depth", sort=True))
    for i, (depth, sub) in enumerate(groups):
        sub = sub.sort_values("init_scale")
        x, y = sub["init_scale"].to_numpy(float), sub["median"].to_numpy(float)
        err = np.maximum(np.vstack([y - sub["q25"], sub["q75"] - y]), 0)
        c = _GREYS[i % 6]
        shift = 10 ** (0.015 * (i - (len(groups) - 1) / 2))  # side by side, not on top
        ax.errorbar(x * shift, y, yerr=err, marker=_LINE_MARKERS[i % 8], ls="none", color=c,
                    capsize=3, label=f"H = {depth} (median, IQR)")  # fmt: skip
        slope, note = theoretical_scale_slope(depth)
        anchor_x, anchor_y = x[-1], y[-1]
        if depth + 1 == 2:
            yy = anchor_y * np.log(1 / xx) / np.log(1 / anchor_x) if anchor_x < 1 else None
        else:
            yy = anchor_y * (xx / anchor_x) ** slope
        if yy is not None:
            ax.plot(xx, yy, ls=_LINE_STYLES[i % 4], color=c, lw=1,
                    label=f"H = {depth} theory: {note}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("init scale (log)")
    ax.set_ylabel(time_label(res).replace("training time", "time to target"), fontsize=8)
    fig.suptitle("Time to target against init scale (Saxe et al.: slope -(K-2))")
    _legend(ax, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig, None


def _subsample(v: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    if v.size <= k:
        return v
    return np.random.default_rng(seed).choice(v, k, replace=False)


def fig_lambda(res: Results):
    """lambda_min / lambda_ref at stalls: at the probe point and at the polished critical point."""
    s = res.stalls_frame(["stall_class", "local_rel_lam_min", "rel_lam_min"])
    if len(s) == 0:
        return None, "no stalls: no curvature plot"
    views = [("local_rel_lam_min", "at the probe point (local)", "o")]
    if s["rel_lam_min"].notna().any():
        views.append(("rel_lam_min", "at the shadowed critical point", "x"))
    classes = [c for c in ALL_STALL_CLASSES if (s["stall_class"] == c).any()]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.8), layout="constrained")
    rng = np.random.default_rng(0)
    finite = []
    for j, (col, label, marker) in enumerate(views):
        for i, c in enumerate(classes):
            v = s.loc[s["stall_class"] == c, col].dropna().to_numpy(float)
            v = _subsample(v, 2000, seed=i)
            finite.append(v)
            off = (j - (len(views) - 1) / 2) * 0.3
            x = i + off + rng.uniform(-0.1, 0.1, v.size)
            ax.scatter(x, v, s=10, marker=marker, color=CLASS_STYLE[c]["color"],
                       edgecolors="black" if marker == "o" else None, linewidths=0.3,
                       alpha=0.7)  # fmt: skip
        ax.scatter([], [], s=20, marker=marker, color="#777777",
                   edgecolors="black" if marker == "o" else None, label=label)  # fmt: skip
    allv = np.concatenate(finite) if finite else np.array([])
    nz = np.abs(allv[allv != 0])
    lin = max(float(nz.min()), 1e-12) if nz.size else 1e-9
    ax.set_yscale("symlog", linthresh=lin)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(range(len(classes)), [CLASS_STYLE[c]["label"].replace(" ", "\n")
                                        for c in classes])  # fmt: skip
    if res.schema_version >= 2:
        ax.set_xlabel("stall class (of the shadowed critical point)")
        fig.suptitle("Smallest Hessian eigenvalue at stalls")
    else:
        ax.set_xlabel("stall class (schema v1: a threshold on lambda_min at the probe point)")
        fig.suptitle("Smallest Hessian eigenvalue at stalls (probe point only: schema v1)")
    ax.set_ylabel("lambda_min / lambda_ref (dimensionless, symlog)")
    _legend(ax, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    return fig, None


def _pick_examples(res: Results, k: int = 4) -> list[str]:
    runs = runs_frame(res, columns=["run_id", "status", "n_stalls", "depth",
                                    "steps_in_bad_saddle"])  # fmt: skip
    runs = runs[(runs["status"] != "failed") & (runs["n_stalls"] > 0)]
    picked: list[str] = []
    for _, sub in runs.sort_values(["depth", "run_id"]).groupby("depth", sort=True):
        bad = sub[sub["steps_in_bad_saddle"] > 0]
        pool = bad if len(bad) else sub
        picked.append(pool["run_id"].iloc[0])
    return picked[:k]


def _modes_label(m, rank=None) -> str:
    """ "S = {0,1}" from the learned mode set; "|S| = r" when only the rank is known (v1)."""
    if m is None or (isinstance(m, float) and np.isnan(m)):
        if rank is None or (isinstance(rank, float) and np.isnan(rank)):
            return "S = ?"
        return f"|S| = {int(rank)}"
    return "S = {" + ",".join(str(int(i)) for i in m) + "}"


def fig_curves(res: Results):
    """Example loss curves (gap to L*, log), stalls shaded by class, critical levels dashed.

    The dashed lines are the analytic levels 1/2 (yy - sum_{i in S} l_i) - L* of the
    stalls seen in the run, labelled by the learned mode set S.
    """
    if not res.has_curves:
        return None, "no curves recorded (record_every = 0): no example loss curves"
    ids = _pick_examples(res)
    curves = read_curves(res.out_dir, ids).to_pandas() if ids else pd.DataFrame()
    ids = [r for r in ids if len(curves) and (curves["run_id"] == r).any()]
    if not ids:
        return None, "no curves for runs with stalls: no example loss curves"
    cols = ["run_id", "time_unit", "global_min", "depth", "init_scale", "optimizer"]
    runs = runs_frame(res, columns=cols).set_index("run_id")
    stalls = res.fetch("stalls", ["critical_value", "critical_rank", "modes"])
    if isinstance(stalls, pa.Table):  # only the example runs' stalls, modes included
        import pyarrow.compute as pc

        stalls = stalls.filter(pc.is_in(stalls.column("run_id"), pa.array(ids))).to_pandas()
    st = stalls[stalls["run_id"].isin(ids)]
    plt = _plt()
    n = len(ids)
    fig, axes = plt.subplots(n, 1, figsize=(7.5, 2.3 * n + 0.6), layout="constrained",
                             squeeze=False)  # fmt: skip
    shown: set[str] = set()
    for ax, rid in zip(axes[:, 0], ids, strict=True):
        r = runs.loc[rid]
        c = curves[curves["run_id"] == rid]
        tu = float(r["time_unit"])
        lstar = float(r["global_min"])
        gap = (c["loss"] - lstar).to_numpy(float)
        ok = gap > 0
        ax.plot(c["step"].to_numpy(float)[ok] * tu, gap[ok], color="black", lw=1.2,
                label="loss gap" if "loss" not in shown else None)  # fmt: skip
        shown.add("loss")
        rs = st[st["run_id"] == rid].sort_values("stall_index")
        for _, s in rs.iterrows():
            sty = CLASS_STYLE.get(s["stall_class"], CLASS_STYLE["unresolved"])
            lab = None if s["stall_class"] in shown else sty["label"] + " stall"
            shown.add(s["stall_class"])
            ax.axvspan(s["start_time"], s["end_time"], facecolor=sty["color"], alpha=0.35,
                       hatch=sty["hatch"], edgecolor="black", lw=0, label=lab)  # fmt: skip
        ax.set_yscale("log")
        levels = []
        for _, s in rs.drop_duplicates("critical_value").iterrows():
            v = float(s["critical_value"]) - lstar
            if v > 0:
                levels.append((v, _modes_label(s.get("modes"), s.get("critical_rank"))))
        levels.sort()
        g = gap[ok]
        lo = min([g.min(), *[v for v, _ in levels]]) if g.size else 1e-6
        hi = max([g.max(), *[v for v, _ in levels]]) if g.size else 1.0
        span = max(np.log10(hi) - np.log10(lo), 1.0)
        kept: list[tuple[float, str]] = []
        for v, lab in levels:  # no two labels closer than 7 % of the (log) axis
            if kept and np.log10(v) - np.log10(kept[-1][0]) < 0.07 * span:
                continue
            kept.append((v, lab))
        for v, _ in levels:
            ax.axhline(v, ls="--", lw=0.8, color="#444444")
        sec = ax.secondary_yaxis("right")
        sec.set_yscale("log")
        sec.set_yticks([v for v, _ in kept], [lab for _, lab in kept], fontsize=7)
        sec.minorticks_off()
        ax.set_ylim(lo / 3, hi * 3)
        ax.set_title(f"run {rid}: H = {int(r['depth'])}, init scale {r['init_scale']:g}, "
                     f"{r['optimizer']}", fontsize=9)  # fmt: skip
        ax.set_ylabel("L - L* (log)")
    axes[-1, 0].set_xlabel(time_label(res))
    fig.legend(loc="outside lower center", ncol=4, frameon=False, fontsize=8)
    return fig, None


def fig_survival(res: Results):
    """Kaplan-Meier escape-time curves per stall class (censored stalls marked +)."""
    if len(res.stalls) == 0:
        return None, "no stalls: no escape-time curves"
    kms = survival(res, ["stall_class"])
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    d = stall_durations(res)
    for i, c in enumerate([c for c in ALL_STALL_CLASSES if (c,) in kms]):
        km = kms[(c,)]
        sty = CLASS_STYLE[c]
        dur = d.loc[d["stall_class"] == c, "duration"].to_numpy(float)
        dur = dur[dur > 0]
        if dur.size == 0:
            continue
        if km.time.size == 0:  # every stall censored: S = 1 over the observed durations
            t, s = np.array([dur.min(), dur.max()]), np.array([1.0, 1.0])
        else:
            t = np.concatenate([[km.time[0]], km.time, [max(dur.max(), km.time[-1])]])
            s = np.concatenate([[1.0], km.survival, [km.survival[-1]]])
        ax.step(t, s, where="post", color=sty["color"], ls=_LINE_STYLES[i % 4], lw=1.8,
                label=f"{sty['label']} (n = {km.n}, {km.n_censored} censored)")  # fmt: skip
        cens = d.loc[(d["stall_class"] == c) & ~d["observed"], "duration"].to_numpy(float)
        cens = _subsample(cens[cens > 0], 300)
        ax.plot(cens, km.at(cens), ls="none", marker="+", color=sty["color"], ms=6)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(time_label(res).replace("training time", "stall duration"), fontsize=8)
    ax.set_ylabel("fraction of stalls not yet escaped")
    fig.suptitle("Escape time from stalls (Kaplan-Meier; + = censored at run end)")
    _legend(ax, loc="lower left", frameon=True, fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig, None


#: (file stem, title, builder) in report order.
FIGURES = [
    ("frequency_vs_depth", "Bad-saddle frequency against depth", fig_frequency),
    ("time_shares", "Share of training time per class", fig_time_shares),
    ("time_to_target", "Time to target against init scale", fig_time_to_target),
    ("lambda_min", "Curvature at stalls", fig_lambda),
    ("loss_curves", "Example loss curves", fig_curves),
    ("escape_survival", "Escape-time survival", fig_survival),
]


# -- nonlinear sweeps (issue 14): drawn only when the sweep has nonlinear runs ----------


def _decay_by_activation_axes(n_wd: int, n_act: int):
    """(fig, axes, n_act, bar width): two rows of one column per weight decay, the
    activations side by side within each depth (the nonlinear comparison figures)."""
    fig, axes = _plt().subplots(2, n_wd, figsize=(4.2 * n_wd + 2, 7.5), squeeze=False,
                                layout="constrained", sharey="row")  # fmt: skip
    return fig, axes, n_act, 0.8 / n_act


def _nets(res: Results) -> pd.DataFrame:
    return runs_frame(res, columns=["activation", "weight_decay", "depth", "status"])


def _activations(df: pd.DataFrame) -> list[str]:
    acts = list(dict.fromkeys(a for a in ("linear", "relu", "leaky_relu", "tanh")
                              if a in set(df["activation"])))  # fmt: skip
    return acts + sorted(set(df["activation"]) - set(acts))


def fig_nonlinear_classes(res: Results):
    """Time shares per stall class (top) and runs with a saddle stall (bottom), per depth,
    activation and weight decay: the same shapes side by side."""
    df = _nets(res)
    acts = _activations(df)
    wds = sorted(df["weight_decay"].unique())
    if len(acts) * len(wds) < 2:
        return None, "one activation and one weight decay: nothing to compare"
    sh = time_shares(res, ["weight_decay", "depth", "activation"], n_boot=0)
    runs = runs_frame(
        res,
        columns=[
            "status",
            "weight_decay",
            "depth",
            "activation",
            *(f"steps_in_{c}" for c in ("strict_saddle", "bad_saddle")),
        ],
    )
    runs = runs[runs["status"] != "failed"]
    depths = sorted(df["depth"].unique())
    fig, axes, nb, w = _decay_by_activation_axes(len(wds), len(acts))
    for j, wd in enumerate(wds):
        ax = axes[0, j]
        s = sh[sh["weight_decay"] == wd]
        for i, act in enumerate(acts):
            sa = s[s["activation"] == act].set_index("depth").reindex(depths)
            x = np.arange(len(depths)) + (i - (nb - 1) / 2) * w
            bottom = np.zeros(len(depths))
            for part in (*ALL_STALL_CLASSES, "descent"):
                if part not in sa:
                    continue
                v = 100 * sa[part].fillna(0).to_numpy()
                if part != "descent" and not (100 * s[part].fillna(0)).any():
                    continue
                st = CLASS_STYLE[part]
                ax.bar(x, v, w * 0.95, bottom=bottom, color=st["color"], hatch=st["hatch"],
                       edgecolor="black", linewidth=0.5, label=st["label"])  # fmt: skip
                bottom += v
            for xi in x:
                ax.text(xi, 101, act.replace("leaky_relu", "leaky")[:6], rotation=90,
                        ha="center", va="bottom", fontsize=6)  # fmt: skip
        ax.set_xticks(np.arange(len(depths)), [f"H = {d}" for d in depths])
        ax.set_ylim(0, 125)
        ax.set_title(f"weight decay {wd:g}", fontsize=10)
        if j == 0:
            ax.set_ylabel("share of training time (%)")
        ax = axes[1, j]
        r = runs[runs["weight_decay"] == wd]
        for i, act in enumerate(acts):
            ra = r[r["activation"] == act]
            if ra.empty:
                continue
            g = ra.assign(hit=(ra["steps_in_strict_saddle"] + ra["steps_in_bad_saddle"]) > 0)
            g = g.groupby("depth")["hit"].agg(["sum", "count"]).reindex(depths)
            k, n = g["sum"].fillna(0).to_numpy(), g["count"].fillna(0).to_numpy()
            from .stats import wilson

            lo, hi = wilson(k.astype(int), n.astype(int))
            with np.errstate(invalid="ignore", divide="ignore"):
                frac = np.where(n > 0, k / np.maximum(n, 1), np.nan)
            x = np.arange(len(depths)) + (i - (nb - 1) / 2) * w
            err = 100 * np.maximum(np.vstack([frac - lo, hi - frac]), 0)
            ax.errorbar(x, 100 * frac, yerr=np.nan_to_num(err), marker=_LINE_MARKERS[i % 8],
                        ls="none", color=_GREYS[i % 6], capsize=3,
                        mfc="white" if i % 2 else None, label=act)  # fmt: skip
        ax.set_xticks(np.arange(len(depths)), [f"H = {d}" for d in depths])
        ax.set_ylim(-3, 103)
        ax.set_xlabel("depth H (hidden layers)")
        if j == 0:
            ax.set_ylabel("runs with a saddle stall (%)")
        ax.grid(alpha=0.3)
    for row, title in ((0, "stall class"), (1, "activation")):
        seen: dict = {}
        for ax in axes[row]:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                seen.setdefault(lab, h)
        if seen:
            axes[row, -1].legend(list(seen.values()), list(seen), loc="center left",
                                 bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=8,
                                 title=title)  # fmt: skip
    fig.suptitle("Stall classes by activation and weight decay at the same shapes "
                 "(saddle: strict or bad; Wilson 95 %)")  # fmt: skip
    return fig, None


def fig_nonlinear_time_to_target(res: Results):
    """Time to target per depth, activation and weight decay: median and quartiles over the
    runs that reached it (top, log) and the fraction that did (bottom, Wilson 95 %).

    The target is target_gap x L(0) above the configuration's best final loss (L* for
    deep linear runs), read from the loss curves (resolution record_every steps).
    """
    from .stats import wilson
    from .tables import time_to_best

    if not res.has_curves:
        return None, ("no curves recorded (record_every = 0): the time to the best loss "
                      "of nonlinear runs is read from the loss curves")  # fmt: skip
    df = _nets(res)
    acts = _activations(df)
    wds = sorted(df["weight_decay"].unique())
    if len(acts) * len(wds) < 2:
        return None, "one activation and one weight decay: nothing to compare"
    t = time_to_best(res, ["weight_decay", "depth", "activation"], q=(0.25, 0.5, 0.75))
    if not (t["median"] > 0).any():
        return None, "no run reached the target: no time-to-target comparison"
    depths = sorted(df["depth"].unique())
    fig, axes, nb, w = _decay_by_activation_axes(len(wds), len(acts))
    for j, wd in enumerate(wds):
        s = t[t["weight_decay"] == wd]
        for i, act in enumerate(acts):
            sa = s[s["activation"] == act].set_index("depth").reindex(depths)
            if sa["n"].fillna(0).sum() == 0:
                continue
            x = np.arange(len(depths)) + (i - (nb - 1) / 2) * w
            y = sa["median"].to_numpy(float)
            err = np.maximum(np.vstack([y - sa["q25"].to_numpy(float),
                                        sa["q75"].to_numpy(float) - y]), 0)  # fmt: skip
            style = dict(marker=_LINE_MARKERS[i % 8], ls="none", color=_GREYS[i % 6],
                         capsize=3, mfc="white" if i % 2 else None, label=act)  # fmt: skip
            ok = np.isfinite(y) & (y > 0)
            if ok.any():
                axes[0, j].errorbar(x[ok], y[ok], yerr=np.nan_to_num(err[:, ok]), **style)
            k = sa["n_reached"].fillna(0).to_numpy(int)
            n = sa["n"].fillna(0).to_numpy(int)
            lo, hi = wilson(k, n)
            with np.errstate(invalid="ignore", divide="ignore"):
                frac = np.where(n > 0, k / np.maximum(n, 1), np.nan)
            err = 100 * np.maximum(np.vstack([frac - lo, hi - frac]), 0)
            axes[1, j].errorbar(x, 100 * frac, yerr=np.nan_to_num(err), **style)
        for row in (0, 1):
            ax = axes[row, j]
            ax.set_xticks(np.arange(len(depths)), [f"H = {d}" for d in depths])
            ax.grid(alpha=0.3, which="both")
        axes[0, j].set_yscale("log")
        axes[0, j].set_title(f"weight decay {wd:g}", fontsize=10)
        axes[1, j].set_ylim(-3, 103)
        axes[1, j].set_xlabel("depth H (hidden layers)")
    axes[0, 0].set_ylabel(time_label(res).replace("training time", "time to target"),
                          fontsize=7)  # fmt: skip
    axes[1, 0].set_ylabel("runs that reached the target (%)")
    seen: dict = {}
    for ax in axes[1]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(lab, h)
    axes[1, -1].legend(list(seen.values()), list(seen), loc="center left",
                       bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=8,
                       title="activation")  # fmt: skip
    fig.suptitle("Time to target by activation and weight decay at the same shapes "
                 "(within target_gap x L(0) of the best loss; median, IQR)")  # fmt: skip
    return fig, None


def fig_independence(res: Results):
    """The independence-gap measures of relu / leaky_relu nets per depth (final weights:
    filled, stall probe points: open) against the independence model's values, and the
    fraction of runs with a saddle stall per bin of input dependence."""
    from .tables import INDEPENDENCE_MEASURES, stall_prediction

    names = res.runs.column_names if isinstance(res.runs, pa.Table) else list(res.runs.columns)
    if not all(c in names for c in INDEPENDENCE_MEASURES):
        return None, "no independence measures in this directory (schema version < 3)"
    df = runs_frame(res, columns=["activation", "depth", "status", *INDEPENDENCE_MEASURES])
    df = df[(df["status"] != "failed") & np.isfinite(df["path_activation_rate"].to_numpy(float))]
    if df.empty:
        return None, ("no relu or leaky_relu run with a hidden layer: the independence "
                      "measures are defined for 0/1 activation patterns only")  # fmt: skip
    st = None
    s_names = res.fetch("stalls", list(INDEPENDENCE_MEASURES))
    s_names = s_names.column_names if isinstance(s_names, pa.Table) else list(s_names.columns)
    if len(res.stalls) and all(c in s_names for c in INDEPENDENCE_MEASURES):
        st = res.stalls_frame(["run_row", *INDEPENDENCE_MEASURES])
        allr = runs_frame(res, columns=["activation", "depth"])
        row = st["run_row"].to_numpy()
        st["activation"] = allr["activation"].to_numpy()[row]
        st["depth"] = allr["depth"].to_numpy()[row]
        st = st[np.isfinite(st["path_activation_rate"].to_numpy(float))]
    acts = sorted(df["activation"].unique())
    depths = sorted(df["depth"].unique())
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), layout="constrained")
    panels = [
        (axes[0, 0], ["path_activation_rate"], "path activation rate rho"),
        (axes[0, 1], ["input_dependence"], "input dependence (mean max |corr|)"),
        (axes[1, 0], ["path_dependence_shared", "path_dependence_disjoint"],
         "path dependence (mean corr.)"),
    ]  # fmt: skip
    for ax, measures, label in panels:
        for mi, m in enumerate(measures):
            for i, act in enumerate(acts):
                off = 0.12 * (i - (len(acts) - 1) / 2) + 0.05 * mi
                for src, frame, filled in (("final", df, True), ("stalls", st, False)):
                    if frame is None:
                        continue
                    f = frame[frame["activation"] == act]
                    g = f.groupby("depth")[m].mean().reindex(depths)
                    if not np.isfinite(g.to_numpy(float)).any():
                        continue
                    tag = m.replace("path_dependence_", "") if len(measures) > 1 else ""
                    ax.plot(np.array(depths, float) + off + (0.03 if not filled else 0), g,
                            marker=_LINE_MARKERS[(i + 2 * mi) % 8], ls=_LINE_STYLES[mi % 4],
                            color=_GREYS[i % 6], mfc=None if filled else "white",
                            label=f"{act} {tag} ({src})".replace("  ", " "))  # fmt: skip
        if measures[0] == "path_activation_rate":
            hd = np.array(depths, float)
            ax.plot(hd, 0.5 ** hd, ":", color="#a50f15",
                    label="random signs: 2^-H (model: rho is free)")  # fmt: skip
        else:
            ax.axhline(0, color="#a50f15", ls=":", label="independence model: 0")
        ax.set_xticks(depths, [f"H = {d}" for d in depths])
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        _legend(ax, fontsize=7, frameon=False)
    ax = axes[1, 1]
    summ, bins = stall_prediction(res, "input_dependence")
    if len(bins):
        mid = 0.5 * (bins["lo_edge"] + bins["hi_edge"]).to_numpy(float)
        frac = bins["fraction"].to_numpy(float)
        err = 100 * np.maximum(np.vstack([frac - bins["lo"], bins["hi"] - frac]), 0)
        ax.errorbar(mid, 100 * frac, yerr=np.nan_to_num(err), marker="o", color="black",
                    capsize=3)  # fmt: skip
    r = summ["r"]
    rtxt = ("r undefined (a constant variable)" if not np.isfinite(r)
            else f"point-biserial r = {r:.2f} [{summ['lo']:.2f}, {summ['hi']:.2f}]")  # fmt: skip
    ax.set_title(f"{rtxt}, n = {summ['n']}", fontsize=9)
    ax.set_xlabel("input dependence at the final weights (quantile bins)")
    ax.set_ylabel("runs with a saddle stall (%)")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    fig.suptitle("How far trained relu nets are from Kawaguchi's independence model")
    return fig, None


#: Figures of a sweep with nonlinear runs (activation or weight decay), after FIGURES.
NONLINEAR_FIGURES = [
    ("nonlinear_classes", "Stall classes by activation and weight decay",
     fig_nonlinear_classes),
    ("nonlinear_time_to_target", "Time to target by activation and weight decay",
     fig_nonlinear_time_to_target),
    ("independence", "Distance from the independence model", fig_independence),
]  # fmt: skip
