"""Training deep linear networks: ``train`` (one run) and ``train_batch`` (B runs).

Both call one fused compiled kernel (``kernels.trainer.train_batch``, or the
lock-step ``kernels.lockstep.train_batch_lockstep`` for batches of narrow nets)
that runs the whole loop for every run; ``threads`` threads each take slices of
the batch (the kernels release the GIL). ``train`` is a batch of one, so batched
and single runs are the same code and give bit-identical results.

The public ``sweepengine.train`` / ``train_batch`` are ``trainers``': these functions
for the deep linear net, ``nltraining``'s with ``activation=`` or ``weight_decay=``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from . import theory
from ._layout import dims_of, flatten, n_params, unflatten
from ._validate import as_dims, as_matrix, as_weights
from .initialization import balanced_factors
from .kernels import lockstep, state
from .kernels import trainer as kt
from .landscape import hessian_extremes_info
from .options import Optimizer, StallConfig, make_optimizer, time_per_step
from .stalls import Stall, classify, classify_critical
from .stats import Stats

STATUS = {state.CONVERGED: "converged", state.MAX_STEPS: "max_steps", state.DIVERGED: "diverged"}
_STATUS_NAMES = np.array([STATUS[c] for c in sorted(STATUS)])
DIVERGENCE_FACTOR = 1e12  # loss above this times L(0) = 1/2 tr(YY^T) counts as diverged


@dataclasses.dataclass(frozen=True)
class Reference:
    """Per-problem analytic quantities the trainer measures against."""

    global_minimum: float  # L*
    gap_scale: float  # L(0) - L*, the learnable part of the loss
    lam_ref: float  # top Hessian eigenvalue at the balanced global minimizer
    eigvals: np.ndarray  # spectrum of Sigma = Cyx Cxx^+ Cyx^T, descending
    rank_cap: int  # p
    modes_U: np.ndarray  # (d_y, r) eigenvectors of Sigma with l_i > 0 (the modes)
    modes_G: np.ndarray  # (d_x, r) Cyx^T u_i / l_i: occupancy_i = u_i^T P G[:, i]
    mid_scale: float  # largest singular value of W_{K-1}..W_2 at the balanced minimizer

    @property
    def g_ref(self) -> float:
        """Gradient scale sqrt(lam_ref x gap_scale): ||grad|| / g_ref is scale-free."""
        return float(np.sqrt(self.lam_ref * self.gap_scale))


MIN_WINDOW = 4  # detection window in steps at least (StallConfig.window is a time)
MIN_WINDOWS = 3  # a stall lasts this many detection windows at least


def reference(stats: Stats, dims: Sequence[int]) -> Reference:
    """L*, the gap scale, the curvature scale and the mode basis of a problem."""
    dims = np.asarray(dims, dtype=np.int64)
    widths = [int(w) for w in dims[1:-1]]
    lstar = theory.global_minimum_from_stats(stats.Cxx, stats.Cyx, stats.yy, widths)
    l0 = 0.5 * stats.yy
    gap_scale = l0 - lstar if l0 - lstar > 1e-12 * l0 else max(l0, 1e-300)
    Wstar = theory.global_minimizer_from_stats(stats.Cxx, stats.Cyx, widths)
    P = Wstar[0]
    for W in Wstar[1:]:
        P = W @ P
    bal = balanced_factors(P, dims)
    # a scale, not a measurement: the top Ritz value converges in a few dozen steps
    lam_ref = hessian_extremes_info(bal, stats=stats, maxiter=40, tol=1e-6).lam_max
    if not lam_ref > 0:  # nothing learnable: fall back to the regression curvature
        lam_ref = float(np.linalg.eigvalsh(stats.Cxx)[-1]) or 1.0
    eigvals, _ = theory.sigma_spectrum(stats.Cxx, stats.Cyx)
    _, U, G = theory.mode_basis(stats.Cxx, stats.Cyx)
    mid = np.eye(int(dims[1])) if len(bal) > 1 else np.eye(1)
    for W in bal[1:-1]:
        mid = W @ mid
    mid_scale = float(np.linalg.norm(mid, 2)) or 1.0
    p = theory.rank_cap(int(dims[0]), int(dims[-1]), widths)
    return Reference(float(lstar), float(gap_scale), float(lam_ref), eigvals, p, U, G, mid_scale)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Outcome of one training run.

    ``losses[i]`` is the loss at step ``loss_steps[i]`` (NaN after the run
    stopped). ``final_gap`` = final_loss - L*; ``steps_to_target`` is the first
    step whose relative gap (L - L*)/(L(0) - L*) was <= target_gap, or None.
    ``lam_min``/``lam_max`` (with error bounds) are Hessian extremes at the final
    point (NaN if not probed or diverged). ``n_stalls`` counts every stall,
    ``stalls`` holds the first ``StallConfig.max_stalls`` of them, examined.
    ``time_unit`` is the training time of one step (docs/maths.md, "Time");
    ``time_to_target`` = steps_to_target x time_unit. ``n_unstable`` flat stretches
    (``unstable_steps`` steps) were left out of the stalls because the loss rose or
    oscillated in them.
    """

    weights: list[np.ndarray]
    losses: np.ndarray
    loss_steps: np.ndarray
    status: str
    steps: int
    final_loss: float
    global_minimum: float
    final_gap: float
    final_gap_rel: float
    target_gap: float
    steps_to_target: int | None
    time_unit: float
    time_to_target: float | None
    grad_norm: float
    lam_min: float
    lam_max: float
    err_min: float
    err_max: float
    lam_ref: float
    n_stalls: int
    stalls: tuple[Stall, ...]
    n_unstable: int
    unstable_steps: int
    kicks: int
    optimizer: Optimizer
    seed: int


