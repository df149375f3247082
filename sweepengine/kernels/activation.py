"""Loss, gradient and exact Hessian-vector products of a network with activations.

Data form only. With A_0 = X (d_0, m), Z_k = W_k A_{k-1}, A_k = s(Z_k) on the
hidden layers k = 1..K-1 and a linear output F = Z_K:

    L = 1/2 ||F - Y||_F^2 + lam/2 ||theta||^2

Activation ``act`` (an int64 code) and ``alpha`` (the leaky slope; read only by
leaky_relu) are plain arguments, so one compiled signature serves all of them:

    0 linear      s(z) = z
    1 relu        s(z) = max(z, 0),          s'(z) = 1 if z > 0 else 0
    2 leaky_relu  s(z) = z if z > 0 else alpha z, s'(z) = 1 if z > 0 else alpha
    3 tanh        s(z) = tanh z,             s' = 1 - s^2,  s'' = -2 s (1 - s^2)

Kink convention: relu and leaky_relu take the left derivative at 0, s'(0) = 0
(relu) and alpha (leaky_relu), and s'' = 0 everywhere; gradient and HVP read the
same ``_ds``, so they agree at a kink (and the HVP is then the Hessian of the
piece on the z <= 0 side).

Backward (errors D_k = dL/dZ_k, G_k = W_{k+1}^T D_{k+1} before gating):

    D_K = F - Y,  D_k = s'(Z_k) * G_k,  dL/dW_k = D_k A_{k-1}^T + lam W_k

HVP along V, forward over reverse (the R-operator):

    dZ_1 = V_1 X,  dA_k = s'(Z_k) * dZ_k,  dZ_k = V_k A_{k-1} + W_k dA_{k-1}
    dD_K = dZ_K,   dG_k = V_{k+1}^T D_{k+1} + W_{k+1}^T dD_{k+1}
    dD_k = s''(Z_k) * dZ_k * G_k + s'(Z_k) * dG_k
    (H V)_k = dD_k A_{k-1}^T + D_k dA_{k-1}^T + lam V_k      (dA_0 = 0)

The Gauss-Newton part runs through dD_K = dZ_K; the residual part through the
V^T D, D dA^T and s'' terms. Workspace ``ws`` (``ws_size(dims, m)``): seven node
buffers of (d_k, m) blocks (Z, A, D, G, dZ, dA, dD; node k at ``noff[k]``) and
a scratch block for the products.

tanh is ``_tanh``, not libm's: tanh |x| = u / (u + 2) with u = e^y - 1, y = 2|x|
(capped at 40), u = 2^n (e^r - 1) + (2^n - 1) for y = n ln 2 + r, |r| <= ln 2 / 2,
e^r - 1 = r + r^2 (1/2 + r/6 + ...) to degree 13 by Horner's rule in fused
multiply-adds (``llvm.fma``: one rounding each, the same bits vectorised or not)
and 2^n built from the exponent bits. One formula for every x (exact near 0, where
u = e^r - 1 has no cancellation), one division, no call and no data-dependent
branch, so the elementwise loops vectorise: about 1.3 ns an entry against 10-20 ns
for ``np.tanh`` (a libm call per entry). Within 3 ulp of ``np.tanh``
(tests/test_nonlinear.py: 7e5 points in [-30, 30] and down to 1e-300; 3 ulp only
near |x| = 0.21, where 2^n (e^r - 1) + 1 with n = 1 and r < 0 cancels, at about
2e-4 of the points in [0, 0.7]); +-1 beyond |x| = 20, NaN for NaN. An earlier form
(a Cephes rational for |x| < 0.625, both branches computed, two divisions, no fused
multiply-add) took about 2.4 ns. The elementwise loops branch on the activation
outside the loop (one loop per activation), so relu's loops vectorise too.

Numba's cache keys a caller's compiled code on the caller's file: after a change
here, change ``nltrainer.py``, ``descent.py``, ``polish.py`` and ``spectrum.py`` too (their
solvers run this file's kernels through ``operator.py``), or clear ``NUMBA_CACHE_DIR``.
"""

