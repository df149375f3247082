"""Kernels against naive references, finite differences and theory."""

import numpy as np
import pytest

import sweepengine as se
from tests import naive
from tests.conftest import random_chain, random_data

# (dims) = (d_0, d_1, ..., d_K): depths H = K - 1 from 0 to 6, widths 1..9, non-square
CASES = [
    (3, 2),
    (1, 1),
    (4, 1, 3),
    (3, 5, 2),
    (9, 2, 7),
    (2, 3, 4, 5),
    (5, 1, 6, 2),
    (6, 4, 4, 4, 3),
    (3, 9, 8, 7, 6, 2),
    (2, 3, 2, 3, 2, 3, 2),
    (4, 2, 5, 3, 1, 6, 3, 2),
]


def _close(a, b, rtol=1e-10):
    scale = max(1.0, max(np.abs(x).max() for x in b))
    return max(np.abs(x - y).max() for x, y in zip(a, b, strict=True)) <= rtol * scale


@pytest.mark.parametrize("dims", CASES, ids=lambda d: "dims=" + "-".join(map(str, d)))
def test_loss_gradient_hvp_match_naive(rng, dims):
    W = random_chain(rng, dims, 0.7)
    X, Y = random_data(rng, dims[0], dims[-1], 11)
    assert se.loss(W, X, Y) == pytest.approx(naive.loss(W, X, Y), rel=1e-12)
    assert _close(se.gradient(W, X, Y), naive.gradient(W, X, Y))
    H = se.hessian(W, X, Y)
    Hn = naive.hessian(W, X, Y)
    np.testing.assert_allclose(H, Hn, atol=1e-10 * max(1, np.abs(Hn).max()))
    V = random_chain(rng, dims)
    hv = np.concatenate([h.ravel() for h in se.hvp(W, X, Y, V)])
    np.testing.assert_allclose(hv, Hn @ naive.flat(V), atol=1e-10 * max(1, np.abs(Hn).max()))


@pytest.mark.parametrize("dims", CASES[::2], ids=lambda d: "dims=" + "-".join(map(str, d)))
def test_stats_form_agrees_with_data_form(rng, dims):
    W = random_chain(rng, dims, 0.7)
    X, Y = random_data(rng, dims[0], dims[-1], 13)
    S = se.Stats.from_data(X, Y)
    assert se.loss(W, stats=S) == pytest.approx(se.loss(W, X, Y), rel=1e-11)
    assert _close(se.gradient(W, stats=S), se.gradient(W, X, Y))
    V = random_chain(rng, dims)
    assert _close(se.hvp(W, direction=V, stats=S), se.hvp(W, X, Y, V))
    np.testing.assert_allclose(se.hessian(W, stats=S), se.hessian(W, X, Y), atol=1e-10)


@pytest.mark.parametrize("dims", [(3, 2), (4, 3, 2), (2, 5, 4, 3)])
def test_zero_weights(rng, dims):
    W = [np.zeros((dims[k + 1], dims[k])) for k in range(len(dims) - 1)]
    X, Y = random_data(rng, dims[0], dims[-1], 7)
    assert se.loss(W, X, Y) == pytest.approx(0.5 * np.sum(Y * Y))
    assert _close(se.gradient(W, X, Y), naive.gradient(W, X, Y))
    np.testing.assert_allclose(se.hessian(W, X, Y), naive.hessian(W, X, Y), atol=1e-12)


def test_gradient_vs_central_differences(rng):
    for dims in [(3, 4, 2), (2, 3, 3, 2), (4, 1, 2, 3, 2)]:
        W = random_chain(rng, dims, 0.8)
        X, Y = random_data(rng, dims[0], dims[-1], 9)
        g, fd = se.gradient(W, X, Y), naive.fd_gradient(W, X, Y)
        assert _close(g, fd, rtol=1e-6)


def test_hvp_vs_differences_of_gradient(rng):
    dims = (3, 4, 3, 2)
    W = random_chain(rng, dims, 0.8)
    X, Y = random_data(rng, dims[0], dims[-1], 9)
    V = random_chain(rng, dims)
    eps = 1e-6
    gp = se.gradient([w + eps * v for w, v in zip(W, V, strict=True)], X, Y)
    gm = se.gradient([w - eps * v for w, v in zip(W, V, strict=True)], X, Y)
    fd = [(a - b) / (2 * eps) for a, b in zip(gp, gm, strict=True)]
    assert _close(se.hvp(W, X, Y, V), fd, rtol=1e-6)


def test_hvp_symmetric_and_linear(rng):
    dims = (4, 3, 5, 2)
    W = random_chain(rng, dims)
    X, Y = random_data(rng, 4, 2, 10)
    n = sum(w.size for w in W)
    u, v = rng.standard_normal(n), rng.standard_normal(n)
    Hu = np.concatenate([h.ravel() for h in se.hvp(W, X, Y, u)])
    Hv = np.concatenate([h.ravel() for h in se.hvp(W, X, Y, v)])
    assert v @ Hu == pytest.approx(u @ Hv, rel=1e-12)
    Huv = np.concatenate([h.ravel() for h in se.hvp(W, X, Y, 2.5 * u - 0.5 * v)])
    np.testing.assert_allclose(Huv, 2.5 * Hu - 0.5 * Hv, atol=1e-11 * np.abs(Hu).max())
    H = se.hessian(W, X, Y)
    np.testing.assert_allclose(H, H.T, atol=1e-12 * np.abs(H).max())


