"""What one Dask task does: train one chunk of same-shape runs, return Arrow tables.

Runs in a worker process (or in-process for the local path); the same code
trains every chunk whichever way it is scheduled. Problem data and the
per-architecture reference quantities are cached per process, so a worker
builds each data set once. A chunk that raises is reported as rows with status
``failed`` and the error text, never as a crashed sweep.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import socket
import time
import traceback
from collections.abc import Sequence

import numba
import numpy as np
import pyarrow as pa

from .init import init_weights
from .kernels import lockstep
from .problems import make_problem
from .schema import (
    RUNS_SCHEMA,
    STALLS_SCHEMA,
    curves_table,
    plain_rows_table,
    runs_table,
    stalls_table,
)
from .spec import Run, package_version
from .stats import Stats
from .train import reference, train_batch

_COMPILE_S: float | None = None  # JIT compile / cache load time paid by this process


@dataclasses.dataclass(frozen=True)
class ChunkResult:
    chunk_id: str
    runs: pa.Table
    stalls: pa.Table
    curves: pa.Table | None
    wall_s: float


@functools.lru_cache(maxsize=16)
def _data(problem: str, params_json: str) -> tuple[np.ndarray, np.ndarray, Stats]:
    X, Y = make_problem(problem, json.loads(params_json))
    return X, Y, Stats.from_data(X, Y)


@functools.lru_cache(maxsize=256)
def _reference(problem: str, params_json: str, dims: tuple[int, ...]):
    return reference(_data(problem, params_json)[2], dims)


def warm_up() -> float:
    """Compile (or load from the on-disk cache) the trainer once per process; seconds taken.

    Every kernel has one type signature whatever the architecture, so tiny calls
    cover all later chunks: a single run (per-run driver) and a batch of
    ``lockstep.MIN_BATCH`` narrow runs (lock-step driver).
    """
    global _COMPILE_S
    if _COMPILE_S is None:
        t = time.perf_counter()
        X = np.array([[1.0, 0.0], [0.0, 1.0]])
        W = [np.eye(2) * 0.1, np.eye(2) * 0.1]
        for B in (1, lockstep.MIN_BATCH):
            train_batch(X, X, [W] * B, "gd", 0.1, 20, threads=1)
        _COMPILE_S = time.perf_counter() - t
        return _COMPILE_S
    return 0.0


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return socket.gethostname()


def _threads() -> int:
    """Numba threads for one chunk: 1 inside a Dask worker (a worker with T threads
    already runs T chunks at once, so workers x threads <= cores holds), else all."""
    try:
        from distributed import get_worker

        get_worker()
        return 1
    except (ImportError, ValueError):
        return numba.get_num_threads()


def _base_row(run: Run, sweep: str, chunk_id: str, params_json: str | None = None) -> dict:
    hidden = list(run.hidden)
    return {
        "run_id": run.run_id,
        "sweep": sweep,
        "chunk_id": chunk_id,
        "problem": run.problem,
        "problem_params": run.problem_params if params_json is None else params_json,
        "d_x": run.dims[0],
        "d_y": run.dims[-1],
        "depth": run.depth,
        "widths": hidden,
        "min_width": min(hidden) if hidden else min(run.dims[0], run.dims[-1]),
        "n_params": sum(a * b for a, b in zip(run.dims[1:], run.dims[:-1], strict=True)),
        "seed": run.seed,
        "init_scheme": run.init_scheme,
        "init_scale": run.init_scale,
        "optimizer": run.optimizer.name,
        "lr": run.optimizer.lr,
        "optimizer_params": json.dumps(dict(run.optimizer.params), sort_keys=True),
        "max_steps": run.max_steps,
        "target_gap": run.target_gap,
        "sweepengine_version": package_version(),
    }


def train_chunk(chunk_id: str, runs: Sequence[Run], sweep: str) -> ChunkResult:
    """Train ``runs`` (one shape_key) in one batched compiled call."""
    t0 = time.perf_counter()
    compile_s = warm_up()
    worker = _worker_name()
    run0 = runs[0]
    params_json = json.dumps(run0.problem_params, sort_keys=True)
    rows, stall_rows, curve_parts = [], [], []
    try:
        X, Y, _ = _data(run0.problem, params_json)
        ref = _reference(run0.problem, params_json, run0.dims)
        W0 = [init_weights(r.dims, r.init_scheme, r.init_scale, r.init_seed) for r in runs]
        record_every = run0.record_every or run0.max_steps
        results = train_batch(
            X, Y, W0, [r.optimizer for r in runs], max_steps=run0.max_steps,
            seeds=[r.rng_seed for r in runs], record_every=record_every,
            target_gap=run0.target_gap, stall=run0.stall, threads=_threads(), ref=ref,
        )  # fmt: skip
    except Exception as e:  # a failed chunk is an outcome: record it on every run
        err = "".join(traceback.format_exception_only(e)).strip()
        wall = time.perf_counter() - t0
        for r in runs:
            rows.append(
                _failed_row(
                    r, sweep, chunk_id, err, wall / len(runs), compile_s / len(runs), worker
                )
            )
        return ChunkResult(chunk_id, runs_table(rows), stalls_table([]), None, wall)
    wall = time.perf_counter() - t0
    share = wall / len(runs)
    for r, res in zip(runs, results, strict=True):
        by_class = {"strict_saddle": 0, "bad_saddle": 0, "minimum": 0}
        for i, st in enumerate(res.stalls):
            by_class[st.stall_class] += st.length
            stall_rows.append({
                "run_id": r.run_id, "stall_index": i, "start_step": st.start,
                "end_step": st.end, "probe_step": st.probe_step, "loss": st.loss,
                "gap": st.gap, "gap_rel": st.gap_rel, "critical_value": st.critical_value,
                "critical_rank": st.critical_rank, "min_grad_norm": st.min_grad_norm,
                "lam_min": st.lam_min, "lam_max": st.lam_max, "lam_min_err": st.err_min,
                "lam_max_err": st.err_max, "lanczos_iters": st.lanczos_iters,
                "rel_lam_min": st.rel_lam_min, "stall_class": st.stall_class,
            })  # fmt: skip
        rows.append({
            **_base_row(r, sweep, chunk_id, params_json),
            "status": res.status, "error": None, "steps": res.steps,
            "final_loss": res.final_loss, "global_min": res.global_minimum,
            "final_gap": res.final_gap, "final_gap_rel": res.final_gap_rel,
            "steps_to_target": res.steps_to_target, "n_stalls": res.n_stalls,
            "steps_in_strict_saddle": by_class["strict_saddle"],
            "steps_in_bad_saddle": by_class["bad_saddle"],
            "steps_in_minimum": by_class["minimum"],
            "final_grad_norm": res.grad_norm,
            "final_lam_min": None if np.isnan(res.lam_min) else res.lam_min,
            "final_lam_max": None if np.isnan(res.lam_max) else res.lam_max,
            "lam_ref": res.lam_ref, "kicks": res.kicks,
            "wall_time_s": share, "compile_time_s": compile_s / len(runs), "worker": worker,
        })  # fmt: skip
        if r.record_every:
            keep = ~np.isnan(res.losses)
            curve_parts.append((r.run_id, res.loss_steps[keep], res.losses[keep]))
    curves = None
    if curve_parts:
        ids = np.concatenate([np.full(len(s), rid, dtype=object) for rid, s, _ in curve_parts])
        curves = curves_table(
            ids, np.concatenate([s for _, s, _ in curve_parts]),
            np.concatenate([v for _, _, v in curve_parts]),
        )  # fmt: skip
    runs_t = plain_rows_table(rows, RUNS_SCHEMA)
    stalls_t = plain_rows_table(stall_rows, STALLS_SCHEMA)
    return ChunkResult(chunk_id, runs_t, stalls_t, curves, wall)


def _failed_row(run, sweep, chunk_id, err, share, compile_s, worker) -> dict:
    nan = float("nan")
    return {
        **_base_row(run, sweep, chunk_id),
        "status": "failed", "error": err, "steps": 0, "final_loss": nan, "global_min": nan,
        "final_gap": nan, "final_gap_rel": nan, "steps_to_target": None, "n_stalls": 0,
        "steps_in_strict_saddle": 0, "steps_in_bad_saddle": 0, "steps_in_minimum": 0,
        "final_grad_norm": nan, "lam_ref": nan, "kicks": 0, "wall_time_s": share,
        "compile_time_s": compile_s, "worker": worker,
    }  # fmt: skip
