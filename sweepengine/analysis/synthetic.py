"""A synthetic version-2 results directory with realistic distributions (benchmarks, demos).

Nothing is trained: every column is drawn, vectorised, from a small generative
model of what the sweeps measure. Runs cycle through a grid (depth 1..4, width 4
and 8, init scale 1e-3 / 1e-2 / 1e-1, GD and momentum) on a whitened problem
with singular values s = (3, 2, 1, 0.5), l_i = s_i^2. A run learns the modes one
by one (Saxe et al. 2014); before learning mode j it sits on the plateau of
S = {0..j-1}, level 1/2 (yy - sum_{i<j} l_i). The time to target follows Saxe's law
(a^-(K-2) / (K-2) for K >= 3, log(1/a) for K = 2) times log-normal noise, so the
analysis should recover the slopes -(K-2). Stall classes: bad saddles for H >= 2,
strict saddles for H = 1, a few ``unstable``/``unresolved``; runs that hit the
step budget are censored inside their last stall.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from .v2 import write_directory

__all__ = ["synthetic_directory"]

_S = np.array([3.0, 2.0, 1.0, 0.5])
_L = _S**2
_NOISE = 1.0  # yy = sum l + 2 * noise-loss, so L* = _NOISE


def synthetic_directory(
    out: str | os.PathLike, n_runs: int, *, seed: int = 0, curves: int = 0, parts: int = 1
) -> Path:
    """Write ``n_runs`` synthetic runs (and their stalls) under ``out``; returns ``out``.

    ``curves`` runs (the first ones) also get a loss curve (one point per 50 steps).
    """
    rng = np.random.default_rng(seed)
    n = int(n_runs)
    i = np.arange(n)
    depths = np.array([1, 2, 3, 4])
    widths = np.array([4, 8])
    scales = np.array([1e-3, 1e-2, 1e-1])
    opts = np.array(["gd", "momentum"])
    g = i
    depth = depths[g % 4]
    g = g // 4
    width = widths[g % 2]
    g = g // 2
    scale = scales[g % 3]
    g = g // 3
    opt = opts[g % 2]
    seed_col = g // 2
    k_layers = depth + 1
    lr = np.full(n, 0.05)
    eff = np.where(opt == "momentum", lr / (1 - 0.9), lr)
    lam_ref = k_layers * _S[0] ** (2 * (k_layers - 1) / k_layers)  # balanced-minimum scale
    time_unit = lam_ref * eff
    a = scale * np.sqrt(width)
    plateau = np.where(
        k_layers >= 3,
        a ** (-(k_layers - 2.0)) / np.maximum(k_layers - 2.0, 1.0),
        np.log(1 / a),
    )
    t_target = 20.0 * plateau / _S[-1] * rng.lognormal(0.0, 0.25, n) + 100.0
    max_steps = np.full(n, 100_000)
    steps_needed = np.ceil(t_target / time_unit).astype(np.int64)
    u = rng.random(n)
    status = np.where(steps_needed <= max_steps, "converged", "max_steps").astype(object)
    status[u < 0.005] = "diverged"
    status[u > 0.999] = "failed"
    steps = np.where(status == "converged", steps_needed, max_steps)
    diverged = status == "diverged"
    steps[diverged] = rng.integers(5, 200, diverged.sum())
    steps[status == "failed"] = 0

    # stalls: one plateau before each mode, the plateau before mode j taking share w_j
    n_modes = 4
    has = (status != "failed") & ~diverged
    yy = _L.sum() + 2 * _NOISE
    run_ids = np.char.add("r", np.char.zfill(np.arange(n).astype(str), 9)).astype(object)
    st_rows = []
    tot = steps.astype(float)
    cls_time = {c: np.zeros(n) for c in ("bad_saddle", "strict_saddle", "minimum",
                                         "unstable", "unresolved")}  # fmt: skip
    cls_steps = {c: np.zeros(n, dtype=np.int64) for c in cls_time}
    first_cls = np.full(n, None, dtype=object)
    longest_cls = np.full(n, None, dtype=object)
    longest_len = np.zeros(n)
    reached = status == "converged"
    n_st = np.where(has, np.where(reached, n_modes, rng.integers(1, n_modes + 1, n)), 0)
    # segment shares: descent before stall 0, stall 0, descent, stall 1, ..., final descent
    seg = rng.dirichlet(np.tile([1.0, 3.0], n_modes + 1)[: 2 * n_modes + 1], n)
    bounds = np.floor(tot[:, None] * np.cumsum(seg, axis=1)).astype(np.int64)
    for j in range(n_modes):
        start = bounds[:, 2 * j]
        last = (j == n_st - 1) & ~reached
        end = np.where(last, steps, bounds[:, 2 * j + 1])
        act = (j < n_st) & (end > start)
        v = rng.random(n)
        cls = np.where(depth >= 2, "bad_saddle", "strict_saddle").astype(object)
        cls[v < 0.04] = "strict_saddle"
        cls[(v > 0.96) & (v < 0.98)] = "unstable"
        cls[v > 0.98] = "unresolved"
        cls[(j == 0) & (depth >= 2) & (v < 0.02)] = "minimum"
        idx = np.nonzero(act)[0]
        if idx.size == 0:
            continue
        dur = (end - start)[idx]
        for c in cls_time:
            m = cls[idx] == c
            cls_steps[c][idx[m]] += dur[m]
            cls_time[c][idx[m]] += dur[m] * time_unit[idx[m]]
        first_cls[idx[first_cls[idx] == None]] = cls[idx][first_cls[idx] == None]  # noqa: E711
        longer = dur > longest_len[idx]
        longest_cls[idx[longer]] = cls[idx][longer]
        longest_len[idx[longer]] = dur[longer]
        level = 0.5 * (yy - _L[:j].sum())
        kk = k_layers[idx]
        rel_local = np.where(
            cls[idx] == "bad_saddle",
            -(a[idx] ** (kk - 2.0)) * rng.uniform(0.1, 1.0, idx.size),
            -rng.uniform(0.01, 0.05, idx.size),
        )
        rel_pol = np.where(
            cls[idx] == "bad_saddle", -rng.uniform(0, 1e-7, idx.size), -0.03 * np.ones(idx.size)
        )
        rel_pol = np.where(cls[idx] == "minimum", 0.0, rel_pol)
        conv = cls[idx] != "unresolved"
        st_rows.append({
            "run_id": run_ids[idx], "stall_index": np.full(idx.size, j, np.int32),
            "start_step": start[idx], "end_step": end[idx],
            "probe_step": (start[idx] + end[idx]) // 2,
            "start_time": start[idx] * time_unit[idx], "end_time": end[idx] * time_unit[idx],
            "probe_time": (start[idx] + end[idx]) // 2 * time_unit[idx],
            "loss": np.full(idx.size, level) * (1 + 1e-4 * rng.random(idx.size)),
            "gap": np.full(idx.size, level - _NOISE),
            "gap_rel": np.full(idx.size, (level - _NOISE) / (0.5 * yy - _NOISE)),
            "modes": pa.ListArray.from_arrays(
                pa.array(np.arange(idx.size + 1, dtype=np.int32) * j),
                pa.array(np.tile(np.arange(j, dtype=np.int32), idx.size)),
            ),
            "critical_rank": np.full(idx.size, j, np.int32),
            "critical_value": np.full(idx.size, level),
            "nearest_value": np.full(idx.size, level),
            "nearest_rank": np.full(idx.size, j, np.int32),
            "min_grad_norm": rng.lognormal(-8, 1, idx.size),
            "local_lam_min": rel_local * lam_ref[idx], "local_lam_max": lam_ref[idx] * 0.5,
            "local_rel_lam_min": rel_local,
            "local_class": np.where(rel_local < -1e-3, "strict_saddle", "bad_saddle"),
            "lanczos_iters": np.full(idx.size, 20, np.int32),
            "polish_converged": conv,
            "polish_iters": rng.integers(3, 21, idx.size).astype(np.int32),
            "polish_grad_rel": np.where(conv, 1e-13, 1e-3),
            "polish_distance": rng.lognormal(-6, 1, idx.size),
            "polish_loss": np.full(idx.size, level),
            "lam_min": rel_pol * lam_ref[idx], "lam_max": lam_ref[idx] * 0.5,
            "rel_lam_min": rel_pol,
            "kawaguchi_rank": np.minimum(j, width[idx]).astype(np.int32),
            "stall_class": cls[idx],
        })  # fmt: skip
    stalls: dict = {}
    for k in st_rows[0] if st_rows else ():
        if k == "modes":
            stalls[k] = pa.concat_arrays([r[k] for r in st_rows])
        else:
            stalls[k] = np.concatenate([np.asarray(r[k]) for r in st_rows])
    final_gap_rel = np.where(reached, 1e-7, rng.uniform(1e-5, 0.3, n))
    final_gap_rel[diverged] = np.inf
    runs = {
        "run_id": run_ids, "sweep": np.full(n, "synthetic"), "chunk_id": np.full(n, "c0"),
        "problem": np.full(n, "whitened"), "problem_params": np.full(n, "{}"),
        "d_x": np.full(n, 6, np.int32), "d_y": np.full(n, 4, np.int32),
        "depth": depth.astype(np.int32),
        "widths": pa.ListArray.from_arrays(
            pa.array(np.concatenate([[0], np.cumsum(depth)]).astype(np.int32)),
            pa.array(np.repeat(width, depth).astype(np.int32)),
        ),
        "min_width": width.astype(np.int32), "n_params": (width * 10).astype(np.int64),
        "seed": seed_col.astype(np.int64), "init_scheme": np.full(n, "gaussian"),
        "init_scale": scale, "optimizer": opt, "lr": lr,
        "optimizer_params": np.where(opt == "momentum", '{"beta": 0.9}', "{}"),
        "max_steps": max_steps, "status": status.astype(str),
        "steps": steps, "final_loss": _NOISE + final_gap_rel * (0.5 * yy - _NOISE),
        "global_min": np.full(n, _NOISE), "final_gap": final_gap_rel * (0.5 * yy - _NOISE),
        "final_gap_rel": final_gap_rel, "target_gap": np.full(n, 1e-6),
        "steps_to_target": np.where(reached, steps, None),
        "n_stalls": n_st.astype(np.int32),
        **{f"steps_in_{c}": v for c, v in cls_steps.items()},
        "final_grad_norm": rng.lognormal(-10, 1, n), "lam_ref": lam_ref,
        "kicks": np.zeros(n, np.int64), "wall_time_s": rng.lognormal(-6, 0.3, n),
        "compile_time_s": np.zeros(n), "worker": np.full(n, "w0"),
        "sweepengine_version": np.full(n, "synthetic"),
        "time_unit": time_unit,
        "time_to_target": np.where(reached, steps * time_unit, np.nan),
        **{f"time_in_{c}": v for c, v in cls_time.items()},
        "first_stall_class": first_cls, "longest_stall_class": longest_cls,
        "activation": np.full(n, "linear"), "weight_decay": np.zeros(n),
    }  # fmt: skip
    runs["time_to_target"] = pa.array(steps * time_unit, mask=~reached)
    runs["steps_to_target"] = pa.array(steps, mask=~reached)
    runs["error"] = pa.array(np.full(n, "synthetic failure"), mask=status != "failed")
    for k in ("first_stall_class", "longest_stall_class"):
        v = runs[k]
        none = np.equal(v, None)
        runs[k] = pa.array(np.where(none, "", v).astype(str), mask=none)
    curve_cols = None
    if curves:
        curve_cols = _curves(runs, stalls, min(curves, n), yy)
    return write_directory(out, runs, stalls, curve_cols, parts=parts)


def _curves(runs, stalls, n_curves, yy):
    """Piecewise loss curves: flat at each stall's level, geometric descent between."""
    ids, step_col, loss_col = [], [], []
    by_run: dict[str, list[int]] = {}
    for k, rid in enumerate(stalls.get("run_id", [])):
        by_run.setdefault(rid, []).append(k)
    for r in range(n_curves):
        rid = runs["run_id"][r]
        total = int(runs["steps"][r])
        if total <= 0:
            continue
        pts = np.arange(0, total + 1, 50)
        level = np.full(pts.size, 0.5 * yy)
        lstar = runs["global_min"][r]
        prev_end, prev_level = 0, 0.5 * yy
        for k in sorted(by_run.get(rid, []), key=lambda k: stalls["start_step"][k]):
            s0, s1 = stalls["start_step"][k], stalls["end_step"][k]
            lv = stalls["critical_value"][k]
            m = (pts >= prev_end) & (pts < s0)
            if m.any():
                frac = (pts[m] - prev_end) / max(s0 - prev_end, 1)
                level[m] = prev_level + (lv - prev_level) * (1 - np.exp(-6 * frac)) / (
                    1 - np.exp(-6)
                )
            level[(pts >= s0) & (pts <= s1)] = lv
            prev_end, prev_level = s1, lv
        m = pts > prev_end
        frac = (pts[m] - prev_end) / max(total - prev_end, 1)
        level[m] = lstar + (prev_level - lstar) * np.exp(-12 * frac)
        ids.extend([rid] * pts.size)
        step_col.extend(pts.tolist())
        loss_col.extend(level.tolist())
    return {"run_id": ids, "step": step_col, "loss": loss_col}
