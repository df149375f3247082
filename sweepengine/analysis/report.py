"""The answer at a glance: headline, summary tables, text summary and the HTML report.

:func:`write_report` writes ``DIR/report/index.html`` (self-contained: figures as
base64 PNG, inline CSS, no script, no network), the figures as PNG beside it,
``headline.txt`` and ``summary.json`` (the numbers behind the headline).
:func:`summary_text` is the same summary as plain text (``sweepengine summary``).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .load import Results, load
from .tables import (
    independence_summary,
    nonlinear_mask,
    outcomes,
    runs_frame,
    saddle_frequency,
    scale_scaling,
    slowdown,
    stall_prediction,
    stall_prediction_by,
    survival_summary,
    time_shares,
    time_to_best,
    time_to_target,
)

__all__ = ["headline", "summary_tables", "summary_text", "write_report"]

#: A detectable change in the bad-saddle fraction smaller than this (5 percentage points)
#: is called slight in the headline.
SLIGHT = 0.05

#: Axes that get their own summary table (and enter the headline) when they vary.
TABLE_AXES = ("depth", "activation", "weight_decay", "init_scale", "optimizer", "width",
              "init_scheme", "lr", "problem")  # fmt: skip
#: Axes of nonlinear sweeps whose effect the headline spells out per value (issue 14).
NET_AXES = ("activation", "weight_decay")
#: Why a sweep with nonlinear runs but no curves has no time to target for them.
NL_TIME_TO_TARGET = (
    "no loss curves recorded (record_every = 0): the target of a nonlinear run is the best "
    "final loss of its configuration, known only after the sweep, so the step at which it "
    "came within target_gap x L(0) of it is read from the curves; time to target in the "
    "tables is over the deep linear runs only, and the final gap to the best loss is "
    "reported instead"
)
#: The median time to target column of the summary tables of nonlinear sweeps.
TTB_COLUMN = "median time to target (best loss; L* for linear runs)"


def _pct(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f} %"


def _ci(lo: float, hi: float) -> str:
    """A 95 % interval as "[lo-hi]" in percent ("" when undefined)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return ""
    return f"[{100 * lo:.1f}\u2013{100 * hi:.1f}]"


