"""sweepengine: how the bad saddles of deep linear networks slow gradient training.

The public API is re-exported here. Names load on first use (PEP 562), so
``import sweepengine`` and the command-line client, which plans and schedules
but never trains, do not pay for Numba, SciPy or the compiled kernels.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError as _PNF
from importlib.metadata import version as _dist_version
from typing import TYPE_CHECKING

# public name -> module that defines it
_EXPORTS = {
    "init_weights": "initialization",
    "Extremes": "landscape",
    "gradient": "landscape",
    "hessian": "landscape",
    "hessian_extremes": "landscape",
    "hessian_extremes_info": "landscape",
    "hvp": "landscape",
    "loss": "landscape",
    "loss_and_gradient": "landscape",
    "ACTIVATIONS": "options",
    "nonlinear_classify_critical": "nltraining",
    "nonlinear_gradient": "nonlinear",
    "nonlinear_hessian": "nonlinear",
    "nonlinear_hessian_extremes": "nonlinear",
    "nonlinear_hvp": "nonlinear",
    "nonlinear_loss": "nonlinear",
    "nonlinear_loss_and_gradient": "nonlinear",
    "NLTrainResult": "nltraining",
    "Objective": "prepared",
    "objective": "prepared",
    "INIT_SCHEMES": "options",
    "OPTIMIZERS": "options",
    "StallConfig": "options",
    "Stall": "stalls",
    "classify": "stalls",
    "Stats": "stats",
    "critical_point": "theory",
    "critical_values": "theory",
    "global_minimizer": "theory",
    "global_minimum": "theory",
    "nearest_critical_value": "theory",
    "sigma_spectrum": "theory",
    "TrainResult": "training",
    "train": "trainers",
    "train_batch": "trainers",
    "ZeroPoint": "weight_decay",
    "zero_point_hessian": "weight_decay",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'sweepengine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from .initialization import init_weights as init_weights
    from .landscape import Extremes as Extremes
    from .landscape import gradient as gradient
    from .landscape import hessian as hessian
    from .landscape import hessian_extremes as hessian_extremes
    from .landscape import hessian_extremes_info as hessian_extremes_info
    from .landscape import hvp as hvp
    from .landscape import loss as loss
    from .landscape import loss_and_gradient as loss_and_gradient
    from .nltraining import NLTrainResult as NLTrainResult
    from .nltraining import nonlinear_classify_critical as nonlinear_classify_critical
    from .nonlinear import nonlinear_gradient as nonlinear_gradient
    from .nonlinear import nonlinear_hessian as nonlinear_hessian
    from .nonlinear import nonlinear_hessian_extremes as nonlinear_hessian_extremes
    from .nonlinear import nonlinear_hvp as nonlinear_hvp
    from .nonlinear import nonlinear_loss as nonlinear_loss
    from .nonlinear import nonlinear_loss_and_gradient as nonlinear_loss_and_gradient
    from .options import ACTIVATIONS as ACTIVATIONS
    from .options import INIT_SCHEMES as INIT_SCHEMES
    from .options import OPTIMIZERS as OPTIMIZERS
    from .options import StallConfig as StallConfig
    from .prepared import Objective as Objective
    from .prepared import objective as objective
    from .stalls import Stall as Stall
    from .stalls import classify as classify
    from .stats import Stats as Stats
    from .theory import critical_point as critical_point
    from .theory import critical_values as critical_values
    from .theory import global_minimizer as global_minimizer
    from .theory import global_minimum as global_minimum
    from .theory import nearest_critical_value as nearest_critical_value
    from .theory import sigma_spectrum as sigma_spectrum
    from .trainers import train as train
    from .trainers import train_batch as train_batch
    from .training import TrainResult as TrainResult
    from .weight_decay import ZeroPoint as ZeroPoint
    from .weight_decay import zero_point_hessian as zero_point_hessian

try:
    __version__ = _dist_version("sweepengine")
except _PNF:  # running from a source tree without installation
    __version__ = "0+unknown"
