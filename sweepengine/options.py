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
    """When a stretch of training counts as a stall, and how it is classified.

    All thresholds are scale-free. ``gap`` below means the relative gap
    (L - L*) / (L(0) - L*) where L(0) = 1/2 tr(Y Y^T) is the loss at W = 0, so
    1 = nothing learned and 0 = at the global minimum.

    - A step t is *flat* when the relative gap fell by less than ``rel_drop``
      (as a fraction of itself) over the last ``window`` steps, while the gap is
      above ``min_gap``.
    - A stall is a maximal run of flat steps at least ``min_length`` long
      (its start is dated back to the start of the first flat window).
    - The probe point is the step of smallest gradient norm in the stall; the
      Hessian there gives lam_min, lam_max (Lanczos, at most ``lanczos_iter``
      iterations, relative tolerance ``lanczos_tol``) and their error bounds.
    - Class: ``strict_saddle`` if lam_min < -max(neg_tol * lam_ref, 3 * err_min)
      where lam_ref is the largest Hessian eigenvalue at the balanced global
      minimizer (the curvature scale of the problem); else ``bad_saddle`` if the
      gap is above ``min_gap``; else ``minimum``. The raw numbers are stored so
      analysis can re-classify with other thresholds.
    - At most ``max_stalls`` stalls are recorded per run (later ones are counted
      in the run's stall totals but not probed).
    """

    window: int = 50
    rel_drop: float = 1e-2
    min_length: int = 100
    min_gap: float = 1e-4
    neg_tol: float = 1e-3
    max_stalls: int = 16
    lanczos_iter: int = 120
    lanczos_tol: float = 1e-8

    def __post_init__(self) -> None:
        for key in ("window", "min_length", "max_stalls", "lanczos_iter"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"stall.{key} must be a positive integer, got {v!r}")
        for key in ("rel_drop", "min_gap", "neg_tol", "lanczos_tol"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int | float) or not (0 < v < 1):
                raise ValueError(f"stall.{key} must be a number in (0, 1), got {v!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> StallConfig:
        d = dict(d or {})
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ValueError(f"unknown stall setting(s) {unknown}; valid: {valid}")
        return cls(**d)


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
