"""Activation and weight decay as sweep axes (issue 14): specs, run ids, a real sweep of
nonlinear runs on embedded Dask clusters, schema version 3 and the analysis at load.

The nonlinear trainer compiles once per test session (``nl_compiled``, in this
process, under the machine-wide compile lock: about a minute cold on 2 cores, under a
second from the cache); the Dask workers then load it from the on-disk cache. The
tests that train are marked ``slow`` (CI runs them once with ``-m slow``): that compile
would add a minute to the default suite.
"""

from __future__ import annotations

import math
import re
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

import sweepengine.analysis as A
from sweepengine.analysis.load import BEST_TOL
from sweepengine.analysis.v2 import write_directory
from sweepengine.store.schema import RUNS_SCHEMA, STALLS_SCHEMA
from sweepengine.sweep import SpecError, load_spec, run_sweep
from tests.conftest import whitened_spec

PLACEMENT = ["chunk_id", "worker", "wall_time_s", "compile_time_s"]
PROBLEM = {"d_x": 3, "d_y": 2, "m": 8, "singular_values": [2.0, 1.0]}


def spec_text(name: str = "nl", **arch_opt) -> str:
    arch = {"depth": [1, 2], "width": 3, **arch_opt.get("architecture", {})}
    opt = {"name": "gd", "lr": 0.05, **arch_opt.get("optimizer", {})}
    return whitened_spec(name, seeds=2, max_steps=200, record_every=50, problem=PROBLEM,
                         architecture=arch, init={"scale": 0.1}, optimizer=opt)  # fmt: skip


# -- specs and run ids (no compiled code) ------------------------------------------------


def test_run_ids_of_linear_specs_do_not_change():
    plain = load_spec(spec_text())
    explicit = load_spec(spec_text(architecture={"activation": "linear", "alpha": 0.01},
                                   optimizer={"weight_decay": 0}))  # fmt: skip
    ids = [r.run_id for r in plain.runs()]
    assert ids == [r.run_id for r in explicit.runs()]
    assert [r.init_seed for r in plain.runs()] == [r.init_seed for r in explicit.runs()]
    assert all("activation" not in r.content() and "weight_decay" not in r.content()
               for r in plain.runs())  # fmt: skip
    relu = load_spec(spec_text(architecture={"activation": "relu"}))
    assert not set(ids) & {r.run_id for r in relu.runs()}
    # the same initial draw (common random numbers) for every activation
    assert [r.init_seed for r in relu.runs()] == [r.init_seed for r in plain.runs()]
    # alpha means nothing for relu: one id; for leaky_relu it is part of the run
    relu_a = load_spec(spec_text(architecture={"activation": "relu", "alpha": 0.3}))
    assert [r.run_id for r in relu_a.runs()] == [r.run_id for r in relu.runs()]
    leaky = [load_spec(spec_text(architecture={"activation": "leaky_relu", "alpha": a}))
             for a in (0.01, 0.3)]  # fmt: skip
    assert not {r.run_id for r in leaky[0].runs()} & {r.run_id for r in leaky[1].runs()}
    wd = load_spec(spec_text(optimizer={"weight_decay": 0.01}))
    assert not set(ids) & {r.run_id for r in wd.runs()}
    assert {r.content()["weight_decay"] for r in wd.runs()} == {0.01}


def test_axes_expand_and_shape_blocks_separate_nets():
    spec = load_spec(spec_text(
        architecture={"activation": ["linear", "relu", "leaky_relu", "tanh"],
                      "alpha": [0.01, 0.2]},
        optimizer={"name": ["gd", "adam"], "weight_decay": [0, 0.01]},
    ))  # fmt: skip
    # (linear, relu, tanh) x 2 wd + leaky x 2 alphas x 2 wd = 10 nets; x 2 depths x 2 opts x 2 seeds
    assert spec.n_runs == 10 * 2 * 2 * 2
    runs = list(spec.runs())
    assert len({r.run_id for r in runs}) == spec.n_runs
    assert [spec.run(i).run_id for i in range(spec.n_runs)] == [r.run_id for r in runs]
    nets = {(r.activation, r.alpha, r.weight_decay) for r in runs}
    assert len(nets) == 10 and ("relu", 0.01, 0.01) in nets and ("leaky_relu", 0.2, 0.0) in nets
    blocks = spec.shape_blocks()
    assert blocks[0][0] == 0 and blocks[-1][1] == spec.n_runs
    for a, b in blocks:
        assert len({r.shape_key() for r in runs[a:b]}) == 1
    keys = {r.shape_key() for r in runs}
    assert len(keys) == 2 * 10 * 2  # depth x net x optimizer
    assert "architecture.activation" in spec.summary() and "weight_decay" in spec.summary()
    # zip pairs them element-wise
    z = load_spec(spec_text(architecture={"activation": ["relu", "tanh"], "depth": [1, 2]},
                            optimizer={"weight_decay": [0.0, 0.1]}).replace(
        "max_steps", 'combine = "zip"\nmax_steps'))  # fmt: skip
    assert [(r.activation, r.weight_decay, r.depth) for r in z.runs()] == [
        ("relu", 0.0, 1), ("relu", 0.0, 1), ("tanh", 0.1, 2), ("tanh", 0.1, 2)]  # fmt: skip


