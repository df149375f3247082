"""Named kernel state: the trainer's inputs, settings, per-run state and outputs.

Everything the trainers read or write besides the weights is a named field:

- ``Problem``, a named tuple of the problem's arrays (statistics, data, the mode
  basis used to read off which modes a point has learned);
- ``CONFIG`` (one record, passed as a 1-element array): stall detection, probing
  and polishing settings shared by every run of a call;
- ``RUN_IN`` (one record per run): what differs between runs of a call (seed,
  optimizer hyper-parameters, time per step and the detection window in steps);
- ``RUN_STATE`` (one record per run): the bookkeeping a driver carries from step to
  step (both drivers use the same functions on it);
- ``RUN_OUT`` and ``STALL_OUT``: per-run and per-stall outputs, which the Python
  side reads by name (``out["status"]``, ``stalls["lam_min"]``).

Each is a NumPy structured dtype (``align=True``): Numba compiles record access to
plain loads and stores at fixed offsets, and the types do not depend on the
architecture, so each kernel keeps one compiled signature. Widths that vary with
the problem (the occupancy of each mode) live in plain arrays beside them.
"""

from typing import NamedTuple

import numpy as np
from numba import config
from numba.extending import overload

# optimizer codes (see sweepengine.options.OPTIMIZERS)
GD, MOMENTUM, NESTEROV, SGD, ADAM, PGD = 0, 1, 2, 3, 4, 5
# status codes
CONVERGED, MAX_STEPS, DIVERGED = 0, 1, 2
N_HYPER = 5  # lr and up to four optimizer parameters (options.N_HYPER + 1)
RING = 4096  # loss-gap samples kept per run for the detection window


class Problem(NamedTuple):
    """One least-squares problem as the kernels see it.

    Cxx = X X^T, Cyx = Y X^T, yy = tr(Y Y^T); X, Y (mini-batch SGD only; (d, 1)
    placeholders otherwise). Mode basis of Sigma = Cyx Cxx^+ Cyx^T = U diag(l) U^T
    (eigenvalues above the rank tolerance only): ``U`` (d_y, r) and ``G`` (d_x, r) with
    G[:, i] = Cyx^T u_i / l_i, so mode i's occupancy at P = W_K..W_1 is u_i^T P G[:, i].
    """

    Cxx: np.ndarray
    Cyx: np.ndarray
    yy: float
    X: np.ndarray
    Y: np.ndarray
    U: np.ndarray
    G: np.ndarray


CONFIG = np.dtype(
    [
        ("rel_drop", np.float64),  # flat: relative gap fell by less than this over the window
        ("min_gap", np.float64),  # ... while the relative gap is above this
        ("target", np.float64),  # relative gap at which a run has converged
        ("lstar", np.float64),  # L*
        ("gap_scale", np.float64),  # L(0) - L*
        ("div_limit", np.float64),  # loss above this: diverged
        ("stop_at_target", np.bool_),
        ("final_probe", np.bool_),
        ("lz_iter", np.int64),  # Lanczos iterations at most
        ("lz_tol", np.float64),  # Lanczos relative residual tolerance
        ("g_ref", np.float64),  # gradient scale sqrt(lam_ref * gap_scale)
        ("rough_tol", np.float64),  # first pass: ||grad|| / g_ref <= this, then balance
        ("rough_newton", np.int64),  # first pass: Newton-MR iterations at most
        ("polish_tol", np.float64),  # converged when ||grad|| / g_ref <= this
        ("polish_newton", np.int64),  # Newton-MR iterations at most (second pass)
        ("polish_inner", np.int64),  # MINRES iterations per Newton step at most
        ("rank_tol", np.float64),  # singular values above rank_tol * mid_scale count
        ("mid_scale", np.float64),  # norm of W_{K-1}..W_2 at the balanced global minimizer
        ("polish", np.bool_),  # polish stalls (else only the local probe)
        ("psd_tol", np.float64),  # nonlinear: PSD and null tolerance, relative to lam_ref
    ],
    align=True,
)

RUN_IN = np.dtype(
    [
        ("seed", np.uint64),  # mini-batches, PGD kicks, Lanczos start vectors
        ("hyper", np.float64, (N_HYPER,)),  # lr, then the optimizer's parameters
        ("dt", np.float64),  # training time per step (docs/maths.md, "Time")
        ("window", np.int64),  # detection window in steps (window_time / dt)
        ("stride", np.int64),  # steps between kept gap samples (window / stride <= RING)
        ("min_length", np.int64),  # shortest stall in steps (min_length_time / dt)
    ],
    align=True,
)

