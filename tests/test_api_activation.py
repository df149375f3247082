"""``activation=``, ``alpha=`` and ``weight_decay=`` on the public landscape functions and
trainers (issue 14): the defaults run the deep linear code unchanged, weight decay on the
linear net stays in the statistics form, anything else is the nonlinear module's."""

import numpy as np
import pytest

import sweepengine as se
from sweepengine import landscape
from sweepengine.kernels.hvp import hessian_prepared, hvp_prepared
from sweepengine.kernels.objective import loss_data, loss_stats
from sweepengine.kernels.spectrum import lanczos_extremes
from tests import naive
from tests.conftest import random_chain, random_data

ACTS = ["linear", "relu", "leaky_relu", "tanh"]
ALPHA, WD = 0.1, 0.3
DIMS = (3, 4, 4, 2)


def _flat(ws):
    return np.concatenate([np.ravel(w) for w in ws])


def _problem(rng, dims=DIMS, m=7):
    W = random_chain(rng, dims, 0.8)
    X, Y = random_data(rng, dims[0], dims[-1], m)
    return W, X, Y, [rng.standard_normal(w.shape) for w in W]


def _previous(W, X=None, Y=None, V=None, stats=None, method="auto"):
    """The functions as they were before the options: the same kernels on the same
    prepared problem (``landscape._problem`` / ``_prepare`` are unchanged)."""
    p = landscape._problem(W, X, Y, stats, need_cxx=False)  # the form may differ with Cxx
    ws = np.zeros(p.plan.ws_size)
    if p.X is None:
        l = float(loss_stats(p.theta, p.dims, p.Cxx, p.Cyx, p.yy, ws))
    else:
        l = float(loss_data(p.theta, p.dims, p.X, p.Y, ws, np.empty((p.dims[-1], p.X.shape[1]))))
    l2, g, _ = landscape._prepare(p)
    p = landscape._problem(W, X, Y, stats, need_cxx=True)
    _, _, ws = landscape._prepare(p)
    n = p.theta.size
    hv = np.empty(n)
    hvp_prepared(p.theta, p.dims, p.Cxx, ws, _flat(V), hv)
    H = np.empty((n, n))
    hessian_prepared(p.theta, p.dims, p.Cxx, ws, H)
    if method == "lanczos":
        out = np.zeros(5)
        lanczos_extremes(p.theta, p.dims, p.Cxx, ws, 300, 1e-10, 0, out)
        ext = (out[0], out[1])
    else:
        ev = np.linalg.eigvalsh(0.5 * (H + H.T))
        ext = (ev[0], ev[-1])
    return l, float(l2), g, hv, H, ext


# given X and Y, the cost rule (landscape._use_stats) picks the data form for the first
# and the statistics form for the second
@pytest.mark.parametrize("dims,m", [(DIMS, 7), ((2, 3, 3, 8), 4000)], ids=["data", "stats"])
@pytest.mark.parametrize("form", ["X,Y", "stats="])
def test_defaults_are_the_previous_linear_code_bit_for_bit(rng, form, dims, m):
    W, X, Y, V = _problem(rng, dims, m)
    assert landscape._use_stats(np.array(dims), m, False) == (m == 4000)
    kw = dict(X=X, Y=Y) if form == "X,Y" else dict(stats=se.Stats.from_data(X, Y))
    explicit = dict(activation="linear", alpha=0.01, weight_decay=0.0)
    for opts in ({}, explicit):
        l, l2, g, hv, H, ext = _previous(W, V=V, **kw)
        assert se.loss(W, **kw, **opts) == l
        lg, gg = se.loss_and_gradient(W, **kw, **opts)
        assert lg == l2 and np.array_equal(_flat(gg), g)
        assert np.array_equal(_flat(se.gradient(W, **kw, **opts)), g)
        assert np.array_equal(_flat(se.hvp(W, direction=V, **kw, **opts)), hv)
        assert np.array_equal(se.hessian(W, **kw, **opts), H)
        assert se.hessian_extremes(W, **kw, **opts) == ext
        lz = _previous(W, V=V, method="lanczos", **kw)[5]
        assert se.hessian_extremes(W, **kw, method="lanczos", **opts) == lz