def test_bad_net_keys_are_all_reported_with_paths_and_valid_values():
    text = spec_text(architecture={"activation": ["relu", "softplus"], "alpha": 1.5},
                     optimizer={"weight_decay": [0.1, -1.0]})  # fmt: skip
    with pytest.raises(SpecError) as e:
        load_spec(text.replace('name = "gd"', 'name = "gd"\nmomentum = 1'))
    errs = e.value.errors
    assert len(errs) == 4, errs
    joined = "\n".join(errs)
    assert "architecture.activation[1] = 'softplus'" in joined
    assert "['linear', 'relu', 'leaky_relu', 'tanh']" in joined
    assert "architecture.alpha = 1.5" in joined and "[0, 1)" in joined
    assert "optimizer.weight_decay[1] = -1.0" in joined and ">= 0" in joined
    assert "optimizer.momentum" in joined and "'weight_decay'" in joined
    with pytest.raises(SpecError, match=r"architecture.activation = 3"):
        load_spec(spec_text(architecture={"activation": 3}))
    with pytest.raises(SpecError, match=r"optimizer.weight_decay = nan"):
        load_spec(spec_text(optimizer={"weight_decay": math.nan}).replace("nan", "nan"))


# -- a real sweep on embedded Dask clusters ------------------------------------------------


@pytest.fixture(scope="module")
def nl_compiled(compiled):
    from sweepengine.sweep.worker import warm_up

    warm_up("nonlinear")


SWEEP_AXES = {"architecture": {"activation": ["linear", "relu", "tanh"]},
              "optimizer": {"weight_decay": [0, 0.01]}}  # fmt: skip


def _frame(out, table="runs", keys=("run_id",)) -> pd.DataFrame:
    df = ds.dataset(out / table, format="parquet").to_table().to_pandas()
    df = df.drop(columns=[c for c in PLACEMENT if c in df])
    return df.sort_values(list(keys)).reset_index(drop=True)


@pytest.fixture(scope="module")
def swept(nl_compiled, tmp_path_factory):
    """The same sweep run twice (2 workers, default chunks; 1 worker, one run per chunk)."""
    spec = load_spec(spec_text(**SWEEP_AXES))
    root = tmp_path_factory.mktemp("nlsweep")
    outs = {"two": root / "two", "one": root / "one"}
    reports = {
        "two": run_sweep(spec, outs["two"], n_workers=2, progress=False),
        "one": run_sweep(spec, outs["one"], n_workers=1, max_chunk=1, progress=False),
    }
    return spec, outs, reports


@pytest.mark.slow
@pytest.mark.cluster
def test_sweep_rows_columns_and_invariance(swept):
    spec, outs, reports = swept
    assert spec.n_runs == 2 * 3 * 2 * 2  # depth x activation x wd x seeds
    for r in reports.values():
        assert r.complete and r.trained == spec.n_runs and not r.failed_chunks
    assert reports["one"].chunks == spec.n_runs
    runs = _frame(outs["two"])
    assert sorted(runs.run_id) == sorted(r.run_id for r in spec.runs())
    assert runs.run_id.is_unique and len(runs) == spec.n_runs
    # scheduling does not change a number
    pd.testing.assert_frame_equal(_frame(outs["one"]), runs, check_exact=True)
    keys = ("run_id", "stall_index")
    pd.testing.assert_frame_equal(
        _frame(outs["one"], "stalls", keys), _frame(outs["two"], "stalls", keys), check_exact=True
    )
    pd.testing.assert_frame_equal(_frame(outs["one"], "curves", ("run_id", "step")),
                                  _frame(outs["two"], "curves", ("run_id", "step")),
                                  check_exact=True)  # fmt: skip

    assert set(runs.status) <= {"converged", "max_steps", "diverged"}
    assert sorted(set(runs.activation)) == ["linear", "relu", "tanh"]
    assert sorted(set(runs.weight_decay)) == [0.0, 0.01]
    assert runs.alpha.isna().all()  # no leaky_relu here
    lin = (runs.activation == "linear") & (runs.weight_decay == 0)
    nl = ~lin
    assert np.isfinite(runs.global_min[lin]).all() and runs.global_min[nl].isna().all()
    assert (runs.loss_floor[lin] == runs.global_min[lin]).all()
    assert (runs.loss_floor[nl] == 0).all()
    half_yy = runs.gap_scale[nl].iloc[0]  # L(0) - 0 = 1/2 ||Y||^2 for every nonlinear run
    assert half_yy > 0 and (runs.gap_scale[nl] == half_yy).all()
    assert np.allclose(runs.final_gap_rel[nl], runs.final_loss[nl] / half_yy, rtol=1e-14)
    assert np.allclose(runs.final_gap[nl], runs.final_loss[nl])
    assert (runs.lam_ref[nl & (runs.weight_decay == 0.01)].to_numpy()
            > runs.lam_ref[lin].min()).all()  # fmt: skip
    relu = runs.activation == "relu"
    for c in ("path_activation_rate", "input_dependence"):
        v = runs.loc[relu, c].to_numpy(float)
        assert np.isfinite(v).all() and ((v >= 0) & (v <= 1)).all(), c
        assert runs.loc[~relu, c].isna().all(), c
    deep = relu & (runs.depth == 2)  # two hidden layers: paths can share a unit
    assert np.isfinite(runs.loc[deep, "path_dependence_disjoint"].to_numpy(float)).any()
    assert runs.loc[relu & (runs.depth == 1), "path_dependence_shared"].isna().all()

    stalls = _frame(outs["two"], "stalls", ("run_id", "stall_index"))
    srow = stalls.merge(runs[["run_id", "activation", "weight_decay"]], on="run_id")
    snl = srow[~((srow.activation == "linear") & (srow.weight_decay == 0))]
    assert len(snl) and set(snl.stall_class) <= {"strict_saddle", "bad_saddle", "minimum",
                                                 "unresolved"}  # fmt: skip
    assert (snl.critical_rank == -1).all() and (snl.nearest_rank == -1).all()
    assert snl.nearest_value.isna().all() and (snl.modes.map(len) == 0).all()
    assert (snl.occupancy.map(len) == 0).all()
    # every nonlinear stall row counts in its run's totals
    per_run = snl.groupby("run_id").size()
    assert (runs.set_index("run_id").loc[per_run.index, "n_stalls"] >= per_run).all()


