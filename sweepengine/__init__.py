"""sweepengine: how the bad saddles of deep linear networks slow gradient training.

The public API is re-exported here; importing has no side effects.
"""

from importlib.metadata import PackageNotFoundError as _PNF
from importlib.metadata import version as _version

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
from .stats import Stats as Stats

try:
    __version__ = _version("sweepengine")
except _PNF:  # running from a source tree without installation
    __version__ = "0+unknown"
