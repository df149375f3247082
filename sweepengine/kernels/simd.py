"""Explicit 4-wide float64 vectors and cheap array views for the product kernels.

Numba leaves LLVM's SLP vectoriser off (it miscompiled code, numba PR #8852),
and its loop vectoriser only sees innermost loops: a register-blocked product
(accumulators kept in registers across the reduction index) then stays scalar.
These intrinsics emit the vector instructions directly, so the blocking is
explicit and does not depend on the optimiser's heuristics:

- ``vec4`` is an LLVM ``<4 x double>`` value (a register, not memory);
- ``madd4(acc, u, v)`` = acc + u * v and ``madd4s(acc, s, v)`` = acc + s * v are
  a multiply then an add, lane by lane, never fused and never reordered: each
  lane gives exactly the bits of the scalar expression ``acc + u * v``;
- ``load4``/``store4`` move 4 consecutive entries of a row (unit inner stride);
  ``zero4``, ``splat4(s)`` and ``add4(u, v)`` complete the set.

``view2(buf, off, m, n)`` is the (m, n) row-major view of ``buf[off:off + m*n]``
built in place: ``buf[a:b].reshape(...)`` calls into Numba's C helper (about
16 ns), which at the widths sweeps use costs as much as a small product.
``view1(buf, off, n)`` is ``buf[off:off + n]`` built the same way: a slice goes
through Numba's general slicing (bounds clipping, step), about 17 ns a view; the
seven workspace views of ``objective.ws_views`` cost 118 ns a call that way, under
1 ns this way (d = 8: the statistics-form gradient 2.44 -> 2.22 us).

These views are *borrowed*: they hold no reference to the buffer (a null meminfo),
so Numba's reference counting skips them. A view that shares the buffer's meminfo
costs an atomic increment when made and a decrement when it dies, and a kernel at the
widths sweeps use makes dozens per call: at d = 8, H = 4 the statistics-form gradient
took 2.05 us with counted views and 1.25 us with borrowed ones (compiled loop, one
core). The rule that makes this safe: a view is used only while its buffer is alive,
which holds for every buffer passed in as an argument (the caller holds it for the
whole call) and for a local buffer still used after the view's last use. A view is
never returned to Python (it would be an array that does not own its memory).

With ``NUMBA_DISABLE_JIT=1`` plain NumPy versions with the same arithmetic
are used, so the kernels stay runnable (and give the same numbers) as Python.
"""

import numpy as np
from llvmlite import ir
from numba import config, types
from numba.core import cgutils
from numba.core.imputils import impl_ret_untracked
from numba.extending import intrinsic, models, register_model

_V4 = ir.VectorType(ir.DoubleType(), 4)
_I32 = ir.IntType(32)


class Vec4Type(types.Type):
    """Four float64 lanes held in one vector register."""

    def __init__(self):
        super().__init__(name="vec4")


vec4 = Vec4Type()


@register_model(Vec4Type)
class _Vec4Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _V4)


def _is_f64_array(a, ndim):
    return isinstance(a, types.Array) and a.dtype == types.float64 and a.ndim == ndim


def _are_ints(*ts):
    return all(isinstance(t, types.Integer) for t in ts)


def _row_ptr(context, builder, arrty, arr, i, j):
    """Address of arr[i, j] (a 2-D float64 array) as a <4 x double>*."""
    ary = context.make_array(arrty)(context, builder, arr)
    s0 = cgutils.unpack_tuple(builder, ary.strides, 2)[0]
    i = context.cast(builder, i[1], i[0], types.intp)
    j = context.cast(builder, j[1], j[0], types.intp)
    byte = builder.bitcast(ary.data, ir.IntType(8).as_pointer())
    off = builder.add(builder.mul(i, s0), builder.mul(j, ir.Constant(i.type, 8)))
    return builder.bitcast(builder.gep(byte, [off]), _V4.as_pointer())


def _splat(builder, s):
    v = builder.insert_element(ir.Constant(_V4, ir.Undefined), s, _I32(0))
    mask = ir.Constant(ir.VectorType(_I32, 4), [0, 0, 0, 0])
    return builder.shuffle_vector(v, ir.Constant(_V4, ir.Undefined), mask)


@intrinsic
def _zero4(typingctx):
    def codegen(context, builder, sig, args):
        return ir.Constant(_V4, [0.0, 0.0, 0.0, 0.0])

    return vec4(), codegen


