"""Training networks with an activation and weight decay: ``train_batch_nonlinear``.

The nonlinear counterpart of ``training.train_batch`` (docs/nonlinear.md, "Trainer"):
B runs of one architecture on one data set in one compiled call
(``kernels.nltrainer.train_batch``), every optimizer of ``options.OPTIMIZERS``,
stalls detected by the linear trainer's own rule (``kernels.trainer.track``) and
examined by Newton-MR and Lanczos on the exact nonlinear HVPs.

L* is unknown here, so:

- the relative gap is (L - lstar) / gap_scale with ``lstar`` a *floor* given by the
  caller (default 0: the squared loss with weight decay is >= 0) and ``gap_scale``
  ``"zero"`` (default: L(W = 0) - lstar = 1/2 ||Y||^2 - lstar, the loss of the zero
  network, the same for every run and every activation), ``"initial"`` (L(theta_0) -
  lstar per run) or a positive number;
- ``lam_ref`` (the curvature scale of the time unit, dt = lam_ref x lr_eff) defaults
  to the linear network's on the same data and architecture
  (``training.reference(...).lam_ref``: the top Hessian eigenvalue at the balanced
  global minimizer of the linear problem) plus the weight decay; a number overrides it;
- a stall's class is read from the Hessian at the polished point and, where that is
  PSD, from a higher-order test of the loss along its near-null space
  (:func:`classify_nonlinear`: strict saddle, non-strict ``bad_saddle`` or minimum);
  whether a minimum lies above the best loss is decided after a sweep, across seeds
  (:func:`best_loss_gaps`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any, NamedTuple

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from . import nonlinear as _nl
from ._layout import dims_of, flatten, n_params, unflatten
from ._validate import as_dims, as_matrix, as_weights
from .kernels import activation as _act
from .kernels import descent as _descent
from .kernels import nltrainer as knl
from .kernels import state
from .nonlinear import ACTIVATIONS
from .options import Optimizer, StallConfig
from .stalls import Stall, classify
from .stats import Stats
from .training import (  # the linear trainer's validation and thread slicing, shared
    DIVERGENCE_FACTOR,
    STATUS,
    StallArrays,
    _in_slices,
    _optimizers,
    _positive_int,
    _stall_config,
    reference,
    run_inputs,
)

_CODES = {"linear": _act.LINEAR, "relu": _act.RELU, "leaky_relu": _act.LEAKY_RELU,
          "tanh": _act.TANH}  # fmt: skip
_STATUS_NAMES = np.array([STATUS[c] for c in sorted(STATUS)])
#: classes of a nonlinear stall (``minimum_above_best`` only after :func:`best_loss_gaps`);
#: ``bad_saddle`` is a non-strict saddle (PSD Hessian, higher-order descent): the linear
#: runs' name for the saddles Kawaguchi calls bad
NL_STALL_CLASSES = ("strict_saddle", "bad_saddle", "minimum", "minimum_above_best",
                    "unresolved")  # fmt: skip
#: Slices per thread (as ``training``): threads take slices as they finish.


def classify_nonlinear(converged, rel_lam_min, descent_drop=None, *, psd_tol: float,
                       grad_rel=None, rough_tol: float = 0.0,
                       neg_tol: float = 1.0) -> np.ndarray:  # fmt: skip
    """The class of each stall's polished point (vectorised): ``strict_saddle`` where
    lambda_min < -psd_tol x lam_ref (``rel_lam_min`` = lambda_min / lam_ref) at a
    converged point, or where Newton-MR stopped short of ``polish_tol`` but within
    ``rough_tol`` (``grad_rel`` = ||grad|| / g_ref there) with lambda_min < -neg_tol x
    lam_ref: negative curvature that large does not vanish within the distance left to
    the critical point, and a relu net's kinks can stop Newton-MR there (docs/
    nonlinear.md, "Stall examination"); ``unresolved`` at the other points that did not
    converge; at converged PSD points the higher-order test decides (``descent_drop``,
    from ``kernels.descent.descent_test``: > 0 where the loss falls at higher order
    along the Hessian's near-null space): ``bad_saddle`` (a non-strict saddle) there,
    else ``minimum`` (possibly degenerate; :func:`best_loss_gaps` relabels those above
    the best loss). ``descent_drop`` None or NaN: not tested, ``minimum``."""
    ok = np.asarray(converged, dtype=bool)
    rel = np.asarray(rel_lam_min, dtype=float)
    strict = rel < -psd_tol
    if grad_rel is not None:
        rough = np.asarray(grad_rel, dtype=float) <= rough_tol
        strict_rough = rough & (rel < -neg_tol)
        strict = np.where(ok, strict, strict_rough)
        ok = ok | strict_rough
    if descent_drop is None:
        bad = np.zeros(ok.shape, dtype=bool)
    else:
        with np.errstate(invalid="ignore"):
            bad = np.asarray(descent_drop, dtype=float) > 0
    return np.where(~ok, "unresolved", np.where(strict, "strict_saddle", np.where(
        bad, "bad_saddle", "minimum")))  # fmt: skip


@dataclasses.dataclass(frozen=True)
class NLTrainResult:
    """Outcome of one nonlinear run (the fields of ``training.TrainResult`` that make sense
    without L*). ``floor`` is the ``lstar`` the gaps are measured from, ``gap_scale`` the
    run's normaliser: ``final_gap_rel`` = (final_loss - floor) / gap_scale. ``stalls`` are
    ``stalls.Stall`` records with the linear-only fields empty: ``modes`` and
    ``occupancy`` (), ``critical_rank``, ``nearest_rank`` and ``kawaguchi_rank`` -1,
    ``nearest_value`` NaN; ``critical_value`` is the polished point's loss (NaN if not
    polished), ``nullity`` / ``descent_drop`` / ``descent_radius`` the higher-order
    test's (``kernels.descent``) and ``stall_class`` one of ``NL_STALL_CLASSES``."""

    weights: list[np.ndarray]
    losses: np.ndarray
    loss_steps: np.ndarray
    status: str
    steps: int
    final_loss: float
    floor: float
    gap_scale: float
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
    activation: str
    alpha: float
    weight_decay: float