def _pci(x: float, lo: float, hi: float) -> str:
    """Percent with its 95 % interval in words, for sentences."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return _pct(x)
    return f"{_pct(x)} (95 % CI {100 * lo:.1f}\u2013{100 * hi:.1f} %)"


def _num(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.4g}"


def _axis_value(axis: str, v) -> str:
    if axis == "depth":
        return f"H = {v}"
    if isinstance(v, float):
        return f"{axis.replace('_', ' ')} {v:g}"
    return f"{axis.replace('_', ' ')} {v}"


def varying_axes(res: Results) -> list[str]:
    df = runs_frame(res, ["width"], columns=[a for a in TABLE_AXES if a != "width"])
    return [a for a in TABLE_AXES if a in df and df[a].nunique() > 1]


def headline(res: Results, *, n_boot: int = 1000, seed: int = 0) -> tuple[str, dict]:
    """One or two plain sentences answering "how often do bad saddles slow training?".

    Returns (text, numbers). The numbers: fraction of runs with a bad-saddle and a
    strict-saddle stall (Wilson 95 %), share of training time in bad-saddle stalls
    (bootstrap 95 %), median time to target with and without a bad-saddle stall,
    and per varying axis whether the bad-saddle fraction changes (some two groups'
    Wilson intervals do not overlap) with the lowest and highest group; a detectable
    change smaller than :data:`SLIGHT` is called slight.
    """
    unit = "time units" if res.time_basis == "time" else "steps"
    bad = saddle_frequency(res, (), "bad_saddle").iloc[0]
    strict = saddle_frequency(res, (), "strict_saddle").iloc[0]
    sh = time_shares(res, (), n_boot=n_boot, seed=seed).iloc[0]
    sl = slowdown(_linear_only(res), ()).iloc[0]  # L* known: deep linear runs only
    nums = {
        "n_runs": int(len(res.runs)), "n_analysed": int(bad["n"]),
        "bad_fraction": float(bad["fraction"]), "bad_lo": float(bad["lo"]),
        "bad_hi": float(bad["hi"]), "strict_fraction": float(strict["fraction"]),
        "strict_lo": float(strict["lo"]), "strict_hi": float(strict["hi"]),
        "bad_time_share": float(sh["bad_saddle"]), "bad_time_lo": float(sh["bad_saddle_lo"]),
        "bad_time_hi": float(sh["bad_saddle_hi"]),
        "strict_time_share": float(sh["strict_saddle"]),
        "median_with": float(sl["median_with"]), "median_without": float(sl["median_without"]),
        "slowdown_ratio": float(sl["ratio"]), "time_basis": res.time_basis, "changes": {},
    }  # fmt: skip
    if nums["n_analysed"] == 0:
        return (f"No run could be analysed: all {nums['n_runs']} runs failed.", nums)
    s1 = (
        f"In this sweep {_pci(bad['fraction'], bad['lo'], bad['hi'])} of the {int(bad['n']):,} "
        f"runs met at least one bad saddle, and "
        f"{_pci(strict['fraction'], strict['lo'], strict['hi'])} a strict saddle; bad-saddle "
        f"stalls took "
        f"{_pci(sh['bad_saddle'], sh['bad_saddle_lo'], sh['bad_saddle_hi'])} of all "
        f"training time, strict-saddle stalls {_pct(sh['strict_saddle'])}."
    )
    if nums["bad_fraction"] == 0:
        s1 += " No run met a bad saddle, so there is no bad-saddle slowdown to measure."
    elif nums["bad_fraction"] == 1:
        s1 += " Every run met a bad saddle, so there are no runs without one to compare with."
    elif np.isfinite(sl["median_with"]) and np.isfinite(sl["median_without"]):
        s1 += (
            f" {'Deep linear runs' if nonlinear_mask(res).any() else 'Runs'} with a "
            f"bad-saddle stall reached the target in a median "
            f"{_num(sl['median_with'])} {unit}, those without in {_num(sl['median_without'])} "
            f"({sl['ratio']:.2g} times as long)."
        )
    parts_change, parts_slight, parts_same = [], [], []
    for axis in varying_axes(res):
        f = saddle_frequency(res, [axis])
        f = f[f["n"] > 0]
        if len(f) < 2:
            continue
        ilo, ihi = (
            int(np.argmin(f["fraction"].to_numpy())),
            int(np.argmax(f["fraction"].to_numpy())),
        )
        lo_g = {axis: _plain(f[axis].iloc[ilo]), "fraction": f["fraction"].iloc[ilo]}
        hi_g = {axis: _plain(f[axis].iloc[ihi]), "fraction": f["fraction"].iloc[ihi]}
        changes = bool(f["lo"].max() > f["hi"].min())
        spread = float(hi_g["fraction"] - lo_g["fraction"])
        nums["changes"][axis] = {
            "changes": changes,
            "spread": spread,
            "lowest": {"value": _plain(lo_g[axis]), "fraction": float(lo_g["fraction"])},
            "highest": {"value": _plain(hi_g[axis]), "fraction": float(hi_g["fraction"])},
        }
        name = axis.replace("_", " ")
        span = (
            f"{name} (from {_pct(lo_g['fraction'])} at {_axis_value(axis, lo_g[axis])} to "
            f"{_pct(hi_g['fraction'])} at {_axis_value(axis, hi_g[axis])})"
        )
        if changes and spread >= SLIGHT:
            parts_change.append(span)
        elif changes:
            parts_slight.append(span)
        else:
            parts_same.append(name)
    s2 = ""
    if parts_change:
        s2 += "The answer changes with " + "; ".join(parts_change) + "."
    if parts_slight:
        s2 += (" " if s2 else "") + (
            "It changes only slightly, though detectably, with " + "; ".join(parts_slight) + "."
        )
    if parts_same:
        s2 += (" " if s2 else "") + (
            "It does not change detectably (overlapping 95 % intervals) with "
            + ", ".join(parts_same) + "."
        )  # fmt: skip
    s3, nums["nonlinear"] = _nonlinear_sentence(res)
    if s3:
        s2 += (" " if s2 else "") + s3
    if res.schema_version < 2:
        s2 += (
            " (Schema version 1 data: classes are the probe-point threshold labels and "
            "time is counted in steps; see the notes.)"
        )
    return (s1 + (" " + s2.strip() if s2 else "")).strip(), nums


def _nonlinear_sentence(res: Results) -> tuple[str, dict]:
    """For a sweep with nonlinear runs: per activation and per weight decay (when they
    vary), the fraction of runs with a strict-saddle stall, with a bad-saddle stall and
    with a minimum above the best loss, and whether it changes detectably (some Wilson
    intervals do not overlap)."""
    if not nonlinear_mask(res).any():
        return "", {}
    axes = [a for a in NET_AXES if a in varying_axes(res)]
    nums: dict = {}
    parts = []
    for axis in axes:
        nums[axis] = {}
        bits = []
        for cls, name in (("strict_saddle", "a strict-saddle stall"),
                          ("bad_saddle", "a bad-saddle stall"),
                          ("minimum_above_best", "a minimum above the best loss")):  # fmt: skip
            f = saddle_frequency(res, [axis], cls)
            f = f[f["n"] > 0]
            if f.empty:
                continue
            changes = bool(len(f) > 1 and f["lo"].max() > f["hi"].min())
            nums[axis][cls] = {
                "changes": changes,
                "fraction": {_plain_value(v): float(x) for v, x in
                             zip(f[axis], f["fraction"], strict=True)},
            }  # fmt: skip
            vals = ", ".join(f"{_plain_value(v)} {_pct(x)}" for v, x in
                             zip(f[axis], f["fraction"], strict=True))  # fmt: skip
            verdict = "changes detectably" if changes else "no detectable change"
            bits.append(f"{name} {vals} ({verdict})")
        if bits:
            parts.append(f"By {axis.replace('_', ' ')}, runs with " + "; with ".join(bits))
        if res.has_curves:  # the numbers only: the tables and figure show them
            tb = time_to_best(res, [axis], q=(0.5,))
            nums[axis]["time_to_best"] = {
                _plain_value(v): {"median": float(m), "km_median": float(km),
                                  "reached": int(k), "n": int(n)}
                for v, m, km, k, n in zip(tb[axis], tb["median"], tb["km_median"],
                                          tb["n_reached"], tb["n"], strict=True)
            }  # fmt: skip
    text = ". ".join(parts) + "." if parts else ""
    text += (
        " (A nonlinear net's bad saddle is a critical point with a PSD Hessian where the "
        "loss still falls at higher order, found by probing its null space; "
        "docs/nonlinear.md.)"
    )
    return text.strip(), nums


def _linear_only(res: Results) -> Results:
    """The runs of deep linear nets (no activation, no weight decay): L* known."""
    import dataclasses

    keep = ~nonlinear_mask(res)
    if keep.all():
        return res
    runs = res.runs
    if hasattr(runs, "filter"):
        res.fetch("runs", ["time_to_target", "status", "steps_in_bad_saddle", "global_min"])
        runs = res.runs.filter(keep)
    else:
        runs = runs[keep].reset_index(drop=True)
    return dataclasses.replace(res, runs=runs, _cache={}, _disk={})


def _plain_value(v) -> str:
    return f"{v:g}" if isinstance(v, float | np.floating) else str(v)


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


def summary_table(res: Results, axis: str, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per value of ``axis``: runs, outcomes, saddle frequencies, time shares, times."""
    nl = nonlinear_mask(res)
    bad = saddle_frequency(res, [axis], "bad_saddle")
    strict = saddle_frequency(res, [axis], "strict_saddle")
    sh = time_shares(res, [axis], n_boot=n_boot, seed=seed)
    out = outcomes(res, [axis])
    lin = _linear_only(res) if nl.any() else res
    sl = slowdown(lin, [axis])
    if nl.any() and res.has_curves:  # one measure for every net: to the configuration's best
        tt = time_to_best(res, [axis], q=(0.5,))
    else:
        tt = time_to_target(lin, [axis], q=(0.5,), split=None)
    if nl.any():
        above = saddle_frequency(res, [axis], "minimum_above_best")
        gdf = runs_frame(res, [axis], columns=["status", "gap_to_best", "gap_scale"])
        gdf = gdf[(gdf["status"] != "failed") & nl]
        gap = (gdf["gap_to_best"] / gdf["gap_scale"]).groupby(gdf[axis]).median()
    rows = []
    for i in range(len(out)):
        key = out[axis].iloc[i]
        b = bad[bad[axis] == key]
        s = strict[strict[axis] == key]
        h = sh[sh[axis] == key]
        w = sl[sl[axis] == key]
        t = tt[tt[axis] == key]

        def one(frame, col, default=np.nan):  # a derived class no run met has no column
            return frame[col].iloc[0] if len(frame) and col in frame else default

        rows.append({
            axis.replace("_", " "): f"H = {key}" if axis == "depth" else _plain_value(key),
            "runs": int(out["n"].iloc[i]),
            "converged": _pct(out["converged"].iloc[i]),
            "max_steps": _pct(out["max_steps"].iloc[i]),
            "diverged / failed": f"{_pct(out['diverged'].iloc[i])} / {_pct(out['failed'].iloc[i])}",
            "runs with bad saddle": f"{_pct(one(b, 'fraction'))} {_ci(one(b, 'lo'), one(b, 'hi'))}",
            "runs with strict saddle":
                f"{_pct(one(s, 'fraction'))} {_ci(one(s, 'lo'), one(s, 'hi'))}",
            "time in bad saddles": f"{_pct(one(h, 'bad_saddle'))} "
                f"{_ci(one(h, 'bad_saddle_lo'), one(h, 'bad_saddle_hi'))}",
            "time in strict saddles": _pct(one(h, "strict_saddle")),
            "time in descent": _pct(one(h, "descent")),
            "median time to target":
                f"{_num(one(t, 'median'))} ({int(one(t, 'n_reached', 0))} reached)",
            "median with / without bad saddle":
                f"{_num(one(w, 'median_with'))} / {_num(one(w, 'median_without'))}",
        })  # fmt: skip
        if nl.any():  # nonlinear runs: the derived class, and the gap to the best loss
            a = above[above[axis] == key]
            row = rows[-1]
            row["runs with minimum above best"] = (
                f"{_pct(one(a, 'fraction'))} {_ci(one(a, 'lo'), one(a, 'hi'))}"
            )
            row["time in minima / above best"] = (
                f"{_pct(one(h, 'minimum'))} / {_pct(one(h, 'minimum_above_best', 0.0))}"
            )
            row["median final gap to best (rel.)"] = _num(gap.get(key, np.nan))
    df = pd.DataFrame(rows)
    if nl.any():  # time to target: to the best loss, or deep linear runs only without curves
        ttb = TTB_COLUMN if res.has_curves else "median time to target (linear runs)"
        df = df.rename(
            columns={
                "median time to target": ttb,
                "median with / without bad saddle": "with / without bad saddle (linear runs)",
            }
        )
    return df


