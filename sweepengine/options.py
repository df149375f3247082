"""Validated training options: optimizers, init schemes, stall settings.

One frozen dataclass per concern; every default is written once, here. The
sweep spec, the CLI and ``train`` all validate through these, so an unknown
name or key raises the same ValueError listing what is valid.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

# name -> (kernel code, {parameter: default}); "lr" is always required.
OPTIMIZERS: dict[str, tuple[int, dict[str, float]]] = {
    "gd": (0, {}),
    "momentum": (1, {"beta": 0.9}),
    "nesterov": (2, {"beta": 0.9}),
    "sgd": (3, {"batch_size": 16}),
    "adam": (4, {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
    # perturbed GD (Jin et al. 2017): when ||grad|| <= grad_tol * ||grad_0|| and no
    # kick in the last `interval` steps, add a uniform kick of norm `radius` * ||theta_0||_rms.
    "pgd": (5, {"radius": 1e-2, "grad_tol": 1e-3, "interval": 100}),
}
N_HYPER = 4  # hyper-parameter slots per run after lr

INIT_SCHEMES = ("gaussian", "orthogonal", "balanced", "zero_perturbed")
#: Hidden-layer activations (``nonlinear``; the index is the kernels' activation code).
#: Here, not in ``nonlinear``, so that validating a spec loads no compiled kernels.
ACTIVATIONS = ("linear", "relu", "leaky_relu", "tanh")
#: Default leaky_relu slope (``alpha``) of every function that takes an activation.
ALPHA = 0.01


def check_network(activation: Any, alpha: Any, weight_decay: Any) -> tuple[str, float, float]:
    """Validate a network's activation, leaky_relu slope and weight decay; return
    (activation, alpha, weight_decay) as (str, float, float), alpha 0.0 unless
    leaky_relu (it means nothing elsewhere). Loads no compiled kernels."""
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    try:
        alpha, wd = float(alpha), float(weight_decay)
    except (TypeError, ValueError):
        raise ValueError(
            f"alpha and weight_decay must be numbers, got {alpha!r} and {weight_decay!r}"
        ) from None
    if not (math.isfinite(wd) and wd >= 0.0):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    if activation == "leaky_relu" and not (0.0 <= alpha < 1.0):
        raise ValueError(f"alpha (the leaky_relu slope) must lie in [0, 1), got {alpha!r}")
    return activation, alpha if activation == "leaky_relu" else 0.0, wd


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """An optimizer name with its parameters (defaults filled in, validated)."""

    name: str
    lr: float
    params: tuple[tuple[str, float], ...] = ()

    @property
    def code(self) -> int:
        return OPTIMIZERS[self.name][0]

    def hyper(self) -> list[float]:
        """[lr, p_1, ..., p_N_HYPER] in the order of OPTIMIZERS[name] (kernel layout)."""
        vals = [v for _, v in self.params]
        return [self.lr] + vals + [0.0] * (N_HYPER - len(vals))

    def as_dict(self) -> dict[str, float]:
        return {"lr": self.lr, **dict(self.params)}


def make_optimizer(name: str, lr: Any = None, **params: Any) -> Optimizer:
    """Validate an optimizer choice; raises ValueError listing valid choices."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid: {sorted(OPTIMIZERS)}")
    defaults = OPTIMIZERS[name][1]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for optimizer {name!r}; valid: lr, {sorted(defaults)}"
        )
    lr = _positive("lr", lr)
    vals = []
    for key, default in defaults.items():
        v = params.get(key, default)
        if key in ("beta", "beta1", "beta2"):
            v = _number(key, v)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{key} must be in [0, 1), got {v}")
        elif key in ("batch_size", "interval"):
            if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v) or v < 1:
                raise ValueError(f"{key} must be a positive integer, got {v!r}")
            v = float(int(v))
        else:
            v = _positive(key, v)
        vals.append((key, float(v)))
    return Optimizer(name, lr, tuple(vals))