def test_hessian_at_zero_theory(rng):
    """At W = 0: strict saddle (negative eigenvalue) for H = 1, exactly zero Hessian for H >= 2."""
    X, Y = random_data(rng, 3, 2, 8)
    W1 = [np.zeros((4, 3)), np.zeros((2, 4))]
    ev = np.linalg.eigvalsh(se.hessian(W1, X, Y))
    # for H = 1 the W = 0 Hessian is [[0, B], [B^T, 0]]-shaped: eigenvalues +-sigma(Y X^T)
    s = np.linalg.svd(Y @ X.T, compute_uv=False)
    assert ev[0] == pytest.approx(-s[0], rel=1e-12)
    assert ev[-1] == pytest.approx(s[0], rel=1e-12)
    for depth in (2, 3, 5):
        Wz = [np.zeros((4, 3))] + [np.zeros((4, 4)) for _ in range(depth - 1)] + [np.zeros((2, 4))]
        assert not np.any(se.hessian(Wz, X, Y))
        lo, hi = se.hessian_extremes(Wz, X, Y, method="lanczos")
        assert lo == 0.0 and hi == 0.0


@pytest.mark.parametrize("dims", [(5, 4, 3), (4, 6, 5, 3), (6, 8, 8, 8, 4)])
def test_lanczos_matches_dense(rng, dims):
    W = random_chain(rng, dims, 0.6)
    X, Y = random_data(rng, dims[0], dims[-1], 20)
    d = se.hessian_extremes_info(W, X, Y, method="dense")
    la = se.hessian_extremes_info(W, X, Y, method="lanczos", tol=1e-12)
    scale = max(abs(d.lam_min), abs(d.lam_max))
    assert la.lam_min == pytest.approx(d.lam_min, abs=1e-8 * scale)
    assert la.lam_max == pytest.approx(d.lam_max, abs=1e-8 * scale)
    assert la.err_min <= 1e-6 * scale and la.method == "lanczos"
    # Ritz values lie inside the spectrum
    assert la.lam_min >= d.lam_min - 1e-9 * scale and la.lam_max <= d.lam_max + 1e-9 * scale


def test_integer_and_float32_input_converted(rng):
    W = [np.ones((2, 3), dtype=np.int64), np.ones((1, 2), dtype=np.float32)]
    X = np.arange(6, dtype=np.int32).reshape(3, 2)
    Y = np.array([[1, 2]], dtype=np.int16)
    Wf = [w.astype(float) for w in W]
    assert se.loss(W, X, Y) == naive.loss(Wf, X.astype(float), Y.astype(float))


BAD = [
    (lambda W, X, Y: se.loss(W[:1] + [np.ones((2, 5))], X, Y), "weights[1]"),
    (lambda W, X, Y: se.loss(W, X[:2], Y), "X"),
    (lambda W, X, Y: se.loss(W, X, Y[:, :3]), "Y"),
    (lambda W, X, Y: se.loss([W[0] * np.nan, W[1]], X, Y), "weights[0]"),
    (lambda W, X, Y: se.loss(W, X * np.inf, Y), "X"),
    (lambda W, X, Y: se.loss([], X, Y), "weights"),
    (lambda W, X, Y: se.loss(W, np.empty((3, 0)), Y), "X"),
    (lambda W, X, Y: se.loss(W, X.astype(complex), Y), "X"),
    (lambda W, X, Y: se.loss(W, X.astype(str), Y), "X"),
    (lambda W, X, Y: se.loss([W[0], np.ones(2)], X, Y), "weights[1]"),
    (lambda W, X, Y: se.hvp(W, X, Y, [np.ones((4, 3))]), "direction"),
    (lambda W, X, Y: se.hvp(W, X, Y, np.ones(3)), "direction"),
    (lambda W, X, Y: se.hessian_extremes(W, X, Y, method="eig"), "method"),
    (lambda W, X, Y: se.loss(W, stats=(np.eye(2), Y @ X.T, 1.0)), "stats.Cxx"),
]


@pytest.mark.parametrize("call,name", BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_bad_input_names_argument(rng, call, name):
    W = random_chain(rng, (3, 4, 2))
    X, Y = random_data(rng, 3, 2, 5)
    with pytest.raises(ValueError, match=name.replace("[", r"\[").replace("]", r"\]")):
        call(W, X, Y)


def test_one_compiled_signature_whatever_the_input(rng):
    """Read-only, integer or Fortran-ordered input must not compile new kernel versions."""
    from sweepengine.kernels.objective import loss_grad_data

    W = random_chain(rng, (3, 4, 2))
    X, Y = random_data(rng, 3, 2, 5)
    se.gradient(W, X, Y)
    n_sigs = len(loss_grad_data.signatures)
    Xr, Yr = X.copy(), Y.copy()
    Xr.setflags(write=False)
    Yr.setflags(write=False)
    Wf = [np.asfortranarray(w) for w in W]
    for args in ((W, Xr, Yr), (Wf, np.asfortranarray(X), Y), (W, X.astype(np.float32), Y)):
        se.gradient(*args)
    assert len(loss_grad_data.signatures) == n_sigs