@pytest.mark.slow
@pytest.mark.cluster
def test_linear_rows_equal_a_linear_only_sweep(swept, tmp_path):
    spec, outs, _ = swept
    plain = load_spec(spec_text())  # the same sweep name, no activation / weight decay keys
    report = run_sweep(plain, tmp_path / "plain", n_workers=1, progress=False)
    assert report.complete and report.trained == plain.n_runs
    ref = _frame(tmp_path / "plain")
    runs = _frame(outs["two"])
    lin = runs[runs.run_id.isin(ref.run_id)].reset_index(drop=True)
    assert len(lin) == plain.n_runs == spec.n_runs // 6
    assert set(lin.activation) == {"linear"} and set(lin.weight_decay) == {0.0}
    pd.testing.assert_frame_equal(lin, ref, check_exact=True)
    keys = ("run_id", "stall_index")
    s = _frame(outs["two"], "stalls", keys)
    s = s[s.run_id.isin(ref.run_id)].reset_index(drop=True)
    pd.testing.assert_frame_equal(s, _frame(tmp_path / "plain", "stalls", keys),
                                  check_exact=True)  # fmt: skip


@pytest.mark.slow
@pytest.mark.cluster
def test_analysis_best_loss_at_load(swept):
    _, outs, _ = swept
    res = A.load(outs["two"])
    assert res.schema_version == 3 and res.notes == []
    df = res.frame(["run_id", "activation", "weight_decay", "depth", "status", "final_loss",
                    "best_loss", "gap_to_best", "steps_in_minimum",
                    "steps_in_minimum_above_best"])  # fmt: skip
    lin = (df.activation == "linear") & (df.weight_decay == 0)
    assert df.loc[lin, "best_loss"].isna().all() and df.loc[lin, "gap_to_best"].isna().all()
    nl = df[~lin]
    for _, g in nl.groupby(["activation", "weight_decay", "depth"]):
        ok = g[g.status != "diverged"]
        assert (g.best_loss == ok.final_loss.min()).all()
        assert (ok.gap_to_best >= 0).all() and (ok.gap_to_best == 0).any()
    # the stall classes the helpers group by include the derived one
    s = res.stalls_frame(["stall_class"])
    assert set(s.stall_class) <= {"strict_saddle", "bad_saddle", "minimum", "unresolved",
                                  "minimum_above_best"}  # fmt: skip
    A.time_shares(res, ["activation"], n_boot=0)
    A.saddle_frequency(res, ["activation"], stall_class="minimum_above_best")
    A.survival_summary(res, ["stall_class"])
    # time to the best loss against the curves the trainer recorded, point by point
    runs = res.frame(["run_id", "activation", "weight_decay", "depth", "status", "steps",
                      "final_loss", "best_loss", "target_gap", "gap_scale", "time_unit",
                      "time_to_target", "time_to_best"])  # fmt: skip
    curves = _frame(outs["two"], "curves", ("run_id", "step"))
    for r in runs.itertuples():
        if r.activation == "linear" and r.weight_decay == 0:
            assert r.time_to_best == r.time_to_target or (
                pd.isna(r.time_to_best) and pd.isna(r.time_to_target))  # fmt: skip
            continue
        target = r.best_loss + r.target_gap * r.gap_scale
        c = curves[curves.run_id == r.run_id]
        points = [*zip(c.step, c.loss, strict=True), (r.steps, r.final_loss)]
        hit = next((s for s, loss in points if loss <= target), None)
        if hit is None:
            assert pd.isna(r.time_to_best)
        else:
            assert r.time_to_best == hit * r.time_unit
        if r.final_loss == r.best_loss:
            assert hit is not None  # the best run of a configuration always gets there


# -- schema versions at load ------------------------------------------------------------------


def _v3_dir(tmp_path):
    """Four nonlinear runs of one configuration (two seeds each of two lrs) and their stalls."""
    nan = math.nan
    runs = {
        "run_id": ["a0", "a1", "b0", "b1"], "problem": ["whitened"] * 4,
        "problem_params": ["{}"] * 4, "d_x": [2] * 4, "d_y": [2] * 4, "depth": [1] * 4,
        "widths": [[3]] * 4, "min_width": [3] * 4, "seed": [0, 1, 0, 1],
        "init_scheme": ["gaussian"] * 4, "init_scale": [0.1] * 4, "optimizer": ["gd"] * 4,
        "lr": [0.1, 0.1, 0.2, 0.2], "optimizer_params": ["{}"] * 4, "max_steps": [100] * 4,
        "status": ["max_steps", "max_steps", "diverged", "max_steps"], "steps": [100] * 4,
        "final_loss": [0.5, 0.2, nan, 0.3], "global_min": [nan] * 4, "loss_floor": [0.0] * 4,
        "final_gap": [0.5, 0.2, nan, 0.3], "gap_scale": [2.0] * 4,
        "final_gap_rel": [0.25, 0.1, nan, 0.15], "time_unit": [1.0] * 4,
        "n_stalls": [2, 1, 0, 1], "activation": ["relu"] * 4, "weight_decay": [0.0] * 4,
        "steps_in_minimum": [60, 30, 0, 20], "time_in_minimum": [60.0, 30.0, 0.0, 20.0],
        **{f"{u}_in_{c}": [0] * 4 for c in ("strict_saddle", "bad_saddle", "unstable",
                                             "unresolved") for u in ("steps", "time")},
        "first_stall_class": ["minimum", "minimum", None, "minimum"],
        "longest_stall_class": ["minimum", "minimum", None, "minimum"],
    }  # fmt: skip
    stalls = {
        "run_id": ["a0", "a0", "a1", "b1"], "stall_index": [0, 1, 0, 0],
        "start_step": [10, 50, 70, 80], "end_step": [30, 90, 100, 100],
        "start_time": [10.0, 50.0, 70.0, 80.0], "end_time": [30.0, 90.0, 100.0, 100.0],
        "stall_class": ["minimum"] * 4,
        # a0: one stall at the best loss of its config, one above; a1 at the best
        "critical_value": [0.2 + BEST_TOL, 0.5, 0.2, 0.3],
    }  # fmt: skip
    plain = {s: pa.schema([pa.field(f.name, f.type) for f in sch])
             for s, sch in (("runs", RUNS_SCHEMA), ("stalls", STALLS_SCHEMA))}  # fmt: skip
    return write_directory(tmp_path / "v3", runs, stalls, runs_schema=plain["runs"],
                           stalls_schema=plain["stalls"])  # fmt: skip