def _positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def _optimizers(optimizer, lr, params: Mapping[str, Any], B: int) -> list[Optimizer]:
    """One validated Optimizer per run; lr and params may be scalars or length-B lists."""
    if isinstance(optimizer, Optimizer):
        opts = [optimizer] * B
    elif isinstance(optimizer, Sequence) and not isinstance(optimizer, str):
        opts = list(optimizer)
        if len(opts) != B or not all(isinstance(o, Optimizer) for o in opts):
            raise ValueError(f"optimizer list must hold {B} Optimizer objects (one per run)")
    else:

        def pick(name, v, b):
            if isinstance(v, Sequence | np.ndarray) and not isinstance(v, str):
                if len(v) != B:
                    raise ValueError(f"{name} has {len(v)} values, expected 1 or {B} (runs)")
                return v[b]
            return v

        opts = [
            make_optimizer(
                str(optimizer), pick("lr", lr, b), **{k: pick(k, v, b) for k, v in params.items()}
            )
            for b in range(B)
        ]
    if len({o.name for o in opts}) != 1:
        raise ValueError(f"a batch needs one optimizer kind, got {sorted({o.name for o in opts})}")
    return opts


def _stall_config(stall) -> StallConfig:
    if stall is None or isinstance(stall, StallConfig):
        return stall or StallConfig()
    if isinstance(stall, Mapping):
        return StallConfig.from_dict(stall)
    raise ValueError(f"stall must be a StallConfig or a dict of its fields, got {stall!r}")


def train_batch(
    X,
    Y,
    weights0: Sequence[Sequence[np.ndarray]],
    optimizer: str | Optimizer | Sequence[Optimizer] = "gd",
    lr: float | Sequence[float] | None = None,
    max_steps: int = 1000,
    **options: Any,
) -> list[TrainResult]:
    """Train B runs of one architecture on one data set in one compiled call.

    ``weights0`` is a list of B weight lists of identical shapes. ``lr`` and any
    optimizer parameter may be a scalar or a list with one value per run. Keyword
    options (``seeds``, ``record_every``, ``target_gap``, ``stop_at_target``,
    ``stall``, ``final_probe``, ``threads``, ``ref`` and optimizer parameters) are
    those of :func:`train_flat`. Results are bit-identical to training each run
    alone, whatever B or the thread count.
    """
    if isinstance(weights0, np.ndarray) or not isinstance(weights0, Sequence) or not weights0:
        raise ValueError("weights0 must be a non-empty list of weight lists (one per run)")
    chains = [as_weights(w, f"weights0[{b}]") for b, w in enumerate(weights0)]
    dims = dims_of(chains[0])
    for b, c in enumerate(chains):
        if not np.array_equal(dims_of(c), dims):
            raise ValueError(
                f"weights0[{b}] has layer sizes {dims_of(c).tolist()}, expected {dims.tolist()} "
                "(a batch shares one architecture)"
            )
    theta = np.stack([flatten(c) for c in chains])
    return train_flat(X, Y, theta, dims, optimizer, lr, max_steps, **options).results()