import math
from collections import namedtuple
from fractions import Fraction

import numpy as np
from llvmlite import ir
from numba import config, njit, types
from numba.extending import intrinsic, overload

from .._config import JIT
from .chain import param_offsets, weight
from .linalg import copy2, dot, mm, mm_acc, mm_nt
from .operator import hvp_op, is_operator, loss_grad_op
from .simd import view1, view2

LINEAR, RELU, LEAKY_RELU, TANH = 0, 1, 2, 3

# _tanh's constants: fdlibm's split ln 2, 1 / k! for e^r - 1.
_LOG2E = 1.4426950408889634
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_SHIFT = 6755399441055744.0  # 1.5 * 2^52: t = y + SHIFT rounds y to an integer n in t's low bits
_E2, _E3, _E4, _E5, _E6 = 1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720
_E7, _E8, _E9, _E10 = 1 / 5040, 1 / 40320, 1 / 362880, 1 / 3628800
_E11, _E12, _E13 = 1 / 39916800, 1 / 479001600, 1 / 6227020800


@intrinsic
def _f64_bits_i(typingctx, x):
    if x != types.float64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _bits_f64_i(typingctx, i):
    if i != types.int64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def _fma_i(typingctx, a, b, c):
    if not (a == b == c == types.float64):
        return None

    def codegen(context, builder, sig, args):
        d = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [d], ir.FunctionType(d, [d, d, d]))
        return builder.call(fn, args)

    return types.float64(types.float64, types.float64, types.float64), codegen


if config.DISABLE_JIT:

    def _f64_bits(x):
        return int(np.array(x, dtype=np.float64).view(np.int64))

    def _bits_f64(i):
        return float(np.array(i, dtype=np.int64).view(np.float64))

    def _fma(a, b, c):
        """a b + c rounded once (exact rational arithmetic, then one rounding)."""
        if not all(map(math.isfinite, (a, b, c))):
            return a * b + c
        return float(Fraction(a) * Fraction(b) + Fraction(c))

else:
    _f64_bits, _bits_f64, _fma = _f64_bits_i, _bits_f64_i, _fma_i


@njit(inline="always", **JIT)
def _tanh(x):
    """tanh x within 3 ulp, branch-free (see the module docstring)."""
    y = 2.0 * min(abs(x), 20.0)
    t = y * _LOG2E + _SHIFT
    nf = t - _SHIFT
    n = _f64_bits(t) - _f64_bits(_SHIFT)
    r = (y - nf * _LN2_HI) - nf * _LN2_LO
    q = _fma(_fma(_fma(_E13, r, _E12), r, _E11), r, _E10)
    q = _fma(_fma(_fma(_fma(q, r, _E9), r, _E8), r, _E7), r, _E6)
    q = _fma(_fma(_fma(_fma(q, r, _E5), r, _E4), r, _E3), r, _E2)
    p = _bits_f64((n + 1023) << 52)
    em1 = _fma(p, _fma(r * r, q, r), p - 1.0)
    v = em1 / (em1 + 2.0)
    return v if x >= 0.0 else -v


@njit(**JIT)
def data_offsets(dims, m):
    """Start of node k (a (d_k, m) block) in a node buffer; total length last."""
    K = dims.size - 1
    off = np.zeros(K + 2, dtype=np.int64)
    for k in range(K + 1):
        off[k + 1] = off[k] + dims[k] * m
    return off


@njit(**JIT)
def ws_size(dims, m):
    K = dims.size - 1
    S = data_offsets(dims, m)[K + 1]
    scratch = 0
    for k in range(K + 1):
        scratch = max(scratch, dims[k] * m)
    for k in range(1, K + 1):
        scratch = max(scratch, dims[k] * dims[k - 1])
    return 7 * S + scratch


