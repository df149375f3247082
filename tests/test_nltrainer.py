"""The nonlinear fused trainer (kernels/nltrainer.py, nltraining.py).

Tiny shapes and one compiled driver signature (``lam_ref`` is given where the
linear reference is not under test, so most tests compile only the nonlinear driver).
Marked ``slow``: compiling the nonlinear driver cold takes about a minute on 2 cores,
and the trainer is not yet reachable from a sweep, so CI runs these once
(``pytest -m slow``) instead of in the default suite.
"""

from __future__ import annotations

import numpy as np
import pytest

from sweepengine import training
from sweepengine.nltraining import (
    best_loss_gaps,
    classify_nonlinear,
    train_batch_nonlinear,
    train_flat_nonlinear,
)
from sweepengine.stats import Stats
from sweepengine.weight_decay import zero_point_hessian

pytestmark = pytest.mark.slow

OPTIMIZERS = {
    "gd": {},
    "momentum": {"beta": 0.8},
    "nesterov": {"beta": 0.8},
    "sgd": {"batch_size": 4},
    "adam": {},
    "pgd": {"radius": 1e-2, "grad_tol": 10.0, "interval": 10},
}


def _data(seed=0, d=(3, 4, 2), m=10, scale=0.3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((d[0], m))
    Y = rng.standard_normal((d[-1], m))
    W = [scale * rng.standard_normal((d[k + 1], d[k])) for k in range(len(d) - 1)]
    return X, Y, W, rng


def _np_loss_grad(Ws, X, Y, act, wd, alpha=0.01):
    """Forward and backward written out in NumPy (independent of the kernels)."""
    s = {
        "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0) * 1.0),
        "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
        "linear": (lambda z: z, lambda z: np.ones_like(z)),
    }[act]
    A, Z = [X], []
    for k, W in enumerate(Ws):
        Z.append(W @ A[-1])
        A.append(Z[-1] if k == len(Ws) - 1 else s[0](Z[-1]))
    R = A[-1] - Y
    l = 0.5 * np.sum(R * R) + 0.5 * wd * sum(np.sum(W * W) for W in Ws)
    D = R
    grads = [None] * len(Ws)
    for k in range(len(Ws) - 1, -1, -1):
        grads[k] = D @ A[k].T + wd * Ws[k]
        if k:
            D = s[1](Z[k - 1]) * (Ws[k].T @ D)
    return l, grads


def test_linear_activation_matches_linear_trainer():
    """activation linear, weight decay 0, floor = L*, gap scale = L(0) - L*: the linear
    trainer's numbers (statistics form there, data form here: equal to rounding)."""
    X, Y, W, rng = _data(1, (3, 4, 2), 12, 0.05)
    W2 = [0.05 * rng.standard_normal(w.shape) for w in W]
    ref = training.reference(Stats.from_data(X, Y), [3, 4, 2])
    for opt, params in (("gd", {}), ("sgd", {"batch_size": 5})):
        lin = training.train_batch(X, Y, [W, W2], opt, 0.02, 400, seeds=[3, 4], **params)
        nl = train_batch_nonlinear(X, Y, [W, W2], opt, 0.02, 400, seeds=[3, 4],
                                   lstar=ref.global_minimum, gap_scale=ref.gap_scale,
                                   **params)  # fmt: skip
        for a, b in zip(lin, nl, strict=True):
            assert a.status == b.status and a.steps == b.steps
            assert b.lam_ref == a.lam_ref and b.time_unit == a.time_unit
            np.testing.assert_allclose(b.losses, a.losses, rtol=1e-10, atol=0)
            for wa, wb in zip(a.weights, b.weights, strict=True):
                np.testing.assert_allclose(wb, wa, rtol=1e-10, atol=1e-14)
            assert a.n_stalls == b.n_stalls
            assert [(s.start, s.end, s.probe_step) for s in a.stalls] == [
                (s.start, s.end, s.probe_step) for s in b.stalls
            ]


@pytest.mark.parametrize("act,wd", [("relu", 0.0), ("tanh", 0.05)])
def test_gd_matches_numpy_reference(act, wd):
    X, Y, W, _ = _data(2, (3, 5, 4, 2), 8, 0.5)
    lr, steps = 0.01, 6
    (r,) = train_batch_nonlinear(X, Y, [W], "gd", lr, steps, activation=act, weight_decay=wd,
                                 lam_ref=1.0, final_probe=False)  # fmt: skip
    Ws = [w.copy() for w in W]
    losses = []
    for _ in range(steps + 1):
        l, g = _np_loss_grad(Ws, X, Y, act, wd)
        losses.append(l)
        if len(losses) <= steps:
            Ws = [w - lr * gk for w, gk in zip(Ws, g, strict=True)]
    np.testing.assert_allclose(r.losses, losses, rtol=1e-12, atol=0)
    for a, b in zip(r.weights, Ws, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert np.all(np.diff(r.losses) < 0)


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_batched_equals_one_by_one(opt):
    X, Y, _, rng = _data(3, (3, 4, 2), 10)
    Ws = [[0.3 * rng.standard_normal(s) for s in ((4, 3), (2, 4))] for _ in range(3)]
    kw = dict(activation="tanh", weight_decay=0.01, lam_ref=1.0, stop_at_target=False,
              **OPTIMIZERS[opt])  # fmt: skip
    lr = 1e-3 if opt == "adam" else 0.02
    batch = train_flat_nonlinear(X, Y, Ws, opt, lr, 120, seeds=[5, 6, 7], threads=2, **kw)
    for b, w in enumerate(Ws):
        one = train_flat_nonlinear(X, Y, [w], opt, lr, 120, seeds=[5 + b], threads=1, **kw)
        assert np.array_equal(one.theta[0], batch.theta[b])
        assert np.array_equal(one.losses[0], batch.losses[b], equal_nan=True)
        assert one.runs[0].tobytes() == batch.runs[b].tobytes()
        assert one.stall_rows[0].tobytes() == batch.stall_rows[b].tobytes()
    if opt == "pgd":
        assert batch.runs["kicks"].min() > 0


def test_weight_decay_zero_is_a_minimum_for_three_layers():
    """K = 3, any lambda > 0: W = 0 is a strict local minimum (Hessian lambda I,
    weight_decay.zero_point_hessian); runs from small init go to it and stall there,
    classed minimum, then minimum_above_best once a seed from a large init does better."""
    X, Y, _, rng = _data(4, (3, 2), 10)
    dims, wd = (3, 4, 4, 2), 1.0
    assert zero_point_hessian(X, Y, dims[1:-1], wd).classification == "strict_minimum"
    Ws = [[sc * rng.standard_normal((dims[k + 1], dims[k])) for k in range(3)]
          for sc in (0.01, 0.01, 1.0)]  # fmt: skip
    rs = train_batch_nonlinear(X, Y, Ws, "gd", 0.01, 3000, activation="tanh", weight_decay=wd,
                               seeds=[0, 1, 2], lam_ref=1.0)  # fmt: skip
    l_zero = 0.5 * np.sum(Y * Y)
    for r in rs[:2]:
        assert max(np.abs(w).max() for w in r.weights) < 1e-12
        assert r.final_loss == pytest.approx(l_zero, rel=1e-12)
        (s,) = r.stalls
        assert s.polish_converged and s.stall_class == "minimum"
        assert s.lam_min == pytest.approx(wd, rel=1e-8)  # Hessian wd I at 0
        assert s.modes == () and s.kawaguchi_rank == -1 and np.isnan(s.nearest_value)
    assert rs[2].final_loss < l_zero - 0.1
    best = best_loss_gaps({"cfg": rs})["cfg"]
    assert best.best <= rs[2].final_loss
    np.testing.assert_allclose(best.gaps, [r.final_loss - best.best for r in rs])
    classes = [[s.stall_class for s in r.stalls] for r in best.results]
    assert classes[0] == classes[1] == ["minimum_above_best"]
    assert all(c != "minimum_above_best" for c in classes[2])


def test_weight_decay_two_layers_threshold():
    """K = 2: W = 0 is a minimum iff lambda > sigma_max(Cyx); runs from small init go to
    0 above the threshold and leave it below."""
    X, Y, _, rng = _data(5, (3, 2), 10)
    sig = np.linalg.svd(Y @ X.T, compute_uv=False)[0]
    W = [1e-3 * rng.standard_normal(s) for s in ((4, 3), (2, 4))]
    kw = dict(activation="linear", lam_ref=1.0, stall={"polish": False}, final_probe=False)
    (above,) = train_batch_nonlinear(X, Y, [W], "gd", 0.01, 2000, weight_decay=1.5 * sig, **kw)
    (below,) = train_batch_nonlinear(X, Y, [W], "gd", 0.01, 2000, weight_decay=0.5 * sig, **kw)
    assert max(np.abs(w).max() for w in above.weights) < 1e-8
    assert max(np.abs(w).max() for w in below.weights) > 0.1


def test_strict_saddle_stall_two_layers():
    """K = 2 on data with singular values 1 and 0.03 (X X^T = m I): after the first mode the
    run sits at the saddle 'mode 1 learned' (loss m 0.03^2 / 2); polished there, the
    Hessian's lambda_min is -sigma_2(Cyx) = -0.03 m: strict_saddle."""
    rng = np.random.default_rng(0)
    m = 12
    X = np.linalg.qr(rng.standard_normal((m, 3)))[0].T * np.sqrt(m)
    Y = np.array([[1.0, 0, 0], [0, 0.03, 0]]) @ X
    W = [1e-4 * rng.standard_normal(s) for s in ((4, 3), (2, 4))]
    (r,) = train_batch_nonlinear(X, Y, [W], "gd", 0.005, 8000, seeds=[1], lam_ref=1.0,
                                 stop_at_target=False)  # fmt: skip
    (s,) = r.stalls
    assert s.stall_class == "strict_saddle" and s.local_class == "strict_saddle"
    assert s.polish_converged and s.polish_grad_rel <= 1e-10
    assert s.critical_value == s.polish_loss == pytest.approx(0.5 * m * 0.03**2, rel=1e-9)
    assert s.lam_min == pytest.approx(-0.03 * m, rel=1e-5)


def test_classify_nonlinear():
    got = classify_nonlinear([True, True, False], [-1e-3, -1e-9, -1.0], psd_tol=1e-6)
    assert got.tolist() == ["strict_saddle", "minimum", "unresolved"]
    got = classify_nonlinear([True] * 4 + [False], [-1e-3, -1e-9, -1e-9, 0.0, 0.0],
                             [np.nan, 1e-7, 0.0, np.nan, 1e-7], psd_tol=1e-6)  # fmt: skip
    assert got.tolist() == ["strict_saddle", "bad_saddle", "minimum", "minimum", "unresolved"]


def test_classify_nonlinear_rough_strict_saddles():
    """Not converged to polish_tol: strict_saddle only within rough_tol and with
    lambda_min below -neg_tol x lam_ref; a converged point keeps the psd_tol rule."""
    conv = [False, False, False, False, True]
    rel = [-2e-3, -5e-4, -2e-3, -2e-3, -5e-4]
    grad = [3e-7, 3e-7, 3e-3, np.nan, 1e-11]
    got = classify_nonlinear(conv, rel, [np.nan] * 5, psd_tol=1e-6, grad_rel=grad,
                             rough_tol=1e-4, neg_tol=1e-3)  # fmt: skip
    assert got.tolist() == ["strict_saddle", "unresolved", "unresolved", "unresolved",
                            "strict_saddle"]  # fmt: skip
    assert classify_nonlinear(conv, rel, psd_tol=1e-6).tolist()[:4] == ["unresolved"] * 4


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_shadows_origin(act):
    """The origin test: near W = 0 (loss at the level of L(0) along the ray) yes; a
    point that learned something, two layers (K = 2), a frozen point (gradient 0: a
    dead relu net) no."""
    from sweepengine.kernels import activation as ak
    from sweepengine.kernels.nltrainer import shadows_origin

    code = {"relu": ak.RELU, "tanh": ak.TANH}[act]
    X, Y, _, rng = _data(d=(3, 4, 4, 2))
    gap = 0.5 * float(np.sum(Y * Y))

    def check(dims, theta, X=X):
        dims = np.asarray(dims, dtype=np.int64)
        ws = np.empty(ak.ws_size(dims, X.shape[1]))
        g, buf = np.empty(theta.size), np.empty(2 * theta.size)
        ak.loss_grad(theta, dims, X, Y, code, 0.01, 0.0, ws, g)  # as examine_stall leaves it
        return shadows_origin(theta, dims, X, Y, code, 0.01, 0.0, ws, g, buf, gap)

    n3 = 3 * 4 + 4 * 4 + 4 * 2
    small = 1e-3 * rng.standard_normal(n3)
    assert check((3, 4, 4, 2), small)
    assert not check((3, 4, 4, 2), small, X=np.zeros_like(X))  # gradient 0
    assert not check((3, 4, 4, 2), rng.standard_normal(n3))  # loss far from L(0)
    assert not check((3, 4, 2), 1e-3 * rng.standard_normal(3 * 4 + 4 * 2))
    if act == "tanh":  # W_1 of order one, the rest near 0: not homogeneous there
        w1 = 3.0 * rng.standard_normal(12)
        assert not check((3, 4, 4, 2), np.concatenate([w1, small[12:]]))


def test_stalls_at_constructed_critical_points_get_the_theorys_class():
    """GD started exactly at a critical point stays there and the run is one stall,
    polished at once: its class is the theory's (tests/test_nlsaddle.py). Deep linear
    (K = 3): W = 0 and the balanced top-mode point are non-strict saddles (Hessian PSD,
    the loss falls at third order), the global minimizer a degenerate minimum. relu with
    one hidden layer: W = 0 is a non-strict saddle of the kink convention, and a unit dead
    on every sample next to a least-squares fit a degenerate minimum."""
    from sweepengine import theory
    from tests.test_nlsaddle import _dead_unit_minimum

    X, Y, _, _ = _data(8, (3, 2), 12)
    widths = [4, 4]
    W0 = [[np.zeros((4, 3)), np.zeros((4, 4)), np.zeros((2, 4))],
          theory.critical_point(X, Y, widths, [0], rng=1),
          theory.global_minimizer(X, Y, widths, scale=1.3, rng=2)]  # fmt: skip
    lam_ref = training.reference(Stats.from_data(X, Y), [3, *widths, 2]).lam_ref
    out = train_flat_nonlinear(X, Y, W0, "gd", 0.5 / lam_ref, 200, seeds=[0, 1, 2])
    Wd, Xd, Yd = _dead_unit_minimum(1e-2)
    out_relu = train_flat_nonlinear(Xd, Yd, [[np.zeros((4, 3)), np.zeros((2, 4))], Wd], "gd",
                                    0.02, 400, activation="relu", seeds=[3, 4])  # fmt: skip
    for o, want in ((out, ["bad_saddle", "bad_saddle", "minimum"]),
                    (out_relu, ["bad_saddle", "minimum"])):  # fmt: skip
        for r, cls in zip(o.results(), want, strict=True):
            (s,) = r.stalls
            assert s.end == r.steps and s.polish_converged and s.stall_class == cls, s
            assert abs(s.rel_lam_min) < 1e-6 and s.nullity > 0
            assert (s.descent_drop > 0) == (cls == "bad_saddle")
            assert (s.descent_radius > 0) if cls == "bad_saddle" else np.isnan(s.descent_radius)
        assert o.stalls.stall_class.tolist() == want
        assert (o.stall_rows["descent_evals"][:, 0] > 0).all()
    best = best_loss_gaps({"cfg": out.results()})["cfg"]  # bad saddles are never relabelled
    got = [s.stall_class for r in best.results for s in r.stalls]
    assert got == ["bad_saddle", "bad_saddle", "minimum"]


def test_best_loss_gaps_plain_losses():
    out = best_loss_gaps({"a": [3.0, 1.0, 2.0], "b": [np.nan, 5.0]})
    assert out["a"].best == 1.0 and out["a"].gaps.tolist() == [2.0, 0.0, 1.0]
    assert out["b"].best == 5.0 and out["a"].results is None
    with pytest.raises(ValueError, match="no runs"):
        best_loss_gaps({"c": []})


def test_divergence_is_recorded():
    X, Y, W, _ = _data(6, (3, 4, 2), 10, 1.0)
    (r,) = train_batch_nonlinear(X, Y, [W], "gd", 50.0, 200, activation="tanh", lam_ref=1.0)
    assert r.status == "diverged" and r.steps < 200
    assert np.isnan(r.lam_min) and np.isnan(r.losses[-1])


def test_bad_inputs():
    X, Y, W, _ = _data(7)
    kw = dict(lam_ref=1.0)
    bad = [
        (dict(activation="swish"), "activation must be one of"),
        (dict(weight_decay=-1.0), "weight_decay must be >= 0"),
        (dict(activation="leaky_relu", alpha=1.5), "alpha"),
        (dict(gap_scale="huge"), "gap_scale must be"),
        (dict(gap_scale=-1.0), "gap_scale must be positive"),
        (dict(lstar=1e9), "floor must lie below"),
        (dict(lstar=float("nan")), "lstar"),
        (dict(lam_ref=-1.0), "lam_ref"),
        (dict(seeds=[1, 2]), "seeds"),
        (dict(stall={"window": -1}), "stall.window"),
    ]
    for extra, msg in bad:
        with pytest.raises(ValueError, match=msg):
            train_batch_nonlinear(X, Y, [W], "gd", 0.1, 10, **{**kw, **extra})
    with pytest.raises(ValueError, match="unknown optimizer"):
        train_batch_nonlinear(X, Y, [W], "lbfgs", 0.1, 10, **kw)
    with pytest.raises(ValueError, match="lr"):
        train_batch_nonlinear(X, Y, [W], "gd", None, 10, **kw)
    with pytest.raises(ValueError, match="needs dims"):
        train_batch_nonlinear(X, Y, np.zeros((1, 20)), "gd", 0.1, 10, **kw)
    with pytest.raises(ValueError, match="shape"):
        train_batch_nonlinear(X, Y, np.zeros((1, 7)), "gd", 0.1, 10, dims=[3, 4, 2], **kw)
    with pytest.raises(ValueError, match="layer sizes"):
        train_batch_nonlinear(X, Y, [W, [W[0][:2], W[1][:, :2]]], "gd", 0.1, 10, **kw)
    with pytest.raises(ValueError):
        train_batch_nonlinear(X[:2], Y, [W], "gd", 0.1, 10, **kw)
    with pytest.raises(ValueError, match="batch_size"):
        train_batch_nonlinear(X, Y, [W], "sgd", 0.1, 10, batch_size=50, **kw)