def train_flat(
    X,
    Y,
    theta0: np.ndarray,
    dims: Sequence[int],
    optimizer: str | Optimizer | Sequence[Optimizer] = "gd",
    lr: float | Sequence[float] | None = None,
    max_steps: int = 1000,
    *,
    seeds: Sequence[int] | None = None,
    record_every: int = 1,
    target_gap: float = 1e-6,
    stop_at_target: bool = True,
    stall: StallConfig | Mapping[str, Any] | None = None,
    final_probe: bool = True,
    threads: int | None = None,
    ref: Reference | None = None,
    _stages: tuple[str, ...] = ("train", "examine"),
    **optimizer_params: Any,
) -> BatchOutput:
    """:func:`train_batch` on flat weights, returning the raw per-run arrays.

    ``theta0`` is (B, n_params(dims)), row b = W_1..W_K of run b flattened row-major
    (what ``init.init_batch`` returns). ``seeds`` (per run) drive mini-batch
    sampling, PGD kicks and the Lanczos start vector; ``record_every`` thins the
    recorded losses; a run stops at ``target_gap`` (relative gap) if
    ``stop_at_target``; ``stall`` sets stall detection; ``final_probe`` probes the
    Hessian at the end; ``threads`` threads train the batch, in slices (default
    ``numba.get_num_threads()``); ``ref``
    reuses a precomputed :func:`reference`. No per-run Python objects are built
    unless ``BatchOutput.results()`` is called. ``_stages`` (internal, for the compile
    warm-up of ``sweep.worker``): run only the driver (``"train"``) or only the
    examination (``"examine"``).
    """
    dims = as_dims(dims)
    n = n_params(dims)
    theta = np.array(theta0, dtype=np.float64, order="C", copy=True)  # trained in place
    if theta.ndim != 2 or theta.shape[0] < 1 or theta.shape[1] != n:
        raise ValueError(
            f"theta0 must have shape (B >= 1, {n}) for dims {dims.tolist()}, got {theta.shape}"
        )
    if not np.isfinite(theta).all():
        raise ValueError("theta0 contains non-finite values (NaN or inf)")
    B = theta.shape[0]
    opts = _optimizers(optimizer, lr, optimizer_params, B)
    max_steps = _positive_int("max_steps", max_steps)
    record_every = _positive_int("record_every", record_every)
    cfg_stall = _stall_config(stall)
    if not (isinstance(target_gap, int | float) and 0 <= target_gap < 1):
        raise ValueError(f"target_gap must be a relative gap in [0, 1), got {target_gap!r}")
    seeds_arr = np.zeros(B, dtype=np.uint64) if seeds is None else np.asarray(seeds)
    if seeds_arr.shape != (B,) or not np.issubdtype(seeds_arr.dtype, np.integer):
        raise ValueError(f"seeds must be {B} integers (one per run), got {seeds!r}")
    seeds_arr = seeds_arr.astype(np.uint64)
    X = as_matrix(X, "X", int(dims[0]))
    Y = as_matrix(Y, "Y", int(dims[-1]), X.shape[1])
    for b, o in enumerate(opts):  # per run: a batch may mix batch sizes
        size = dict(o.params).get("batch_size")
        if size is not None and int(size) > X.shape[1]:
            raise ValueError(
                f"run {b} of the batch: batch_size {int(size)} exceeds the number of samples "
                f"m={X.shape[1]}"
            )
    stats = Stats.from_data(X, Y)
    ref = ref or reference(stats, dims)

    cfg = state.config_record(
        rel_drop=cfg_stall.rel_drop, min_gap=cfg_stall.min_gap, target=target_gap,
        lstar=ref.global_minimum, gap_scale=ref.gap_scale,
        div_limit=DIVERGENCE_FACTOR * 0.5 * stats.yy if stats.yy > 0 else np.inf,
        stop_at_target=bool(stop_at_target), final_probe=bool(final_probe),
        lz_iter=cfg_stall.lanczos_iter, lz_tol=cfg_stall.lanczos_tol, g_ref=ref.g_ref,
        rough_tol=cfg_stall.rough_tol, rough_newton=cfg_stall.rough_newton,
        polish_tol=cfg_stall.polish_tol, polish_newton=cfg_stall.polish_newton,
        polish_inner=cfg_stall.polish_inner, rank_tol=cfg_stall.rank_tol,
        mid_scale=ref.mid_scale, polish=cfg_stall.polish, psd_tol=cfg_stall.psd_tol,
    )  # fmt: skip
    runs_in = run_inputs(opts, seeds_arr, cfg_stall, ref, n)
    prob = state.Problem(stats.Cxx, stats.Cyx, float(stats.yy), X, Y, ref.modes_U, ref.modes_G)
    nrec = max_steps // record_every + 1
    losses = np.empty((B, nrec))
    runs_out = np.zeros(B, dtype=state.RUN_OUT)
    stall_rows = np.zeros((B, cfg_stall.max_stalls), dtype=state.STALL_OUT)
    occ = np.full((B, cfg_stall.max_stalls, ref.modes_U.shape[1]), np.nan)
    n_threads = numba.get_num_threads() if threads is None else _positive_int("threads", threads)
    # Several threads each calling a multi-threaded BLAS oversubscribe the cores
    # (measured 3.5x slower at d=128, B=8): cap BLAS while runs share threads.
    blas_cap = threadpool_limits(1, user_api="blas") if min(B, n_threads) > 1 else nullcontext()
    kernel = _kernel(dims, opts[0].name, B)
    rec = state.records
    args = (rec(runs_in), rec(runs_out), rec(stall_rows))

    def run_slice(a: int, z: int) -> None:
        # the stalls' probe points, kept by the driver for the examination that follows
        probes = np.empty((z - a, cfg_stall.max_stalls, n))
        if "train" in _stages:
            kernel(theta[a:z], dims, prob, opts[0].code, args[0][a:z], max_steps,
                   record_every, rec(cfg), losses[a:z], args[1][a:z], args[2][a:z],
                   probes)  # fmt: skip
        if "examine" in _stages:
            kt.examine_runs(theta[a:z], dims, prob, args[0][a:z], rec(cfg), args[1][a:z],
                            args[2][a:z], occ[a:z], probes)  # fmt: skip

    run_slice.kernel = getattr(kernel, "compiled", kernel)
    with blas_cap:
        _in_slices(run_slice, B, n_threads, lockstep.BLOCK if kernel is not kt.train_batch else 1)
    steps = np.arange(nrec, dtype=np.int64) * record_every
    return BatchOutput(theta, dims, losses, steps, runs_out, stall_rows, occ, runs_in["dt"], ref,
                       stats, cfg_stall, float(target_gap), opts, seeds_arr)  # fmt: skip