@njit(inline="always", **JIT)
def _node(ws, b, noff, dims, m, k):
    """Node k of buffer b (0 Z, 1 A, 2 D, 3 G, 4 dZ, 5 dA, 6 dD): a (d_k, m) view."""
    return view2(ws, b * noff[dims.size] + noff[k], dims[k], m)


@njit(inline="always", **JIT)
def _scratch(ws, noff, dims):
    start = 7 * noff[dims.size]
    return view1(ws, start, ws.size - start)


@njit(inline="always", **JIT)
def _s(z, act, alpha):
    if act == RELU:
        return z if z > 0.0 else 0.0
    if act == LEAKY_RELU:
        return z if z > 0.0 else alpha * z
    if act == TANH:
        return _tanh(z)
    return z


@njit(inline="always", **JIT)
def _ds(z, a, act, alpha):
    """s'(z) given a = s(z); left derivative at the kink."""
    if act == RELU:
        return 1.0 if z > 0.0 else 0.0
    if act == LEAKY_RELU:
        return 1.0 if z > 0.0 else alpha
    if act == TANH:
        return 1.0 - a * a
    return 1.0


@njit(inline="always", **JIT)
def _d2s(a, act):
    """s''(z) given a = s(z) (0 but for tanh)."""
    if act == TANH:
        return -2.0 * a * (1.0 - a * a)
    return 0.0


@njit(**JIT)
def _activate(Z, A, act, alpha):
    """A = s(Z) entrywise, one loop per activation (no branch on ``act`` inside)."""
    rows, cols = Z.shape
    if act == TANH:
        for i in range(rows):
            for j in range(cols):
                A[i, j] = _tanh(Z[i, j])
    elif act == RELU:
        for i in range(rows):
            for j in range(cols):
                z = Z[i, j]
                A[i, j] = z if z > 0.0 else 0.0
    elif act == LEAKY_RELU:
        for i in range(rows):
            for j in range(cols):
                z = Z[i, j]
                A[i, j] = z if z > 0.0 else alpha * z
    else:
        for i in range(rows):
            for j in range(cols):
                A[i, j] = Z[i, j]


@njit(**JIT)
def _gate(Z, A, G, out, act, alpha):
    """out = s'(Z) * G entrywise (``_ds``'s values), one loop per activation."""
    rows, cols = Z.shape
    if act == TANH:
        for i in range(rows):
            for j in range(cols):
                a = A[i, j]
                out[i, j] = (1.0 - a * a) * G[i, j]
    elif act == RELU:
        for i in range(rows):
            for j in range(cols):
                out[i, j] = (1.0 if Z[i, j] > 0.0 else 0.0) * G[i, j]
    elif act == LEAKY_RELU:
        for i in range(rows):
            for j in range(cols):
                out[i, j] = (1.0 if Z[i, j] > 0.0 else alpha) * G[i, j]
    else:
        for i in range(rows):
            for j in range(cols):
                out[i, j] = 1.0 * G[i, j]


@njit(**JIT)
def forward_at(theta, dims, poff, noff, X, act, alpha, ws):
    """Fill Z_k and A_k (k = 1..K; A_K = Z_K = F) from X; ``poff`` / ``noff`` are
    ``param_offsets(dims)`` / ``data_offsets(dims, m)`` (the ``_at`` kernels allocate
    nothing: a trainer computes them once per run)."""
    K = dims.size - 1
    m = X.shape[1]
    for k in range(1, K + 1):
        Z = _node(ws, 0, noff, dims, m, k)
        prev = X if k == 1 else _node(ws, 1, noff, dims, m, k - 1)
        mm(weight(theta, dims, poff, k), prev, Z)
        _activate(Z, _node(ws, 1, noff, dims, m, k), LINEAR if k == K else act, alpha)


