"""Networks with activations and weight decay (sweepengine.nonlinear, kernels.activation)."""

import numpy as np
import pytest

import sweepengine as se
from tests import naive
from tests.conftest import random_chain, random_data

ACTS = ["linear", "relu", "leaky_relu", "tanh"]
DIMS = [(3, 2), (3, 4, 2), (2, 3, 3, 2)]
ALPHA, WD = 0.1, 0.3
ids = lambda d: "dims=" + "-".join(map(str, d))  # noqa: E731


def _flat(ws):
    return np.concatenate([w.ravel() for w in ws])


def _away_from_kinks(rng, dims, act="leaky_relu", m=6, margin=1e-3):
    """Weights and data whose hidden pre-activations (under ``act``) lie >= margin from 0."""
    for _ in range(100):
        W = random_chain(rng, dims, 0.8)
        X, Y = random_data(rng, dims[0], dims[-1], m)
        Zs, _ = naive.net_forward(W, X, act, ALPHA)
        if all(np.abs(Z).min() >= margin for Z in Zs[:-1]) and (
            len(dims) < 3 or any((Z > 0).any() and (Z < 0).any() for Z in Zs[:-1])
        ):
            return W, X, Y
    raise AssertionError("no draw away from the kinks")


@pytest.mark.parametrize("dims", DIMS, ids=ids)
@pytest.mark.parametrize("act", ACTS)
def test_loss_and_gradient_match_naive(rng, act, dims):
    W, X, Y = _away_from_kinks(rng, dims, act)
    l, g = se.nonlinear_loss_and_gradient(W, X, Y, act, ALPHA, WD)
    assert l == pytest.approx(naive.net_loss(W, X, Y, act, ALPHA, WD), rel=1e-12)
    assert se.nonlinear_loss(W, X, Y, act, ALPHA, WD) == pytest.approx(l, rel=1e-14)
    gn = _flat(naive.net_gradient(W, X, Y, act, ALPHA, WD))
    np.testing.assert_allclose(_flat(g), gn, atol=1e-12 * max(1, np.abs(gn).max()))
    np.testing.assert_allclose(_flat(se.nonlinear_gradient(W, X, Y, act, ALPHA, WD)), _flat(g))


@pytest.mark.parametrize("act", ACTS)
def test_gradient_and_hvp_vs_central_differences(rng, act):
    for dims in DIMS[1:]:
        W, X, Y = _away_from_kinks(rng, dims, act)
        g = _flat(se.nonlinear_gradient(W, X, Y, act, ALPHA, WD))
        fd = naive.net_fd_gradient(W, X, Y, act, ALPHA, WD)
        np.testing.assert_allclose(g, fd, atol=1e-6 * max(1, np.abs(g).max()))
        v = rng.standard_normal(g.size)
        hv = _flat(se.nonlinear_hvp(W, X, Y, v, act, ALPHA, WD))
        fdh = naive.net_fd_hvp(W, X, Y, v, act, ALPHA, WD)
        np.testing.assert_allclose(hv, fdh, atol=1e-6 * max(1, np.abs(hv).max()))
        H = se.nonlinear_hessian(W, X, Y, act, ALPHA, WD)
        np.testing.assert_allclose(H @ v, hv, atol=1e-12 * max(1, np.abs(hv).max()))


@pytest.mark.parametrize("act", ACTS)
def test_hvp_symmetric_and_linear(rng, act):
    W, X, Y = _away_from_kinks(rng, (2, 3, 3, 2), act)
    n = sum(w.size for w in W)
    u, v = rng.standard_normal(n), rng.standard_normal(n)
    Hu = _flat(se.nonlinear_hvp(W, X, Y, u, act, ALPHA, WD))
    Hv = _flat(se.nonlinear_hvp(W, X, Y, v, act, ALPHA, WD))
    assert v @ Hu == pytest.approx(u @ Hv, rel=1e-11)
    Huv = _flat(se.nonlinear_hvp(W, X, Y, 2.5 * u - 0.5 * v, act, ALPHA, WD))
    np.testing.assert_allclose(Huv, 2.5 * Hu - 0.5 * Hv, atol=1e-11 * np.abs(Hu).max())
    H = se.nonlinear_hessian(W, X, Y, act, ALPHA, WD)
    np.testing.assert_allclose(H, H.T, atol=1e-12 * np.abs(H).max())
    lo, hi = se.nonlinear_hessian_extremes(W, X, Y, act, ALPHA, WD)
    ev = np.linalg.eigvalsh(0.5 * (H + H.T))
    assert (lo, hi) == (ev[0], ev[-1])