def run_inputs(opts: Sequence[Optimizer], seeds: np.ndarray, stall: StallConfig, ref: Reference,
               n: int) -> np.ndarray:  # fmt: skip
    """The per-run kernel inputs (``state.RUN_IN``): seed, hyper-parameters, the time per
    step and the detection window and minimum length converted to steps."""
    runs_in = np.zeros(len(opts), dtype=state.RUN_IN)
    runs_in["seed"] = seeds
    runs_in["hyper"] = np.array([o.hyper() for o in opts], dtype=np.float64)
    adam_scale = np.sqrt(n) / ref.g_ref if ref.g_ref > 0 else 1.0
    dt = np.array([time_per_step(o.name, o.lr, o.params, ref.lam_ref, adam_scale) for o in opts])
    # at least MIN_WINDOW steps: a shorter window measures step-to-step noise, not a trend
    window = np.maximum(MIN_WINDOW, np.rint(stall.window / dt)).astype(np.int64)
    runs_in["dt"] = dt
    runs_in["window"] = window
    runs_in["stride"] = (window + state.RING - 2) // (state.RING - 1)  # window/stride < RING
    # ... and a stall at least MIN_WINDOWS windows long (inactive unless dt is coarse)
    min_length = np.maximum(MIN_WINDOWS * window, np.rint(stall.min_length / dt))
    runs_in["min_length"] = min_length.astype(np.int64)
    return runs_in


