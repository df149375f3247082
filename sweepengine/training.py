"""Training deep linear networks: ``train`` (one run) and ``train_batch`` (B runs).

Both call one fused compiled kernel (``kernels.trainer.train_batch``) that runs
the whole loop for every run, ``prange`` over runs. ``train`` is a batch of one,
so batched and single runs are the same code and give bit-identical results.
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
from .kernels import lockstep
from .kernels import trainer as kt
from .landscape import hessian_extremes_info
from .options import Optimizer, StallConfig, make_optimizer
from .stalls import Stall, classify
from .stats import Stats

STATUS = {kt.CONVERGED: "converged", kt.MAX_STEPS: "max_steps", kt.DIVERGED: "diverged"}
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


def reference(stats: Stats, dims: Sequence[int]) -> Reference:
    """L*, the gap scale and the curvature scale for a problem and architecture."""
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
    p = theory.rank_cap(int(dims[0]), int(dims[-1]), widths)
    return Reference(float(lstar), float(gap_scale), float(lam_ref), eigvals, p)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Outcome of one training run.

    ``losses[i]`` is the loss at step ``loss_steps[i]`` (NaN after the run
    stopped). ``final_gap`` = final_loss - L*; ``steps_to_target`` is the first
    step whose relative gap (L - L*)/(L(0) - L*) was <= target_gap, or None.
    ``lam_min``/``lam_max`` (with error bounds) are Hessian extremes at the final
    point (NaN if not probed or diverged). ``n_stalls`` counts every stall,
    ``stalls`` holds the first ``StallConfig.max_stalls`` of them, probed.
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
    grad_norm: float
    lam_min: float
    lam_max: float
    err_min: float
    err_max: float
    lam_ref: float
    n_stalls: int
    stalls: tuple[Stall, ...]
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
    **optimizer_params: Any,
) -> BatchOutput:
    """:func:`train_batch` on flat weights, returning the raw per-run arrays.

    ``theta0`` is (B, n_params(dims)), row b = W_1..W_K of run b flattened row-major
    (what ``init.init_batch`` returns). ``seeds`` (per run) drive mini-batch
    sampling, PGD kicks and the Lanczos start vector; ``record_every`` thins the
    recorded losses; a run stops at ``target_gap`` (relative gap) if
    ``stop_at_target``; ``stall`` sets stall detection; ``final_probe`` probes the
    Hessian at the end; ``threads`` caps Numba's threads for this call; ``ref``
    reuses a precomputed :func:`reference`. No per-run Python objects are built
    unless ``BatchOutput.results()`` is called.
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

    cfg = np.zeros(kt.N_CFG)
    cfg[kt.C_WINDOW] = cfg_stall.window
    cfg[kt.C_REL_DROP] = cfg_stall.rel_drop
    cfg[kt.C_MIN_LENGTH] = cfg_stall.min_length
    cfg[kt.C_MIN_GAP] = cfg_stall.min_gap
    cfg[kt.C_MAX_STALLS] = cfg_stall.max_stalls
    cfg[kt.C_LZ_ITER] = cfg_stall.lanczos_iter
    cfg[kt.C_LZ_TOL] = cfg_stall.lanczos_tol
    cfg[kt.C_TARGET] = target_gap
    cfg[kt.C_LSTAR] = ref.global_minimum
    cfg[kt.C_GAP_SCALE] = ref.gap_scale
    cfg[kt.C_DIV_LIMIT] = DIVERGENCE_FACTOR * 0.5 * stats.yy if stats.yy > 0 else np.inf
    cfg[kt.C_STOP_AT_TARGET] = float(stop_at_target)
    cfg[kt.C_FINAL_PROBE] = float(final_probe)

    hyper = np.array([o.hyper() for o in opts], dtype=np.float64)
    nrec = max_steps // record_every + 1
    losses = np.empty((B, nrec))
    iout = np.zeros((B, kt.N_IOUT), dtype=np.int64)
    fout = np.zeros((B, kt.N_FOUT))
    stalls = np.full((B, cfg_stall.max_stalls, kt.N_SFIELDS), np.nan)
    old_threads = numba.get_num_threads()
    n_threads = old_threads if threads is None else _positive_int("threads", threads)
    # Several Numba threads each calling a multi-threaded BLAS oversubscribe the
    # cores (measured 3.5x slower at d=128, B=8): cap BLAS while runs share threads.
    blas_cap = threadpool_limits(1, user_api="blas") if min(B, n_threads) > 1 else nullcontext()
    numba.set_num_threads(n_threads)
    try:
        with blas_cap:
            args = (stats.Cxx, stats.Cyx, stats.yy, X, Y, opts[0].code, hyper, seeds_arr)
            outs = (losses, iout, fout, stalls)
            kernel = _kernel(dims, opts[0].name, B)
            kernel(theta, dims, *args, max_steps, record_every, cfg, *outs)
    finally:
        numba.set_num_threads(old_threads)
    steps = np.arange(nrec, dtype=np.int64) * record_every
    return BatchOutput(theta, dims, losses, steps, iout, fout, stalls, ref, stats, cfg_stall,
                       float(target_gap), opts, seeds_arr)  # fmt: skip


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
    rows: np.ndarray  # (R, N_SFIELDS) raw kernel fields (kernels.trainer.S_*)
    gap: np.ndarray
    gap_rel: np.ndarray
    critical_value: np.ndarray
    critical_rank: np.ndarray
    rel_lam_min: np.ndarray
    stall_class: np.ndarray  # str
    length: np.ndarray  # end - start