def test_v3_best_loss_and_minimum_above_best(tmp_path):
    res = A.load(_v3_dir(tmp_path))
    assert res.schema_version == 3
    df = res.frame().set_index("run_id")
    assert df.loc[["a0", "a1"], "best_loss"].tolist() == [0.2, 0.2]
    assert df.loc[["b0", "b1"], "best_loss"].tolist() == [0.3, 0.3]  # b0 diverged: left out
    assert df.loc["a0", "gap_to_best"] == pytest.approx(0.3) and df.loc["a1", "gap_to_best"] == 0
    s = res.stalls_frame(["run_id", "stall_index", "stall_class"])
    assert s.stall_class.tolist() == ["minimum", "minimum_above_best", "minimum", "minimum"]
    assert (
        df.loc["a0", "steps_in_minimum"] == 20 and df.loc["a0", "steps_in_minimum_above_best"] == 40
    )
    assert df.loc["a0", "time_in_minimum_above_best"] == 40.0
    assert df.loc["a0", "first_stall_class"] == "minimum"
    assert df.loc["a0", "longest_stall_class"] == "minimum_above_best"
    assert df.loc["a1", "steps_in_minimum_above_best"] == 0
    sh = A.time_shares(res, ["activation"], n_boot=0)
    assert "minimum_above_best" in sh and sh["minimum_above_best"].iloc[0] == pytest.approx(
        40 / 400)  # fmt: skip


def test_v2_directory_loads_with_v3_columns(tmp_path):
    runs = {"run_id": ["r0", "r1"], "problem": ["whitened"] * 2, "depth": [1, 1],
            "status": ["converged", "max_steps"], "steps": [10, 20], "max_steps": [20, 20],
            "final_loss": [1.0, 1.5], "global_min": [1.0, 1.0], "final_gap": [0.0, 0.5],
            "final_gap_rel": [0.0, 0.25], "time_unit": [0.5, 0.5]}  # fmt: skip
    out = write_directory(tmp_path / "v2", runs)
    res = A.load(out)
    assert res.schema_version == 2 and res.notes == []
    df = res.frame(["loss_floor", "gap_scale", "alpha", "path_activation_rate", "best_loss",
                    "gap_to_best", "steps_in_minimum_above_best"])  # fmt: skip
    assert df.loss_floor.tolist() == [1.0, 1.0]
    cols = ["gap_scale", "alpha", "path_activation_rate", "best_loss", "gap_to_best"]
    assert df[cols].isna().all().all()
    assert df.steps_in_minimum_above_best.tolist() == [0, 0]


def test_spec_doc_example_validates():
    text = (Path(__file__).resolve().parents[1] / "docs" / "spec.md").read_text()
    block = next(b for b in re.findall(r"```toml\n(.*?)```", text, re.S) if "relu-vs-linear" in b)
    spec = load_spec(block)
    # (linear, relu, tanh) + 2 leaky_relu alphas = 5 activations x 2 wd x 2 depths x 8 seeds
    assert spec.n_runs == 5 * 2 * 2 * 8


# -- independence measures per stall, and the report of nonlinear sweeps --------------------


@pytest.mark.slow
def test_probe_points_are_kept_per_stall(nl_compiled):
    from sweepengine import nonlinear_loss
    from sweepengine._layout import unflatten
    from sweepengine.nltraining import train_flat_nonlinear

    rng = np.random.default_rng(0)  # from small init: a plateau near W = 0 in each run
    X, Y = rng.standard_normal((3, 10)), rng.standard_normal((2, 10))
    dims = (3, 4, 4, 2)
    theta0 = 0.01 * rng.standard_normal((3, 12 + 16 + 8))
    kw = dict(activation="relu", dims=dims, lam_ref=1.0, seeds=[0, 1, 2])
    plain = train_flat_nonlinear(X, Y, theta0, "gd", 0.05, 3000, **kw)
    kept = train_flat_nonlinear(X, Y, theta0, "gd", 0.05, 3000, keep_probes=True, **kw)
    assert plain.probe_theta is None
    assert kept.probe_theta.shape == (3, kept.stall.max_stalls, theta0.shape[1])
    np.testing.assert_array_equal(plain.losses, kept.losses)  # keeping them changes nothing
    assert plain.stall_rows.tobytes() == kept.stall_rows.tobytes()  # bit for bit (NaN fields)
    st = kept.stalls
    assert st.run.size > 0
    for b, i, loss in zip(st.run, st.index, st.rows["loss"], strict=True):
        W = unflatten(kept.probe_theta[b, i], dims)  # the loss recorded at the probe step
        assert nonlinear_loss(W, X, Y, "relu") == pytest.approx(loss, rel=1e-12, abs=1e-15)
    n_rec = np.minimum(kept.runs["n_stalls"], kept.stall.max_stalls)
    for b in range(3):  # rows beyond the recorded stalls stay NaN
        assert np.isnan(kept.probe_theta[b, n_rec[b] :]).all()


