"""What one Dask task does: train one chunk of same-shape runs, write or return it.

The task, :func:`train_range`, gets the sweep's spec (pickled once by the client,
unpickled once per worker process and spec) and a range of run indices; it builds
the runs itself (``Spec.runs``, run ids included), trains them
(:func:`train_chunk`: Arrow tables) and, when it sees the client's results
directory (a shared file system: the lock file holds the client's token), writes
the chunk's Parquet parts there itself (``store.write_unit``, the protocol of
``Store.write_chunk``) and returns a small summary; otherwise it returns the
tables for the client to write. Runs in a worker process (or in-process for
tests); the same code trains every chunk whichever way it is scheduled. Problem data and the
per-architecture reference quantities are cached per process, so a worker
builds each data set once. A chunk that raises is reported as rows with status
``failed`` and the error text, never as a crashed sweep; the scheduler
(``schedule.run_sweep``) retries it or records the failure, and never stores
those rows as results.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import pickle
import signal
import socket
import threading
import time
import traceback
from collections.abc import Sequence

import numba
import numpy as np
import pyarrow as pa

from .. import _version
from .. import independence as indep
from .._layout import n_params, unflatten
from .._version import package_version
from ..initialization import init_batch
from ..kernels import chain as kc
from ..kernels import hvp as khvp
from ..kernels import lockstep
from ..kernels import objective as ko
from ..kernels import polish as kpol
from ..kernels import spectrum as kspec
from ..kernels import trainer as kt
from ..nltraining import train_flat_nonlinear
from ..problems import make_problem
from ..stalls import STALL_CLASSES
from ..stats import Stats
from ..store import lock_token, write_unit
from ..store.schema import (
    RUNS_SCHEMA,
    STALLS_SCHEMA,
    columns_table,
    curves_table,
    stalls_table,
)
from ..training import Reference, driver_kind, reference, train_flat
from .compile_lock import DRIVERS, LINEAR_UNITS, NONLINEAR, UNIT_NEEDS, compile_units, units_for
from .notices import COMPILE_TOPIC, IGNORE_SIGINT
from .spec import Run


class _QuietShutdown(logging.Filter):
    """Drops "failed during get data" records whose cause is a closed comm: the client of
    a private embedded cluster went away (Ctrl-C, or the end of the sweep) while a
    result was on its way to it. Nothing is lost (results count once written), and the
    traceback would read as a crash on the terminal the user just interrupted."""

    def filter(self, record: logging.LogRecord) -> bool:
        err = record.exc_info[1] if record.exc_info else None
        closed = err is not None and type(err).__name__ in ("CommClosedError", "StreamClosedError")
        return not (closed and str(record.msg).startswith("failed during get data"))


# A worker of the embedded cluster (``schedule.connect``) shares the terminal's process
# group: Ctrl-C is for its client, which stops the cluster cleanly (``cli``).
# (Closing it mid-task cancels the running task: a warning per worker, not worth showing.)
if os.environ.get(IGNORE_SIGINT) == "1" and threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("distributed.worker.state_machine").setLevel(logging.ERROR)
    logging.getLogger("distributed.worker").addFilter(_QuietShutdown())

# What a sweep worker's cold warm_up costs on an idle 2-core machine (results/coldstart.md:
# 33.2 s with two workers sharing the units, 54.9 s alone), for the "compiling kernels,
# one-time, about N s" notice; a warm cache loads in under a second.
COLD_COMPILE_S = 35
# ... and every linear unit in one process (``sweepengine warmup``): 58.9 s there
WARMUP_ALL_S = 60
#: ... and the nonlinear trainer's unit on top (``warmup --nonlinear``; results/compile.md)
WARMUP_NONLINEAR_S = 50
NOTICE_AFTER_S = 1.0  # a warm-up still running after this long is compiling, not loading


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


# Compile units (each compiled by one process of a machine at a time, see
# ``compile_lock.compile_units``). A chunk needs the driver its batch uses
# (``training.driver_kind``: "lockstep" or "per_run"), the reference kernels and the
# stall examination, so a sweep of narrow nets never compiles the per-run driver. The
# reference and the examination are split into the kernels they share, each a unit that
# lists the units whose kernels it calls (``_UNITS``), so that with a cold cache two
# processes compile different units side by side, each unit once, and a unit is compiled
# after the ones it calls (it then loads them from the cache instead of compiling them
# again). Measured cold on 2 cores: results/coldstart.md. The nonlinear trainer
# (activation or weight decay, ``nltraining``) is a unit of its own, ``NONLINEAR``, warmed
# only by a chunk that needs it (or ``warm_up("nonlinear")``), not by ``warm_up()``.
# Above this many hidden-unit paths (the product of the hidden widths) the run's
# path_dependence columns are NaN: the measure forms all pairs of paths (p^2 x m work).
PATH_DEPENDENCE_MAX = 256


def _toy():
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    return X, np.full((1, 8), 0.1)


def _warm_reference() -> None:
    X, _ = _toy()
    reference(Stats.from_data(X, X), (2, 2, 2))


def _toy_reference() -> Reference:
    """A Reference of the right types built without compiled kernels, so a driver or the
    examination can be compiled while another process compiles the reference kernels."""
    eye = np.eye(2)
    return Reference(0.0, 1.0, 1.0, np.ones(2), 2, eye, eye.copy(), 1.0)


def _warm(stage: str, driver: str = "per_run") -> None:
    X, theta = _toy()
    B = lockstep.MIN_BATCH if driver == "lockstep" else 1
    train_flat(X, X, np.repeat(theta, B, axis=0), (2, 2, 2), "gd", 0.1, 20, threads=1,
               ref=_toy_reference(), _stages=(stage,))  # fmt: skip


def _warm_nonlinear() -> None:
    X, theta = _toy()
    train_flat_nonlinear(X, X, theta, "gd", 0.1, 20, activation="relu", dims=(2, 2, 2),
                         threads=1, lam_ref=1.0)  # fmt: skip


def _toy_kernel_args():
    """(stats, dims, theta, poff, noff, ws) of the toy problem, typed as the trainer's
    kernels pass them to the kernels they share (1-d C-contiguous float64 vectors, int64
    offsets), so that a unit compiled from here is the specialisation the others call;
    ``ws`` prepared by ``loss_grad_stats`` (unit "objective", which every other one
    needs) for the kernels that read it."""
    X, theta = _toy()
    dims = np.array((2, 2, 2), dtype=np.int64)
    st, theta = Stats.from_data(X, X), theta[0].copy()
    ws = np.zeros(ko.ws_size(dims))
    ko.loss_grad_stats(theta, dims, st.Cxx, st.Cyx, float(st.yy), ws, np.empty(theta.size))
    return st, dims, theta, kc.param_offsets(dims), kc.node_offsets(dims), ws


def _warm_objective() -> None:
    st, dims, theta, _, _, ws = _toy_kernel_args()
    ko.loss_stats(theta, dims, st.Cxx, st.Cyx, float(st.yy), ws)


def _warm_hvp() -> None:
    st, dims, theta, _, _, ws = _toy_kernel_args()
    khvp.hessian_prepared(theta, dims, st.Cxx, ws, np.empty((theta.size, theta.size)))


def _warm_lanczos() -> None:
    st, dims, theta, _, _, ws = _toy_kernel_args()
    kspec.lanczos_extremes(theta, dims, st.Cxx, ws, 4, 1e-6, np.uint64(0), np.empty(5))


def _warm_polish() -> None:
    st, dims, theta, poff, noff, ws = _toy_kernel_args()
    work = np.empty(kpol.polish_work_size(theta.size))
    kpol.polish(theta, dims, poff, noff, st.Cxx, st.Cyx, float(st.yy), ws, work, 1.0, 1e-6, 2,
                4, np.empty(6))  # fmt: skip


def _warm_modes() -> None:
    st, dims, theta, poff, noff, ws = _toy_kernel_args()
    eye = np.eye(2)
    kpol.occupancy(theta, dims, poff, noff, ws, eye, eye.copy(), np.empty((1, 2))[0])
    kpol.balance(theta, dims, poff, noff, ws, 1)
    kt.middle_rank(theta, dims, poff, 1e-9)


# unit -> (what compiles it, the units whose kernels it calls: ``UNIT_NEEDS``, in its order)
_WARM = {
    "objective": _warm_objective,
    "lockstep": functools.partial(_warm, "train", "lockstep"),
    "per_run": functools.partial(_warm, "train", "per_run"),
    "hvp": _warm_hvp,
    "polish": _warm_polish,
    "lanczos": _warm_lanczos,
    "modes": _warm_modes,
    "reference": _warm_reference,
    "examine": functools.partial(_warm, "examine"),
    NONLINEAR: _warm_nonlinear,
}
_UNITS = {u: (_WARM[u], needs) for u, needs in UNIT_NEEDS.items()}
UNITS = LINEAR_UNITS


_warmed: set[str] = set()  # units this process has compiled or loaded


def warm_up(driver: str | None = None) -> float:
    """Compile (or load from the on-disk cache) what a chunk needs; seconds taken.

    ``driver``: the trainer driver of the chunk (``"lockstep"`` or ``"per_run"``,
    see ``training.driver_kind``, or ``"nonlinear"``: the nonlinear trainer and the
    reference kernels); it, the reference kernels and the stall
    examination are warmed up, each once per process. None warms every unit
    (``sweepengine warmup``). Every kernel has one type signature whatever the
    architecture, so tiny calls cover all later chunks. Processes of one install on
    one machine share the work per unit (``compile_lock.compile_units``): with a cold
    cache, while one compiles the objective kernels, another compiles the driver; then
    they take the HVP, the polishing, the Lanczos and the mode kernels and the
    examination as their callees are ready, each unit compiled once and loaded by the
    others.
    """
    if driver is not None and driver not in (*DRIVERS, NONLINEAR):
        raise ValueError(f"driver must be one of {(*DRIVERS, NONLINEAR)}, got {driver!r}")
    todo = [u for u in units_for(driver) if u not in _warmed]
    if not todo:
        return 0.0
    t = time.perf_counter()
    # in a Dask worker, say so (sweep.notices) if this takes long: it is compiling
    worker = _dask_worker()  # found from this (task) thread only, not from the timer's
    notice = threading.Timer(NOTICE_AFTER_S, _notify, (worker, "start", NOTICE_AFTER_S))
    notice.daemon = True
    notice.start()
    try:
        compile_units([(u, *_UNITS[u]) for u in todo], done=_warmed)
        _warmed.update(todo)
    finally:
        notice.cancel()
        seconds = time.perf_counter() - t
        if seconds >= NOTICE_AFTER_S:
            _notify(worker, "done", seconds)
    return seconds


def _dask_worker():
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):  # not in a Dask task
        return None


def _notify(worker, event: str, seconds: float) -> None:
    """Tell the client (a Dask event) that this worker started or finished compiling."""
    if worker is None:
        return
    msg = {"event": event, "seconds": seconds, "estimate_s": COLD_COMPILE_S,
           "worker": worker.address}  # fmt: skip
    worker.log_event(COMPILE_TOPIC, msg)


class _JitClock(numba.core.event.Listener):
    """Seconds each thread has spent in Numba's compiler: compiling or loading from the
    cache (both hold the compiler lock), outermost acquisitions only."""

    def __init__(self) -> None:
        self.local = threading.local()

    def seconds(self) -> float:
        return getattr(self.local, "seconds", 0.0)

    def on_start(self, event) -> None:
        loc = self.local
        if getattr(loc, "depth", 0) == 0:
            loc.depth, loc.t0 = 0, time.perf_counter()
        loc.depth += 1

    def on_end(self, event) -> None:
        loc = self.local
        loc.depth -= 1
        if loc.depth == 0:
            loc.seconds = self.seconds() + time.perf_counter() - loc.t0


_JIT = _JitClock()
numba.core.event.register("numba:compiler_lock", _JIT)


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


def train_chunk(chunk_id: str, runs: Sequence[Run], sweep: str) -> ChunkResult:
    """Train ``runs`` (one shape_key) in one batched compiled call."""
    t0 = time.perf_counter()
    linear = runs[0].linear
    driver = driver_kind(runs[0].dims, runs[0].optimizer.name, len(runs)) if linear else NONLINEAR
    # what this chunk is the first in this process to need: includes waiting for another's
    compile_s = warm_up(driver)
    jit0 = _JIT.seconds()  # ... plus kernels this chunk is the first to use

    def compiled() -> float:
        return compile_s + _JIT.seconds() - jit0

    worker = _worker_name()
    run0 = runs[0]
    params_json = json.dumps(run0.problem_params, sort_keys=True)
    ids = np.array([r.run_id for r in runs], dtype=object)
    try:
        _injected_fault()
        X, Y, _ = _data(run0.problem, params_json)
        ref = _reference(run0.problem, params_json, run0.dims)
        if linear:
            out = train_flat(
                X, Y, _initial_weights(runs), run0.dims, [r.optimizer for r in runs],
                max_steps=run0.max_steps, seeds=[r.rng_seed for r in runs],
                record_every=run0.record_every or run0.max_steps, target_gap=run0.target_gap,
                stall=run0.stall, threads=_threads(), ref=ref,
            )  # fmt: skip
        else:  # floor 0, gap scale L(W=0), lam_ref = linear reference + weight decay
            out = train_flat_nonlinear(
                X, Y, _initial_weights(runs), [r.optimizer for r in runs],
                max_steps=run0.max_steps, activation=run0.activation, alpha=run0.alpha,
                weight_decay=run0.weight_decay, dims=run0.dims,
                seeds=[r.rng_seed for r in runs],
                record_every=run0.record_every or run0.max_steps, target_gap=run0.target_gap,
                stall=run0.stall, threads=_threads(), lam_ref=ref.lam_ref + run0.weight_decay,
                keep_probes=run0.activation in PATH_ACTIVATIONS,
            )  # fmt: skip
            out = _NLOut(out, X)
    except Exception as e:  # a failed chunk is an outcome: record it on every run
        err = "".join(traceback.format_exception_only(e)).strip()
        wall = time.perf_counter() - t0
        runs_t = _failed_columns(runs, ids, err, sweep, chunk_id, params_json,
                                 wall / len(runs), compiled() / len(runs), worker)  # fmt: skip
        return ChunkResult(chunk_id, runs_t, stalls_table([]), None, wall)
    wall = time.perf_counter() - t0
    stalls_t = _stalls_columns(ids, out)
    curves = _curves_columns(ids, out) if run0.record_every else None
    runs_t = _runs_columns(runs, ids, out, sweep, chunk_id, params_json,
                           wall / len(runs), compiled() / len(runs), worker)  # fmt: skip
    return ChunkResult(chunk_id, runs_t, stalls_t, curves, wall)


_SPECS: dict[str, object] = {}  # spec key -> Spec, unpickled once per process


def _spec(spec_key: str, spec_blob: bytes):
    spec = _SPECS.get(spec_key)
    if spec is None:
        if len(_SPECS) >= 8:
            _SPECS.clear()
        spec = _SPECS[spec_key] = pickle.loads(spec_blob)
    return spec


def train_range(
    spec_blob: bytes,
    spec_key: str,
    start: int,
    stop: int,
    chunk_id: str,
    out_dir: str | None = None,
    token: str | None = None,
    spec_hash: str = "",
    version: str | None = None,
) -> dict:
    """The sweep's Dask task: train runs ``start .. stop - 1`` of the spec (one
    shape_key, ``Spec.shape_blocks``) as chunk ``chunk_id``.

    With ``out_dir`` and ``token``, and when ``OUT/.lock`` holds ``token`` (this
    process sees the client's directory and the client still holds its lock),
    the chunk is written there (``store.write_unit``; no lock taken: the client
    holds it) and a summary comes back: ``chunk_id``, ``status`` (``ok``),
    ``rows``, ``stall_rows``, ``curve_rows``, ``written`` (True), ``entries``
    (verified-log entries of the files), ``wall_s``, ``compile_s``, ``write_s``.
    Otherwise (or if the write fails) the summary has ``written`` False and the
    tables (``runs``, ``stalls``, ``curves``) for the client to write. A chunk
    whose training raised has ``status`` ``failed``, ``error`` and ``run_ids``
    and is never written. Plain dicts, so the client never imports this module.

    Run ids hash the package version, and this process computes them: ``version``
    (the client's) must be this process's, else the task raises (a ValueError,
    not retried: the chunk is recorded as failed, naming both versions).
    """
    here = _version.package_version()
    if version is not None and version != here:
        raise ValueError(
            f"this worker runs sweepengine {here}, the client {version}: run ids and "
            "results would differ; install one version on the client and every worker"
        )
    spec = _spec(spec_key, spec_blob)
    runs = list(spec.runs(start, stop))
    if len(runs) != stop - start:
        raise IndexError(f"runs {start}..{stop} out of range for {spec.n_runs} runs")
    res = train_chunk(chunk_id, runs, spec.name)
    t = res.runs
    compile_s = float(np.sum(t.column("compile_time_s").to_numpy())) if t.num_rows else 0.0
    out = {"chunk_id": chunk_id, "rows": t.num_rows, "wall_s": res.wall_s,
           "compile_s": compile_s}  # fmt: skip
    statuses = t.column("status")
    if t.num_rows and statuses.null_count == 0 and set(statuses.unique().to_pylist()) == {"failed"}:
        return {**out, "status": "failed", "error": str(t.column("error")[0].as_py()
                or "unknown error"), "run_ids": t.column("run_id").to_pylist()}  # fmt: skip
    out.update(status="ok", stall_rows=res.stalls.num_rows,
               curve_rows=0 if res.curves is None else res.curves.num_rows)  # fmt: skip
    if out_dir is not None and token is not None and lock_token(out_dir) == token:
        t0 = time.perf_counter()
        try:
            entries = write_unit(out_dir, chunk_id, res.runs, res.stalls, res.curves, spec_hash)
        except OSError as e:  # e.g. a read-only view: the client writes it instead
            logging.getLogger(__name__).warning(
                "could not write chunk %s to %s (%s): returning it to the client",
                chunk_id, out_dir, e)  # fmt: skip
        else:
            return {**out, "written": True, "entries": entries,
                    "write_s": time.perf_counter() - t0}  # fmt: skip
    return {**out, "written": False, "runs": res.runs, "stalls": res.stalls,
            "curves": res.curves}  # fmt: skip


def _injected_fault() -> None:
    """Test-only hook, off unless the variable is set (one ``os.environ`` look-up).

    ``SWEEPENGINE_INJECT_FAULT=<file>``: while the file holds an integer N > 0,
    each chunk trained (on any worker of the machine) decrements it under an
    flock and raises ``OSError`` (an error that may not recur, so the sweep
    retries it). N = 1 fails one attempt; a large N fails every attempt until
    the file is removed. Used by tests/test_sweep.py to make real chunks fail.
    """
    path = os.environ.get("SWEEPENGINE_INJECT_FAULT")
    if not path:
        return
    import fcntl

    try:
        f = open(path, "r+")  # noqa: SIM115
    except FileNotFoundError:
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        n = int(f.read().strip() or 0)
        if n <= 0:
            return
        f.seek(0)
        f.truncate()
        f.write(str(n - 1))
    raise OSError(f"injected fault (SWEEPENGINE_INJECT_FAULT, {n - 1} left)")


def _initial_weights(runs: Sequence[Run]) -> np.ndarray:
    """(B, n) initial weights, one ``init_batch`` call per init scheme in the chunk."""
    schemes = [r.init_scheme for r in runs]
    if len(set(schemes)) == 1:
        return init_batch(runs[0].dims, schemes[0], [r.init_scale for r in runs],
                          [r.init_seed for r in runs])  # fmt: skip
    theta = np.empty((len(runs), n_params(runs[0].dims)))
    for scheme in dict.fromkeys(schemes):
        idx = [i for i, s in enumerate(schemes) if s == scheme]
        theta[idx] = init_batch(runs[0].dims, scheme, [runs[i].init_scale for i in idx],
                                [runs[i].init_seed for i in idx])  # fmt: skip
    return theta


def _config_columns(runs: Sequence[Run], ids, sweep: str, chunk_id: str, params_json: str):
    """What every run of the chunk was asked to do: the runs table's input columns."""
    B = len(runs)
    run0 = runs[0]
    hidden = list(run0.hidden)
    params_text: dict[tuple, str] = {}
    for r in runs:
        if r.optimizer.params not in params_text:
            params_text[r.optimizer.params] = json.dumps(dict(r.optimizer.params), sort_keys=True)
    return {
        "run_id": ids,
        "sweep": [sweep] * B,
        "chunk_id": [chunk_id] * B,
        "problem": [run0.problem] * B,
        "problem_params": [params_json] * B,
        "d_x": np.full(B, run0.dims[0]),
        "d_y": np.full(B, run0.dims[-1]),
        "depth": np.full(B, run0.depth),
        "widths": [hidden] * B,
        "min_width": np.full(B, min(hidden) if hidden else min(run0.dims[0], run0.dims[-1])),
        "n_params": np.full(B, n_params(run0.dims)),
        "seed": np.array([r.seed for r in runs], dtype=np.int64),
        "init_scheme": [r.init_scheme for r in runs],
        "init_scale": np.array([r.init_scale for r in runs]),
        "optimizer": [run0.optimizer.name] * B,
        "lr": np.array([r.optimizer.lr for r in runs]),
        "optimizer_params": [params_text[r.optimizer.params] for r in runs],
        "max_steps": np.full(B, run0.max_steps),
        "target_gap": np.full(B, run0.target_gap),
        "activation": [run0.activation] * B,
        "alpha": np.full(B, run0.alpha if run0.activation == "leaky_relu" else np.nan),
        "weight_decay": np.full(B, run0.weight_decay),
        "sweepengine_version": [package_version()] * B,
    }


class _NLOut:
    """A nonlinear chunk's output (``nltraining.NLBatchOutput``) with what the columns
    need: L* unknown (NaN), gaps from the trainer's floor, the independence measures."""

    def __init__(self, out, X: np.ndarray) -> None:
        self.nl, self.X = out, X
        self.runs, self.stalls, self.status = out.runs, out.stalls, out.status
        self.time_unit, self.losses, self.loss_steps = out.time_unit, out.losses, out.loss_steps
        B = out.theta.shape[0]
        self.global_min = np.full(B, np.nan)
        self.floor = out.configs["lstar"].copy()
        self.gap_scale = out.configs["gap_scale"].copy()
        self.lam_ref = np.full(B, out.lam_ref)

    def independence(self) -> dict[str, np.ndarray]:
        """Per run, at the final weights: path activation rate, input dependence and path
        dependence (shared / disjoint) of ``sweepengine.independence`` (relu and
        leaky_relu nets with a hidden layer and finite weights; NaN otherwise, and
        path dependence NaN above ``PATH_DEPENDENCE_MAX`` hidden-unit paths)."""
        out = self.nl
        return _independence(out.theta, out.dims, out.activation, self.X)

    def stall_independence(self) -> dict[str, np.ndarray]:
        """The same measures per recorded stall (the rows of ``self.stalls``), at the
        stall's probe point: the weights training sat at (the smallest gradient norm in
        the stall), defined for every stall, polished or not."""
        out, st = self.nl, self.stalls
        probes = out.probe_theta
        if probes is None or probes.shape[1] == 0:
            return {c: np.full(st.run.size, np.nan) for c in INDEPENDENCE_COLUMNS}
        return _independence(probes[st.run, st.index], out.dims, out.activation, self.X)


def _independence(thetas: np.ndarray, dims, activation: str, X: np.ndarray):
    """The independence measures of each row of ``thetas`` (R, n); NaN where undefined."""
    R = thetas.shape[0]
    cols = {c: np.full(R, np.nan) for c in INDEPENDENCE_COLUMNS}
    if activation not in PATH_ACTIVATIONS or len(dims) < 3:
        return cols
    n_paths = int(np.prod(dims[1:-1]))
    for b in range(R):
        if not np.isfinite(thetas[b]).all():
            continue
        W = unflatten(thetas[b], dims)
        cols["path_activation_rate"][b] = indep.path_activation_rate(W, X)
        cols["input_dependence"][b] = indep.input_dependence(W, X).mean_max_abs
        if n_paths <= PATH_DEPENDENCE_MAX:
            pd_ = indep.path_dependence(W, X)
            cols["path_dependence_shared"][b] = pd_.shared
            cols["path_dependence_disjoint"][b] = pd_.disjoint
    return cols


#: activations with 0/1 path indicators, measured by ``sweepengine.independence``
PATH_ACTIVATIONS = ("relu", "leaky_relu")
INDEPENDENCE_COLUMNS = ("path_activation_rate", "input_dependence", "path_dependence_shared",
                        "path_dependence_disjoint")  # fmt: skip


def _runs_columns(runs, ids, out, sweep, chunk_id, params_json, share, compile_s, worker):
    """The chunk's runs table, column by column from the kernel's output records."""
    B = len(runs)
    res, st = out.runs, out.stalls
    final_loss = res["loss"]
    to_target = res["to_target"]
    time_unit = out.time_unit
    if isinstance(out, _NLOut):
        gmin, floor, scale, lam_ref = out.global_min, out.floor, out.gap_scale, out.lam_ref
        extra = out.independence()
    else:
        ref = out.ref
        gmin = floor = np.full(B, ref.global_minimum)
        scale, lam_ref = ref.gap_scale, np.full(B, ref.lam_ref)
        extra = {c: np.full(B, np.nan) for c in INDEPENDENCE_COLUMNS}
    cols = {
        **_config_columns(runs, ids, sweep, chunk_id, params_json),
        "status": out.status,
        "steps": res["steps"],
        "final_loss": final_loss,
        "global_min": gmin,
        "loss_floor": floor,
        "gap_scale": np.broadcast_to(scale, (B,)).astype(float),
        "final_gap": final_loss - floor,
        "final_gap_rel": (final_loss - floor) / scale,
        "steps_to_target": pa.array(to_target, mask=to_target < 0),
        "time_unit": time_unit,
        "time_to_target": pa.array(to_target * time_unit, mask=to_target < 0),
        "n_stalls": res["n_stalls"],
        **stall_totals(st, B),
        "n_unstable": res["n_unstable"],
        "steps_in_unstable": res["unstable_steps"],
        "time_in_unstable": res["unstable_steps"] * time_unit,
        "final_grad_norm": res["grad_norm"],
        "final_lam_min": res["lam_min"],  # NaN (not probed, or diverged) -> null
        "final_lam_max": res["lam_max"],
        "lam_ref": lam_ref,
        "kicks": res["kicks"],
        **extra,
        "wall_time_s": np.full(B, share),
        "compile_time_s": np.full(B, compile_s),
        "worker": [worker] * B,
    }
    return columns_table(cols, RUNS_SCHEMA)


def stall_totals(st, B: int) -> dict:
    """Per run: steps and time in stalls of each class, the first and longest stall's class."""
    cols = {}
    for name in STALL_CLASSES:
        hit = st.stall_class == name
        cols[f"steps_in_{name}"] = np.bincount(
            st.run, weights=np.where(hit, st.length, 0), minlength=B
        ).astype(np.int64)
        cols[f"time_in_{name}"] = np.bincount(
            st.run, weights=np.where(hit, st.duration, 0.0), minlength=B
        )
    first = np.full(B, None, dtype=object)
    longest = np.full(B, None, dtype=object)
    if st.run.size:
        cls = np.asarray(st.stall_class, dtype=object)
        head = st.index == 0
        first[st.run[head]] = cls[head]
        # per run, the longest stall; the earliest of equally long ones
        order = np.lexsort((st.index, -st.duration, st.run))
        lead = np.r_[True, st.run[order][1:] != st.run[order][:-1]]
        longest[st.run[order][lead]] = cls[order][lead]
    cols["first_stall_class"] = first.tolist()
    cols["longest_stall_class"] = longest.tolist()
    return cols


def _failed_columns(runs, ids, err, sweep, chunk_id, params_json, share, compile_s, worker):
    """The runs table of a chunk that raised: its input columns, status ``failed``."""
    B = len(runs)
    nan, zero = np.full(B, np.nan), np.zeros(B, dtype=np.int64)
    totals = {f"{u}_in_{c}": (zero if u == "steps" else np.zeros(B))
              for c in (*STALL_CLASSES, "unstable") for u in ("steps", "time")}  # fmt: skip
    cols = {
        **_config_columns(runs, ids, sweep, chunk_id, params_json),
        "status": ["failed"] * B, "error": [err] * B, "steps": zero, "final_loss": nan,
        "global_min": nan, "loss_floor": nan, "gap_scale": nan, "final_gap": nan,
        "final_gap_rel": nan,
        "steps_to_target": pa.nulls(B, pa.int64()), "time_unit": nan,
        "time_to_target": pa.nulls(B, pa.float64()), "n_stalls": zero, "n_unstable": zero,
        **totals,
        "first_stall_class": [None] * B, "longest_stall_class": [None] * B,
        "final_grad_norm": nan, "lam_ref": nan, "kicks": zero,
        **{c: nan for c in INDEPENDENCE_COLUMNS}, "wall_time_s": np.full(B, share),
        "compile_time_s": np.full(B, compile_s), "worker": [worker] * B,
    }  # fmt: skip
    return columns_table(cols, RUNS_SCHEMA)


def _stalls_columns(ids: np.ndarray, out) -> pa.Table:
    st = out.stalls
    r = st.rows
    if isinstance(out, _NLOut):
        extra = out.stall_independence()
    else:
        extra = {c: np.full(st.run.size, np.nan) for c in INDEPENDENCE_COLUMNS}
    polished = r["polished"]

    def when_polished(v):
        return np.where(polished, v, np.nan)

    cols = {
        "run_id": ids[st.run],
        "stall_index": st.index,
        "start_step": r["start"],
        "end_step": r["end"],
        "probe_step": r["probe"],
        "start_time": st.start_time,
        "end_time": st.end_time,
        "probe_time": st.probe_time,
        "loss": r["loss"],
        "gap": st.gap,
        "gap_rel": st.gap_rel,
        "modes": [list(m) for m in st.modes],
        "occupancy": pa.array(list(st.occupancy), type=pa.list_(pa.float64())),
        "critical_value": st.critical_value,
        "critical_rank": st.critical_rank,
        "nearest_value": st.nearest_value,
        "nearest_rank": st.nearest_rank,
        "min_grad_norm": r["gnorm"],
        "local_lam_min": r["local_lam_min"],
        "local_lam_max": r["local_lam_max"],
        "local_lam_min_err": r["local_err_min"],
        "local_lam_max_err": r["local_err_max"],
        "local_rel_lam_min": st.local_rel_lam_min,
        "local_class": st.local_class,
        "lanczos_iters": r["lanczos_iters"],
        "rise": r["rise"],
        "polish_converged": r["polish_converged"],
        "polish_iters": r["polish_iters"],
        "polish_hvps": r["polish_hvps"],
        "polish_grad_rel": when_polished(r["polish_grad_rel"]),
        "polish_distance": when_polished(r["polish_distance"]),
        "polish_loss": when_polished(r["polish_loss"]),
        "lam_min": when_polished(r["lam_min"]),
        "lam_max": when_polished(r["lam_max"]),
        "lam_min_err": when_polished(r["err_min"]),
        "rel_lam_min": when_polished(st.rel_lam_min),
        "kawaguchi_rank": pa.array(r["kawaguchi_rank"], mask=~polished, type=pa.int32()),
        "stall_class": st.stall_class,
        **extra,
    }
    return columns_table(cols, STALLS_SCHEMA)


def _curves_columns(ids: np.ndarray, out) -> pa.Table:
    keep = ~np.isnan(out.losses)
    steps = np.broadcast_to(out.loss_steps, out.losses.shape)[keep]
    return curves_table(np.repeat(ids, keep.sum(axis=1)), steps, out.losses[keep])