RUN_STATE = np.dtype(
    [
        ("status", np.int64),
        ("to_target", np.int64),  # first step at the target gap, -1 before
        ("n_stalls", np.int64),
        ("kicks", np.int64),
        ("last_kick", np.int64),
        ("in_stall", np.bool_),
        ("start", np.int64),  # first step of the open stall
        ("probe_step", np.int64),  # step of its smallest gradient norm so far
        ("done", np.bool_),  # stopped (lock-step driver)
        ("min_g", np.float64),  # smallest gradient norm in the open stall
        ("probe_loss", np.float64),
        ("loss", np.float64),  # at the last step
        ("gnorm", np.float64),
        ("prev_gap", np.float64),  # relative gap one step earlier
        ("rise", np.float64),  # total increase of the relative gap in the open stall
        ("start_gap", np.float64),  # relative gap when the open stall's window began
        ("n_unstable", np.int64),  # flat stretches left out as unstable
        ("unstable_steps", np.int64),  # ... and their steps
    ],
    align=True,
)

RUN_OUT = np.dtype(
    [
        ("status", np.int64),
        ("steps", np.int64),
        ("to_target", np.int64),
        ("n_stalls", np.int64),
        ("n_unstable", np.int64),
        ("unstable_steps", np.int64),
        ("kicks", np.int64),
        ("loss", np.float64),
        ("grad_norm", np.float64),
        ("lam_min", np.float64),  # Hessian extremes at the final point (NaN: not probed)
        ("lam_max", np.float64),
        ("err_min", np.float64),
        ("err_max", np.float64),
    ],
    align=True,
)

STALL_OUT = np.dtype(
    [
        ("start", np.int64),
        ("end", np.int64),
        ("probe", np.int64),  # step of the smallest gradient norm
        ("loss", np.float64),  # at the probe point
        ("gnorm", np.float64),
        ("rise", np.float64),  # total increase of the relative gap during the stall
        ("start_gap", np.float64),  # relative gap at the start of the stall
        # the Hessian at the probe point (local view)
        ("local_lam_min", np.float64),
        ("local_lam_max", np.float64),
        ("local_err_min", np.float64),
        ("local_err_max", np.float64),
        ("lanczos_iters", np.int64),
        # the critical point the stall shadows, polished from the probe point
        ("polished", np.bool_),  # polishing was run
        ("polish_converged", np.bool_),
        ("polish_iters", np.int64),
        ("polish_hvps", np.int64),
        ("polish_grad_rel", np.float64),
        ("polish_distance", np.float64),
        ("polish_loss", np.float64),
        ("lam_min", np.float64),
        ("lam_max", np.float64),
        ("err_min", np.float64),
        ("err_max", np.float64),
        ("kawaguchi_rank", np.int64),  # rank of W_{K-1}..W_2 at the polished point
        # nonlinear only (kernels/descent.py): the higher-order test at a PSD polished point
        ("nullity", np.int64),  # Hessian eigenvalues within psd_tol x lam_ref of 0; -1 not run
        ("descent_drop", np.float64),  # (L* - L) / gap_scale at the descent found; 0 none
        ("descent_radius", np.float64),  # its radius / ell; NaN if none
        ("descent_evals", np.int64),  # loss evaluations the test spent
    ],
    align=True,
)


def config_record(**fields) -> np.ndarray:
    """A 1-element ``CONFIG`` array with the given fields (every field must be given)."""
    missing = set(CONFIG.names) - set(fields)
    unknown = set(fields) - set(CONFIG.names)
    if missing or unknown:
        raise ValueError(f"config fields missing {sorted(missing)}, unknown {sorted(unknown)}")
    rec = np.zeros(1, dtype=CONFIG)
    for k, v in fields.items():
        rec[k] = v
    return rec


def records(a: np.ndarray) -> np.ndarray:
    """``a`` as the kernels index it: as is when compiled; a ``np.recarray`` view when
    Numba's JIT is disabled, so that plain Python reads ``rec.field`` as Numba does."""
    return a.view(np.recarray) if config.DISABLE_JIT else a


def new_states(n):
    """n zeroed ``RUN_STATE`` records (inside kernels; see :func:`records`)."""
    return np.zeros(n, dtype=RUN_STATE).view(np.recarray)


@overload(new_states)
def _new_states_compiled(n):
    def impl(n):
        return np.zeros(n, dtype=RUN_STATE)

    return impl