def summary_tables(res: Results, *, n_boot: int = 1000, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Summary tables: per depth always, per every other axis that takes several values."""
    axes = ["depth"] + [a for a in varying_axes(res) if a != "depth"]
    return {a: summary_table(res, a, n_boot=n_boot, seed=seed) for a in axes}


def _extra_tables(res: Results) -> dict[str, pd.DataFrame]:
    out = {}
    if res.frame(["init_scale"])["init_scale"].nunique() > 1:
        sc = scale_scaling(res, ["depth"])
        out["Exponent of time to target in init scale (log-log fit, 95 % t interval)"] = (
            sc.assign(fit=[f"{s:.3f} [{lo:.3f}, {hi:.3f}]" for s, lo, hi in
                           zip(sc["slope"], sc["lo"], sc["hi"], strict=True)])[
                ["depth", "n", "levels", "fit", "theory", "theory_note"]]
        )  # fmt: skip
    if len(res.stalls):
        out["Escape times per stall class (Kaplan-Meier)"] = survival_summary(res)
    if nonlinear_mask(res).any() and res.has_curves:
        out[
            "Time to target per depth, weight decay and activation (within target_gap x "
            "L(0) of the configuration's best final loss, L* for deep linear runs; quantiles "
            "over the runs that reached it; Kaplan-Meier median over all runs, censored at "
            "their last step)"
        ] = _format_ttb(time_to_best(res, _net_keys(res), q=(0.25, 0.5, 0.75)))
    if nonlinear_mask(res).any():
        ind = independence_summary(res, ["activation", "depth"])
        if len(ind):
            out[
                "Independence measures of relu / leaky_relu nets (means; final weights and "
                "stall probe points; model: rho free, input and path dependence 0)"
            ] = ind
            summ, bins = stall_prediction(res, "input_dependence")
            bins = bins.assign(
                r=[summ["r"]] + [np.nan] * (len(bins) - 1),
                r_lo=[summ["lo"]] + [np.nan] * (len(bins) - 1),
                r_hi=[summ["hi"]] + [np.nan] * (len(bins) - 1),
            )
            out[
                "Runs with a saddle stall per input-dependence bin (Wilson 95 %; "
                "point-biserial r with its Fisher-z 95 % interval)"
            ] = bins
            out[
                "Point-biserial r of input dependence and a saddle stall within each "
                "depth (Fisher-z 95 %)"
            ] = stall_prediction_by(res, ["depth"], "input_dependence")
    return out


def _net_keys(res: Results) -> list[str]:
    """Grouping of the time-to-target comparison: runs of the same shape side by side."""
    w = runs_frame(res, ["widths"], columns=["depth"])
    several = (w.groupby("depth")["widths"].nunique() > 1).any()  # widths beside depth
    return ["depth", *(["widths"] if several else []), "weight_decay", "activation"]


def _format_ttb(t: pd.DataFrame) -> pd.DataFrame:
    return t.assign(reached=[f"{k}/{n}" for k, n in zip(t["n_reached"], t["n"], strict=True)]
                    ).drop(columns=["n", "n_reached"])  # fmt: skip


def summary_text(res_or_dir, *, n_boot: int = 1000, seed: int = 0) -> str:
    """Plain-text summary: headline, notes, and the summary tables (exact medians)."""
    res = res_or_dir if isinstance(res_or_dir, Results) else load(res_or_dir)
    text, _ = headline(res, n_boot=n_boot, seed=seed)
    lines = [text, ""]
    if res.notes:
        lines += ["Notes:"] + [f"  - {n}" for n in res.notes] + [""]
    with pd.option_context("display.width", 250, "display.max_columns", 50,
                           "display.max_colwidth", 60):  # fmt: skip
        for axis, t in summary_tables(res, n_boot=n_boot, seed=seed).items():
            lines += [f"Per {axis.replace('_', ' ')}:", t.to_string(index=False), ""]
        for title, t in _extra_tables(res).items():
            lines += [f"{title}:", t.to_string(index=False), ""]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #111; }
.headline { font-size: 1.15em; line-height: 1.5; background: #f4f4f4; padding: 0.8em 1em;
  border-left: 6px solid #333; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: right; }
th { background: #e8e8e8; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #333; }
.skipped li, .notes li { font-size: 0.9em; }
"""


def _table_html(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, float):
                v = _num(v)
            cells.append(f"<td>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_report(
    out_dir: str | os.PathLike, *, n_boot: int = 1000, seed: int = 0, dpi: int = 110
) -> Path:
    """Write ``out_dir/report/`` (index.html, PNG figures, headline.txt, summary.json).

    Returns the path of index.html. Figures that do not apply are skipped and the
    page says why.
    """
    from .figures import FIGURES, NONLINEAR_FIGURES

    res = load(out_dir)
    nl = bool(nonlinear_mask(res).any())
    rep = Path(out_dir) / "report"
    rep.mkdir(parents=True, exist_ok=True)
    text, nums = headline(res, n_boot=n_boot, seed=seed)
    tables = summary_tables(res, n_boot=n_boot, seed=seed)
    extra = _extra_tables(res)
    figures, skipped = [], []
    import matplotlib.pyplot as plt

    if nl and not res.has_curves:
        skipped.append(("Time to target of nonlinear runs", NL_TIME_TO_TARGET))
    for stem, title, build in [*FIGURES, *(NONLINEAR_FIGURES if nl else [])]:
        if nums["n_analysed"] == 0:
            fig, why = None, "all runs failed: nothing to draw"
        else:
            try:
                fig, why = build(res)
            except Exception as e:  # a figure must not take the report down with it
                fig, why = None, f"failed to draw: {type(e).__name__}: {e}"
        if fig is None:
            skipped.append((title, why))
            (rep / f"{stem}.png").unlink(missing_ok=True)
            continue
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        plt.close(fig)
        png = buf.getvalue()
        (rep / f"{stem}.png").write_bytes(png)
        figures.append((stem, title, base64.b64encode(png).decode("ascii"), build.__doc__))
    nums["figures"] = [f[0] for f in figures]
    nums["skipped"] = [{"figure": t, "why": w} for t, w in skipped]
    nums["notes"] = res.notes
    (rep / "headline.txt").write_text(text + "\n")
    (rep / "summary.json").write_text(json.dumps(nums, indent=2, sort_keys=True, default=_json))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>sweepengine report: {html.escape(res.out_dir.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>How often do bad saddles slow training? &mdash; {html.escape(res.out_dir.name)}</h1>",
        f'<p class="headline" id="headline">{html.escape(text)}</p>',
    ]
    if res.notes:
        parts.append('<h2>Notes on the data</h2><ul class="notes">')
        parts += [f"<li>{html.escape(n)}</li>" for n in res.notes]
        parts.append("</ul>")
    parts.append("<h2>Summary tables</h2>")
    for axis, t in tables.items():
        parts.append(f"<h3>Per {html.escape(axis.replace('_', ' '))}</h3>{_table_html(t)}")
    for title, t in extra.items():
        parts.append(f"<h3>{html.escape(title)}</h3>{_table_html(t)}")
    parts.append("<h2>Figures</h2>")
    for stem, title, b64, doc in figures:
        cap = html.escape((doc or "").strip().splitlines()[0])
        parts.append(
            f'<figure id="fig-{stem}"><img src="data:image/png;base64,{b64}" '
            f'alt="{html.escape(title)}"><figcaption><b>{html.escape(title)}.</b> {cap} '
            f"(also <code>report/{stem}.png</code>)</figcaption></figure>"
        )
    if skipped:
        parts.append('<h2>Skipped</h2><ul class="skipped">')
        parts += [f"<li><b>{html.escape(t)}</b>: {html.escape(w)}</li>" for t, w in skipped]
        parts.append("</ul>")
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(
        f"<hr><p><small>{html.escape(str(res.out_dir))}: schema version "
        f"{res.schema_version}, {nums['n_runs']} runs, {len(res.stalls)} stall rows; "
        f"intervals 95 % (Wilson for fractions, percentile bootstrap over runs with "
        f"{n_boot} replicates, seed {seed}, for time shares); written {now}.</small></p>"
    )
    parts.append("</body></html>")
    index = rep / "index.html"
    index.write_text("\n".join(parts), encoding="utf-8")
    return index


def _json(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return str(v)