@dataclasses.dataclass(frozen=True)
class BatchOutput:
    """The raw outcome of one batched kernel call (row b = run b), see :func:`train_flat`."""

    theta: np.ndarray  # (B, n) final weights
    dims: np.ndarray
    losses: np.ndarray  # (B, nrec), NaN after a run stopped
    loss_steps: np.ndarray  # (nrec,)
    iout: np.ndarray  # (B, N_IOUT) kernels.trainer.I_* fields
    fout: np.ndarray  # (B, N_FOUT) kernels.trainer.F_* fields
    stall_rows: np.ndarray  # (B, max_stalls, N_SFIELDS)
    ref: Reference
    stats: Stats
    stall: StallConfig
    target_gap: float
    optimizers: list[Optimizer]
    seeds: np.ndarray

    @property
    def status(self) -> np.ndarray:
        """Status name of every run."""
        return _STATUS_NAMES[self.iout[:, kt.I_STATUS]]

    @functools.cached_property
    def stalls(self) -> StallArrays:
        """The recorded (probed) stalls of every run, classified, as columns."""
        n_rec = np.minimum(self.iout[:, kt.I_NSTALLS], self.stall.max_stalls)
        mask = np.arange(self.stall_rows.shape[1])[None, :] < n_rec[:, None]
        run, index = np.nonzero(mask)
        rows = self.stall_rows[mask]
        ref = self.ref
        loss = rows[:, kt.S_LOSS]
        gap = loss - ref.global_minimum
        gap_rel = gap / ref.gap_scale
        if loss.size:
            near = theory.nearest_critical_value(loss, ref.eigvals, self.stats.yy, ref.rank_cap)
            value, rank = np.asarray(near.value, dtype=float), np.asarray(near.rank, dtype=np.int64)
        else:
            value, rank = np.empty(0), np.empty(0, dtype=np.int64)
        cls = classify(rows[:, kt.S_LMIN], rows[:, kt.S_EMIN], gap_rel, ref.lam_ref,
                       neg_tol=self.stall.neg_tol, min_gap=self.stall.min_gap)  # fmt: skip
        start, end = rows[:, kt.S_START].astype(np.int64), rows[:, kt.S_END].astype(np.int64)
        return StallArrays(run, index, rows, gap, gap_rel, value, rank,
                           rows[:, kt.S_LMIN] / ref.lam_ref, np.asarray(cls, dtype=str),
                           end - start)  # fmt: skip

    def results(self) -> list[TrainResult]:
        """One :class:`TrainResult` per run."""
        st = self.stalls
        bounds = np.searchsorted(st.run, np.arange(self.theta.shape[0] + 1))
        return [self._result(b, st, int(bounds[b]), int(bounds[b + 1]))
                for b in range(self.theta.shape[0])]  # fmt: skip

    def _result(self, b: int, st: StallArrays, lo: int, hi: int) -> TrainResult:
        ref, iout, fout = self.ref, self.iout[b], self.fout[b]
        stalls = tuple(
            Stall(
                start=int(r[kt.S_START]),
                end=int(r[kt.S_END]),
                probe_step=int(r[kt.S_PROBE]),
                loss=float(r[kt.S_LOSS]),
                gap=float(st.gap[i]),
                gap_rel=float(st.gap_rel[i]),
                critical_value=float(st.critical_value[i]),
                critical_rank=int(st.critical_rank[i]),
                min_grad_norm=float(r[kt.S_GNORM]),
                lam_min=float(r[kt.S_LMIN]),
                lam_max=float(r[kt.S_LMAX]),
                err_min=float(r[kt.S_EMIN]),
                err_max=float(r[kt.S_EMAX]),
                lanczos_iters=int(r[kt.S_ITERS]),
                rel_lam_min=float(st.rel_lam_min[i]),
                stall_class=str(st.stall_class[i]),
            )
            for i, r in zip(range(lo, hi), st.rows[lo:hi], strict=True)
        )
        final_loss = float(fout[kt.F_LOSS])
        to_target = int(iout[kt.I_TO_TARGET])
        return TrainResult(
            weights=unflatten(self.theta[b], self.dims),
            losses=self.losses[b],
            loss_steps=self.loss_steps,
            status=STATUS[int(iout[kt.I_STATUS])],
            steps=int(iout[kt.I_STEPS]),
            final_loss=final_loss,
            global_minimum=ref.global_minimum,
            final_gap=final_loss - ref.global_minimum,
            final_gap_rel=(final_loss - ref.global_minimum) / ref.gap_scale,
            target_gap=self.target_gap,
            steps_to_target=None if to_target < 0 else to_target,
            grad_norm=float(fout[kt.F_GNORM]),
            lam_min=float(fout[kt.F_LMIN]),
            lam_max=float(fout[kt.F_LMAX]),
            err_min=float(fout[kt.F_EMIN]),
            err_max=float(fout[kt.F_EMAX]),
            lam_ref=ref.lam_ref,
            n_stalls=int(iout[kt.I_NSTALLS]),
            stalls=stalls,
            kicks=int(iout[kt.I_KICKS]),
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