@pytest.mark.parametrize("act", ACTS)
def test_weight_decay_adds_lambda_theta_and_lambda_v(rng, act):
    W, X, Y = _away_from_kinks(rng, (3, 4, 2), act)
    theta = _flat(W)
    v = rng.standard_normal(theta.size)
    l0, g0 = se.nonlinear_loss_and_gradient(W, X, Y, act, ALPHA, 0.0)
    l1, g1 = se.nonlinear_loss_and_gradient(W, X, Y, act, ALPHA, WD)
    assert l1 - l0 == pytest.approx(0.5 * WD * theta @ theta, rel=1e-12)
    np.testing.assert_allclose(_flat(g1) - _flat(g0), WD * theta, rtol=0, atol=1e-14 * 8)
    h0 = _flat(se.nonlinear_hvp(W, X, Y, v, act, ALPHA, 0.0))
    h1 = _flat(se.nonlinear_hvp(W, X, Y, v, act, ALPHA, WD))
    np.testing.assert_allclose(h1 - h0, WD * v, rtol=0, atol=1e-13 * max(1, np.abs(h0).max()))


@pytest.mark.parametrize("dims", DIMS, ids=ids)
def test_linear_activation_equals_the_linear_kernels(rng, dims):
    from sweepengine._layout import dims_of
    from sweepengine.kernels.hvp import hvp_prepared
    from sweepengine.kernels.objective import loss_grad_data, ws_size

    W = random_chain(rng, dims, 0.8)
    X, Y = random_data(rng, dims[0], dims[-1], 7)
    theta, d = _flat(W), dims_of(W)
    ws, R, g = np.zeros(int(ws_size(d))), np.empty(Y.shape), np.empty(theta.size)
    l = loss_grad_data(theta, d, X, Y, ws, R, g)
    v = rng.standard_normal(theta.size)
    hv = np.empty(theta.size)
    hvp_prepared(theta, d, X @ X.T, ws, v, hv)

    ln, gn = se.nonlinear_loss_and_gradient(W, X, Y)
    assert ln == pytest.approx(l, rel=1e-13)
    np.testing.assert_allclose(_flat(gn), g, atol=1e-13 * max(1, np.abs(g).max()))
    hn = _flat(se.nonlinear_hvp(W, X, Y, v))
    np.testing.assert_allclose(hn, hv, atol=1e-12 * max(1, np.abs(hv).max()))
    H = se.hessian(W, X, Y)
    np.testing.assert_allclose(se.nonlinear_hessian(W, X, Y), H, atol=1e-12 * np.abs(H).max())
    lo, hi = se.hessian_extremes(W, X, Y, method="dense")
    nlo, nhi = se.nonlinear_hessian_extremes(W, X, Y)
    scale = max(abs(lo), abs(hi))
    assert nlo == pytest.approx(lo, abs=1e-12 * scale)
    assert nhi == pytest.approx(hi, abs=1e-12 * scale)


def test_tanh_within_three_ulp_of_numpy():
    """The kernels' branch-free tanh (kernels/activation.py) against np.tanh: at most 3
    ulp (2 but for rare points near |x| = 0.21, where its reduction cancels) on a
    uniform grid over [-30, 30], a geometric one down to 1e-300 (both signs) and the
    branch points; exact 0, +-1 at +-inf, NaN for NaN."""
    from sweepengine.kernels.activation import TANH, _activate

    g = np.geomspace(1e-300, 30.0, 100_001)
    x = np.concatenate([np.linspace(-30.0, 30.0, 400_001), g, -g,
                        [0.625, -0.625, np.nextafter(0.625, 0.0), 20.0, -20.0]])  # fmt: skip
    out = np.empty((1, x.size))
    _activate(x.reshape(1, -1), out, TANH, 0.0)
    ref = np.tanh(x)
    ulp = np.abs(out[0] - ref) / np.spacing(np.abs(ref))
    assert ulp.max() <= 3.0 and np.mean(ulp > 2.0) < 1e-3
    special = np.array([[0.0, np.inf, -np.inf, np.nan]])
    got = np.empty_like(special)
    _activate(special, got, TANH, 0.0)
    assert got[0, :3].tolist() == [0.0, 1.0, -1.0] and np.isnan(got[0, 3])


