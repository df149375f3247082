"""sweepengine: how the bad saddles of deep linear networks slow gradient training.

The public API is re-exported here; importing has no side effects.
"""

from importlib.metadata import PackageNotFoundError as _PNF
from importlib.metadata import version as _version

from .init import init_weights as init_weights
from .landscape import Extremes as Extremes
from .landscape import gradient as gradient
from .landscape import hessian as hessian
from .landscape import hessian_extremes as hessian_extremes
from .landscape import hessian_extremes_info as hessian_extremes_info
from .landscape import hvp as hvp
from .landscape import loss as loss
from .landscape import loss_and_gradient as loss_and_gradient
from .options import INIT_SCHEMES as INIT_SCHEMES
from .options import OPTIMIZERS as OPTIMIZERS
from .options import StallConfig as StallConfig
from .stalls import Stall as Stall
from .stalls import classify as classify
from .stats import Stats as Stats
from .theory import critical_point as critical_point
from .theory import critical_values as critical_values
from .theory import global_minimizer as global_minimizer
from .theory import global_minimum as global_minimum
from .theory import nearest_critical_value as nearest_critical_value
from .theory import sigma_spectrum as sigma_spectrum
from .train import TrainResult as TrainResult
from .train import train as train
from .train import train_batch as train_batch

try:
    __version__ = _version("sweepengine")
except _PNF:  # running from a source tree without installation
    __version__ = "0+unknown"
