"""A prepared objective for loops: validate once, then call the kernels directly.

``objective(X, Y, dims)`` (or ``objective(stats=Stats(...), dims=...)``) checks
the data once, picks the cheaper form (statistics when m > d_0: every call then
costs nothing in m), computes what that form needs (Cxx, Cyx, yy) and allocates
the workspaces. Its ``loss``, ``loss_and_gradient``, ``gradient`` and ``hvp``
then do little but call the compiled kernel: about 1-1.5 us more than the kernel
itself on a flat parameter vector (``results/overhead.md``).

Weights may be a list [W_1, ..., W_K] (checked and flattened per call) or one
flat float64 vector of ``n_params`` entries (W_1..W_K, each row-major: the fast
path, used as is). Results come back in the same form: a list of matrices, or a
flat vector. Every call returns new arrays; the workspace is reused, so one
``Objective`` must not be used by two threads at once.
"""

from __future__ import annotations

import numpy as np

from ._validate import as_data, as_dims, as_direction, as_matrix, as_stats
from .kernels.hvp import loss_grad_hvp_data, loss_grad_hvp_stats
from .kernels.objective import loss_data, loss_grad_data, loss_grad_stats, loss_stats
from .landscape import _chain, _plan, _split

FORMS = ("auto", "stats", "data")


def _plain(flags) -> bool:
    """C-contiguous and writable (a read-only array is another Numba type): the flags
    object read once (each ``a.flags`` builds a new one)."""
    return flags.c_contiguous and flags.writeable


class Objective:
    """L(W) = 1/2 ||W_K ... W_1 X - Y||_F^2 for one data set and one architecture."""

    __slots__ = ("dims", "form", "n", "_plan", "_dims_list", "X", "Y", "Cxx", "Cyx", "yy", "_ws",
                 "_R", "_g")  # fmt: skip

    def __init__(self, X=None, Y=None, dims=None, *, stats=None, form: str = "auto") -> None:
        if dims is None:
            raise ValueError("dims (d_0, ..., d_K) is required")
        d = as_dims(dims)
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}")
        self._dims_list = [int(x) for x in d]
        self._plan = plan = _plan(tuple(self._dims_list))
        self.dims, self.n, shapes = plan.dims.copy(), plan.n, plan.ends
        self.X = self.Y = self.Cyx = self._R = None
        if stats is not None:
            if X is not None or Y is not None:
                raise ValueError("give either X and Y, or stats, not both")
            if form == "data":
                raise ValueError("form='data' needs X and Y, not stats")
            self.Cxx, self.Cyx, self.yy = as_stats(stats, shapes)
            self.form = "stats"
        else:
            if X is None or Y is None:
                raise ValueError("X and Y are required (or pass stats=Stats(Cxx, Cyx, yy))")
            X, Y = as_data(X, Y, shapes)
            m = X.shape[1]
            self.form = form if form != "auto" else ("stats" if m > d[0] else "data")
            self.Cxx = X @ X.T
            if self.form == "stats":
                self.Cyx, self.yy = Y @ X.T, float(np.sum(Y * Y))
            else:
                self.X, self.Y, self.yy = X, Y, 0.0
                self._R = np.empty((int(d[-1]), m))
        self._ws = np.zeros(plan.ws_size)
        self._g = np.empty(self.n)  # the gradient an hvp passes through (not returned)

    def __repr__(self) -> str:
        return f"Objective(dims={self._dims_list}, form={self.form!r}, n_params={self.n})"

    # -- inputs ------------------------------------------------------------------

    def _theta(self, weights) -> tuple[np.ndarray, bool]:
        """(flat float64 theta, whether the caller passed a flat vector)."""
        if (
            type(weights) is np.ndarray
            and weights.ndim == 1
            and weights.dtype == np.float64
            and weights.size == self.n
            and _plain(weights.flags)
        ):
            return weights, True
        if isinstance(weights, np.ndarray) and weights.ndim == 1:
            if weights.size != self.n:
                raise ValueError(
                    f"weights has {weights.size} entries, expected {self.n} (flat, dims "
                    f"{self._dims_list})"
                )
            theta = as_matrix(weights.reshape(1, -1), "weights")  # float64, finite, writable
            return theta.reshape(-1), True
        theta, plan, _ = _chain(weights)
        if plan is not self._plan and plan.slices != self._plan.slices:
            raise ValueError(
                f"weights have layer sizes {plan.dims.tolist()}, expected {self._dims_list}"
            )
        return theta, False

    def _out(self, vec: np.ndarray, flat: bool):
        return vec if flat else _split(vec, self._plan)

    def _loss_grad(self, theta: np.ndarray, g: np.ndarray) -> float:
        if self.form == "stats":
            return loss_grad_stats(theta, self.dims, self.Cxx, self.Cyx, self.yy, self._ws, g)
        return loss_grad_data(theta, self.dims, self.X, self.Y, self._ws, self._R, g)

    # -- the objective -----------------------------------------------------------

    def loss(self, weights) -> float:
        """L(W)."""
        theta, _ = self._theta(weights)
        if self.form == "stats":
            return float(loss_stats(theta, self.dims, self.Cxx, self.Cyx, self.yy, self._ws))
        return float(loss_data(theta, self.dims, self.X, self.Y, self._ws, self._R))

    def loss_and_gradient(self, weights):
        """(L, dL/dW): the gradient flat or as a list, like ``weights``."""
        theta, flat = self._theta(weights)
        g = np.empty(self.n)
        loss = self._loss_grad(theta, g)
        return float(loss), self._out(g, flat)

    def gradient(self, weights):
        """dL/dW, flat or as a list like ``weights``."""
        theta, flat = self._theta(weights)
        g = np.empty(self.n)
        self._loss_grad(theta, g)
        return self._out(g, flat)

    def hvp(self, weights, direction):
        """Exact H(W) V; ``direction`` flat or a list shaped like the weights. The result
        is flat if ``weights`` is flat, else a list."""
        theta, flat = self._theta(weights)
        if (
            type(direction) is np.ndarray
            and direction.ndim == 1
            and direction.dtype == np.float64
            and direction.size == self.n
            and _plain(direction.flags)
        ):
            v = direction
        else:
            v = as_direction(direction, _split(theta, self._plan))
            if not v.flags.writeable:
                v = v.copy()
        out = np.empty(self.n)
        if self.form == "stats":
            loss_grad_hvp_stats(theta, self.dims, self.Cxx, self.Cyx, self.yy, self._ws, self._g,
                                v, out)  # fmt: skip
        else:
            loss_grad_hvp_data(theta, self.dims, self.X, self.Y, self.Cxx, self._ws, self._R,
                               self._g, v, out)  # fmt: skip
        return self._out(out, flat)


def objective(X=None, Y=None, dims=None, *, stats=None, form: str = "auto") -> Objective:
    """A prepared :class:`Objective` for repeated calls at one data set and architecture.

    ``dims`` = (d_0, ..., d_K); data ``X`` (d_0, m) and ``Y`` (d_K, m), or
    ``stats=Stats(Cxx, Cyx, yy)``. ``form``: "auto" (statistics when m > d_0,
    else data), "stats" or "data".
    """
    return Objective(X, Y, dims, stats=stats, form=form)