@njit(**JIT)
def forward(theta, dims, X, act, alpha, ws):
    """Fill Z_k and A_k from X (see ``forward_at``)."""
    forward_at(theta, dims, param_offsets(dims), data_offsets(dims, X.shape[1]), X, act, alpha, ws)


@njit(**JIT)
def loss_at(theta, dims, poff, noff, X, Y, act, alpha, lam, ws):
    """L = 1/2 ||F - Y||^2 + lam/2 ||theta||^2; leaves Z, A and D_K = F - Y in ws."""
    K = dims.size - 1
    m = X.shape[1]
    forward_at(theta, dims, poff, noff, X, act, alpha, ws)
    F = _node(ws, 0, noff, dims, m, K)
    R = _node(ws, 2, noff, dims, m, K)
    s = 0.0
    for i in range(R.shape[0]):
        for j in range(m):
            r = F[i, j] - Y[i, j]
            R[i, j] = r
            s += r * r
    l = 0.5 * s
    if lam != 0.0:
        l += 0.5 * lam * dot(theta, theta)
    return l


@njit(**JIT)
def loss(theta, dims, X, Y, act, alpha, lam, ws):
    """L (see ``loss_at``)."""
    poff, noff = param_offsets(dims), data_offsets(dims, X.shape[1])
    return loss_at(theta, dims, poff, noff, X, Y, act, alpha, lam, ws)


@njit(**JIT)
def loss_grad_at(theta, dims, poff, noff, X, Y, act, alpha, lam, ws, grad):
    """L and dL/dtheta (into ``grad``); leaves Z, A, D and G in ws for ``hvp_prepared``."""
    K = dims.size - 1
    m = X.shape[1]
    scratch = _scratch(ws, noff, dims)
    l = loss_at(theta, dims, poff, noff, X, Y, act, alpha, lam, ws)
    for k in range(K, 0, -1):
        D = _node(ws, 2, noff, dims, m, k)
        prev = X if k == 1 else _node(ws, 1, noff, dims, m, k - 1)
        g = weight(grad, dims, poff, k)
        mm_nt(D, prev, g, scratch)
        if lam != 0.0:
            W = weight(theta, dims, poff, k)
            for i in range(g.shape[0]):
                for j in range(g.shape[1]):
                    g[i, j] += lam * W[i, j]
        if k > 1:
            G = _node(ws, 3, noff, dims, m, k - 1)
            mm(weight(theta, dims, poff, k).T, D, G)
            Z = _node(ws, 0, noff, dims, m, k - 1)
            A = _node(ws, 1, noff, dims, m, k - 1)
            _gate(Z, A, G, _node(ws, 2, noff, dims, m, k - 1), act, alpha)
    return l


@njit(**JIT)
def loss_grad(theta, dims, X, Y, act, alpha, lam, ws, grad):
    """L and dL/dtheta (see ``loss_grad_at``)."""
    poff, noff = param_offsets(dims), data_offsets(dims, X.shape[1])
    return loss_grad_at(theta, dims, poff, noff, X, Y, act, alpha, lam, ws, grad)


