"""The public ``train`` and ``train_batch``: the deep linear trainer or the nonlinear one.

``activation=`` (``ACTIVATIONS``, default "linear"), ``alpha=`` (the leaky_relu slope)
and ``weight_decay=`` (lam/2 ||theta||^2 added to the loss, default 0) pick the trainer:

- the defaults: :func:`sweepengine.training.train_batch` (statistics form, analytic L*,
  stalls attributed to Kawaguchi's critical points), called as before;
  ``TrainResult``s;
- anything else, the deep linear net with weight decay included:
  :func:`sweepengine.nltraining.train_batch_nonlinear` (data form; gaps from a floor
  ``lstar``, default 0, over ``gap_scale``; docs/nonlinear.md, "Trainer");
  ``NLTrainResult``s. There is no statistics-form trainer with weight decay.

Here rather than in ``training`` because ``nltraining`` imports ``training``: the
imports run one way, this module -> nltraining -> training. ``nltraining`` (and its
compiled trainer) is imported on the first nonlinear call only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import training
from .options import ALPHA, Optimizer, check_network
from .training import TrainResult

if TYPE_CHECKING:
    from .nltraining import NLTrainResult

#: Options of the linear trainer that the nonlinear one does not take, and why.
LINEAR_ONLY = {
    "ref": "the linear problem's precomputed reference; pass lam_ref= (the time unit's "
    "curvature), lstar= and gap_scale= instead",
    "_stages": "internal to the linear trainer's compile warm-up",
    "dims": "goes with a flat (B, n) weights0 array: use nltraining.train_flat_nonlinear",
}
#: Options of the nonlinear trainer that the linear one does not take.
NONLINEAR_ONLY = ("lstar", "gap_scale", "lam_ref", "keep_probes")


def uses_nonlinear_trainer(activation, alpha, weight_decay, options: Mapping) -> bool:
    """Whether the runs go to the nonlinear trainer (an activation other than linear, or
    weight decay), after checking the network and that ``options`` are that trainer's:
    a ``ValueError`` naming the others before anything is computed."""
    act, _, wd = check_network(activation, alpha, weight_decay)
    if act != "linear" or wd != 0.0:
        bad = sorted(set(options) & set(LINEAR_ONLY))
        if bad:
            why = "; ".join(f"{k}: {LINEAR_ONLY[k]}" for k in bad)
            raise ValueError(
                f"option(s) {bad} are not supported with activation={act!r}, "
                f"weight_decay={wd!r} (the nonlinear trainer, "
                f"nltraining.train_batch_nonlinear) ({why})"
            )
        return True
    bad = sorted(set(options) & set(NONLINEAR_ONLY))
    if bad:
        raise ValueError(
            f"option(s) {bad} belong to the nonlinear trainer: they apply with an activation "
            "other than 'linear' or weight_decay > 0 (the deep linear trainer measures gaps "
            "from the analytic L*)"
        )
    return False


def train_batch(
    X,
    Y,
    weights0: Sequence[Sequence[np.ndarray]],
    optimizer: str | Optimizer | Sequence[Optimizer] = "gd",
    lr: float | Sequence[float] | None = None,
    max_steps: int = 1000,
    *,
    activation: str = "linear",
    alpha: float = ALPHA,
    weight_decay: float = 0.0,
    **options: Any,
) -> list[TrainResult] | list[NLTrainResult]:
    """Train B runs of one architecture on one data set in one compiled call.

    ``weights0`` is a list of B weight lists of identical shapes. ``lr`` and any
    optimizer parameter may be a scalar or a list with one value per run. Keyword
    options (``seeds``, ``record_every``, ``target_gap``, ``stop_at_target``,
    ``stall``, ``final_probe``, ``threads``, ``ref`` and optimizer parameters) are
    those of :func:`sweepengine.training.train_flat`. Results are bit-identical to
    training each run alone, whatever B or the thread count.

    With the defaults ``activation="linear"``, ``weight_decay=0`` (``alpha`` is
    ignored then) this is :func:`sweepengine.training.train_batch` and returns
    ``TrainResult``s. Otherwise the runs are
    :func:`sweepengine.nltraining.train_batch_nonlinear`'s and it returns
    ``NLTrainResult``s (no L*: gaps from the floor ``lstar``, default 0); that trainer
    also takes ``lstar``, ``gap_scale`` and ``lam_ref``, and not ``ref``.
    """
    if not uses_nonlinear_trainer(activation, alpha, weight_decay, options):
        return training.train_batch(X, Y, weights0, optimizer, lr, max_steps, **options)
    if isinstance(weights0, np.ndarray) or not isinstance(weights0, Sequence) or not weights0:
        raise ValueError("weights0 must be a non-empty list of weight lists (one per run)")
    from .nltraining import train_batch_nonlinear  # on first use: the nonlinear kernels

    return train_batch_nonlinear(X, Y, weights0, optimizer, lr, max_steps,
                                 activation=activation, alpha=alpha,
                                 weight_decay=weight_decay, **options)  # fmt: skip


def train(
    X,
    Y,
    weights0: Sequence[np.ndarray],
    optimizer: str | Optimizer = "gd",
    lr: float | None = None,
    max_steps: int = 1000,
    *,
    seed: int = 0,
    activation: str = "linear",
    alpha: float = ALPHA,
    weight_decay: float = 0.0,
    **options: Any,
) -> TrainResult | NLTrainResult:
    """Train one network from ``weights0`` ([W_1..W_K] or ``init_weights(...)``).

    Optimizers: "gd" (full batch, the theory's), "momentum" (heavy ball, beta),
    "nesterov" (beta), "sgd" (batch_size; unbiased m/b-scaled mini-batch
    gradient), "adam" (beta1, beta2, eps), "pgd" (perturbed GD, Jin et al. 2017:
    radius, grad_tol, interval). Other keyword options as in :func:`train_batch`.
    A deep linear network (the defaults) gives a ``TrainResult``
    (:func:`sweepengine.training.train`); with an ``activation`` other than "linear" or
    ``weight_decay`` > 0, the nonlinear trainer's ``NLTrainResult``.
    """
    if not uses_nonlinear_trainer(activation, alpha, weight_decay, options):
        return training.train(X, Y, weights0, optimizer, lr, max_steps, seed=seed, **options)
    return train_batch(X, Y, [weights0], optimizer, lr, max_steps, seeds=[seed],
                       activation=activation, alpha=alpha, weight_decay=weight_decay,
                       **options)[0]  # fmt: skip
