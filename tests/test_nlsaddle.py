"""Non-strict saddles of nonlinear nets: the higher-order test (kernels/descent.py) against
the analytic ground truth of the deep linear theory (``activation="linear"``), weight
decay at W = 0 (``weight_decay.zero_point_hessian``) and constructed relu points."""

import numpy as np
import pytest

import sweepengine as se
from sweepengine import theory
from sweepengine.kernels import descent

SEEDS = range(4)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((3, 12)), rng.standard_normal((2, 12))


def _zeros(dims):
    return [np.zeros((dims[k + 1], dims[k])) for k in range(len(dims) - 1)]


def _cls(W, X, Y, act="linear", **kw):
    return se.nonlinear_classify_critical(W, X, Y, act, **kw)


@pytest.mark.parametrize("widths", [[4], [4, 4], [4, 4, 4], [3, 3, 3, 3]], ids=len)
def test_deep_linear_critical_points_get_the_theorys_class(data, widths):
    """Kawaguchi 2016 (docs/maths.md, "Which saddles are bad"): with one hidden layer every
    saddle is strict; with H >= 2 W = 0 and the balanced point of the top |S| < p modes
    are saddles whose Hessian has no negative eigenvalue (bad, non-strict); skipping a
    stronger mode gives a strict saddle; the global minimizer is a minimum, although its
    Hessian is singular (the GL gauge, also off balance and rotated). Every seed."""
    X, Y = data
    deep = len(widths) >= 2
    dims = [3, *widths, 2]
    for s in SEEDS:
        pts = {
            "zero": (_zeros(dims), "bad_saddle" if deep else "strict_saddle"),
            "top": (theory.critical_point(X, Y, widths, [0], rng=s),
                    "bad_saddle" if deep else "strict_saddle"),
            "skip": (theory.critical_point(X, Y, widths, [1], rng=s), "strict_saddle"),
            "global": (theory.global_minimizer(X, Y, widths, scale=1 + 0.3 * s, rng=s),
                       "minimum"),
        }  # fmt: skip
        for name, (W, want) in pts.items():
            r = _cls(W, X, Y, seed=s)
            assert r.critical_class == want, (name, s, r)
            assert r.grad_rel < 1e-12
            if want == "strict_saddle":
                assert r.lam_min < -1e-3 * r.lam_ref and r.nullity == -1
            else:  # PSD and singular: the second-order test decides nothing
                assert abs(r.lam_min) < 1e-10 * r.lam_ref and r.nullity > 0
            if want == "bad_saddle":
                assert r.descent_drop > descent.DROP_TOL and 0 < r.descent_radius <= 1
            if want == "minimum":
                assert r.descent_drop == 0.0 and np.isnan(r.descent_radius)


def test_zero_point_is_a_bad_saddle_at_every_depth_up_to_seven(data):
    """W = 0 of a deep linear net (Hessian 0 for K >= 3): the loss falls at order K."""
    X, Y = data
    for K in range(3, 8):
        r = _cls(_zeros([3, *[3] * (K - 1), 2]), X, Y)
        assert r.critical_class == "bad_saddle" and r.lam_max == 0.0, (K, r)


def test_weight_decay_makes_zero_a_minimum(data):
    """docs/maths.md, "Weight decay": K >= 3, lam > 0: Hessian lam I, a strict minimum (no
    null direction, nothing probed). K = 2: a strict saddle below lam = sigma_max(Cyx), a
    strict minimum above; at lam = sigma_max the Hessian is PSD and singular and the
    fourth-order term decides: a (degenerate) minimum."""
    X, Y = data
    for widths in ([4, 4], [4, 4, 4]):
        assert se.zero_point_hessian(X, Y, widths, 0.01).classification == "strict_minimum"
        r = _cls(_zeros([3, *widths, 2]), X, Y, weight_decay=0.01)
        assert r.critical_class == "minimum" and r.nullity == 0 and r.evals == 0
        assert r.lam_min == pytest.approx(0.01, rel=1e-12)
    sig = np.linalg.svd(Y @ X.T, compute_uv=False)[0]
    Z = _zeros([3, 4, 2])
    cases = ((0.99 * sig, "strict_saddle", "strict_saddle"), (sig, "minimum", None),
             (1.01 * sig, "minimum", "strict_minimum"))  # fmt: skip
    for lam, want, zp in cases:
        r = _cls(Z, X, Y, weight_decay=lam)
        assert r.critical_class == want, (lam / sig, r)
        if zp is not None:
            assert se.zero_point_hessian(X, Y, [4], lam).classification == zp
    r = _cls(Z, X, Y, weight_decay=sig)
    assert r.nullity > 0 and r.evals > 0  # degenerate: probed, no descent


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "tanh"])
def test_zero_point_with_activations(data, act):
    """W = 0 with two hidden layers: H = 0 for every activation (s(0) = 0) and the loss
    falls at third order (tanh and leaky_relu are linear to first order at 0, relu's
    product of positive parts is fitted by the sign of the output layer): bad saddle.
    One hidden layer: relu's Hessian at 0 vanishes by the kink convention (s'(0) = 0),
    yet along rays the loss falls at second order (t^2 <V2 relu(V1 X), Y>): a
    non-strict saddle of the kink convention; tanh and leaky_relu (alpha > 0) have the
    linear net's +-alpha sigma_i: strict."""
    X, Y = data
    r = _cls(_zeros([3, 4, 4, 2]), X, Y, act, alpha=0.1)
    assert r.critical_class == "bad_saddle" and r.lam_min == r.lam_max == 0.0
    r = _cls(_zeros([3, 4, 2]), X, Y, act, alpha=0.1)
    assert r.critical_class == ("bad_saddle" if act == "relu" else "strict_saddle")