@intrinsic
def _load4(typingctx, arr, i, j):
    if not (_is_f64_array(arr, 2) and _are_ints(i, j)):
        return None

    def codegen(context, builder, sig, args):
        p = _row_ptr(context, builder, sig.args[0], args[0], (sig.args[1], args[1]),
                     (sig.args[2], args[2]))  # fmt: skip
        return builder.load(p, align=8)

    return vec4(arr, i, j), codegen


@intrinsic
def _store4(typingctx, arr, i, j, v):
    if not (_is_f64_array(arr, 2) and arr.mutable and _are_ints(i, j) and v == vec4):
        return None

    def codegen(context, builder, sig, args):
        p = _row_ptr(context, builder, sig.args[0], args[0], (sig.args[1], args[1]),
                     (sig.args[2], args[2]))  # fmt: skip
        builder.store(args[3], p, align=8)
        return context.get_dummy_value()

    return types.none(arr, i, j, v), codegen


@intrinsic
def _madd4(typingctx, acc, u, v):
    if not (acc == vec4 and u == vec4 and v == vec4):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], builder.fmul(args[1], args[2]))

    return vec4(vec4, vec4, vec4), codegen


@intrinsic
def _madd4s(typingctx, acc, s, v):
    if not (acc == vec4 and isinstance(s, types.Float) and v == vec4):
        return None

    def codegen(context, builder, sig, args):
        s = context.cast(builder, args[1], sig.args[1], types.float64)
        return builder.fadd(args[0], builder.fmul(_splat(builder, s), args[2]))

    return vec4(vec4, s, vec4), codegen


@intrinsic
def _splat4(typingctx, s):
    if not isinstance(s, types.Float):
        return None

    def codegen(context, builder, sig, args):
        return _splat(builder, context.cast(builder, args[0], sig.args[0], types.float64))

    return vec4(s), codegen


@intrinsic
def _add4(typingctx, u, v):
    if not (u == vec4 and v == vec4):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1])

    return vec4(vec4, vec4), codegen


def _view_codegen(ndim):
    """Codegen of a view of a 1-D float64 buffer from entry ``off`` on: args (buf, off,
    *shape); row-major strides from the buffer's own stride; borrowed (no meminfo, no
    parent: not reference-counted, see the module docstring)."""

    def codegen(context, builder, sig, args):
        src = context.make_array(sig.args[0])(context, builder, args[0])
        off, *shape = (context.cast(builder, a, t, types.intp)
                       for a, t in zip(args[1:], sig.args[1:], strict=True))  # fmt: skip
        s = cgutils.unpack_tuple(builder, src.strides, 1)[0]
        byte = builder.bitcast(src.data, ir.IntType(8).as_pointer())
        data = builder.bitcast(builder.gep(byte, [builder.mul(off, s)]), src.data.type)
        strides = [builder.mul(shape[1], s), s] if ndim == 2 else [s]
        dst = context.make_array(sig.return_type)(context, builder)
        context.populate_array(
            dst, data=data, shape=shape, strides=strides,
            itemsize=src.itemsize, meminfo=None, parent=None,
        )  # fmt: skip
        return impl_ret_untracked(context, builder, sig.return_type, dst._getvalue())

    return codegen


@intrinsic
def _view2(typingctx, buf, off, m, n):
    if not (_is_f64_array(buf, 1) and _are_ints(off, m, n)):
        return None
    layout = "C" if buf.layout == "C" else "A"
    retty = types.Array(types.float64, 2, layout, readonly=not buf.mutable)
    return retty(buf, off, m, n), _view_codegen(2)


@intrinsic
def _view1(typingctx, buf, off, n):
    if not (_is_f64_array(buf, 1) and _are_ints(off, n)):
        return None
    retty = types.Array(types.float64, 1, buf.layout, readonly=not buf.mutable)
    return retty(buf, off, n), _view_codegen(1)


if config.DISABLE_JIT:  # plain NumPy with the same per-lane arithmetic

    def zero4():
        return np.zeros(4)

    def load4(arr, i, j):
        return arr[i, j : j + 4].copy()

    def store4(arr, i, j, v):
        arr[i, j : j + 4] = v

    def madd4(acc, u, v):
        return acc + u * v

    def madd4s(acc, s, v):
        return acc + s * v

    def splat4(s):
        return np.full(4, s)

    def add4(u, v):
        return u + v

    def view2(buf, off, m, n):
        return buf[off : off + m * n].reshape((m, n))

    def view1(buf, off, n):
        return buf[off : off + n]

else:
    zero4, load4, store4, madd4, madd4s, view2 = _zero4, _load4, _store4, _madd4, _madd4s, _view2
    view1 = _view1
    splat4, add4 = _splat4, _add4