@pytest.mark.slow
@pytest.mark.cluster
def test_stall_independence_columns(swept):
    _, outs, _ = swept
    runs = _frame(outs["two"])
    stalls = _frame(outs["two"], "stalls", ("run_id", "stall_index"))
    s = stalls.merge(runs[["run_id", "activation", "depth"]], on="run_id")
    relu = s.activation == "relu"
    assert relu.any()
    for c in ("path_activation_rate", "input_dependence"):
        v = s.loc[relu, c].to_numpy(float)
        assert np.isfinite(v).all() and ((v >= 0) & (v <= 1)).all(), c
        assert s.loc[~relu, c].isna().all(), c
    assert s.loc[relu & (s.depth == 1), "path_dependence_shared"].isna().all()
    assert s.loc[~relu, "path_dependence_disjoint"].isna().all()


@pytest.mark.slow
@pytest.mark.cluster
def test_report_on_a_nonlinear_sweep(swept):
    from tests.test_analysis import _check_report

    _, outs, _ = swept
    out = outs["two"]
    A.write_report(out, n_boot=100)
    summary = _check_report(out)
    assert {"nonlinear_classes", "nonlinear_time_to_target", "independence"} <= set(
        summary["figures"])  # fmt: skip
    # the sweep keeps curves: time to target of every net, to its configuration's best
    assert "Time to target of nonlinear runs" not in {s["figure"] for s in summary["skipped"]}
    page = (out / "report" / "index.html").read_text()
    for axis in ("depth", "activation", "weight decay"):
        assert f"<h3>Per {axis}</h3>" in page
    assert "runs with minimum above best" in page and "(linear runs)" in page
    assert "median time to target (best loss; L* for linear runs)" in page
    assert "Independence measures of relu" in page and "point-biserial" in page
    text = (out / "report" / "headline.txt").read_text()
    assert "By activation, runs with a strict-saddle stall" in text
    assert "By weight decay" in text
    assert set(summary["nonlinear"]) == {"activation", "weight_decay"}
    _check_in_chromium(out, len(summary["figures"]))


def _check_in_chromium(out, n_images):
    from tests.browser import chromium, inspect_page

    if chromium() is None:
        return
    got = inspect_page(out / "report" / "index.html")
    assert len(got["images"]) == n_images
    assert all(i["complete"] and i["naturalWidth"] > 0 for i in got["images"])
    assert got["errors"] == []


def _nl_dir(tmp_path, name="v3nl", activations=("linear", "relu"), with_measures=True):
    """A hand-made v3 directory: activations x weight decay (0, 0.1) x depth (1, 2) x 4
    seeds, one stall per run (relu: the measures at the probe point)."""
    rows, stalls = [], []
    i = 0
    for act in activations:
        for wd in (0.0, 0.1):
            for depth in (1, 2):
                for seed in range(4):
                    lin = act == "linear" and wd == 0
                    cls = ["strict_saddle", "minimum", "bad_saddle" if lin else "minimum",
                           "strict_saddle"][seed]  # fmt: skip
                    m = act == "relu" and with_measures
                    rid = f"r{i}"
                    i += 1
                    rows.append({
                        "run_id": rid, "problem": "whitened", "problem_params": "{}",
                        "d_x": 3, "d_y": 2, "depth": depth, "widths": [3] * depth,
                        "min_width": 3, "seed": seed, "init_scheme": "gaussian",
                        "init_scale": 0.01, "optimizer": "gd", "lr": 0.1,
                        "optimizer_params": "{}", "max_steps": 100,
                        "status": "converged" if lin else "max_steps", "steps": 100,
                        "final_loss": 0.1 * (1 + seed % 2) + depth, "time_unit": 1.0,
                        "global_min": 0.1 if lin else math.nan,
                        "loss_floor": 0.1 if lin else 0.0, "gap_scale": 2.0,
                        "steps_to_target": 90 if lin else None,
                        "time_to_target": 90.0 if lin else None, "n_stalls": 1,
                        "activation": act, "weight_decay": wd, "lam_ref": 1.0,
                        **{f"{u}_in_{c}": (40 if c == cls else 0) * (1.0 if u == "time" else 1)
                           for c in ("strict_saddle", "bad_saddle", "minimum", "unstable",
                                     "unresolved") for u in ("steps", "time")},
                        "first_stall_class": cls, "longest_stall_class": cls,
                        "path_activation_rate": 0.5 / depth if m else None,
                        "input_dependence": 0.1 * (seed + 1) if m else None,
                        "path_dependence_shared": 0.2 if m and depth == 2 else None,
                        "path_dependence_disjoint": 0.01 if m else None,
                    })  # fmt: skip
                    stalls.append({
                        "run_id": rid, "stall_index": 0, "start_step": 10, "end_step": 50,
                        "probe_step": 30, "start_time": 10.0, "end_time": 50.0,
                        "probe_time": 30.0, "loss": 1.0, "local_lam_min": -0.01,
                        "local_rel_lam_min": -0.01, "lam_min": -0.01, "rel_lam_min": -0.01,
                        "local_class": "strict_saddle", "stall_class": cls,
                        "critical_value": 0.5 + depth, "polish_converged": True,
                        "path_activation_rate": 0.4 / depth if m else None,
                        "input_dependence": 0.15 * (seed + 1) if m else None,
                        "path_dependence_shared": 0.3 if m and depth == 2 else None,
                        "path_dependence_disjoint": 0.02 if m else None,
                    })  # fmt: skip
    runs = {k: [r[k] for r in rows] for k in rows[0]}
    st = {k: [r[k] for r in stalls] for k in stalls[0]}
    plain = {s: pa.schema([pa.field(f.name, f.type) for f in sch])
             for s, sch in (("runs", RUNS_SCHEMA), ("stalls", STALLS_SCHEMA))}  # fmt: skip
    return write_directory(tmp_path / name, runs, st, runs_schema=plain["runs"],
                           stalls_schema=plain["stalls"])  # fmt: skip