def _dead_unit_minimum(margin, rng=None):
    """A relu net (3 -> 4 -> 2, a constant input feature) at a degenerate local minimum:
    three units live on every sample (their cell is a linear net, placed at the least-
    squares fit, so the loss there is the linear problem's minimum) and one unit dead on
    every sample with pre-activation -margin, whose outgoing weights are not zero."""
    rng = np.random.default_rng(1) if rng is None else rng
    m = 20
    X = np.vstack([np.ones((1, m)), rng.standard_normal((2, m))])
    Y = rng.standard_normal((2, m))
    P = Y @ np.linalg.pinv(X)
    A = np.eye(3)
    A[:, 0] += 10.0  # A X > 0: live
    assert (A @ X > 0).all()
    W1 = np.vstack([A, [[-margin, 0.0, 0.0]]])
    W2 = np.hstack([P @ np.linalg.inv(A), [[0.7], [-0.4]]])
    return [W1, W2], X, Y


@pytest.mark.parametrize("margin", [1.0, 1e-2, 1e-4])
def test_relu_dead_unit_is_a_degenerate_minimum(margin):
    """The dead unit's weights are null directions of H (14 in all with the live units'
    GL(3) gauge). Near theta* the loss is the linear fit's, so this is a local minimum,
    although reviving the unit (a step of ~margin along its incoming weights) lowers
    the loss at small margins: the probes stay in the activation cells that touch
    theta*."""
    W, X, Y = _dead_unit_minimum(margin)
    for s in SEEDS:
        r = _cls(W, X, Y, "relu", seed=s)
        assert r.critical_class == "minimum" and r.nullity == 14, (s, r)
    if margin == 1.0:
        return
    l0 = se.nonlinear_loss(W, X, Y, "relu")
    revived = []
    for b in np.linspace(-1, 1, 21):
        for c in np.linspace(-1, 1, 21):
            W1 = W[0].copy()
            W1[3] = [margin, 3 * margin * b, 3 * margin * c]
            revived.append(se.nonlinear_loss([W1, W[1]], X, Y, "relu"))
    assert min(revived) < l0 - 1e-6 * margin


def test_not_critical_deterministic_and_bad_input(data):
    X, Y = data
    rng = np.random.default_rng(2)
    W = [rng.standard_normal((4, 3)), rng.standard_normal((4, 4)), rng.standard_normal((2, 4))]
    assert _cls(W, X, Y, "tanh").critical_class == "not_critical"
    Z = theory.critical_point(X, Y, [4, 4], [0], rng=1)
    a, b = _cls(Z, X, Y, seed=7), _cls(Z, X, Y, seed=7)
    assert a == b and a.evals > 0
    for kw, msg in ((dict(psd_tol=0.0), "psd_tol"), (dict(grad_tol=2.0), "grad_tol"),
                    (dict(seed=-1), "seed"), (dict(lam_ref=-1.0), "lam_ref"),
                    (dict(gap_scale=float("inf")), "gap_scale")):  # fmt: skip
        with pytest.raises(ValueError, match=msg):
            _cls(Z, X, Y, **kw)
    with pytest.raises(ValueError, match="activation"):
        _cls(Z, X, Y, "swish")