@pytest.mark.parametrize("act,slope", [("relu", 0.0), ("leaky_relu", ALPHA)])
def test_kink_convention_left_derivative(rng, act, slope):
    """A hidden pre-activation exactly 0 has s'(0) = 0 (relu) or alpha (leaky_relu),
    in the gradient and in the HVP alike."""
    W = random_chain(rng, (3, 4, 2))
    W[0][1] = 0.0  # unit 1: Z = 0 on every sample
    X, Y = random_data(rng, 3, 2, 5)
    g = se.nonlinear_gradient(W, X, Y, act, ALPHA)
    D = W[1].T @ (naive.net_forward(W, X, act, ALPHA)[0][-1] - Y)  # before gating
    np.testing.assert_allclose(g[0][1], slope * D[1] @ X.T, atol=1e-13)
    # along a direction moving only unit 1's input weights, the HVP's first block is
    # the Gauss-Newton term of the same left derivative: slope^2 W_2[:,1]^T W_2[:,1] v X X^T
    v = [np.zeros((4, 3)), np.zeros((2, 4))]
    v[0][1] = rng.standard_normal(3)
    hv = se.nonlinear_hvp(W, X, Y, v, act, ALPHA)
    want = slope**2 * (W[1][:, 1] @ W[1][:, 1]) * (v[0][1] @ X @ X.T)
    np.testing.assert_allclose(hv[0][1], want, atol=1e-12 * max(1, np.abs(want).max()))


def test_weight_decay_zero_point_theory(rng):
    X, Y = random_data(rng, 3, 2, 8)
    s = np.linalg.svd(Y @ X.T, compute_uv=False)
    # K = 2: eigenvalues lam +- sigma_i(Cyx); a minimum iff lam > sigma_max
    for lam, cls in [(0.5 * s[0], "strict_saddle"), (1.5 * s[0], "strict_minimum")]:
        z = se.zero_point_hessian(X, Y, [4], lam)
        Wz = [np.zeros((4, 3)), np.zeros((2, 4))]
        Hk = se.nonlinear_hessian(Wz, X, Y, "linear", weight_decay=lam)
        np.testing.assert_allclose(z.hessian, Hk, atol=1e-12 * s[0])
        ev = np.linalg.eigvalsh(Hk)
        want = np.sort(np.concatenate([lam + np.repeat(s, 4), lam - np.repeat(s, 4), [lam] * 4]))
        np.testing.assert_allclose(ev, want, atol=1e-10 * s[0])
        assert z.classification == cls and z.threshold == pytest.approx(s[0], rel=1e-12)
        assert z.lam_min == pytest.approx(lam - s[0], abs=1e-10 * s[0])
    # K >= 3: lam I, a strict minimum for every lam > 0; the zero matrix at lam = 0
    for lam, cls in [(1e-3, "strict_minimum"), (0.0, "degenerate")]:
        z = se.zero_point_hessian(X, Y, [4, 3], lam)
        Wz = [np.zeros((4, 3)), np.zeros((3, 4)), np.zeros((2, 3))]
        Hk = se.nonlinear_hessian(Wz, X, Y, "linear", weight_decay=lam)
        assert np.array_equal(z.hessian, Hk) and np.array_equal(Hk, lam * np.eye(Hk.shape[0]))
        assert z.classification == cls
    # K = 1: W = 0 is not critical unless Cyx = 0
    assert se.zero_point_hessian(X, Y, [], 0.1).classification == "not_critical"
    z = se.zero_point_hessian(X, 0 * Y, [], 0.1)
    np.testing.assert_allclose(
        z.hessian, se.nonlinear_hessian([np.zeros((2, 3))], X, 0 * Y, weight_decay=0.1)
    )
    assert z.classification == "strict_minimum"