def _close(a, b, rel=1e-12):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    np.testing.assert_allclose(a, b, rtol=0, atol=rel * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("wd", [0.0, WD])
@pytest.mark.parametrize("act", ACTS)
def test_every_function_equals_the_nonlinear_module(rng, act, wd):
    W, X, Y, V = _problem(rng)
    opts = dict(activation=act, alpha=ALPHA, weight_decay=wd)
    args = (act, ALPHA, wd)
    l = se.nonlinear_loss(W, X, Y, *args)
    lg, g = se.nonlinear_loss_and_gradient(W, X, Y, *args)
    hv = se.nonlinear_hvp(W, X, Y, V, *args)
    H = se.nonlinear_hessian(W, X, Y, *args)
    ext = se.nonlinear_hessian_extremes(W, X, Y, *args)
    got_l = se.loss(W, X, Y, **opts)
    got_lg, got_g = se.loss_and_gradient(W, X, Y, **opts)
    got_hv = se.hvp(W, X, Y, V, **opts)
    got_H = se.hessian(W, X, Y, **opts)
    got_ext = se.hessian_extremes(W, X, Y, **opts)
    info = se.hessian_extremes_info(W, X, Y, **opts)
    assert (info.lam_min, info.lam_max) == got_ext and info.method == "dense"
    if act != "linear":  # the nonlinear functions themselves
        assert got_l == l and got_lg == lg and got_ext == ext
        for a, b in ((got_g, g), (se.gradient(W, X, Y, **opts), g), (got_hv, hv)):
            assert np.array_equal(_flat(a), _flat(b))
        assert np.array_equal(got_H, H)
        return
    # the linear net's statistics form (weight decay added in the wrapper) against the
    # nonlinear module's data form: equal to rounding, with X, Y and with stats
    st = se.Stats.from_data(X, Y)
    for kw in (dict(X=X, Y=Y), dict(stats=st)):
        o = dict(alpha=ALPHA, weight_decay=wd)
        assert se.loss(W, **kw, **o) == pytest.approx(l, rel=1e-12)
        got_lg, got_g = se.loss_and_gradient(W, **kw, **o)
        assert got_lg == pytest.approx(lg, rel=1e-12)
        _close(_flat(got_g), _flat(g))
        _close(_flat(se.gradient(W, **kw, **o)), _flat(g))
        _close(_flat(se.hvp(W, direction=V, **kw, **o)), _flat(hv))
        _close(se.hessian(W, **kw, **o), H)
        _close(se.hessian_extremes(W, **kw, **o), ext)
        _close(se.hessian_extremes(W, **kw, method="lanczos", **o), ext, 1e-9)


def test_linear_weight_decay_stays_in_the_statistics_form(rng):
    """The shift by lam is exact: L + lam/2 |theta|^2, grad + lam theta, H + lam I."""
    W, X, Y, V = _problem(rng)
    st = se.Stats.from_data(X, Y)
    l0, g0 = se.loss_and_gradient(W, stats=st)
    l, g = se.loss_and_gradient(W, stats=st, weight_decay=WD)
    assert l == l0 + 0.5 * WD * float(np.dot(_flat(W), _flat(W)))
    assert np.array_equal(_flat(g), _flat(g0) + WD * _flat(W))
    H0, H = se.hessian(W, stats=st), se.hessian(W, stats=st, weight_decay=WD)
    assert np.array_equal(H, H0 + WD * np.eye(H.shape[0]))
    e0 = se.hessian_extremes_info(W, stats=st, method="lanczos")
    e = se.hessian_extremes_info(W, stats=st, method="lanczos", weight_decay=WD)
    assert (e.lam_min, e.lam_max) == (e0.lam_min + WD, e0.lam_max + WD)
    assert (e.err_min, e.err_max, e.iterations) == (e0.err_min, e0.err_max, e0.iterations)
    # and finite differences of the decayed loss
    fd = naive.net_fd_gradient(W, X, Y, "linear", wd=WD)
    np.testing.assert_allclose(_flat(g), fd, atol=1e-6 * np.abs(fd).max())


def _away_from_kinks(rng, dims, act, m=6, margin=1e-3):
    for _ in range(100):
        W = random_chain(rng, dims, 0.8)
        X, Y = random_data(rng, dims[0], dims[-1], m)
        Zs, _ = naive.net_forward(W, X, act, ALPHA)
        if all(np.abs(Z).min() >= margin for Z in Zs[:-1]):
            return W, X, Y
    raise AssertionError("no draw away from the kinks")


@pytest.mark.parametrize("act", ["leaky_relu", "tanh"])
def test_gradient_and_hvp_vs_central_differences(rng, act):
    W, X, Y = _away_from_kinks(rng, (3, 4, 2), act)
    opts = dict(activation=act, alpha=ALPHA, weight_decay=WD)
    g = _flat(se.gradient(W, X, Y, **opts))
    fd = naive.net_fd_gradient(W, X, Y, act, ALPHA, WD)
    np.testing.assert_allclose(g, fd, atol=1e-6 * max(1, np.abs(g).max()))
    v = rng.standard_normal(g.size)
    hv = _flat(se.hvp(W, X, Y, v, **opts))
    fdh = naive.net_fd_hvp(W, X, Y, v, act, ALPHA, WD)
    np.testing.assert_allclose(hv, fdh, atol=1e-6 * max(1, np.abs(hv).max()))


def test_lanczos_with_an_activation(rng):
    """method="lanczos" (and "auto" past DENSE_MAX) use the exact nonlinear HVPs."""
    W, X, Y, _ = _problem(rng)
    opts = dict(activation="tanh", weight_decay=WD)
    dense = se.hessian_extremes_info(W, X, Y, method="dense", **opts)
    lz = se.hessian_extremes_info(W, X, Y, method="lanczos", tol=1e-12, **opts)
    assert lz.method == "lanczos" and dense.method == "dense"
    assert lz.lam_min == pytest.approx(dense.lam_min, abs=1e-8 * abs(dense.lam_max))
    assert lz.lam_max == pytest.approx(dense.lam_max, rel=1e-10)
    big = random_chain(rng, (3, 24, 24, 2), 0.3)  # 696 parameters > DENSE_MAX
    assert se.hessian_extremes_info(big, X, Y, maxiter=10, **opts).method == "lanczos"


BAD = [
    (dict(activation="sigmoid"), r"activation must be one of \('linear', 'relu', 'leaky_relu'"),
    (dict(activation=None), "activation must be one of"),
    (dict(weight_decay=-1.0), "weight_decay must be a finite number >= 0"),
    (dict(activation="tanh", weight_decay=float("inf")), "weight_decay"),
    (dict(weight_decay=float("nan")), "weight_decay"),
    (dict(activation="leaky_relu", alpha=1.0), r"alpha .* \[0, 1\)"),
    (dict(activation="leaky_relu", alpha=-0.1), "alpha"),
    (dict(alpha="steep"), "alpha and weight_decay must be numbers"),
]


@pytest.mark.parametrize("kw,msg", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_options(rng, kw, msg):
    W, X, Y, V = _problem(rng)
    calls = [
        lambda: se.loss(W, X, Y, **kw),
        lambda: se.loss_and_gradient(W, X, Y, **kw),
        lambda: se.gradient(W, X, Y, **kw),
        lambda: se.hvp(W, X, Y, V, **kw),
        lambda: se.hessian(W, X, Y, **kw),
        lambda: se.hessian_extremes(W, X, Y, **kw),
        lambda: se.hessian_extremes_info(W, X, Y, **kw),
        # checked before anything is compiled or trained
        lambda: se.train(X, Y, W, "gd", 0.01, 10, **kw),
        lambda: se.train_batch(X, Y, [W], "gd", 0.01, 10, **kw),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=msg):
            call()


def test_stats_with_an_activation_is_refused(rng):
    W, X, Y, V = _problem(rng)
    st = se.Stats.from_data(X, Y)
    for f in (se.loss, se.gradient, se.hessian, se.hessian_extremes):
        with pytest.raises(ValueError, match="activation='relu' has none: pass the data X and Y"):
            f(W, stats=st, activation="relu")
    with pytest.raises(ValueError, match="pass the data X and Y"):
        se.hvp(W, direction=V, stats=st, activation="tanh", weight_decay=0.1)
    with pytest.raises(ValueError, match="direction is required"):
        se.hvp(W, X, Y, activation="tanh")


def test_trainer_options_are_checked_before_anything_runs(rng):
    W, X, Y, _ = _problem(rng)
    ref = object()  # never looked at: the option is refused first
    with pytest.raises(ValueError, match=r"\['ref'\] are not supported with activation='tanh'"):
        se.train(X, Y, W, "gd", 0.01, 10, activation="tanh", ref=ref)
    with pytest.raises(ValueError, match=r"\['dims', 'ref'\].*lam_ref="):
        se.train_batch(X, Y, [W], "gd", 0.01, 10, weight_decay=0.1, ref=ref, dims=DIMS)
    with pytest.raises(ValueError, match=r"\['gap_scale', 'lstar'\] belong to the nonlinear"):
        se.train(X, Y, W, "gd", 0.01, 10, lstar=0.0, gap_scale="initial")
    with pytest.raises(ValueError, match="list of weight lists"):
        se.train_batch(X, Y, np.zeros((1, 4)), activation="relu")


def test_train_defaults_are_the_linear_trainer(rng):
    from sweepengine.training import TrainResult, train_flat

    W, X, Y, _ = _problem(rng, (3, 4, 2), 10)
    W = [0.3 * w for w in W]
    a = se.train(X, Y, W, "gd", 0.02, 200, seed=3)
    b = se.train(X, Y, W, "gd", 0.02, 200, seed=3, activation="linear", alpha=0.5,
                 weight_decay=0.0)  # fmt: skip
    c = train_flat(X, Y, _flat(W)[None], [3, 4, 2], "gd", 0.02, 200, seeds=[3]).results()[0]
    assert isinstance(a, TrainResult)
    for r in (b, c):
        assert np.array_equal(a.losses, r.losses, equal_nan=True)
        assert all(np.array_equal(x, y) for x, y in zip(a.weights, r.weights, strict=True))
        assert (a.status, a.steps, a.final_loss) == (r.status, r.steps, r.final_loss)


@pytest.mark.slow  # compiles the nonlinear trainer (about 50 s cold on 2 cores)
def test_train_with_an_activation_is_the_nonlinear_trainer(rng):
    from sweepengine.nltraining import NLTrainResult, train_batch_nonlinear

    W, X, Y, _ = _problem(rng, (3, 4, 2), 10)
    W2 = [0.3 * w for w in W]
    kw = dict(activation="tanh", weight_decay=0.1, lam_ref=2.0, record_every=5)
    a = se.train(X, Y, W, "adam", 0.01, 300, seed=7, **kw)
    runs = se.train_batch(X, Y, [W, W2], "adam", 0.01, 300, seeds=[7, 8], **kw)
    ref = train_batch_nonlinear(X, Y, [W, W2], "adam", 0.01, 300, seeds=[7, 8], **kw)
    assert isinstance(a, NLTrainResult) and a.activation == "tanh" and a.weight_decay == 0.1
    for got, want in ((a, ref[0]), (runs[0], ref[0]), (runs[1], ref[1])):
        assert np.array_equal(got.losses, want.losses, equal_nan=True)
        assert all(np.array_equal(x, y) for x, y in zip(got.weights, want.weights, strict=True))
        assert (got.status, got.steps, got.final_loss, got.n_stalls) == (
            want.status, want.steps, want.final_loss, want.n_stalls
        )  # fmt: skip
    # the deep linear net with weight decay goes there too (no statistics-form trainer)
    lin = se.train(X, Y, W, "gd", 0.01, 50, activation="linear", weight_decay=0.1, lam_ref=2.0)
    want = train_batch_nonlinear(X, Y, [W], "gd", 0.01, 50, weight_decay=0.1, lam_ref=2.0)[0]
    assert isinstance(lin, NLTrainResult) and np.array_equal(lin.losses, want.losses)