@dataclasses.dataclass(frozen=True)
class NLBatchOutput:
    """The raw outcome of one nonlinear batched call (row b = run b)."""

    theta: np.ndarray  # (B, n) final weights
    dims: np.ndarray
    losses: np.ndarray  # (B, nrec), NaN after a run stopped
    loss_steps: np.ndarray
    runs: np.ndarray  # (B,) state.RUN_OUT
    stall_rows: np.ndarray  # (B, max_stalls) state.STALL_OUT
    configs: np.ndarray  # (B,) state.CONFIG, one per run (floor, gap scale, g_ref)
    time_unit: np.ndarray  # (B,)
    lam_ref: float
    stall: StallConfig
    target_gap: float
    optimizers: list[Optimizer]
    seeds: np.ndarray
    activation: str
    alpha: float
    weight_decay: float
    #: (B, max_stalls, n): row [b, i] the probe point (weights at the smallest gradient
    #: norm) of run b's i-th recorded stall; None unless ``keep_probes=True``
    probe_theta: np.ndarray | None = None

    @property
    def status(self) -> np.ndarray:
        return _STATUS_NAMES[self.runs["status"]]

    def results(self) -> list[NLTrainResult]:
        """One :class:`NLTrainResult` per run."""
        return [self._result(b) for b in range(self.theta.shape[0])]

    def _classes(self, rows: np.ndarray, gap_rel: np.ndarray) -> tuple:
        """(local class, lambda_min / lam_ref at the polished point, stall class) of
        stall rows: :func:`classify_nonlinear`, or the local class without polishing."""
        cfg = self.stall
        local = classify(rows["local_lam_min"], rows["local_err_min"], gap_rel, self.lam_ref,
                         neg_tol=cfg.neg_tol, min_gap=cfg.min_gap)  # fmt: skip
        rel = rows["lam_min"] / self.lam_ref
        if not cfg.polish:
            return local, rel, local
        cls = classify_nonlinear(rows["polish_converged"], rel, rows["descent_drop"],
                                 psd_tol=cfg.psd_tol, grad_rel=rows["polish_grad_rel"],
                                 rough_tol=cfg.rough_tol, neg_tol=cfg.neg_tol)  # fmt: skip
        return local, rel, cls

    @functools.cached_property
    def stalls(self) -> StallArrays:
        """Every recorded stall of the batch as columns (``training.StallArrays``, the
        sweep worker's input), with the values of :meth:`results`' stalls: the
        linear-only fields empty (``modes`` (), ``occupancy`` (R, 0), ranks -1,
        ``nearest_value`` NaN), ``critical_value`` the polished loss (NaN if not
        polished), gaps from each run's floor."""
        n_rec = np.minimum(self.runs["n_stalls"], self.stall.max_stalls)
        mask = np.arange(self.stall_rows.shape[1])[None, :] < n_rec[:, None]
        run, index = np.nonzero(mask)
        rows = self.stall_rows[mask]
        R = rows.shape[0]
        floor, scale = self.configs["lstar"][run], self.configs["gap_scale"][run]
        dt = self.time_unit[run]
        gap = rows["loss"] - floor
        gap_rel = gap / scale
        local, rel, cls = self._classes(rows, gap_rel)
        start, end = rows["start"], rows["end"]
        minus1 = np.full(R, -1, dtype=np.int64)
        return StallArrays(
            run=run, index=index, rows=rows, occupancy=np.zeros((R, 0)),
            start_time=start * dt, end_time=end * dt, probe_time=rows["probe"] * dt,
            gap=gap, gap_rel=gap_rel, modes=[()] * R, modes_clean=np.ones(R, dtype=bool),
            critical_value=np.where(rows["polished"], rows["polish_loss"], np.nan),
            critical_rank=minus1, nearest_value=np.full(R, np.nan), nearest_rank=minus1,
            local_rel_lam_min=rows["local_lam_min"] / self.lam_ref,
            local_class=np.asarray(local, dtype=str), rel_lam_min=rel,
            stall_class=np.asarray(cls, dtype=str), length=end - start,
            duration=(end - start) * dt,
        )  # fmt: skip

    def _stalls(self, b: int) -> tuple[Stall, ...]:
        cfg, dt = self.configs[b], float(self.time_unit[b])
        n = min(int(self.runs[b]["n_stalls"]), self.stall.max_stalls)
        rows = self.stall_rows[b, :n]
        floor, scale = float(cfg["lstar"]), float(cfg["gap_scale"])
        gap_rel = (rows["loss"] - floor) / scale
        local, rel, cls = self._classes(rows, gap_rel)
        return tuple(
            Stall(
                start=int(r["start"]),
                end=int(r["end"]),
                probe_step=int(r["probe"]),
                start_time=r["start"] * dt,
                end_time=r["end"] * dt,
                probe_time=r["probe"] * dt,
                loss=float(r["loss"]),
                gap=float(r["loss"] - floor),
                gap_rel=float(gap_rel[i]),
                modes=(),
                occupancy=(),
                critical_value=float(r["polish_loss"]),
                critical_rank=-1,
                nearest_value=math.nan,
                nearest_rank=-1,
                min_grad_norm=float(r["gnorm"]),
                local_lam_min=float(r["local_lam_min"]),
                local_lam_max=float(r["local_lam_max"]),
                local_rel_lam_min=float(r["local_lam_min"] / self.lam_ref),
                local_class=str(local[i]),
                lanczos_iters=int(r["lanczos_iters"]),
                polish_converged=bool(r["polish_converged"]),
                polish_iters=int(r["polish_iters"]),
                polish_grad_rel=float(r["polish_grad_rel"]),
                polish_distance=float(r["polish_distance"]),
                polish_loss=float(r["polish_loss"]),
                lam_min=float(r["lam_min"]),
                lam_max=float(r["lam_max"]),
                lam_min_err=float(r["err_min"]),
                rel_lam_min=float(rel[i]),
                kawaguchi_rank=int(r["kawaguchi_rank"]),
                stall_class=str(cls[i]),
                nullity=int(r["nullity"]),
                descent_drop=float(r["descent_drop"]),
                descent_radius=float(r["descent_radius"]),
            )  # fmt: skip
            for i, r in enumerate(rows)
        )

    def _result(self, b: int) -> NLTrainResult:
        out, cfg = self.runs[b], self.configs[b]
        floor, scale = float(cfg["lstar"]), float(cfg["gap_scale"])
        final_loss = float(out["loss"])
        to_target = int(out["to_target"])
        dt = float(self.time_unit[b])
        return NLTrainResult(
            weights=unflatten(self.theta[b], self.dims), losses=self.losses[b],
            loss_steps=self.loss_steps, status=STATUS[int(out["status"])],
            steps=int(out["steps"]), final_loss=final_loss, floor=floor, gap_scale=scale,
            final_gap_rel=(final_loss - floor) / scale, target_gap=self.target_gap,
            steps_to_target=None if to_target < 0 else to_target, time_unit=dt,
            time_to_target=None if to_target < 0 else to_target * dt,
            grad_norm=float(out["grad_norm"]), lam_min=float(out["lam_min"]),
            lam_max=float(out["lam_max"]), err_min=float(out["err_min"]),
            err_max=float(out["err_max"]), lam_ref=self.lam_ref,
            n_stalls=int(out["n_stalls"]), stalls=self._stalls(b),
            n_unstable=int(out["n_unstable"]), unstable_steps=int(out["unstable_steps"]),
            kicks=int(out["kicks"]), optimizer=self.optimizers[b], seed=int(self.seeds[b]),
            activation=self.activation, alpha=self.alpha, weight_decay=self.weight_decay,
        )  # fmt: skip


