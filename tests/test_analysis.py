"""sweepengine.analysis: every statistic against an independent computation.

Test directories are real Parquet files in the version-2 shape written with
pyarrow (``sweepengine.analysis.v2.write_directory``), with values chosen so the
expected numbers are known; v1 directories are written in today's store schema.
The SQL of docs/analysis.md is run with DuckDB and compared to the helpers; the
report is opened in headless Chromium; a real small sweep is run through the CLI.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats as st

from sweepengine import analysis as A
from sweepengine.analysis.report import summary_text, write_report
from sweepengine.analysis.synthetic import synthetic_directory
from sweepengine.analysis.v2 import write_directory
from sweepengine.store.schema import RUNS_SCHEMA
from tests.benchmods import benchmark_module
from tests.browser import chromium, inspect_page

ROOT = Path(__file__).resolve().parents[1]
Z = 1.959963984540054


# -- a small hand-made v2 directory ------------------------------------------------------

# 12 runs: depth 1 (4 runs) / 2 (4) / 3 (4); two init scales; gd / momentum.
DEPTH = [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
SCALE = [0.1, 0.1, 0.01, 0.01] * 3
OPT = ["gd", "momentum"] * 6
STATUS = ["converged", "converged", "converged", "max_steps",
          "converged", "converged", "diverged", "converged",
          "converged", "max_steps", "failed", "converged"]  # fmt: skip
STEPS = [100, 120, 150, 400, 200, 180, 10, 300, 250, 400, 0, 350]
TU = [0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 2.0, 2.0, 2.0, 2.0]
# stalls: (run index, start_step, end_step, class)
STALLS = [
    (0, 10, 30, "strict_saddle"), (1, 10, 20, "strict_saddle"), (2, 5, 45, "strict_saddle"),
    (3, 50, 400, "strict_saddle"),  # lasts to the run's end (max_steps): censored
    (4, 0, 100, "bad_saddle"), (4, 120, 150, "strict_saddle"), (5, 0, 60, "bad_saddle"),
    (7, 10, 200, "bad_saddle"), (7, 220, 240, "unstable"),
    (8, 0, 150, "bad_saddle"), (9, 0, 400, "bad_saddle"),  # censored
    (11, 0, 200, "minimum"), (11, 210, 250, "unresolved"),
]  # fmt: skip
CLASSES = ("bad_saddle", "strict_saddle", "minimum", "unstable", "unresolved")


def _hand_columns():
    n = len(DEPTH)
    ids = [f"run{i:02d}" for i in range(n)]
    steps_in = {c: [0] * n for c in CLASSES}
    for i, s0, s1, c in STALLS:
        steps_in[c][i] += s1 - s0
    reached = [s == "converged" for s in STATUS]
    runs = {
        "run_id": ids, "sweep": ["hand"] * n, "chunk_id": ["c"] * n, "problem": ["whitened"] * n,
        "problem_params": ["{}"] * n, "d_x": [3] * n, "d_y": [3] * n, "depth": DEPTH,
        "widths": [[3] * d for d in DEPTH], "min_width": [3] * n, "n_params": [9] * n,
        "seed": list(range(n)), "init_scheme": ["gaussian"] * n, "init_scale": SCALE,
        "optimizer": OPT, "lr": [0.1] * n, "optimizer_params": ["{}"] * n,
        "max_steps": [400] * n, "status": STATUS,
        "error": ["boom" if s == "failed" else None for s in STATUS], "steps": STEPS,
        "final_loss": [1.0] * n, "global_min": [0.5] * n, "final_gap": [0.5] * n,
        "final_gap_rel": [0.1] * n, "target_gap": [1e-6] * n,
        "steps_to_target": [s if r else None for s, r in zip(STEPS, reached, strict=True)],
        "n_stalls": [sum(1 for s in STALLS if s[0] == i) for i in range(n)],
        **{f"steps_in_{c}": v for c, v in steps_in.items()},
        "final_grad_norm": [1e-6] * n, "lam_ref": [2.0] * n, "kicks": [0] * n,
        "wall_time_s": [0.1] * n, "compile_time_s": [0.0] * n, "worker": ["w"] * n,
        "sweepengine_version": ["t"] * n, "time_unit": TU,
        "time_to_target": [s * t if r else None
                           for s, t, r in zip(STEPS, TU, reached, strict=True)],
        **{f"time_in_{c}": [s * t for s, t in zip(v, TU, strict=True)]
           for c, v in steps_in.items()},
        "activation": ["linear"] * n, "weight_decay": [0.0] * n,
    }  # fmt: skip
    stalls = {
        "run_id": [ids[i] for i, *_ in STALLS],
        "stall_index": [sum(1 for j in STALLS[:k] if j[0] == s[0]) for k, s in enumerate(STALLS)],
        "start_step": [s[1] for s in STALLS], "end_step": [s[2] for s in STALLS],
        "probe_step": [(s[1] + s[2]) // 2 for s in STALLS],
        "start_time": [s[1] * TU[s[0]] for s in STALLS],
        "end_time": [s[2] * TU[s[0]] for s in STALLS],
        "probe_time": [(s[1] + s[2]) // 2 * TU[s[0]] for s in STALLS],
        "loss": [2.0] * len(STALLS), "gap": [1.5] * len(STALLS), "gap_rel": [0.5] * len(STALLS),
        "modes": [[0]] * len(STALLS), "critical_rank": [1] * len(STALLS),
        "critical_value": [2.0] * len(STALLS),
        "local_rel_lam_min": [-0.01] * len(STALLS), "rel_lam_min": [-1e-8] * len(STALLS),
        "stall_class": [s[3] for s in STALLS],
    }  # fmt: skip
    return runs, stalls


@pytest.fixture(scope="module")
def hand(tmp_path_factory) -> Path:
    runs, stalls = _hand_columns()
    return write_directory(tmp_path_factory.mktemp("hand") / "out", runs, stalls, parts=3)


@pytest.fixture(scope="module")
def res(hand):
    return A.load(hand)


@pytest.fixture(scope="module")
def syn(tmp_path_factory) -> Path:
    return synthetic_directory(tmp_path_factory.mktemp("syn") / "out", 3000, seed=1, curves=12,
                               parts=4)  # fmt: skip


# -- statistics ----------------------------------------------------------------------------


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (17, 250), (1, 3)])
def test_wilson_matches_scipy(k, n):
    ci = st.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = A.wilson(k, n)
    assert float(lo) == pytest.approx(ci.low, abs=1e-12)
    assert float(hi) == pytest.approx(ci.high, abs=1e-12)


def test_quantiles_are_exact_type7():
    x = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    q = A.quantiles(x, [0.1, 0.25, 0.5, 0.75, 0.9])
    ref = statistics.quantiles(x, n=20, method="inclusive")  # 5 %, 10 %, ..., 95 %
    assert q[0] == pytest.approx(ref[1]) and q[1] == pytest.approx(ref[4])
    assert q[2] == statistics.median(x) == 4.0
    assert q[3] == pytest.approx(ref[14]) and q[4] == pytest.approx(ref[17])
    assert np.isnan(A.quantiles([], [0.5])[0])


def test_fit_line_matches_linregress():
    rng = np.random.default_rng(3)
    x = np.log(np.repeat([1e-3, 1e-2, 1e-1], 5))
    y = -2.0 * x + 1.0 + rng.normal(0, 0.1, x.size)
    f = A.fit_line(x, y)
    r = st.linregress(x, y)
    t = st.t.ppf(0.975, x.size - 2)
    assert f.slope == pytest.approx(r.slope) and f.intercept == pytest.approx(r.intercept)
    assert f.se == pytest.approx(r.stderr)
    assert (f.lo, f.hi) == pytest.approx((r.slope - t * r.stderr, r.slope + t * r.stderr))
    assert A.fit_line([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None  # one x level: no slope


def test_kaplan_meier_by_hand_and_scipy():
    d = [1.0, 2.0, 2.0, 3.0, 4.0, 5.0]
    e = [True, True, False, True, False, True]
    km = A.kaplan_meier(d, e)
    # at risk 6, 5 (the censoring at 2 still at risk), 3, 1
    assert km.time.tolist() == [1.0, 2.0, 3.0, 5.0]
    assert km.at_risk.tolist() == [6, 5, 3, 1]
    expect = [5 / 6, 5 / 6 * 4 / 5, 5 / 6 * 4 / 5 * 2 / 3, 0.0]
    assert km.survival == pytest.approx(expect)
    assert km.median() == 3.0 and km.n_censored == 2
    data = st.CensoredData(uncensored=[x for x, o in zip(d, e, strict=True) if o],
                           right=[x for x, o in zip(d, e, strict=True) if not o])  # fmt: skip
    assert km.at(km.time) == pytest.approx(st.ecdf(data).sf.evaluate(km.time))
    assert km.at([0.5, 2.5]) == pytest.approx([1.0, 4 / 6])


def test_bootstrap_two_runs_is_exact_and_reproducible():
    # two runs with shares 0.2 and 0.6 of equal time: replicates are 0.2, 0.4 or 0.6
    num, den = np.array([[2.0], [6.0]]), np.array([10.0, 10.0])
    est, lo, hi = A.bootstrap_ratios(num, den, n_boot=2000, seed=5)
    assert est[0] == pytest.approx(0.4) and lo[0] == pytest.approx(0.2)
    assert hi[0] == pytest.approx(0.6)
    again = A.bootstrap_ratios(num, den, n_boot=2000, seed=5)
    assert np.array_equal(again[1], lo) and np.array_equal(again[2], hi)


def test_bootstrap_agrees_with_scipy_percentile():
    rng = np.random.default_rng(0)
    t = rng.uniform(1, 10, 300)
    a = t * rng.uniform(0, 0.8, 300)
    est, lo, hi = A.bootstrap_ratios(a[:, None], t, n_boot=3000, seed=1)
    ref = st.bootstrap((a, t), lambda a, t, axis=-1: a.sum(axis) / t.sum(axis), paired=True,
                       vectorized=True, n_resamples=3000, method="percentile",
                       random_state=np.random.default_rng(2)).confidence_interval  # fmt: skip
    assert est[0] == pytest.approx(a.sum() / t.sum())
    assert lo[0] == pytest.approx(ref.low, abs=0.01) and hi[0] == pytest.approx(ref.high, abs=0.01)


def test_delta_interval_agrees_with_bootstrap_at_the_switch():
    # heavy-tailed stall times (most runs never stall, a few stall for very long), at
    # the size above which method="auto" stops resampling: the two intervals agree
    from sweepengine.analysis.stats import BOOTSTRAP_MAX_N, delta_ratios

    n = BOOTSTRAP_MAX_N
    rng = np.random.default_rng(3)
    t = rng.lognormal(3.0, 1.0, n)
    stalled = np.where(rng.random(n) < 0.1, t * rng.beta(5, 1, n), 0.0)
    num = np.column_stack([stalled, t - stalled])
    est, lo, hi = A.bootstrap_ratios(num, t, n_boot=2000, seed=4, method="bootstrap")
    d_est, d_lo, d_hi = delta_ratios(num, t)
    assert np.array_equal(est, d_est)
    width = hi - lo
    assert np.all(np.abs(d_lo - lo) < 0.1 * width) and np.all(np.abs(d_hi - hi) < 0.1 * width)
    # "auto" switches exactly above the threshold, and is the delta method there
    big = np.concatenate([num, num[:1]]), np.concatenate([t, t[:1]])
    assert np.array_equal(A.bootstrap_ratios(*big, seed=4)[1], delta_ratios(*big)[1])
    assert np.array_equal(A.bootstrap_ratios(num, t, n_boot=2000, seed=4)[1], lo)
    with pytest.raises(ValueError, match="method must be"):
        A.bootstrap_ratios(num, t, method="jackknife")


# -- grouped helpers on the hand-made directory -----------------------------------------------


def test_load_v2(res, hand):
    assert res.schema_version == 2 and res.time_basis == "time" and res.notes == []
    assert res.runs.num_rows == 12 and res.stalls.num_rows == len(STALLS)
    p = A.load(hand, pandas=True)
    assert isinstance(p.runs, pd.DataFrame) and len(p.stalls) == len(STALLS)


def test_lazy_columns_and_orphan_stalls(tmp_path):
    runs, stalls = _hand_columns()
    stalls = {k: list(v) for k, v in stalls.items()}
    for k, v in stalls.items():  # a stall of a run that is not committed: dropped
        v.insert(3, "ghost" if k == "run_id" else v[3])
    stalls["loss"] = [float(i) for i in range(len(stalls["run_id"]))]
    runs["final_loss"] = [10.0 + i for i in range(len(DEPTH))]
    r = A.load(write_directory(tmp_path / "o", runs, stalls, parts=2))
    assert "final_loss" not in r.runs.column_names and "loss" not in r.stalls.column_names
    assert r.stalls.num_rows == len(STALLS)
    assert r.frame(["final_loss"])["final_loss"].tolist() == runs["final_loss"]
    got = r.stalls_frame(["run_id", "loss"])
    assert "ghost" not in set(got["run_id"]) and got["loss"].tolist() == [
        x for x, rid in zip(stalls["loss"], stalls["run_id"], strict=True) if rid != "ghost"
    ]
    assert r.stalls["run_row"].to_pylist() == [int(x[3:]) for x in got["run_id"]]
    p = A.load(tmp_path / "o", pandas=True)
    assert {"final_loss", "run_row"} <= set(p.runs.columns) | set(p.stalls.columns)
    assert len(p.stalls) == len(STALLS)


def test_saddle_frequency_by_depth(res):
    f = A.saddle_frequency(res, "depth")
    # analysed (not failed): depth 1: 4, depth 2: 4, depth 3: 3 (run 10 failed)
    # with a bad-saddle stall: depth 1: 0, depth 2: runs 4, 5, 7 -> 3, depth 3: runs 8, 9 -> 2
    assert f["n"].tolist() == [4, 4, 3] and f["k"].tolist() == [0, 3, 2]
    for (_, row), k, n in zip(f.iterrows(), [0, 3, 2], [4, 4, 3], strict=True):
        ci = st.binomtest(k, n).proportion_ci(method="wilson")
        assert (row["lo"], row["hi"]) == pytest.approx((ci.low, ci.high))
    s = A.saddle_frequency(res, ["depth", "optimizer"], "strict_saddle")
    got = {(r.depth, r.optimizer): (r.k, r.n) for r in s.itertuples()}
    assert got == {(1, "gd"): (2, 2), (1, "momentum"): (2, 2), (2, "gd"): (1, 2),
                   (2, "momentum"): (0, 2), (3, "gd"): (0, 1), (3, "momentum"): (0, 2)}  # fmt: skip


def test_saddle_frequency_whole_sweep_and_by_widths(res):
    f = A.saddle_frequency(res, ())
    assert (f["n"].item(), f["k"].item()) == (11, 5)
    w = A.saddle_frequency(res, "widths")
    assert w["widths"].tolist() == ["3", "3x3", "3x3x3"]


def test_time_shares_point_estimates(res):
    sh = A.time_shares(res, "depth", n_boot=500, seed=0)
    d2 = sh[sh["depth"] == 2].iloc[0]
    total = (200 + 180 + 10 + 300) * 0.25
    assert d2["bad_saddle"] == pytest.approx((100 + 60 + 190) * 0.25 / total)
    assert d2["strict_saddle"] == pytest.approx(30 * 0.25 / total)
    assert d2["unstable"] == pytest.approx(20 * 0.25 / total)
    parts = ["bad_saddle", "strict_saddle", "minimum", "unstable", "unresolved", "descent"]
    assert sh[parts].sum(axis=1).to_numpy() == pytest.approx(1.0)
    assert (sh["bad_saddle_lo"] <= sh["bad_saddle"] + 1e-12).all()
    assert (sh["bad_saddle"] <= sh["bad_saddle_hi"] + 1e-12).all()
    again = A.time_shares(res, "depth", n_boot=500, seed=0)
    pd.testing.assert_frame_equal(sh, again)


def test_time_to_target_and_slowdown(res):
    t = A.time_to_target(res, "depth")
    d2 = t[(t["depth"] == 2) & t["with_bad_saddle"]].iloc[0]
    times = [200 * 0.25, 180 * 0.25, 300 * 0.25]  # runs 4, 5, 7 converged
    assert (d2["n"], d2["n_reached"]) == (3, 3)
    assert d2["median"] == statistics.median(times)
    assert d2["q25"] == pytest.approx(statistics.quantiles(times, n=4, method="inclusive")[0])
    d1 = t[t["depth"] == 1].iloc[0]
    assert not d1["with_bad_saddle"] and (d1["n"], d1["n_reached"]) == (4, 3)
    assert d1["median"] == statistics.median([50.0, 60.0, 75.0])
    s = A.slowdown(res, ())
    with_bad = [50.0, 45.0, 75.0, 500.0]  # runs 4, 5, 7, 8
    without = [50.0, 60.0, 75.0, 700.0]  # runs 0, 1, 2, 11
    assert s["median_with"].item() == statistics.median(with_bad)
    assert s["median_without"].item() == statistics.median(without)
    assert s["ratio"].item() == pytest.approx(statistics.median(with_bad) / 67.5)


def test_outcomes(res):
    o = A.outcomes(res, "depth")
    d3 = o[o["depth"] == 3].iloc[0]
    assert d3["n"] == 4 and d3["converged"] == 0.5 and d3["failed"] == 0.25
    ci = st.binomtest(1, 4).proportion_ci(method="wilson")
    assert (d3["max_steps_lo"], d3["max_steps_hi"]) == pytest.approx((ci.low, ci.high))
    cols = ["converged", "diverged", "max_steps", "failed"]
    assert o[cols].sum(axis=1).to_numpy() == pytest.approx(1.0)


def test_survival_censors_stalls_that_last_to_the_run_end(res):
    kms = A.survival(res)
    strict = kms[("strict_saddle",)]
    # durations in time: run0 20*0.5, run1 10*0.5, run2 40*0.5, run3 350*0.5 (censored), run4 30*.25
    assert strict.n == 5 and strict.n_censored == 1 and strict.n_events == 4
    d = [10.0, 5.0, 20.0, 175.0, 7.5]
    e = [True, True, True, False, True]
    ref = A.kaplan_meier(d, e)
    assert strict.survival == pytest.approx(ref.survival)
    assert strict.survival == pytest.approx([4 / 5, 3 / 5, 2 / 5, 1 / 5])
    bad = kms[("bad_saddle",)]
    assert bad.n == 5 and bad.n_censored == 1  # run 9's stall ends at its last step
    by_depth = A.survival(res, ["stall_class", "depth"])
    assert by_depth[("bad_saddle", 3)].n == 2


def test_scale_scaling_recovers_exact_exponent(tmp_path):
    # time to target = 7 * scale^-2 exactly at depth 3: slope -2, zero standard error
    scales = [1e-3, 1e-2, 1e-1] * 2
    n = len(scales)
    runs = {"run_id": [f"r{i}" for i in range(n)], "depth": [3] * n, "status": ["converged"] * n,
            "steps": [10] * n, "init_scale": scales, "time_unit": [1.0] * n,
            "time_to_target": [7 * s**-2 for s in scales], "min_width": [2] * n,
            **{f"steps_in_{c}": [0] * n for c in CLASSES},
            **{f"time_in_{c}": [0.0] * n for c in CLASSES}}  # fmt: skip
    r = A.load(write_directory(tmp_path / "out", runs))
    f = A.scale_scaling(r, "depth").iloc[0]
    assert f["slope"] == pytest.approx(-2.0) and f["se"] == pytest.approx(0.0, abs=1e-9)
    assert f["theory"] == -2.0


def test_scale_scaling_on_synthetic_matches_linregress_and_theory(syn):
    r = A.load(syn)
    f = A.scale_scaling(r, "depth")
    runs = r.runs.to_pandas()
    for row in f.itertuples():
        sub = runs[(runs["depth"] == row.depth) & (runs["status"] != "failed")]
        sub = sub.dropna(subset=["time_to_target"])
        if sub["init_scale"].nunique() < 2:
            continue
        ref = st.linregress(np.log(sub["init_scale"]), np.log(sub["time_to_target"]))
        assert row.slope == pytest.approx(ref.slope) and row.se == pytest.approx(ref.stderr)
        if row.depth >= 2:  # Saxe's -(K-2), recovered within 15 % from the synthetic law
            assert row.slope == pytest.approx(row.theory, rel=0.15)


def test_errors(tmp_path, res):
    with pytest.raises(A.AnalysisError, match="does not exist"):
        A.load(tmp_path / "nope")
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    with pytest.raises(A.AnalysisError, match="holds no runs"):
        A.load(tmp_path / "empty")
    with pytest.raises(A.AnalysisError, match="unknown axis"):
        A.saddle_frequency(res, "colour")
    with pytest.raises(A.AnalysisError, match="unknown stall class"):
        A.saddle_frequency(res, "depth", "saddle")


_V2_ONLY_RUNS = {"time_unit", "time_to_target", "n_unstable", "steps_in_unstable",
                 "steps_in_unresolved", "first_stall_class", "longest_stall_class",
                 "activation", "weight_decay"}  # fmt: skip
V1_RUNS_SCHEMA = pa.schema([f for f in RUNS_SCHEMA if f.name not in _V2_ONLY_RUNS
                            and not f.name.startswith("time_in_")])  # fmt: skip
V1_STALLS_SCHEMA = pa.schema([
    (n, t) for n, t in [
        ("run_id", pa.string()), ("stall_index", pa.int32()), ("start_step", pa.int64()),
        ("end_step", pa.int64()), ("probe_step", pa.int64()), ("loss", pa.float64()),
        ("gap", pa.float64()), ("gap_rel", pa.float64()), ("critical_value", pa.float64()),
        ("critical_rank", pa.int32()), ("min_grad_norm", pa.float64()),
        ("lam_min", pa.float64()), ("lam_max", pa.float64()), ("lam_min_err", pa.float64()),
        ("lam_max_err", pa.float64()), ("lanczos_iters", pa.int32()),
        ("rel_lam_min", pa.float64()), ("stall_class", pa.string()),
    ]
])  # fmt: skip


def test_load_v1_directory(tmp_path):
    runs, stalls = _hand_columns()
    v1_runs = {k: v for k, v in runs.items() if k in V1_RUNS_SCHEMA.names}
    v1_stalls = {k: v for k, v in stalls.items() if k in V1_STALLS_SCHEMA.names}
    v1_stalls["lam_min"] = [-0.02] * len(STALLS)
    v1_stalls["rel_lam_min"] = [-0.01] * len(STALLS)
    v1_stalls["stall_class"] = ["strict_saddle" if c in ("unstable", "unresolved") else c
                                for c in v1_stalls["stall_class"]]  # fmt: skip
    v1 = write_directory(tmp_path / "v1", v1_runs, v1_stalls, runs_schema=V1_RUNS_SCHEMA,
                         stalls_schema=V1_STALLS_SCHEMA)  # fmt: skip
    r = A.load(v1)
    assert r.schema_version == 1 and r.time_basis == "steps"
    assert any("counted in optimizer steps" in n for n in r.notes)
    runs_t = r.runs.to_pandas().set_index("run_id")
    assert runs_t.loc["run04", "time_in_bad_saddle"] == 100.0  # steps, time_unit 1
    assert runs_t.loc["run04", "time_to_target"] == 200.0
    assert runs_t.loc["run04", "first_stall_class"] == "bad_saddle"
    assert runs_t.loc["run07", "longest_stall_class"] == "bad_saddle"
    assert pd.isna(runs_t.loc["run06", "first_stall_class"])
    s = r.stalls.to_pandas()
    assert (s["local_rel_lam_min"] == -0.01).all() and s["rel_lam_min"].isna().all()
    assert (s["end_time"] == s["end_step"]).all()
    f = A.saddle_frequency(r, "depth")
    assert f["k"].tolist() == [0, 3, 2]
    text = summary_text(r, n_boot=50)
    assert "optimizer steps" in text and "Per depth" in text


# -- the SQL of docs/analysis.md ----------------------------------------------------------


def _queries() -> dict[str, str]:
    text = (ROOT / "docs" / "analysis.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", text, flags=re.S)
    out = {}
    for b in blocks:
        m = re.search(r"-- name: (\w+)", b)
        assert m, f"sql block without a '-- name:' line: {b[:80]}"
        out[m.group(1)] = b
    return out


def _sql(query: str, out: Path) -> pd.DataFrame:
    duckdb = pytest.importorskip("duckdb")
    return duckdb.sql(query.replace("OUT/", f"{out}/")).df()


def test_every_documented_query_is_checked():
    # time_to_best is checked on a nonlinear directory (tests/test_nlsweep.py)
    assert set(_queries()) == {"frequency", "time_shares", "time_to_target", "time_to_best",
                               "scale_scaling", "survival", "outcomes"}  # fmt: skip


@pytest.mark.parametrize("which", ["hand", "syn"])
def test_sql_matches_helpers(which, hand, syn):
    out = hand if which == "hand" else syn
    r = A.load(out)
    q = _queries()

    f = _sql(q["frequency"], out)
    h = A.saddle_frequency(r, "depth")
    assert f["n"].tolist() == h["n"].tolist() and f["k"].tolist() == h["k"].tolist()
    for c in ("fraction", "lo", "hi"):
        assert f[c].to_numpy(float) == pytest.approx(h[c].to_numpy(float), abs=1e-12)

    s = _sql(q["time_shares"], out)
    hs = A.time_shares(r, "depth", n_boot=0)
    for c in ("bad_saddle", "strict_saddle", "minimum", "unstable", "unresolved", "descent"):
        assert s[c].to_numpy(float) == pytest.approx(hs[c].to_numpy(float), rel=1e-9, abs=1e-12)

    t = _sql(q["time_to_target"], out)
    ht = A.time_to_target(r, "depth")
    assert t["n"].tolist() == ht["n"].tolist()
    assert t["n_reached"].tolist() == ht["n_reached"].tolist()
    for c in ("q10", "q25", "median", "q75", "q90"):
        assert t[c].to_numpy(float) == pytest.approx(ht[c].to_numpy(float), rel=1e-12,
                                                     nan_ok=True)  # fmt: skip

    sc = _sql(q["scale_scaling"], out)
    hsc = A.scale_scaling(r, "depth").dropna(subset=["slope"])
    hsc = hsc[hsc["n"] > 2]
    assert sc["depth"].tolist() == hsc["depth"].tolist()
    assert sc["slope"].to_numpy(float) == pytest.approx(hsc["slope"].to_numpy(float), rel=1e-9)
    assert sc["se"].to_numpy(float) == pytest.approx(hsc["se"].to_numpy(float), rel=1e-6,
                                                     abs=1e-9)  # fmt: skip

    sv = _sql(q["survival"], out)
    for (cls,), km in A.survival(r).items():
        sub = sv[sv["stall_class"] == cls]
        assert sub["time"].to_numpy(float) == pytest.approx(km.time)
        assert sub["at_risk"].tolist() == km.at_risk.tolist()
        assert sub["survival"].to_numpy(float) == pytest.approx(km.survival, abs=1e-12)

    o = _sql(q["outcomes"], out)
    ho = A.outcomes(r, "depth")
    for c in ("converged", "diverged", "max_steps", "failed"):
        assert o[c].to_numpy(float) == pytest.approx(ho[c].to_numpy(float))


# -- report --------------------------------------------------------------------------------


def _pixels_vary(png: bytes) -> float:
    from PIL import Image

    return float(np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float).var())


def _check_report(out: Path, expect_figures: set[str] | None = None) -> dict:
    rep = out / "report"
    index = rep / "index.html"
    assert index.is_file()
    page = index.read_text()
    summary = json.loads((rep / "summary.json").read_text())
    pngs = {p.stem for p in rep.glob("*.png")}
    assert pngs == set(summary["figures"])
    if expect_figures is not None:
        assert pngs == expect_figures
    assert page.count("<img ") == len(pngs)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert (rep / "headline.txt").read_text().strip() in page.replace("&#x27;", "'")
    for skipped in summary["skipped"]:
        assert skipped["why"] in page
        assert not skipped["why"].startswith("failed to draw"), skipped
    for p in rep.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return summary


ALL_FIGURES = {"frequency_vs_depth", "time_shares", "time_to_target", "lambda_min",
               "loss_curves", "escape_survival"}  # fmt: skip


@pytest.fixture(scope="module")
def syn_report(syn) -> Path:
    write_report(syn, n_boot=200)
    return syn


def test_report_on_synthetic_v2(syn_report):
    summary = _check_report(syn_report, ALL_FIGURES)
    r = A.load(syn_report)
    f = A.saddle_frequency(r, ())
    assert summary["bad_fraction"] == pytest.approx(f["fraction"].item())
    assert summary["bad_lo"] == pytest.approx(f["lo"].item())
    text = (syn_report / "report" / "headline.txt").read_text()
    assert f"{100 * f['fraction'].item():.1f} %" in text
    assert "changes with depth" in text
    page = (syn_report / "report" / "index.html").read_text()
    for axis in ("depth", "init scale", "optimizer", "width"):
        assert f"<h3>Per {axis}</h3>" in page


def test_report_in_headless_chromium(syn_report):
    if chromium() is None:
        pytest.skip("chromium is not installed (.ci/run installs the Debian package 'chromium')")
    got = inspect_page(syn_report / "report" / "index.html")
    assert got["title"].startswith("sweepengine report")
    assert len(got["images"]) == len(ALL_FIGURES)
    for img in got["images"]:
        assert img["complete"] and img["naturalWidth"] > 0, img
    assert got["errors"] == []
    assert _pixels_vary(got["screenshot"]) > 0


def test_browser_check_can_fail(tmp_path):
    """The checks above are not vacuous: a broken image, a console error, a blank page."""
    if chromium() is None:
        pytest.skip("chromium is not installed (.ci/run installs the Debian package 'chromium')")
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><title>bad</title></head><body>'
                   '<img src="missing.png" alt="x"><script>console.error("boom")</script>'
                   "</body></html>")  # fmt: skip
    got = inspect_page(bad)
    assert got["images"][0]["naturalWidth"] == 0
    assert any("boom" in e for e in got["errors"])
    assert any("missing.png" in e for e in got["errors"])
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><head><title>blank</title></head><body></body></html>")
    assert _pixels_vary(inspect_page(blank)["screenshot"]) == 0


def _degenerate(tmp_path, name, status, with_stalls, n=None):
    runs, stalls = _hand_columns()
    n = n or len(DEPTH)
    runs = {k: v[:n] for k, v in runs.items()}
    runs["status"] = [status] * n if status else runs["status"]
    if status == "diverged":
        runs["time_to_target"] = [None] * n
    if not with_stalls:
        for c in CLASSES:
            runs[f"steps_in_{c}"] = [0] * n
            runs[f"time_in_{c}"] = [0.0] * n
        runs["n_stalls"] = [0] * n
        stalls = None
    else:
        keep = [i for i, s in enumerate(stalls["run_id"]) if s in set(runs["run_id"])]
        stalls = {k: [v[i] for i in keep] for k, v in stalls.items()}
    return write_directory(tmp_path / name, runs, stalls)


def test_report_one_run(tmp_path):
    out = _degenerate(tmp_path, "one", None, True, n=1)
    write_report(out, n_boot=50)
    s = _check_report(out)
    assert {x["figure"] for x in s["skipped"]} >= {"Bad-saddle frequency against depth",
                                                   "Time to target against init scale",
                                                   "Example loss curves"}  # fmt: skip
    assert s["n_runs"] == 1 and "of the 1 runs" in (out / "report" / "headline.txt").read_text()


def test_report_all_diverged(tmp_path):
    out = _degenerate(tmp_path, "div", "diverged", True)
    write_report(out, n_boot=50)
    s = _check_report(out)
    assert "Time to target against init scale" in {x["figure"] for x in s["skipped"]}
    assert "no run reached the target" in (out / "report" / "index.html").read_text()


def test_report_no_stalls(tmp_path):
    out = _degenerate(tmp_path, "nostall", None, False)
    write_report(out, n_boot=50)
    s = _check_report(out)
    skipped = {x["figure"] for x in s["skipped"]}
    assert {"Curvature at stalls", "Escape-time survival"} <= skipped
    assert s["bad_fraction"] == 0.0
    assert "0.0 %" in (out / "report" / "headline.txt").read_text()


def test_report_all_failed(tmp_path):
    out = _degenerate(tmp_path, "failed", "failed", False)
    write_report(out, n_boot=50)
    assert "all 12 runs failed" in (out / "report" / "headline.txt").read_text()


# -- a real small sweep through the command line ---------------------------------------------

TINY = """
name = "tiny-report"
seeds = { range = [0, 2] }
max_steps = 400
record_every = 10

