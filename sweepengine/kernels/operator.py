"""The objective an iterative solver works on, as a value: one solver for every network.

Newton-MR (``polish.newton_mr``, with ``polish.minres``) and Lanczos
(``spectrum.lanczos``) need two things of the objective: L and its gradient at a
point, and H v at the last point where the gradient was taken. An *operator* is a
named tuple holding what those need, and ``loss_grad_op(op, theta, g)`` (returns L,
writes dL/dtheta into ``g`` and leaves the operator's workspace prepared at theta) and
``hvp_op(op, theta, v, out)`` (writes H v) dispatch on its type while Numba compiles
(``numba.extending.overload``, one registration per operator type): no function
pointers, so the solvers stay cacheable on disk (a function passed as an argument
would not be: each process would compile them again).

Operators here, for the deep linear network in the statistics form:

- ``StatsObjective(dims, poff, noff, Cxx, Cyx, yy, ws)``: ``objective.loss_grad_stats_at``
  and ``hvp.hvp_prepared_at``;
- ``StatsHvp(dims, poff, noff, Cxx, ws)``: the Hessian alone (Lanczos at a point
  prepared elsewhere).

``activation.NetObjective`` (a network with an activation and weight decay, data form)
registers itself from ``activation.py``, so the linear path never loads the nonlinear
kernels. Each operator calls the same kernel with the same arguments as the solvers'
former per-network copies, so the numbers are bit for bit theirs.

Every operator class also has ``loss_grad`` / ``hvp`` methods: with
``NUMBA_DISABLE_JIT=1`` the two functions are plain Python and call them. Numba's cache
keys a caller's code on the caller's file only: after a change here or in a kernel
these reach, change ``polish.py``, ``spectrum.py`` and ``nltrainer.py`` too (or clear
``NUMBA_CACHE_DIR``).
"""

from collections import namedtuple

from numba import types
from numba.extending import overload

from .hvp import hvp_prepared_at
from .objective import loss_grad_stats_at


def loss_grad_op(op, theta, g):
    """L(theta), dL/dtheta into ``g`` (``op``'s workspace left prepared at theta)."""
    return op.loss_grad(theta, g)


def hvp_op(op, theta, v, out):
    """out = H(theta) v, with ``op``'s workspace prepared at theta by ``loss_grad_op``."""
    op.hvp(theta, v, out)


def is_operator(op, cls) -> bool:
    """Whether the Numba type ``op`` is the named tuple class ``cls`` (for overloads)."""
    return isinstance(op, types.BaseNamedTuple) and op.instance_class is cls


class StatsObjective(namedtuple("StatsObjective", "dims poff noff Cxx Cyx yy ws")):
    """The deep linear network in the statistics form (offsets as ``chain``'s)."""

    __slots__ = ()

    def loss_grad(self, theta, g):
        return loss_grad_stats_at(theta, self.dims, self.poff, self.noff, self.Cxx, self.Cyx,
                                  self.yy, self.ws, g)  # fmt: skip

    def hvp(self, theta, v, out):
        hvp_prepared_at(theta, self.dims, self.poff, self.noff, self.Cxx, self.ws, v, out)


class StatsHvp(namedtuple("StatsHvp", "dims poff noff Cxx ws")):
    """The deep linear network's Hessian at a point prepared in ``ws``."""

    __slots__ = ()

    def hvp(self, theta, v, out):
        hvp_prepared_at(theta, self.dims, self.poff, self.noff, self.Cxx, self.ws, v, out)


@overload(loss_grad_op, jit_options={"cache": True})
def _stats_loss_grad(op, theta, g):
    if is_operator(op, StatsObjective):
        return lambda op, theta, g: loss_grad_stats_at(theta, op.dims, op.poff, op.noff, op.Cxx,
                                                       op.Cyx, op.yy, op.ws, g)  # fmt: skip
    return None


@overload(hvp_op, jit_options={"cache": True})
def _stats_hvp(op, theta, v, out):
    if is_operator(op, StatsObjective) or is_operator(op, StatsHvp):
        return lambda op, theta, v, out: hvp_prepared_at(theta, op.dims, op.poff, op.noff,
                                                         op.Cxx, op.ws, v, out)  # fmt: skip
    return None