def _activation(activation, alpha, weight_decay) -> tuple[int, float, float]:
    if not isinstance(activation, str) or activation not in _CODES:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    for name, v in (("alpha", alpha), ("weight_decay", weight_decay)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if activation == "leaky_relu" and not (0.0 <= alpha < 1.0):
        raise ValueError(f"alpha (the leaky_relu slope) must lie in [0, 1), got {alpha!r}")
    return (
        _CODES[activation],
        float(alpha) if activation == "leaky_relu" else 0.0,
        float(weight_decay),
    )


def _theta_and_dims(weights0, dims) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(weights0, np.ndarray):
        if dims is None:
            raise ValueError("a flat (B, n) weights0 array needs dims=[d_0, ..., d_K]")
        dims = as_dims(dims)
        n = n_params(dims)
        theta = np.array(weights0, dtype=np.float64, order="C", copy=True)
        if theta.ndim != 2 or theta.shape[0] < 1 or theta.shape[1] != n:
            raise ValueError(
                f"weights0 must have shape (B >= 1, {n}) for dims {dims.tolist()}, "
                f"got {theta.shape}"
            )
    else:
        if not isinstance(weights0, Sequence) or not weights0:
            raise ValueError("weights0 must be a non-empty list of weight lists (one per run)")
        chains = [as_weights(w, f"weights0[{b}]") for b, w in enumerate(weights0)]
        dims = dims_of(chains[0])
        for b, c in enumerate(chains):
            if not np.array_equal(dims_of(c), dims):
                raise ValueError(
                    f"weights0[{b}] has layer sizes {dims_of(c).tolist()}, expected "
                    f"{dims.tolist()} (a batch shares one architecture)"
                )
        theta = np.stack([flatten(c) for c in chains])
    if not np.isfinite(theta).all():
        raise ValueError("weights0 contains non-finite values (NaN or inf)")
    return theta, np.asarray(dims, dtype=np.int64)


def train_batch_nonlinear(X, Y, weights0, optimizer="gd", lr=None, max_steps: int = 1000,
                          **options: Any) -> list[NLTrainResult]:  # fmt: skip
    """Train B networks with an activation (and weight decay) in one compiled call.

    ``weights0``: a list of B weight lists [W_1..W_K] of one architecture, or a (B, n)
    array of flat weights with ``dims=``. Options as :func:`train_flat_nonlinear`.
    Bit-identical to training each run alone, whatever B or the thread count.
    """
    return train_flat_nonlinear(X, Y, weights0, optimizer, lr, max_steps, **options).results()


def train_flat_nonlinear(
    X,
    Y,
    weights0,
    optimizer: str | Optimizer | Sequence[Optimizer] = "gd",
    lr: float | Sequence[float] | None = None,
    max_steps: int = 1000,
    *,
    activation: str = "linear",
    alpha: float = 0.01,
    weight_decay: float = 0.0,
    dims: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
    record_every: int = 1,
    target_gap: float = 1e-6,
    stop_at_target: bool = True,
    stall: StallConfig | Mapping[str, Any] | None = None,
    final_probe: bool = True,
    threads: int | None = None,
    lstar: float = 0.0,
    gap_scale: str | float = "zero",
    lam_ref: float | None = None,
    keep_probes: bool = False,
    **optimizer_params: Any,
) -> NLBatchOutput:
    """:func:`train_batch_nonlinear` returning the raw per-run arrays (``NLBatchOutput``).

    ``activation`` (``ACTIVATIONS``), ``alpha`` (leaky_relu slope), ``weight_decay``
    (lam/2 ||theta||^2). ``lstar``: the floor of the relative gap (L - lstar) /
    gap_scale (default 0); ``gap_scale``: ``"zero"`` (L(W=0) - lstar = 1/2 ||Y||^2 -
    lstar), ``"initial"`` (L(theta_0) - lstar per run) or a positive number;
    ``lam_ref``: the time unit's curvature (default: the linear problem's lam_ref plus
    the weight decay). ``keep_probes``: also return each recorded stall's probe point
    (``NLBatchOutput.probe_theta``, B x max_stalls x n floats). Other options as
    ``training.train_flat``: ``seeds``, ``record_every``, ``target_gap`` (relative to
    the floor), ``stop_at_target``, ``stall``, ``final_probe``, ``threads``, optimizer
    parameters.
    """
    act, alpha_v, wd = _activation(activation, alpha, weight_decay)
    theta, dims = _theta_and_dims(weights0, dims)
    B, n = theta.shape
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
    for b, o in enumerate(opts):
        size = dict(o.params).get("batch_size")
        if size is not None and int(size) > X.shape[1]:
            raise ValueError(
                f"run {b} of the batch: batch_size {int(size)} exceeds the number of samples "
                f"m={X.shape[1]}"
            )
    if isinstance(lstar, bool) or not isinstance(lstar, int | float) or not math.isfinite(lstar):
        raise ValueError(f"lstar (the loss floor) must be a finite number, got {lstar!r}")
    lstar = float(lstar)
    l_zero = 0.5 * float(np.sum(Y * Y))
    l_init = knl.initial_losses(theta, dims, X, Y, act, alpha_v, wd)
    if isinstance(gap_scale, str):
        if gap_scale == "zero":
            scales = np.full(B, l_zero - lstar)
        elif gap_scale == "initial":
            scales = l_init - lstar
        else:
            raise ValueError(f"gap_scale must be 'zero', 'initial' or a positive number, "
                             f"got {gap_scale!r}")  # fmt: skip
    elif isinstance(gap_scale, int | float) and not isinstance(gap_scale, bool):
        scales = np.full(B, float(gap_scale))
    else:
        raise ValueError(f"gap_scale must be 'zero', 'initial' or a positive number, "
                         f"got {gap_scale!r}")  # fmt: skip
    bad = np.flatnonzero(~(np.isfinite(scales) & (scales > 0)))
    if bad.size:
        raise ValueError(
            f"gap_scale must be positive: run {int(bad[0])} has {scales[bad[0]]!r} "
            f"(gap_scale={gap_scale!r}, lstar={lstar}; the floor must lie below the loss)"
        )
    if lam_ref is None:
        lam = reference(Stats.from_data(X, Y), dims).lam_ref + wd
    elif isinstance(lam_ref, int | float) and not isinstance(lam_ref, bool) and lam_ref > 0:
        lam = float(lam_ref)
        if not math.isfinite(lam):
            raise ValueError(f"lam_ref must be a finite positive number, got {lam_ref!r}")
    else:
        raise ValueError(f"lam_ref must be a finite positive number or None, got {lam_ref!r}")
    g_ref = np.sqrt(lam * scales)
    base = state.config_record(
        rel_drop=cfg_stall.rel_drop, min_gap=cfg_stall.min_gap, target=target_gap,
        lstar=lstar, gap_scale=1.0, div_limit=np.inf, stop_at_target=bool(stop_at_target),
        final_probe=bool(final_probe), lz_iter=cfg_stall.lanczos_iter,
        lz_tol=cfg_stall.lanczos_tol, g_ref=1.0, rough_tol=cfg_stall.rough_tol,
        rough_newton=cfg_stall.rough_newton, polish_tol=cfg_stall.polish_tol,
        polish_newton=cfg_stall.polish_newton, polish_inner=cfg_stall.polish_inner,
        rank_tol=cfg_stall.rank_tol, mid_scale=1.0, polish=cfg_stall.polish,
        psd_tol=cfg_stall.psd_tol,
    )  # fmt: skip
    cfgs = np.repeat(base, B)
    cfgs["gap_scale"] = scales
    cfgs["g_ref"] = g_ref
    top = np.maximum(l_zero, np.where(np.isfinite(l_init), l_init, 0.0))
    cfgs["div_limit"] = np.where(top > 0, DIVERGENCE_FACTOR * top, np.inf)
    runs_in = np.concatenate([
        run_inputs([o], seeds_arr[b : b + 1], cfg_stall,
                   types.SimpleNamespace(lam_ref=lam, g_ref=float(g_ref[b])), n)
        for b, o in enumerate(opts)
    ])  # fmt: skip
    nrec = max_steps // record_every + 1
    losses = np.empty((B, nrec))
    runs_out = np.zeros(B, dtype=state.RUN_OUT)
    stall_rows = np.zeros((B, cfg_stall.max_stalls), dtype=state.STALL_OUT)
    probes = np.full((B, cfg_stall.max_stalls if keep_probes else 0, n), np.nan)
    n_threads = numba.get_num_threads() if threads is None else _positive_int("threads", threads)
    blas_cap = threadpool_limits(1, user_api="blas") if min(B, n_threads) > 1 else nullcontext()
    rec = state.records
    args = (rec(runs_in), rec(runs_out), rec(stall_rows), rec(cfgs))
    code = opts[0].code

    def run_slice(a: int, z: int) -> None:
        r_in, r_out, r_st, r_cfg = (x[a:z] for x in args)
        knl.train_batch(theta[a:z], dims, X, Y, act, alpha_v, wd, code, r_in, max_steps,
                        record_every, r_cfg, losses[a:z], r_out, r_st, probes[a:z])  # fmt: skip

    run_slice.kernel = knl.train_batch
    with blas_cap:
        _in_slices(run_slice, B, n_threads, 1)
    return NLBatchOutput(
        theta=theta, dims=dims, losses=losses,
        loss_steps=np.arange(nrec, dtype=np.int64) * record_every, runs=runs_out,
        stall_rows=stall_rows, configs=cfgs, time_unit=runs_in["dt"].copy(), lam_ref=lam,
        stall=cfg_stall, target_gap=float(target_gap), optimizers=opts, seeds=seeds_arr,
        activation=activation, alpha=alpha_v, weight_decay=wd,
        probe_theta=probes if keep_probes else None,
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class BestLoss:
    """One configuration's best loss across its seeds and each run's gap to it.

    ``best``: the smallest of the final losses of the runs that did not diverge and
    of the losses of converged polished stall points (a minimum found at a stall may lie
    below every final loss). ``gaps[i]`` = final loss of run i - best (NaN if it
    diverged); ``results``: the runs with stalls of class ``minimum`` whose polished loss
    is above best + tol x the run's gap_scale relabelled ``minimum_above_best`` (None
    when plain losses were given)."""

    best: float
    gaps: np.ndarray
    results: list[NLTrainResult] | None


def best_loss_gaps(final_losses_by_config: Mapping[Any, Sequence], *,
                   tol: float = 1e-6) -> dict[Any, BestLoss]:  # fmt: skip
    """Per configuration (key -> its seeds' ``NLTrainResult``s, or plain final losses):
    the best loss across seeds, each run's gap to it, and the ``minimum_above_best``
    relabelling of stalls (see :class:`BestLoss`). ``tol`` is relative to each run's
    gap_scale (a plain loss list is compared with an absolute tol x 1)."""
    if not (isinstance(tol, int | float) and math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    out = {}
    for key, runs in final_losses_by_config.items():
        runs = list(runs)
        if not runs:
            raise ValueError(f"configuration {key!r} has no runs")
        as_results = all(isinstance(r, NLTrainResult) for r in runs)
        if as_results:
            finals = np.array([r.final_loss if r.status != "diverged" else np.nan for r in runs])
            polished = [s.polish_loss for r in runs for s in r.stalls if s.polish_converged]
        elif not any(isinstance(r, NLTrainResult) for r in runs):
            finals = np.asarray(runs, dtype=float)
            polished = []
        else:
            raise ValueError(f"configuration {key!r} mixes results and plain losses")
        cands = np.concatenate([finals, np.asarray(polished, dtype=float)])
        cands = cands[np.isfinite(cands)]
        best = float(cands.min()) if cands.size else math.nan
        gaps = finals - best
        relabelled = None
        if as_results:
            relabelled = []
            for r in runs:
                stalls = tuple(
                    dataclasses.replace(s, stall_class="minimum_above_best")
                    if s.stall_class == "minimum" and s.polish_loss - best > tol * r.gap_scale
                    else s
                    for s in r.stalls
                )
                relabelled.append(dataclasses.replace(r, stalls=stalls))
        out[key] = BestLoss(best, gaps, relabelled)
    return out


class CriticalClass(NamedTuple):
    """What :func:`nonlinear_classify_critical` found at a point."""

    #: ``not_critical`` (||grad|| / g_ref > grad_tol), ``strict_saddle`` (lambda_min <
    #: -psd_tol lam_ref), ``bad_saddle`` (PSD, higher-order descent found) or ``minimum``
    critical_class: str
    loss: float
    grad_rel: float  # ||grad|| / g_ref, g_ref = sqrt(lam_ref gap_scale)
    lam_min: float  # the dense Hessian's extremes
    lam_max: float
    #: eigenvalues within psd_tol x lam_ref of 0 (-1: the descent test was not run)
    nullity: int
    #: (L - L_found) / gap_scale at the first descent found (0.0: none; NaN: not run)
    descent_drop: float
    descent_radius: float  # its radius / sqrt(gap_scale / lam_ref); NaN if none
    evals: int  # loss evaluations of the descent test
    lam_ref: float
    gap_scale: float


def nonlinear_classify_critical(
    weights,
    X,
    Y,
    activation="linear",
    alpha=0.01,
    weight_decay=0.0,
    *,
    lam_ref: float | None = None,
    gap_scale: float | None = None,
    psd_tol: float = 1e-6,
    grad_tol: float = 1e-8,
    seed: int = 0,
) -> CriticalClass:
    """The class of the critical point ``weights``, as the nonlinear trainer classes a
    stall's polished point (docs/nonlinear.md, "Non-strict saddles").

    ``not_critical`` if ||grad|| / g_ref > ``grad_tol`` (g_ref = sqrt(lam_ref x
    gap_scale)); else ``strict_saddle`` if the dense Hessian's lambda_min < -``psd_tol``
    x lam_ref; else the higher-order test of ``kernels.descent.descent_test`` (probes
    of the loss along the Hessian's near-null space, seeded by ``seed``): ``bad_saddle``
    (a non-strict saddle: PSD, the loss falls at higher order) or ``minimum``
    (possibly degenerate). ``lam_ref`` defaults to the trainer's (the linear problem's
    lam_ref on the same data and architecture plus the weight decay), ``gap_scale`` to
    L(W = 0) = 1/2 ||Y||^2 (the trainer's default scale with floor 0). Dense: at most
    ``DENSE_MAX`` parameters.
    """
    p = _nl._net(weights, X, Y, activation, alpha, weight_decay)
    n = p.theta.size
    if n > _descent.DENSE_MAX:
        raise ValueError(
            f"nonlinear_classify_critical is dense only: at most {_descent.DENSE_MAX} "
            f"parameters, got {n}"
        )
    for name, v in (("psd_tol", psd_tol), ("grad_tol", grad_tol)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1:
            raise ValueError(f"{name} must be a number in (0, 1), got {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if gap_scale is None:
        gap_scale = 0.5 * float(np.sum(p.Y * p.Y))
    if lam_ref is None:
        lam_ref = reference(Stats.from_data(p.X, p.Y), p.dims).lam_ref + p.wd
    for name, v in (("lam_ref", lam_ref), ("gap_scale", gap_scale)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < math.inf:
            raise ValueError(f"{name} must be a finite positive number, got {v!r}")
    lam_ref, gap_scale = float(lam_ref), float(gap_scale)
    l, g, ws = _nl._prepare(p)
    grad_rel = float(np.sqrt(g @ g) / np.sqrt(lam_ref * gap_scale))
    out = np.empty(_descent.N_OUT)
    _descent.descent_test(p.theta, p.dims, p.X, p.Y, p.act, p.alpha, p.wd, ws, gap_scale,
                          lam_ref, float(psd_tol), int(seed), out)  # fmt: skip
    lam_min, lam_max = float(out[4]), float(out[5])
    if grad_rel > grad_tol:
        cls = "not_critical"
    else:  # the stall examination's rule (a NaN drop: the test did not run, minimum)
        cls = str(classify_nonlinear(True, lam_min / lam_ref, out[1], psd_tol=psd_tol))
    return CriticalClass(
        critical_class=cls, loss=l, grad_rel=grad_rel, lam_min=lam_min, lam_max=lam_max,
        nullity=int(out[0]), descent_drop=float(out[1]), descent_radius=float(out[2]),
        evals=int(out[3]), lam_ref=lam_ref, gap_scale=gap_scale,
    )  # fmt: skip