def test_report_on_a_hand_made_v3_directory(tmp_path):
    from tests.test_analysis import _check_report

    out = _nl_dir(tmp_path)
    res = A.load(out)
    ind = A.tables.independence_summary(res, ["activation", "depth"])
    assert ind.activation.tolist() == ["relu", "relu"] and ind.n.tolist() == [8, 8]
    assert ind.path_activation_rate.tolist() == pytest.approx([0.5, 0.25])
    assert ind.stall_path_activation_rate.tolist() == pytest.approx([0.4, 0.2])
    assert ind.n_stalls.tolist() == [8, 8]
    summ, bins = A.tables.stall_prediction(res, "input_dependence")
    # relu runs: seeds 0 and 3 had a strict-saddle stall; input dependence 0.1 (seed + 1)
    x = np.tile(np.repeat([0.1, 0.2, 0.3, 0.4], 1), 4)
    y = np.tile([1.0, 0, 0, 1], 4)
    assert summ["n"] == 16 and summ["k"] == 8
    assert summ["r"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    assert summ["lo"] < summ["r"] < summ["hi"]
    assert bins.n.sum() == 16
    by = A.tables.stall_prediction_by(res, ["depth"], "input_dependence")
    assert by.depth.tolist() == sorted(set(by.depth)) and by.n.sum() == 16
    runs = A.tables.runs_frame(res, ["depth"], columns=["input_dependence", "status",
                                                        "steps_in_strict_saddle",
                                                        "steps_in_bad_saddle"])  # fmt: skip
    for row in by.itertuples():
        g = runs[(runs.depth == row.depth) & runs.input_dependence.notna()]
        yg = ((g.steps_in_strict_saddle + g.steps_in_bad_saddle) > 0).to_numpy(float)
        assert row.n == len(g) and row.k == yg.sum()
        assert row.r == pytest.approx(np.corrcoef(g.input_dependence, yg)[0, 1], abs=1e-12)
    A.write_report(out, n_boot=50)
    summary = _check_report(out)
    assert {"nonlinear_classes", "independence"} <= set(summary["figures"])
    page = (out / "report" / "index.html").read_text()
    assert "<h3>Per activation</h3>" in page and "<h3>Per weight decay</h3>" in page
    _check_in_chromium(out, len(summary["figures"]))


def test_report_without_relu_skips_the_independence_figure(tmp_path):
    from tests.test_analysis import _check_report

    out = _nl_dir(tmp_path, "tanh", activations=("linear", "tanh"))
    A.write_report(out, n_boot=0)
    summary = _check_report(out)
    assert "nonlinear_classes" in summary["figures"]
    why = {s["figure"]: s["why"] for s in summary["skipped"]}
    assert "relu" in why["Distance from the independence model"]
    # a v2-shaped stalls table (no measures) still renders
    out = _nl_dir(tmp_path, "nomeasures", with_measures=False)
    A.write_report(out, n_boot=0)
    _check_report(out)


# -- time to target of nonlinear runs: to the best loss of their configuration ---------------

# (run_id, activation, weight_decay, depth, max_steps, seed, status, steps, final_loss, curve
# every 10 steps from step 0, time_unit); gap_scale 2 and target_gap 0.01 everywhere, so the
# target lies 0.02 above the configuration's best final loss.
_INF = math.inf
TTB_RUNS = [
    # relu, no decay, depth 1: best 0.20 (r1), target 0.22
    ("r0", "relu", 0.0, 1, 100, 0, "max_steps", 100, 0.40,
     [2.0, 1.5, 1.0, 0.8, 0.6, 0.5, 0.45, 0.42, 0.40, 0.40, 0.40], 0.5),
    ("r1", "relu", 0.0, 1, 100, 1, "max_steps", 100, 0.20,
     [2.0, 1.8, 1.2, 0.7, 0.4, 0.3, 0.25, 0.215, 0.21, 0.205, 0.20], 0.5),  # reached at 70
    ("r2", "relu", 0.0, 1, 100, 2, "max_steps", 100, 0.60,  # dips below at 40, rises again
     [2.0, 1.0, 0.5, 0.3, 0.21, 0.3, 0.5, 0.6, 0.6, 0.6, 0.6], 0.5),
    ("r3", "relu", 0.0, 1, 100, 3, "diverged", 60, _INF,  # below at 20, then diverged
     [2.0, 1.0, 0.21, 0.5, 5.0, 100.0, _INF], 0.5),
    ("r4", "relu", 0.0, 1, 100, 4, "failed", 0, math.nan, [], math.nan),
    # tanh, decay 0.1, depth 2, runs of 95 steps (the final point is off the curve grid):
    # best 0.50 (t0), target 0.52
    ("t0", "tanh", 0.1, 2, 95, 0, "max_steps", 95, 0.50,
     [2.0, 1.6, 1.2, 0.9, 0.7, 0.6, 0.55, 0.525, 0.51, 0.505], 0.25),  # reached at 80
    ("t1", "tanh", 0.1, 2, 95, 1, "max_steps", 95, 0.515,  # only its final point is below
     [2.0, 1.9, 1.8, 1.5, 1.0, 0.8, 0.6, 0.55, 0.53, 0.525], 0.25),
    ("t2", "tanh", 0.1, 2, 95, 2, "max_steps", 95, 2.0, [2.0] * 10, 0.25),  # never: censored
    # deep linear runs: their time to target (to L*) as the trainer recorded it
    ("l0", "linear", 0.0, 1, 100, 0, "converged", 50, 0.1001, [2.0, 1.0, 0.5, 0.2, 0.15, 0.11],
     0.5),
    ("l1", "linear", 0.0, 1, 100, 1, "max_steps", 100, 0.9, [2.0] + [0.9] * 10, 0.5),
]  # fmt: skip
# a seed that does better than r1: relu's best becomes 0.10, its target 0.12
TTB_BETTER = ("r5", "relu", 0.0, 1, 100, 5, "max_steps", 100, 0.10,
              [2.0, 1.0, 0.5, 0.3, 0.2, 0.15, 0.13, 0.119, 0.11, 0.105, 0.10], 0.5)  # fmt: skip


def _ttb_columns(rows, curves=True):
    runs = {k: [] for k in ("run_id", "activation", "weight_decay", "depth", "max_steps", "seed",
                            "status", "steps", "final_loss", "time_unit")}  # fmt: skip
    pts = {"run_id": [], "step": [], "loss": []}
    for rid, act, wd, depth, ms, seed, status, steps, final, curve, tu in rows:
        for k, v in zip(runs, (rid, act, wd, depth, ms, seed, status, steps, final, tu),
                        strict=True):  # fmt: skip
            runs[k].append(v)
        pts["run_id"] += [rid] * len(curve)
        pts["step"] += list(range(0, 10 * len(curve), 10))
        pts["loss"] += curve
    n = len(rows)
    lin = [a == "linear" and w == 0 for a, w in zip(runs["activation"], runs["weight_decay"],
                                                    strict=True)]  # fmt: skip
    stt = [50 if r == "l0" else None for r in runs["run_id"]]
    runs.update({
        "problem": ["whitened"] * n, "problem_params": ["{}"] * n, "d_x": [3] * n,
        "d_y": [2] * n, "widths": [[3] * d for d in runs["depth"]],
        "min_width": [3] * n, "init_scheme": ["gaussian"] * n, "init_scale": [0.1] * n,
        "optimizer": ["gd"] * n, "lr": [0.1] * n, "optimizer_params": ["{}"] * n,
        "global_min": [0.1 if x else math.nan for x in lin],
        "loss_floor": [0.1 if x else 0.0 for x in lin], "gap_scale": [2.0] * n,
        "target_gap": [0.01] * n, "steps_to_target": stt,
        "time_to_target": [None if s is None else s * t for s, t in
                           zip(stt, runs["time_unit"], strict=True)],
        "n_stalls": [0] * n, "lam_ref": [1.0] * n,
        **{f"{u}_in_{c}": [0] * n for c in ("strict_saddle", "bad_saddle", "minimum",
                                             "unstable", "unresolved") for u in ("steps", "time")},
    })  # fmt: skip
    return runs, (pts if curves else None)


def _ttb_dir(path, rows=TTB_RUNS, curves=True):
    runs, pts = _ttb_columns(rows, curves)
    plain = pa.schema([pa.field(f.name, f.type) for f in RUNS_SCHEMA])
    return write_directory(path, runs, None, pts, parts=2, runs_schema=plain)


def _naive_time_to_best(rows) -> dict[str, float | None]:
    """The definition, run by run: best = the smallest final loss of the configuration's
    runs that neither diverged nor failed, target = best + target_gap x gap_scale, the
    first recorded point (curve points by step, then the final point) at or below it,
    times the run's time unit; deep linear runs keep their time to target."""
    out = {}
    for rid, act, wd, depth, ms, _, _, steps, final, curve, tu in rows:
        if act == "linear" and wd == 0:
            out[rid] = 25.0 if rid == "l0" else None
            continue
        finals = [r[8] for r in rows if r[1:5] == (act, wd, depth, ms)
                  and r[6] in ("converged", "max_steps") and math.isfinite(r[8])]  # fmt: skip
        target = min(finals) + 0.01 * 2.0
        points = [(10 * i, loss) for i, loss in enumerate(curve)] + [(steps, final)]
        hit = next((s for s, loss in points if loss <= target), None) if curve else None
        out[rid] = None if hit is None else hit * tu
    return out


def _naive_km_median(times, totals) -> float:
    """Product-limit median: runs not reached (None) censored at their training time."""
    d = [(t, True) if t is not None else (T, False) for t, T in zip(times, totals, strict=True)]
    s = 1.0
    for t in sorted({t for t, e in d if e}):
        at_risk = sum(1 for u, _ in d if u >= t)
        s *= 1 - sum(1 for u, e in d if e and u == t) / at_risk
        if s <= 0.5:
            return t
    return math.nan


def test_time_to_best_against_the_curves_by_hand(tmp_path):
    res = A.load(_ttb_dir(tmp_path / "ttb"))
    assert res.notes == [] and res.has_curves
    df = res.frame(["run_id", "best_loss", "best_target", "steps_to_best",
                    "time_to_best"]).set_index("run_id")  # fmt: skip
    naive = _naive_time_to_best(TTB_RUNS)
    got = {r: (None if pd.isna(v) else v) for r, v in df["time_to_best"].items()}
    assert got == naive
    # the cases the rows were built for, spelled out
    assert got["r1"] == 70 * 0.5 and got["r0"] is None
    assert got["r2"] == 40 * 0.5  # the first passage counts, though the loss rose again
    assert got["r3"] == 20 * 0.5  # reached, then diverged (the trainer's rule for L*)
    assert got["r4"] is None  # failed
    assert got["t0"] == 80 * 0.25 and got["t1"] == 95 * 0.25  # t1: at its final point
    assert got["t2"] is None and got["l0"] == 25.0 and got["l1"] is None
    assert df.loc["r1", "best_target"] == 0.20 + 0.01 * 2.0
    assert pd.isna(df.loc["l0", "best_target"]) and df.loc["t1", "steps_to_best"] == 95
    # grouped: exact quantiles over the runs that reached it, KM median censored at T
    t = A.time_to_best(res, ["activation", "weight_decay", "depth"])
    by = {row.activation: row for row in t.itertuples()}
    relu = [naive[r] for r in ("r0", "r1", "r2", "r3")]
    assert (by["relu"].n, by["relu"].n_reached) == (4, 3)  # the failed run is not analysed
    assert by["relu"].median == statistics.median([v for v in relu if v is not None])
    assert by["relu"].km_median == _naive_km_median(relu, [50.0, 50.0, 50.0, 30.0])
    tanh = [naive[r] for r in ("t0", "t1", "t2")]
    assert by["tanh"].n_reached == 2 and by["tanh"].median == statistics.median([20.0, 23.75])
    assert by["tanh"].km_median == _naive_km_median(tanh, [23.75] * 3) == 23.75
    assert by["linear"].median == 25.0 and by["linear"].km_median == 25.0  # S(25) = 1/2
    # the trainer's time to target (from the floor 0) is untouched and separate
    tt = A.time_to_target(res, ["activation"], split=None)
    assert tt.set_index("activation").loc["relu", "n_reached"] == 0


def test_time_to_best_follows_a_better_seed(tmp_path):
    out = _ttb_dir(tmp_path / "grow")
    before = A.load(out).frame(["run_id", "time_to_best"]).set_index("run_id")["time_to_best"]
    assert before["r1"] == 35.0
    # a seed that does better arrives (another unit, as a growing sweep writes it)
    more = _ttb_dir(tmp_path / "more", rows=[TTB_BETTER])
    for table in ("runs", "curves"):
        (more / table / "part-00000.parquet").rename(out / table / "part-late.parquet")
    res = A.load(out)
    df = res.frame(["run_id", "best_loss", "time_to_best"]).set_index("run_id")
    assert (df.loc[["r0", "r1", "r2", "r3", "r5"], "best_loss"] == 0.10).all()
    naive = _naive_time_to_best([*TTB_RUNS, TTB_BETTER])
    assert {r: (None if pd.isna(v) else v) for r, v in df["time_to_best"].items()} == naive
    assert naive["r5"] == 70 * 0.5 and naive["r1"] is None and naive["r2"] is None
    assert naive["t0"] == 20.0  # other configurations keep theirs
    t = A.time_to_best(res, ["activation"]).set_index("activation")
    assert t.loc["relu", "n_reached"] == 1 and t.loc["relu", "median"] == 35.0


def test_time_to_best_without_curves(tmp_path):
    res = A.load(_ttb_dir(tmp_path / "nocurves", curves=False))
    assert not res.has_curves
    assert any("no loss curve" in n and n.startswith("7 nonlinear") for n in res.notes)
    df = res.frame(["run_id", "time_to_best"]).set_index("run_id")["time_to_best"]
    assert df.drop(["l0"]).isna().all() and df["l0"] == 25.0
    t = A.time_to_best(res, ["activation"])  # nonlinear runs unknown: left out
    assert t["activation"].tolist() == ["linear"] and t["n"].tolist() == [2]


def test_time_to_best_sql_matches_the_helper(tmp_path):
    from tests.test_analysis import _queries, _sql

    out = _ttb_dir(tmp_path / "sql")
    more = _ttb_dir(tmp_path / "more", rows=[TTB_BETTER])
    for table in ("runs", "curves"):
        (more / table / "part-00000.parquet").rename(out / table / "part-late.parquet")
    got = _sql(_queries()["time_to_best"], out)
    ref = A.time_to_best(A.load(out), ["depth", "weight_decay", "activation"],
                         q=(0.25, 0.5, 0.75))  # fmt: skip
    assert got["activation"].tolist() == ref["activation"].tolist()
    assert got["n"].tolist() == ref["n"].tolist()
    assert got["n_reached"].tolist() == ref["n_reached"].tolist()
    for c in ("q25", "median", "q75"):
        assert got[c].to_numpy(float) == pytest.approx(ref[c].to_numpy(float), rel=1e-12,
                                                       nan_ok=True)  # fmt: skip


def test_report_compares_time_to_best(tmp_path):
    from sweepengine.analysis.report import NL_TIME_TO_TARGET, TTB_COLUMN
    from tests.test_analysis import _check_report

    out = _ttb_dir(tmp_path / "rep")
    A.write_report(out, n_boot=0)
    summary = _check_report(out)
    assert "nonlinear_time_to_target" in summary["figures"]
    assert "Time to target of nonlinear runs" not in {s["figure"] for s in summary["skipped"]}
    page = (out / "report" / "index.html").read_text()
    assert TTB_COLUMN in page and "Time to target per depth, weight decay and activation" in page
    ttb = summary["nonlinear"]["activation"]["time_to_best"]
    assert ttb["relu"]["reached"] == 3 and ttb["tanh"]["median"] == pytest.approx(21.875)
    _check_in_chromium(out, len(summary["figures"]))
    # without curves: the deep linear runs only, and the report says why
    out = _ttb_dir(tmp_path / "rep-nocurves", curves=False)
    A.write_report(out, n_boot=0)
    summary = _check_report(out)
    why = {s["figure"]: s["why"] for s in summary["skipped"]}
    assert why["Time to target of nonlinear runs"] == NL_TIME_TO_TARGET
    assert "record_every = 0" in why["Time to target by activation and weight decay"]
    assert "median time to target (linear runs)" in (out / "report" / "index.html").read_text()
