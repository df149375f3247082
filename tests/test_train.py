"""Training engine against closed-form learning curves and the landscape theory."""

import numpy as np
import pytest
from scipy.integrate import quad

import sweepengine as se
from sweepengine.initialization import init_weights
from sweepengine.training import train, train_batch, train_flat

OPTIMIZERS = [
    ("gd", 0.01, {}),
    ("momentum", 0.002, {"beta": 0.9}),
    ("nesterov", 0.002, {"beta": 0.8}),
    ("sgd", 0.004, {"batch_size": 8}),
    ("adam", 0.01, {}),
    ("pgd", 0.01, {"radius": 1e-3, "grad_tol": 1e-2, "interval": 20}),
]


def _orth(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _whitened(rng, s, m=None):
    """X X^T = I, Y X^T = U diag(s) V^T."""
    d = len(s)
    m = m or d
    X = _orth(rng, m)[:d]  # orthonormal rows
    U, V = _orth(rng, d), _orth(rng, d)
    return X, U @ np.diag(s) @ V.T @ X, U, V


def _crossing(curve, level):
    below = np.flatnonzero(curve < level)
    return int(below[0]) if below.size else None


def test_saxe_modes_learned_after_predicted_plateaus(rng):
    """H = 1, whitened data, small balanced aligned init: Saxe et al. (2014) closed form.

    Mode strength u_i(t) = s_i / (1 + (s_i/u0 - 1) exp(-2 lr s_i t)); the loss is
    1/2 sum_i (s_i - u_i)^2. Each mid-level crossing must land within 2 percent of
    the prediction, modes in order of their singular values.
    """
    s = np.array([4.0, 2.0, 1.0])
    X, Y, U, V = _whitened(rng, s)
    u0, lr = 1e-6, 0.0025
    W0 = [np.sqrt(u0) * V.T, U * np.sqrt(u0)]
    r = train(X, Y, W0, "gd", lr=lr, max_steps=6000)
    assert r.status == "converged"
    t = np.arange(6001)
    u = s[:, None] / (1 + (s[:, None] / u0 - 1) * np.exp(-2 * lr * s[:, None] * t))
    predicted = 0.5 * np.sum((s[:, None] - u) ** 2, axis=0)
    levels = [0.5 * np.sum(s[i:] ** 2) for i in range(4)]
    times = []
    for i in range(3):
        mid = 0.5 * (levels[i] + levels[i + 1])
        tm, tp = _crossing(r.losses, mid), _crossing(predicted, mid)
        assert abs(tm - tp) <= 0.02 * tp, (i, tm, tp)
        times.append(tm)
    assert times == sorted(times)
    # the first plateau (nothing learned) is a stall at its analytic level, shadowing a
    # strict saddle (H = 1: every saddle is strict); the later ones overlap with the
    # tails of the modes before them and are shorter than a stall (docs/maths.md)
    assert r.stalls and r.stalls[0].modes == ()
    for st in r.stalls:
        assert abs(st.loss - st.critical_value) < 0.02 * (0.5 * np.sum(s**2))
        assert st.stall_class == "strict_saddle" and st.rel_lam_min < -1e-2


@pytest.mark.parametrize("K", [3, 4])
def test_deep_plateau_scales_as_inverse_power_of_init(K):
    """K >= 3 balanced init: plateau length ~ w0^-(K-2) and matches the exact flow integral."""
    s, lr = 2.0, 0.01
    X, Y = np.array([[1.0]]), np.array([[s]])
    w0s = [0.1, 0.05, 0.025]
    times, rel = [], []
    for w0 in w0s:
        r = train(X, Y, [np.array([[w0]])] * K, "gd", lr=lr, max_steps=60000, target_gap=1e-3)
        tm = _crossing(r.losses, s**2 / 8)  # u = w^K reaches s/2
        w_half = (s / 2) ** (1 / K)
        tp = quad(lambda w: 1 / (lr * (s - w**K) * w ** (K - 1)), w0, w_half)[0]
        assert abs(tm - tp) <= 0.02 * tp
        times.append(tm)
        rel.append(r.stalls[0].local_rel_lam_min)
    slope = np.polyfit(np.log(w0s), np.log(times), 1)[0]
    assert slope == pytest.approx(-(K - 2), abs=0.05)
    # near W = 0 the local negative curvature shrinks like w0^(K-2) as well (which is why
    # a stall's class is read at the critical point it shadows, not at the probe point)
    rel_slope = np.polyfit(np.log(w0s), np.log(-np.array(rel)), 1)[0]
    assert rel_slope == pytest.approx(K - 2, abs=0.1)


def test_plateaus_at_critical_values_and_classes(rng):
    """Small random init on whitened data: stalls sit at analytic critical levels.

    H = 1: every stall is a strict saddle. H >= 2 from small init: the first
    plateau (near W = 0, rank 0) is a bad saddle.
    """
    s = np.array([3.0, 1.5, 0.75])
    X, Y, _, _ = _whitened(rng, s, m=8)
    scale = 0.5 * np.sum(s**2)
    r1 = train(X, Y, init_weights([3, 4, 3], "gaussian", 1e-4, 1), "gd", lr=0.02, max_steps=20000)
    assert r1.status == "converged" and r1.n_stalls >= 2
    assert all(st.stall_class == "strict_saddle" for st in r1.stalls)
    for st in r1.stalls:
        assert abs(st.loss - st.critical_value) < 0.02 * scale
    for H, init, steps in [(2, 1e-3, 100000), (3, 2e-2, 20000)]:
        dims = [3] + [4] * H + [3]
        r = train(X, Y, init_weights(dims, "gaussian", init, 2), "gd", lr=0.02, max_steps=steps)
        first = r.stalls[0]
        assert first.critical_rank == 0 and first.stall_class == "bad_saddle", (H, first)
        assert abs(first.lam_min) < 1e-3 * r.lam_ref
        assert abs(first.loss - first.critical_value) < 0.02 * scale
        assert r.status == ("converged" if H == 2 else "max_steps")


def test_converged_runs_reach_global_minimum(rng):
    X = rng.standard_normal((5, 40))
    Y = rng.standard_normal((4, 5)) @ X + 0.3 * rng.standard_normal((4, 40))
    for widths in ([3], [6, 2], [5, 5, 5]):
        dims = [5, *widths, 4]
        W0 = [init_weights(dims, sch, 0.3, seed) for sch in se.INIT_SCHEMES for seed in (0, 1)]
        res = train_batch(X, Y, W0, "gd", lr=2e-3, max_steps=40000, target_gap=1e-8)
        lstar = se.global_minimum(X, Y, widths)
        for r in res:
            assert r.status == "converged", (widths, r.status, r.final_gap_rel)
            assert r.final_loss == pytest.approx(lstar, rel=1e-6)
            assert r.global_minimum == pytest.approx(lstar, rel=1e-12)
            # a minimum: no clearly negative curvature at the end
            assert r.lam_min > -1e-4 * r.lam_ref
            assert all(st.stall_class != "minimum" for st in r.stalls)


@pytest.mark.parametrize("name,lr,params", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_batched_equals_one_by_one_bitwise(rng, name, lr, params):
    X = rng.standard_normal((4, 24))
    Y = rng.standard_normal((3, 4)) @ X
    dims = [4, 5, 5, 3]
    W0 = [init_weights(dims, "gaussian", 0.05 * (1 + b), b) for b in range(5)]
    seeds = [11, 12, 13, 14, 15]
    kw = dict(max_steps=3000, stall={"window": 20, "min_length": 40})
    batch = train_batch(X, Y, W0, name, lr, seeds=seeds, threads=2, **kw, **params)
    single = [
        train_batch(X, Y, [w], name, lr, seeds=[sd], threads=1, **kw, **params)[0]
        for w, sd in zip(W0, seeds, strict=True)
    ]
    swapped = train_batch(X, Y, W0[::-1], name, lr, seeds=seeds[::-1], threads=2, **kw, **params)
    for a, b, c in zip(batch, single, swapped[::-1], strict=True):
        for x in (b, c):
            np.testing.assert_array_equal(a.losses, x.losses)
            for wa, wx in zip(a.weights, x.weights, strict=True):
                np.testing.assert_array_equal(wa, wx)
            assert a.stalls == x.stalls and a.steps == x.steps and a.status == x.status
            assert a.lam_min == x.lam_min or (np.isnan(a.lam_min) and np.isnan(x.lam_min))


def test_divergence_is_an_outcome_not_a_crash(rng):
    X = rng.standard_normal((3, 20))
    Y = rng.standard_normal((2, 20))
    W0 = [init_weights([3, 4, 2], "gaussian", 0.5, b) for b in range(3)]
    res = train_batch(X, Y, W0, "gd", [1e-3, 5.0, 1e-3], max_steps=500)
    assert res[1].status == "diverged" and res[1].steps < 500
    assert np.isnan(res[1].lam_min)
    alone = train(X, Y, W0[2], "gd", lr=1e-3, max_steps=500)
    np.testing.assert_array_equal(res[2].losses, alone.losses)
    assert res[0].status != "diverged"


def test_every_optimizer_trains(rng):
    X, Y, _, _ = _whitened(rng, [2.0, 1.5, 1.0], m=32)
    dims = [3, 6, 3]
    W0 = init_weights(dims, "orthogonal", 0.3, 0)
    for name, lr, params in OPTIMIZERS:
        r = train(X, Y, W0, name, 5 * lr, max_steps=20000, target_gap=1e-4, **params)
        assert r.final_gap_rel < 1e-2, (name, r.status, r.final_gap_rel)
    # perturbed GD kicks when the gradient is small; plain GD never does
    pgd = train(X, Y, init_weights(dims, "zero_perturbed", 1e-9, 0), "pgd", 0.01, 3000,
                radius=1e-3, grad_tol=1e-3, interval=50)  # fmt: skip
    assert pgd.kicks >= 1


def test_recording_and_thinning(rng):
    X = rng.standard_normal((3, 10))
    Y = rng.standard_normal((2, 10))
    W0 = init_weights([3, 3, 2], "gaussian", 0.3, 0)
    full = train(X, Y, W0, "gd", 0.01, 200, stop_at_target=False)
    thin = train(X, Y, W0, "gd", 0.01, 200, stop_at_target=False, record_every=10)
    assert full.losses.shape == (201,) and thin.losses.shape == (21,)
    np.testing.assert_array_equal(thin.loss_steps, np.arange(0, 201, 10))
    np.testing.assert_array_equal(thin.losses, full.losses[::10])
    assert full.losses[0] == pytest.approx(se.loss(W0, X, Y), rel=1e-12)


def test_init_schemes():
    dims = [3, 5, 4, 2]
    for scheme in se.INIT_SCHEMES:
        W = init_weights(dims, scheme, 0.5, 7)
        assert [w.shape for w in W] == [(5, 3), (4, 5), (2, 4)]
        W2 = init_weights(dims, scheme, 0.5, 7)
        assert all(np.array_equal(a, b) for a, b in zip(W, W2, strict=True))
    W = init_weights(dims, "balanced", 0.5, 7)
    for a, b in zip(W[:-1], W[1:], strict=False):
        np.testing.assert_allclose(b.T @ b, a @ a.T, atol=1e-12)
    W = init_weights(dims, "zero_perturbed", 1e-3, 7)
    assert np.sqrt(sum(np.sum(w * w) for w in W)) == pytest.approx(1e-3)
    W = init_weights(dims, "orthogonal", 2.0, 7)
    np.testing.assert_allclose(W[0].T @ W[0], 4 * np.eye(3), atol=1e-12)
    W = init_weights(dims, "gaussian", [1.0, 1e-3, 1e-6], 7)
    assert np.abs(W[2]).max() < 1e-4 < np.abs(W[0]).max()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(optimizer="rmsprop", lr=0.1), "valid"),
        (dict(optimizer="gd", lr=-1.0), "lr must be positive"),
        (dict(optimizer="gd", lr=0.1, max_steps=0), "max_steps"),
        (dict(optimizer="gd", lr=0.1, beta=0.9), "unknown parameter"),
        (dict(optimizer="momentum", lr=0.1, beta=1.5), "beta"),
        (dict(optimizer="gd", lr=0.1, stall={"windw": 3}), "valid"),
        (dict(optimizer="sgd", lr=0.1, batch_size=100), "batch_size"),
    ],
)
def test_bad_training_input(rng, kwargs, match):
    X, Y = rng.standard_normal((3, 10)), rng.standard_normal((2, 10))
    with pytest.raises(ValueError, match=match):
        train(X, Y, init_weights([3, 4, 2], "gaussian", 0.1, 0), **kwargs)