@njit(**JIT)
def hvp_prepared(theta, dims, X, act, alpha, lam, ws, v, out):
    """out = H(theta) v, using Z, A, D, G left in ``ws`` by ``loss_grad``."""
    K = dims.size - 1
    m = X.shape[1]
    poff, noff = param_offsets(dims), data_offsets(dims, m)
    scratch = _scratch(ws, noff, dims)
    # forward: dZ_k and dA_k
    for k in range(1, K + 1):
        dZ = _node(ws, 4, noff, dims, m, k)
        Vk = weight(v, dims, poff, k)
        if k == 1:
            mm(Vk, X, dZ)
        else:
            mm(Vk, _node(ws, 1, noff, dims, m, k - 1), dZ)
            mm_acc(weight(theta, dims, poff, k), _node(ws, 5, noff, dims, m, k - 1), dZ, scratch)
        if k < K:
            Z = _node(ws, 0, noff, dims, m, k)
            A = _node(ws, 1, noff, dims, m, k)
            _gate(Z, A, dZ, _node(ws, 5, noff, dims, m, k), act, alpha)
    # reverse: dD_k
    copy2(_node(ws, 6, noff, dims, m, K), _node(ws, 4, noff, dims, m, K))
    for k in range(K, 1, -1):
        dG = _node(ws, 6, noff, dims, m, k - 1)  # dG_{k-1}, then dD_{k-1} in place
        mm(weight(v, dims, poff, k).T, _node(ws, 2, noff, dims, m, k), dG)
        mm_acc(weight(theta, dims, poff, k).T, _node(ws, 6, noff, dims, m, k), dG, scratch)
        Z = _node(ws, 0, noff, dims, m, k - 1)
        A = _node(ws, 1, noff, dims, m, k - 1)
        G = _node(ws, 3, noff, dims, m, k - 1)
        dZ = _node(ws, 4, noff, dims, m, k - 1)
        for i in range(dG.shape[0]):
            for j in range(m):
                a = A[i, j]
                dG[i, j] = (
                    _d2s(a, act) * dZ[i, j] * G[i, j] + _ds(Z[i, j], a, act, alpha) * dG[i, j]
                )
    # (H v)_k = dD_k A_{k-1}^T + D_k dA_{k-1}^T + lam V_k
    for k in range(1, K + 1):
        o = weight(out, dims, poff, k)
        dD = _node(ws, 6, noff, dims, m, k)
        if k == 1:
            mm_nt(dD, X, o, scratch)
        else:
            mm_nt(dD, _node(ws, 1, noff, dims, m, k - 1), o, scratch)
            mm_nt(
                _node(ws, 2, noff, dims, m, k), _node(ws, 5, noff, dims, m, k - 1), o, scratch, True
            )
        if lam != 0.0:
            Vk = weight(v, dims, poff, k)
            for i in range(o.shape[0]):
                for j in range(o.shape[1]):
                    o[i, j] += lam * Vk[i, j]


@njit(**JIT)
def hessian_prepared(theta, dims, X, act, alpha, lam, ws, H):
    """Dense Hessian, column j = H e_j, with the ``loss_grad`` state in ``ws``."""
    n = theta.size
    e = np.zeros(n)
    col = np.empty(n)
    for j in range(n):
        e[j] = 1.0
        hvp_prepared(theta, dims, X, act, alpha, lam, ws, e, col)
        H[:, j] = col
        e[j] = 0.0


class NetObjective(namedtuple("NetObjective", "dims X Y act alpha lam ws")):
    """The network as an operator of ``kernels.operator``: ``polish.newton_mr`` and
    ``spectrum.lanczos`` reach ``loss_grad`` and ``hvp_prepared`` through it."""

    __slots__ = ()

    def loss_grad(self, theta, g):
        return loss_grad(theta, self.dims, self.X, self.Y, self.act, self.alpha, self.lam,
                         self.ws, g)  # fmt: skip

    def hvp(self, theta, v, out):
        hvp_prepared(theta, self.dims, self.X, self.act, self.alpha, self.lam, self.ws, v, out)


@overload(loss_grad_op, jit_options={"cache": True})
def _net_loss_grad(op, theta, g):
    if is_operator(op, NetObjective):
        return lambda op, theta, g: loss_grad(theta, op.dims, op.X, op.Y, op.act, op.alpha,
                                              op.lam, op.ws, g)  # fmt: skip
    return None


@overload(hvp_op, jit_options={"cache": True})
def _net_hvp(op, theta, v, out):
    if is_operator(op, NetObjective):
        return lambda op, theta, v, out: hvp_prepared(theta, op.dims, op.X, op.act, op.alpha,
                                                      op.lam, op.ws, v, out)  # fmt: skip
    return None