[problem]
name = "whitened"
d_x = 3
d_y = 3
m = 12
singular_values = [2.0, 1.0, 0.5]
seed = 0

[architecture]
depth = [1, 2]
width = 3

[init]
scheme = "gaussian"
scale = [1e-2, 0.1]

[optimizer]
name = "gd"
lr = 0.1
"""


def _cli(*args, timeout=900):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DASK_LOGGING__DISTRIBUTED": "warning"}
    return subprocess.run([sys.executable, "-m", "sweepengine.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)  # fmt: skip


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    d = tmp_path_factory.mktemp("real")
    (d / "tiny.toml").write_text(TINY)
    proc = _cli("run", str(d / "tiny.toml"), "--out", str(d / "out"), "--workers", "1", "-q")
    return d / "out", proc


def test_real_sweep_writes_its_report(real_sweep):
    out, proc = real_sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"report -> {out / 'report' / 'index.html'}" in proc.stdout
    s = _check_report(out)
    r = A.load(out)
    assert r.runs.num_rows == 8 and s["n_runs"] == 8
    # v1 data today: the page says time is counted in steps
    page = (out / "report" / "index.html").read_text()
    if r.schema_version == 1:
        assert "optimizer steps" in page
    assert {"frequency_vs_depth", "time_shares", "time_to_target"} <= set(s["figures"])
    if r.stalls.num_rows:
        assert {"lambda_min", "escape_survival", "loss_curves"} <= set(s["figures"])
    f = A.saddle_frequency(r, ())
    assert s["bad_fraction"] == pytest.approx(f["fraction"].item())
    assert (out / "report" / "headline.txt").read_text().strip() in proc.stdout


def test_cli_summary_and_report(real_sweep, tmp_path):
    out, _ = real_sweep
    proc = _cli("summary", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Per depth:" in proc.stdout and "met at least one bad saddle" in proc.stdout
    (out / "report" / "index.html").unlink()
    proc = _cli("report", str(out))
    assert proc.returncode == 0 and (out / "report" / "index.html").is_file()
    bad = _cli("summary", str(tmp_path / "missing"))
    assert bad.returncode == 2 and "no such directory" in bad.stderr


def test_no_report_flag(real_sweep):
    out, _ = real_sweep
    spec = out.parent / "tiny.toml"
    shutil.rmtree(out / "report")
    proc = _cli("run", str(spec), "--out", str(out), "--workers", "1", "-q", "--no-report")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (out / "report").exists() and "report ->" not in proc.stdout
    proc = _cli("run", str(spec), "--out", str(out), "--workers", "1", "-q")
    assert proc.returncode == 0 and (out / "report" / "index.html").is_file()


# -- reproductions ---------------------------------------------------------------------------


def test_reproduction_write_ups_fill_from_a_real_report(real_sweep, tmp_path):
    out, proc = real_sweep
    assert proc.returncode == 0
    reproduce = benchmark_module("reproduce")
    for study in reproduce.STUDIES:
        readme = reproduce.write_up(study, out, tmp_path / study, size="test", wall_s="0",
                                    spec="tiny", command="pytest")  # fmt: skip
        text = readme.read_text()
        assert (out / "report" / "headline.txt").read_text().strip() in text
        assert not re.search(r"\{[a-z_]+\}", text), "unfilled placeholder"
        assert (tmp_path / study / "report" / "index.html").is_file()


def test_reproduction_specs_and_templates():
    import string

    reproduce = benchmark_module("reproduce")
    from sweepengine.sweep import load_spec

    known = {"headline", "schema_version", "n_runs", "notes", "per_depth", "figures", "skipped",
             "scaling", "scaling_small", "small_scale", "depth_fit", "time_by_depth",
             "class_table", "escape", "size", "wall_s", "spec", "command", "per_activation",
             "per_weight_decay", "class_by_net", "time_to_best", "independence_table",
             "prediction"}  # fmt: skip
    for study in reproduce.STUDIES:
        small = load_spec(reproduce.spec_text(study, "small"))
        full = load_spec(reproduce.spec_text(study, "full"))
        assert small.n_runs < full.n_runs and small.name.endswith("-small")
        text = (ROOT / "benchmarks" / "reproductions" / f"{study}.md").read_text()
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        assert fields <= known, fields - known


def test_committed_reproductions_are_filled_from_their_reports():
    # every study's write-up under results/ quotes its own report's headline, has every
    # placeholder filled and its "disagree" section written, and its figures exist
    reproduce = benchmark_module("reproduce")
    for study in reproduce.STUDIES:
        d = ROOT / "results" / "reproductions" / study
        text = (d / "README.md").read_text()
        assert (d / "report" / "headline.txt").read_text().strip() in text
        assert not re.search(r"\{[a-z_]+\}", text) and "<!--" not in text
        why = text.split("## Where theory and data disagree, and why", 1)[1]
        assert len(why.split()) > 50
        for png in re.findall(r"\]\((report/[a-z_]+\.png)\)", text):
            assert (d / png).is_file(), png
        assert (d / "report" / "index.html").is_file()


def test_readme_headline_is_the_results_file():
    readme = (ROOT / "README.md").read_text()
    headline = (ROOT / "results" / "quick" / "headline.txt").read_text().strip()
    assert f"> {headline}" in readme
    assert (ROOT / "results" / "quick" / "time_shares.png").is_file()