def test_bad_init_and_chain(rng):
    with pytest.raises(ValueError, match="valid"):
        init_weights([3, 4, 2], "xavier", 0.1, 0)
    with pytest.raises(ValueError, match="dims"):
        init_weights([3, 0, 2], "gaussian", 0.1, 0)
    X, Y = rng.standard_normal((3, 10)), rng.standard_normal((2, 10))
    with pytest.raises(ValueError, match=r"weights0\[0\]\[1\]"):
        train(X, Y, [np.ones((4, 3)), np.ones((2, 5))], "gd", 0.1)


@pytest.mark.parametrize("dims,lr_scale", [((4, 5, 8, 3), 1.0), ((7, 15, 13, 9), 0.2)],
                         ids=["narrow", "widest"])  # fmt: skip
@pytest.mark.parametrize("name,lr,params", [o for o in OPTIMIZERS if o[0] != "sgd"],
                         ids=[o[0] for o in OPTIMIZERS if o[0] != "sgd"])  # fmt: skip
def test_lockstep_kernel_equals_one_run_kernel_bitwise(rng, monkeypatch, name, lr, params, dims,
                                                       lr_scale):  # fmt: skip
    """Narrow nets train in lock-step blocks; each run's numbers equal the per-run kernel's."""
    if name == "pgd":  # kick whenever the gradient is below 0.5: some runs kick often
        params = {**params, "grad_tol": 0.5}
    from sweepengine import training
    from sweepengine._layout import flatten
    from sweepengine.kernels import lockstep
    from sweepengine.kernels import trainer as kt
    from sweepengine.options import make_optimizer

    X = rng.standard_normal((dims[0], 24))
    Y = rng.standard_normal((dims[-1], dims[0])) @ X
    assert max(dims) <= lockstep.MAX_WIDTH
    B, steps = 21, 800  # more than one block, the last one partial
    theta = np.stack(
        [flatten(init_weights(dims, "gaussian", 0.02 * (1 + b % 4), b)) for b in range(B)]
    )
    lr = lr * lr_scale  # the wider problem has a larger Hessian
    opts = [make_optimizer(name, lr * (1 + b % 3), **params) for b in range(B)]
    kw = dict(seeds=np.arange(B) + 7, stall={"window": 2.0, "min_length": 4.0, "max_stalls": 4,
              "lanczos_iter": 60}, stop_at_target=True)  # fmt: skip
    outs = []
    for kernel in (kt.train_batch, lockstep.train_batch_lockstep):
        monkeypatch.setattr(training, "_kernel", lambda *a, k=kernel: k)
        outs.append(train_flat(X, Y, theta, dims, opts, max_steps=steps, **kw))
    a, b = outs
    for field in ("theta", "losses", "occupancy"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.runs.tobytes() == b.runs.tobytes()  # records holding NaN: compare the bits
    assert a.stall_rows.tobytes() == b.stall_rows.tobytes()
    assert (a.status != "diverged").any()  # not all diverged
    assert a.runs["n_stalls"].sum() > 0  # stalls were recorded and examined
    assert a.stall_rows["polished"].any()
    assert name != "pgd" or a.runs["kicks"].sum() > 0  # and kicks were drawn


def test_every_runs_batch_size_is_checked_and_named(rng):
    """A batch mixing mini-batch sizes: each run's is checked, not only the first's
    (a batch of [8, 100] with m = 16 used to train the second on a clamped batch)."""
    from sweepengine.options import make_optimizer
    from sweepengine.training import train_flat

    X, Y = rng.standard_normal((3, 16)), rng.standard_normal((2, 16))
    dims = [3, 2]
    theta = rng.standard_normal((2, 6)) * 0.1
    opts = [make_optimizer("sgd", 0.05, batch_size=8), make_optimizer("sgd", 0.05, batch_size=100)]
    with pytest.raises(ValueError, match=r"run 1 of the batch: batch_size 100 exceeds .* m=16"):
        train_flat(X, Y, theta, dims, opts, max_steps=5)