BAD = [
    (dict(activation="sigmoid"), r"activation must be one of \('linear', 'relu', 'leaky_relu'"),
    (dict(activation="relu", weight_decay=-1.0), "weight_decay"),
    (dict(activation="tanh", weight_decay=float("nan")), "weight_decay"),
    (dict(activation="leaky_relu", alpha=1.0), r"alpha .* \[0, 1\)"),
    (dict(activation="leaky_relu", alpha=-0.1), "alpha"),
]


@pytest.mark.parametrize("kw,msg", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_options(rng, kw, msg):
    W = random_chain(rng, (3, 4, 2))
    X, Y = random_data(rng, 3, 2, 5)
    for f in (se.nonlinear_loss, se.nonlinear_gradient, se.nonlinear_hessian):
        with pytest.raises(ValueError, match=msg):
            f(W, X, Y, **kw)


def test_bad_shapes_name_the_argument(rng):
    W = random_chain(rng, (3, 4, 2))
    X, Y = random_data(rng, 3, 2, 5)
    with pytest.raises(ValueError, match="X"):
        se.nonlinear_loss(W, X[:2], Y, "relu")
    with pytest.raises(ValueError, match="Y"):
        se.nonlinear_loss(W, X, Y[:, :3], "relu")
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        se.nonlinear_loss([W[0], np.ones((2, 5))], X, Y, "relu")
    with pytest.raises(ValueError, match="direction"):
        se.nonlinear_hvp(W, X, Y, np.ones(3), "relu")
    with pytest.raises(ValueError, match="weight_decay"):
        se.zero_point_hessian(X, Y, [4], -1.0)
    # relu ignores alpha, so any alpha is accepted there
    assert np.isfinite(se.nonlinear_loss(W, X, Y, "relu", alpha=5.0))


def test_weight_decay_critical_points_are_balanced(rng):
    """docs/maths.md: at a critical point of L + lam/2 ||theta||^2 (lam > 0) every pair of
    layers is balanced, W_k W_k^T = W_{k+1}^T W_{k+1}. GD to a critical point, then check."""
    dims, lam = (3, 3, 3, 2), 0.3
    rng = np.random.default_rng(3)
    W = random_chain(rng, dims, 0.8)
    X, Y = rng.standard_normal((3, 6)), 2 * rng.standard_normal((2, 6))
    for _ in range(20000):
        g = se.nonlinear_gradient(W, X, Y, "linear", weight_decay=lam)
        W = [w - 0.01 * d for w, d in zip(W, g, strict=True)]
    assert max(np.abs(d).max() for d in g) < 1e-10
    assert se.nonlinear_loss(W, X, Y, weight_decay=lam) < 0.5 * np.sum(Y * Y)  # not W = 0
    for k in range(len(W) - 1):
        np.testing.assert_allclose(W[k] @ W[k].T, W[k + 1].T @ W[k + 1], atol=1e-9)


def test_activation_kernels_run_without_jit():
    """The kernels stay plain Python: NUMBA_DISABLE_JIT=1 gives the naive numbers."""
    import os
    import subprocess
    import sys

    script = (
        "import numpy as np, sweepengine as se\nfrom tests import naive\n"
        "rng = np.random.default_rng(0)\n"
        "W = [rng.standard_normal(s) for s in ((4, 3), (3, 4), (2, 3))]\n"
        "X, Y = rng.standard_normal((3, 5)), rng.standard_normal((2, 5))\n"
        "for a in ('linear', 'relu', 'leaky_relu', 'tanh'):\n"
        "    g = se.nonlinear_gradient(W, X, Y, a, 0.1, 0.2)\n"
        "    gn = naive.net_gradient(W, X, Y, a, 0.1, 0.2)\n"
        "    assert max(abs(x - y).max() for x, y in zip(g, gn)) < 1e-12\n"
        "    se.nonlinear_hessian(W, X, Y, a, 0.1, 0.2)\n"
        "print('ok')\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONPATH=root)
    proc = subprocess.run([sys.executable, "-c", script], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