def _number(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"{name} must be a number, got {v!r}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def _positive(name: str, v: Any) -> float:
    if v is None:
        raise ValueError(f"{name} is required (a positive number)")
    v = _number(name, v)
    if v <= 0:
        raise ValueError(f"{name} must be positive, got {v}")
    return v


@dataclasses.dataclass(frozen=True)
class StallConfig:
    """When a stretch of training counts as a stall, and how it is examined.

    Thresholds are scale-free and lengths are in training *time* (docs/maths.md,
    "Time"): a step of run with learning rate lr lasts dt = lam_ref x lr_eff, so one
    trajectory gives one record at any stable learning rate and under rescaling of
    X and Y. ``gap`` below is the relative gap (L - L*) / (L(0) - L*), L(0) = 1/2
    tr(Y Y^T): 1 = nothing learned, 0 = at the global minimum.

    - A step is *flat* when the gap fell by less than ``rel_drop`` (a fraction of
      itself) over the last ``window`` time units while above ``min_gap``. A stall is
      a maximal run of flat steps lasting at least ``min_length`` time units (dated
      back to the start of its first flat window). If the gap rose during it by more,
      in all, than ``rel_drop`` x its value at the start, it is ``unstable``.
    - At the stall's smallest gradient norm (the probe point) the Hessian gives the
      local view: lam_min, lam_max (Lanczos, at most ``lanczos_iter`` iterations,
      relative tolerance ``lanczos_tol``) and ``local_class`` by the threshold rule
      (strict below -``neg_tol`` x lam_ref).
    - Unless ``polish`` is off, the critical point the stall shadows is found from the
      probe point: Newton-MR (each step solved by at most ``polish_inner`` MINRES
      iterations on exact HVPs) to ||grad|| / g_ref <= ``rough_tol`` (at most
      ``rough_newton`` steps), the balanced factorisation of the product reached (every
      unused unit zero), then Newton-MR to ``polish_tol`` (at most ``polish_newton``
      steps). It is accepted when converged, when its mode occupancies are within
      ``occupancy_tol`` of a clean 0/1 pattern S, and when its loss equals the analytic
      level of S within ``level_tol`` x (L(0) - L*); else the stall is ``unresolved``.
      The stall's class is that point's: minimum at L*, strict_saddle if lambda_min <
      -``psd_tol`` x lam_ref, else bad_saddle; ``rank_tol`` sets Kawaguchi's
      rank(W_{K-1}..W_2) (singular values above rank_tol x its size at the balanced
      global minimizer).
    - At most ``max_stalls`` stalls are recorded per run (later ones are counted).
    """

    window: float = 2.0
    rel_drop: float = 1e-2
    min_length: float = 8.0
    min_gap: float = 1e-4
    neg_tol: float = 1e-3
    psd_tol: float = 1e-6
    level_tol: float = 1e-8
    occupancy_tol: float = 0.05
    rank_tol: float = 1e-3
    max_stalls: int = 16
    lanczos_iter: int = 120
    lanczos_tol: float = 1e-8
    polish: bool = True
    rough_tol: float = 1e-4
    rough_newton: int = 10
    polish_tol: float = 1e-10
    polish_newton: int = 20
    polish_inner: int = 30

    def __post_init__(self) -> None:
        for key in ("max_stalls", "lanczos_iter", "rough_newton", "polish_newton", "polish_inner"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"stall.{key} must be a positive integer, got {v!r}")
        for key in ("window", "min_length"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int | float) or not (0 < v < math.inf):
                raise ValueError(f"stall.{key} must be a positive time (a number), got {v!r}")
        for key in ("rel_drop", "min_gap", "neg_tol", "psd_tol", "level_tol", "occupancy_tol",
                    "rank_tol", "lanczos_tol", "rough_tol", "polish_tol"):  # fmt: skip
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int | float) or not (0 < v < 1):
                raise ValueError(f"stall.{key} must be a number in (0, 1), got {v!r}")
        if not isinstance(self.polish, bool):
            raise ValueError(f"stall.polish must be true or false, got {self.polish!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> StallConfig:
        d = dict(d or {})
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ValueError(f"unknown stall setting(s) {unknown}; valid: {valid}")
        return cls(**d)


def time_per_step(name: str, lr: float, params, lam_ref: float, adam_scale: float) -> float:
    """Training time of one step, dt = lam_ref x lr_eff (docs/maths.md, "Time").

    gd, sgd, pgd: lr_eff = lr (gradient flow time); momentum and nesterov:
    lr / (1 - beta), the heavy ball's terminal velocity for a slowly varying
    gradient; adam: lr x ``adam_scale`` = lr sqrt(n) / g_ref, as if each coordinate's
    gradient had the problem's reference size g_ref / sqrt(n).
    """
    p = dict(params)
    if name in ("momentum", "nesterov"):
        lr_eff = lr / (1.0 - p["beta"])
    elif name == "adam":
        lr_eff = lr * adam_scale
    else:
        lr_eff = lr
    return lam_ref * lr_eff


def check_init(scheme: str, scale: Any, n_layers: int | None = None) -> tuple[float, ...]:
    """Validate an init scheme and its scale (a number, or one per layer for gaussian)."""
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; valid: {list(INIT_SCHEMES)}")
    scales = tuple(scale) if isinstance(scale, list | tuple) else (scale,)
    if len(scales) > 1 and scheme != "gaussian":
        raise ValueError(f"a per-layer scale list is only valid for 'gaussian', not {scheme!r}")
    if n_layers is not None and len(scales) not in (1, n_layers):
        raise ValueError(f"init scale list has {len(scales)} entries, expected 1 or {n_layers}")
    return tuple(_positive("init scale", s) for s in scales)