#: Slices per thread: threads take slices as they finish (runs differ in length).
SLICES_PER_THREAD = 4
#: Runs per slice at most: bounds the stall probe points a slice keeps for examination
#: (max_stalls x n_params floats per run).
MAX_SLICE = 1024


def _in_slices(fn, B: int, n_threads: int, align: int) -> None:
    """``fn(a, z)`` over consecutive slices covering ``range(B)``, each starting at a
    multiple of ``align``, on ``n_threads`` threads (inline when one is enough).

    The compiled drivers release the GIL, so the threads run in parallel. Before
    the kernel's first call in this process (``fn.kernel.signatures`` empty) the first
    slice runs alone, so that the kernel is compiled or loaded once, not by every
    thread at the same time.
    """
    n_units = -(-B // align)
    workers = min(n_threads, n_units)
    per = max(align, MAX_SLICE // align * align)
    if workers > 1:
        per = min(per, align * max(1, -(-n_units // (workers * SLICES_PER_THREAD))))
    bounds = [(a, min(B, a + per)) for a in range(0, B, per)]
    if workers <= 1:
        for a, z in bounds:
            fn(a, z)
        return
    if not getattr(getattr(fn, "kernel", None), "signatures", None):
        fn(*bounds.pop(0))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers, thread_name_prefix="sweepengine-train") as pool:
        for f in [pool.submit(fn, a, z) for a, z in bounds]:
            f.result()


def driver_kind(dims, optimizer: str, B: int) -> str:
    """``"lockstep"`` or ``"per_run"``: the driver :func:`train_batch` uses for B runs of
    ``dims`` with ``optimizer`` (what a sweep worker must compile, ``worker.warm_up``)."""
    per_run = _kernel(np.asarray(dims), optimizer, B) is kt.train_batch
    return "per_run" if per_run else "lockstep"


def _kernel(dims: np.ndarray, optimizer: str, B: int):
    """Lock-step blocks for batches of narrow nets, else one run per thread.

    Both give bit-identical numbers for widths up to ``lockstep.MAX_WIDTH`` (a test
    checks it), so the choice may depend on B: a lock-step block of fewer than
    ``lockstep.MIN_BATCH`` runs is slower than running them one by one.
    """
    narrow = int(dims.max()) <= lockstep.MAX_WIDTH
    if optimizer != "sgd" and narrow and B >= lockstep.MIN_BATCH:
        return lockstep.train_batch_lockstep
    return kt.train_batch


@dataclasses.dataclass(frozen=True)
class StallArrays:
    """Every recorded stall of a batch as columns (one entry per stall, runs in order)."""

    run: np.ndarray  # index of the run in the batch
    index: np.ndarray  # 0-based index of the stall within its run
    rows: np.ndarray  # (R,) raw kernel records (kernels.state.STALL_OUT)
    occupancy: np.ndarray  # (R, r) mode occupancies at the shadowed point
    start_time: np.ndarray
    end_time: np.ndarray
    probe_time: np.ndarray
    gap: np.ndarray
    gap_rel: np.ndarray
    modes: list  # tuple of learned mode indices per stall
    modes_clean: np.ndarray  # occupancies within occupancy_tol of integers
    critical_value: np.ndarray  # level of S
    critical_rank: np.ndarray  # |S|
    nearest_value: np.ndarray  # level nearest the probe loss (cross-check)
    nearest_rank: np.ndarray
    local_rel_lam_min: np.ndarray
    local_class: np.ndarray  # str
    rel_lam_min: np.ndarray
    stall_class: np.ndarray  # str
    length: np.ndarray  # end - start, steps
    duration: np.ndarray  # end_time - start_time


@dataclasses.dataclass(frozen=True)
class BatchOutput:
    """The raw outcome of one batched kernel call (row b = run b), see :func:`train_flat`."""

    theta: np.ndarray  # (B, n) final weights
    dims: np.ndarray
    losses: np.ndarray  # (B, nrec), NaN after a run stopped
    loss_steps: np.ndarray  # (nrec,)
    runs: np.ndarray  # (B,) kernels.state.RUN_OUT records
    stall_rows: np.ndarray  # (B, max_stalls) kernels.state.STALL_OUT records
    occupancy: np.ndarray  # (B, max_stalls, r) mode occupancies per stall
    time_unit: np.ndarray  # (B,) training time per step
    ref: Reference
    stats: Stats
    stall: StallConfig
    target_gap: float
    optimizers: list[Optimizer]
    seeds: np.ndarray

    @property
    def status(self) -> np.ndarray:
        """Status name of every run."""
        return _STATUS_NAMES[self.runs["status"]]

    @functools.cached_property
    def stalls(self) -> StallArrays:
        """The recorded stalls of every run, examined and classified, as columns."""
        n_rec = np.minimum(self.runs["n_stalls"], self.stall.max_stalls)
        mask = np.arange(self.stall_rows.shape[1])[None, :] < n_rec[:, None]
        run, index = np.nonzero(mask)
        rows = self.stall_rows[mask]
        occ = self.occupancy[mask]
        ref, cfg = self.ref, self.stall
        dt = self.time_unit[run]
        gap = rows["loss"] - ref.global_minimum
        gap_rel = gap / ref.gap_scale
        l = ref.eigvals[: ref.modes_U.shape[1]]
        modes, defect = theory.learned_modes_batch(occ, l)
        clean = defect <= cfg.occupancy_tol
        level = np.array([theory.critical_level(S, l, self.stats.yy) for S in modes])
        if rows.size:
            near = theory.nearest_critical_value(rows["loss"], ref.eigvals, self.stats.yy,
                                                 ref.rank_cap)  # fmt: skip
            nvalue = np.asarray(near.value, dtype=float)
            nrank = np.asarray(near.rank, dtype=np.int64)
        else:
            nvalue, nrank = np.empty(0), np.empty(0, dtype=np.int64)
        local = classify(rows["local_lam_min"], rows["local_err_min"], gap_rel, ref.lam_ref,
                         neg_tol=cfg.neg_tol, min_gap=cfg.min_gap)  # fmt: skip
        rel = rows["lam_min"] / ref.lam_ref
        if cfg.polish:
            cls = classify_critical(rows["polish_converged"] & clean,
                                    rows["polish_loss"], level, rel, lstar=ref.global_minimum,
                                    gap_scale=ref.gap_scale, psd_tol=cfg.psd_tol,
                                    level_tol=cfg.level_tol)  # fmt: skip
        else:  # no shadowed point: the local view is all there is
            cls = local
        start, end = rows["start"], rows["end"]
        return StallArrays(
            run=run, index=index, rows=rows, occupancy=occ, start_time=start * dt,
            end_time=end * dt, probe_time=rows["probe"] * dt, gap=gap, gap_rel=gap_rel,
            modes=modes, modes_clean=clean, critical_value=level,
            critical_rank=np.array([len(m) for m in modes], dtype=np.int64),
            nearest_value=nvalue, nearest_rank=nrank,
            local_rel_lam_min=rows["local_lam_min"] / ref.lam_ref,
            local_class=np.asarray(local, dtype=str), rel_lam_min=rel,
            stall_class=np.asarray(cls, dtype=str), length=end - start,
            duration=(end - start) * dt,
        )  # fmt: skip

    def results(self) -> list[TrainResult]:
        """One :class:`TrainResult` per run."""
        st = self.stalls
        bounds = np.searchsorted(st.run, np.arange(self.theta.shape[0] + 1))
        return [self._result(b, st, int(bounds[b]), int(bounds[b + 1]))
                for b in range(self.theta.shape[0])]  # fmt: skip

    def _result(self, b: int, st: StallArrays, lo: int, hi: int) -> TrainResult:
        ref, out = self.ref, self.runs[b]
        stalls = tuple(
            Stall(
                start=int(r["start"]),
                end=int(r["end"]),
                probe_step=int(r["probe"]),
                start_time=float(st.start_time[i]),
                end_time=float(st.end_time[i]),
                probe_time=float(st.probe_time[i]),
                loss=float(r["loss"]),
                gap=float(st.gap[i]),
                gap_rel=float(st.gap_rel[i]),
                modes=st.modes[i],
                occupancy=tuple(float(v) for v in st.occupancy[i]),
                critical_value=float(st.critical_value[i]),
                critical_rank=int(st.critical_rank[i]),
                nearest_value=float(st.nearest_value[i]),
                nearest_rank=int(st.nearest_rank[i]),
                min_grad_norm=float(r["gnorm"]),
                local_lam_min=float(r["local_lam_min"]),
                local_lam_max=float(r["local_lam_max"]),
                local_rel_lam_min=float(st.local_rel_lam_min[i]),
                local_class=str(st.local_class[i]),
                lanczos_iters=int(r["lanczos_iters"]),
                polish_converged=bool(r["polish_converged"]),
                polish_iters=int(r["polish_iters"]),
                polish_grad_rel=float(r["polish_grad_rel"]),
                polish_distance=float(r["polish_distance"]),
                polish_loss=float(r["polish_loss"]),
                lam_min=float(r["lam_min"]),
                lam_max=float(r["lam_max"]),
                lam_min_err=float(r["err_min"]),
                rel_lam_min=float(st.rel_lam_min[i]),
                kawaguchi_rank=int(r["kawaguchi_rank"]),
                stall_class=str(st.stall_class[i]),
            )  # fmt: skip
            for i, r in zip(range(lo, hi), st.rows[lo:hi], strict=True)
        )
        final_loss = float(out["loss"])
        to_target = int(out["to_target"])
        dt = float(self.time_unit[b])
        return TrainResult(
            weights=unflatten(self.theta[b], self.dims),
            losses=self.losses[b],
            loss_steps=self.loss_steps,
            status=STATUS[int(out["status"])],
            steps=int(out["steps"]),
            final_loss=final_loss,
            global_minimum=ref.global_minimum,
            final_gap=final_loss - ref.global_minimum,
            final_gap_rel=(final_loss - ref.global_minimum) / ref.gap_scale,
            target_gap=self.target_gap,
            steps_to_target=None if to_target < 0 else to_target,
            time_unit=dt,
            time_to_target=None if to_target < 0 else to_target * dt,
            grad_norm=float(out["grad_norm"]),
            lam_min=float(out["lam_min"]),
            lam_max=float(out["lam_max"]),
            err_min=float(out["err_min"]),
            err_max=float(out["err_max"]),
            lam_ref=ref.lam_ref,
            n_stalls=int(out["n_stalls"]),
            stalls=stalls,
            n_unstable=int(out["n_unstable"]),
            unstable_steps=int(out["unstable_steps"]),
            kicks=int(out["kicks"]),
            optimizer=self.optimizers[b],
            seed=int(self.seeds[b]),
        )


def train(
    X,
    Y,
    weights0: Sequence[np.ndarray],
    optimizer: str | Optimizer = "gd",
    lr: float | None = None,
    max_steps: int = 1000,
    *,
    seed: int = 0,
    **options: Any,
) -> TrainResult:
    """Train one deep linear network from ``weights0`` ([W_1..W_K] or ``init_weights(...)``).

    Optimizers: "gd" (full batch, the theory's), "momentum" (heavy ball, beta),
    "nesterov" (beta), "sgd" (batch_size; unbiased m/b-scaled mini-batch
    gradient), "adam" (beta1, beta2, eps), "pgd" (perturbed GD, Jin et al. 2017:
    radius, grad_tol, interval). Other keyword options as in :func:`train_batch`.
    """
    return train_batch(X, Y, [weights0], optimizer, lr, max_steps, seeds=[seed], **options)[0]
