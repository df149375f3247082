"""Stall records mean what they say: one trajectory gives one record, classes are those
of the critical point a stall shadows (docs/maths.md, "Stalls").

Each test can fail: a step-counted window, a class read off the probe point's Hessian
or a set S read off the loss value breaks the corresponding assertion.
"""

import numpy as np
import pytest

import sweepengine as se
from sweepengine import theory
from sweepengine.problems import make_problem
from sweepengine.stats import Stats
from sweepengine.training import reference

S4 = [3.0, 2.0, 1.0, 0.5]


def _problem(s=S4, d=4, m=16):
    return make_problem("whitened", {"d_x": d, "d_y": d, "m": m, "singular_values": list(s)})


def _lam_ref(X, Y, dims):
    return reference(Stats.from_data(X, Y), dims).lam_ref


def _run(X, Y, W, f, horizon, **kw):
    """GD at lr = f / lam_ref for ``horizon`` units of training time."""
    dims = [W[0].shape[1]] + [w.shape[0] for w in W]
    lr = f / _lam_ref(X, Y, dims)
    return se.train(X, Y, W, "gd", lr=lr, max_steps=int(round(horizon / f)), **kw)


def _summary(r):
    return [(st.modes, st.stall_class, st.start_time, st.end_time) for st in r.stalls]


def _assert_same_records(a, b, rtol, loss_scale=1.0):
    assert len(a.stalls) == len(b.stalls) > 0, (_summary(a), _summary(b))
    span = max(st.end_time for st in a.stalls)
    for x, y in zip(a.stalls, b.stalls, strict=True):
        assert x.modes == y.modes and x.stall_class == y.stall_class, (x, y)
        if x.stall_class != "unresolved":  # else the point where Newton-MR gave up
            assert loss_scale * x.critical_value == pytest.approx(y.critical_value, rel=1e-9)
        assert abs(x.start_time - y.start_time) <= rtol * span, (x.start_time, y.start_time)
        assert abs(x.end_time - y.end_time) <= rtol * span, (x.end_time, y.end_time)


@pytest.mark.parametrize("H,s,init", [(1, [3.0, 0.3], 1e-4), (2, S4, 1e-3)], ids=["H1", "H2"])
def test_one_trajectory_one_record_at_any_stable_learning_rate(H, s, init):
    """GD at lr and lr / 10 follows one gradient-flow trajectory: the same stalls, the
    same S and classes, intervals in time within a few percent (steps differ 10x)."""
    d = len(s)
    X, Y = _problem(s, d=d)
    W = se.init_weights([d] + [d] * H + [d], "gaussian", init, seed=0)
    a = _run(X, Y, W, 0.1, 1500.0)
    b = _run(X, Y, W, 0.01, 1500.0)
    _assert_same_records(a, b, rtol=0.02)
    assert b.stalls[0].end > 5 * a.stalls[0].end  # the step counts do differ
    assert a.time_to_target is None or a.time_to_target == pytest.approx(b.time_to_target, 0.02)


def test_rescaling_x_and_y_changes_no_record():
    """X -> a X, Y -> c Y with W_k -> (c/a)^(1/K) W_k and lr at the same lr x lam_ref:
    the same trajectory in the problem's own units, hence the same records."""
    X, Y = _problem()
    dims = [4, 4, 4, 4]
    W = se.init_weights(dims, "gaussian", 1e-3, seed=1)
    base = _run(X, Y, W, 0.1, 1500.0)
    for a, c in [(10.0, 0.1), (0.1, 10.0), (1.0, 10.0)]:
        Wr = [w * (c / a) ** (1 / 3) for w in W]
        r = _run(a * X, c * Y, Wr, 0.1, 1500.0)
        _assert_same_records(base, r, rtol=1e-3, loss_scale=c**2)
        for x, y in zip(base.stalls, r.stalls, strict=True):
            assert x.rel_lam_min == pytest.approx(y.rel_lam_min, abs=1e-8)
            assert x.local_rel_lam_min == pytest.approx(y.local_rel_lam_min, rel=1e-3)
            assert x.gap_rel == pytest.approx(y.gap_rel, rel=1e-6)


def _nl_run(X, Y, W, f, activation):
    """The nonlinear trainer, GD at lr = f / lam_ref (its lam_ref: the linear one), for
    1500 units of training time."""
    dims = [W[0].shape[1]] + [w.shape[0] for w in W]
    lr = f / _lam_ref(X, Y, dims)
    return se.train(X, Y, W, "gd", lr=lr, max_steps=int(round(1500.0 / f)),
                    activation=activation)  # fmt: skip


@pytest.mark.slow  # the nonlinear trainer's cold compile
@pytest.mark.parametrize(
    "activation,init",
    [("tanh", 1e-3), ("relu", 1e-3), ("relu", 3e-2), ("leaky_relu", 1e-2), ("tanh", 1e-2)],
)
def test_nonlinear_records_do_not_depend_on_learning_rate(activation, init):
    """The nonlinear trainer's stalls (its own classes: the origin test, strict saddles
    within the rough tolerance, the higher-order test at PSD polished points) are the
    same at lr and lr / 10 over the same time. relu from init 3e-2 has a second stall at
    a strict saddle where Newton-MR from the probe point at lr stops short of
    ``polish_tol`` on a kink (grad / g_ref ~ 3e-7) and converges from the one at
    lr / 10: strict_saddle both times."""
    X, Y = _problem()
    W = se.init_weights([4, 4, 4, 4], "gaussian", init, seed=1)
    base = _nl_run(X, Y, W, 0.1, activation)
    _assert_same_records(base, _nl_run(X, Y, W, 0.01, activation), rtol=0.02)


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh"])
def test_nonlinear_origin_plateau_class_does_not_depend_on_init_scale(activation):
    """H = 2 from small Gaussian init: the first stall shadows W = 0, a non-strict
    saddle (its Hessian is 0: the loss moves at third order), at every init scale over
    a factor 100, as for the linear runs (test_class_of_a_plateau_...), although the
    probe point's own lambda_min shrinks with the scale. It is examined at W = 0 itself
    (the origin test: no Newton-MR, critical value L(0))."""
    X, Y = _problem()
    l0 = 0.5 * float(np.sum(Y * Y))
    local = []
    for init in (1e-1, 1e-2, 1e-3):
        W = se.init_weights([4, 4, 4, 4], "gaussian", init, seed=1)
        st = _nl_run(X, Y, W, 0.1, activation).stalls[0]
        assert st.start_time == 0.0 and st.stall_class == "bad_saddle", (init, st)
        assert st.critical_value == pytest.approx(l0, rel=1e-14)
        assert st.polish_iters == 0 and st.polish_grad_rel == 0
        assert st.nullity == 48  # every direction: the Hessian at W = 0 vanishes
        local.append(abs(st.local_rel_lam_min))
    assert local[0] > 10 * local[-1]  # the local view is a threshold on the init scale


def test_rescaling_x_and_y_changes_no_nonlinear_record():
    """relu is positively homogeneous: X -> a X, Y -> c Y with W_k -> (c/a)^(1/K) W_k
    gives the same trajectory in the problem's units, hence the same records."""
    X, Y = _problem()
    W = se.init_weights([4, 4, 4, 4], "gaussian", 1e-3, seed=1)
    base = _nl_run(X, Y, W, 0.1, "relu")
    for a, c in [(10.0, 0.1), (0.1, 10.0)]:
        r = _nl_run(a * X, c * Y, [w * (c / a) ** (1 / 3) for w in W], 0.1, "relu")
        _assert_same_records(base, r, rtol=1e-3, loss_scale=c**2)
        for x, y in zip(base.stalls, r.stalls, strict=True):
            # lambda_min itself is not compared: polished near W = 0, a relu net lands on
            # different members of a degenerate set (-2.8e-5 vs -6.0e-5 lam_ref here),
            # all strict saddles
            assert x.nullity == y.nullity and x.polish_converged == y.polish_converged


@pytest.mark.slow
def test_a_tanh_net_with_one_large_layer_is_not_taken_for_w_zero():
    """W_1 of order one, W_2 and W_3 near 0: the output is near 0 (loss at L(0)) but the
    critical point near the start is (W_1, 0, 0), a strict saddle, not W = 0; tanh
    saturates, so the loss is not homogeneous there and the origin test's Euler
    condition fails (docs/nonlinear.md, "The origin test"). The relu net from the same
    start dies (every unit of a hidden layer off on every sample: its gradient at the
    probe point is exactly 0): a flat region at the level of L(0), a minimum, not W = 0."""
    X, Y = _problem()
    rng = np.random.default_rng(5)
    W = [rng.standard_normal((4, 4)), 1e-3 * rng.standard_normal((4, 4)),
         1e-3 * rng.standard_normal((4, 4))]  # fmt: skip
    st = _nl_run(X, Y, W, 0.1, "tanh").stalls[0]
    assert st.start_time == 0.0 and st.stall_class == "strict_saddle", st
    assert st.polish_iters > 0 and st.local_rel_lam_min < -0.1
    dead = _nl_run(X, Y, W, 0.1, "relu").stalls[0]
    assert dead.stall_class == "minimum" and dead.min_grad_norm == 0.0
    assert dead.polish_iters == 0 and dead.polish_distance == 0.0  # not moved to W = 0


def test_class_of_a_plateau_does_not_depend_on_init_scale():
    """H >= 2 from small Gaussian init: the plateau of a given S is a bad saddle (unused
    units at zero, Hessian PSD) at every init scale over a factor 33, although the probe
    point's own lambda_min shrinks with the scale (the local class flips)."""
    X, Y = _problem()
    classes: dict[tuple, set] = {}
    local = []
    for init in (1e-1, 3e-2, 1e-2, 3e-3):
        W = se.init_weights([4, 4, 4, 4], "gaussian", init, seed=3)
        r = _run(X, Y, W, 0.2, 1500.0)
        assert r.stalls, init
        for st in r.stalls:
            classes.setdefault(st.modes, set()).add(st.stall_class)
            assert st.critical_rank < 4 and st.kawaguchi_rank < 4  # rank(W_2) < p: no verdict
        local.append(r.stalls[0].local_rel_lam_min)
    assert classes[()] == {"bad_saddle"}
    assert all(c == {"bad_saddle"} for c in classes.values()), classes
    assert abs(local[0]) > 10 * abs(local[-1])  # the local view is a threshold on init scale


def test_h1_stalls_are_never_bad_saddles():
    X, Y = _problem([3.0, 1.0, 0.3, 0.1])
    seen = []
    for init in (1e-2, 1e-4, 1e-6):
        W = se.init_weights([4, 4, 4], "gaussian", init, seed=2)
        r = _run(X, Y, W, 0.2, 3000.0)
        seen += [st.stall_class for st in r.stalls]
    assert seen and set(seen) == {"strict_saddle"}


def test_scalar_chain_running_into_zero_is_a_bad_saddle():
    """Depth 3 scalar chain, w = (e, e, -e), target 1: GD shrinks every |w_i| together
    (w_i^2 - w_j^2 is conserved) into W = 0, where the Hessian vanishes: a bad saddle."""
    X, Y = np.array([[1.0]]), np.array([[1.0]])
    e = 0.3
    W = [np.array([[e]]), np.array([[e]]), np.array([[-e]])]
    r = se.train(X, Y, W, "gd", lr=0.1, max_steps=20000)
    assert r.status == "max_steps" and r.final_gap_rel > 0.99
    assert len(r.stalls) == 1
    st = r.stalls[0]
    assert st.modes == () and st.stall_class == "bad_saddle"
    assert st.kawaguchi_rank == 0 and abs(st.lam_min) <= 1e-12 * r.lam_ref


def test_leaving_a_minimum_at_too_large_a_learning_rate_is_no_saddle_stall():
    """Start at the global minimizer with lr above 2 / lambda_max: the loss oscillates
    and grows; that is instability, never a saddle stall."""
    X, Y = _problem()
    Wstar = theory.global_minimizer(X, Y, [4])
    lam_max = se.hessian_extremes(Wstar, X, Y)[1]
    rng = np.random.default_rng(0)
    W = [w + 1e-8 * rng.standard_normal(w.shape) for w in Wstar]
    r = se.train(X, Y, W, "gd", lr=2.2 / lam_max, max_steps=5000, stop_at_target=False)
    assert r.final_gap_rel > 1e-3 or r.status == "diverged"  # it did leave the minimum
    assert not [st for st in r.stalls if st.stall_class in ("strict_saddle", "bad_saddle")]


@pytest.mark.parametrize("H", [1, 2, 3])
def test_started_at_constructed_critical_points_the_class_is_the_theorys(H):
    """Start within 1e-6 of the balanced critical point of every S: the stall shadows that
    point (same S, analytic level) and has its class. H = 1: every saddle is strict.
    H >= 2: strict when S skips a stronger mode for a weaker one (rotating a used unit
    towards the stronger mode descends at second order); when S is the top |S| modes,
    the unused units are at zero and the Hessian is PSD: a bad saddle."""
    X, Y = _problem([3.0, 2.0, 1.0], d=3)
    lstar = se.global_minimum(X, Y, [3] * H)
    rng = np.random.default_rng(H)
    for S in [(), (0,), (1,), (0, 2), (1, 2), (0, 1)]:
        W = theory.critical_point(X, Y, [3] * H, S)
        W = [w + 1e-6 * rng.standard_normal(w.shape) for w in W]
        r = _run(X, Y, W, 0.1, 60.0, stop_at_target=False)
        assert r.stalls, S
        st = r.stalls[0]
        assert st.modes == S, (S, st)
        level = theory.critical_level(S, np.array([9.0, 4.0, 1.0]), 14.0)  # yy = sum s^2
        assert st.critical_value == pytest.approx(level, rel=1e-12)
        assert st.polish_converged and st.polish_loss == pytest.approx(level, rel=1e-9)
        if len(S) == 3 or level <= lstar:
            assert st.stall_class == "minimum"
        elif H == 1 or S != tuple(range(len(S))):
            assert st.stall_class == "strict_saddle" and st.rel_lam_min < -1e-2
        else:
            assert st.stall_class == "bad_saddle" and st.rel_lam_min >= -1e-6


@pytest.mark.parametrize("S", [(0, 1), (0, 2)])
def test_two_levels_closer_than_the_loss_noise_keep_the_right_set(S):
    """Levels of S = {0, 1} and {0, 2} differ by 5e-6 (eigenvalues 1 + 1e-5 and 1); a run
    held next to either (weights 5e-2 off the point, so the loss is off its level by
    more than that) reports its own S, which the loss alone cannot tell."""
    s = [2.0, 1.0 + 5e-6, 1.0, 0.5]
    X, Y = _problem(s)
    W = theory.critical_point(X, Y, [4, 4], S)
    rng = np.random.default_rng(5)
    W = [w + 5e-2 * rng.standard_normal(w.shape) for w in W]
    r = _run(X, Y, W, 0.1, 40.0, stop_at_target=False)
    st = r.stalls[0]
    assert st.modes == S
    l = np.square(s)
    mine = theory.critical_level(S, l, float(np.sum(l)))
    other = theory.critical_level((0, 1) if S == (0, 2) else (0, 2), l, float(np.sum(l)))
    assert st.critical_value == pytest.approx(mine, rel=1e-12)
    assert abs(st.loss - mine) > abs(other - mine)  # the loss is noisier than the gap


def test_time_unit_of_each_optimizer():
    """dt = lam_ref x lr_eff: lr for gd/sgd/pgd, lr / (1 - beta) for momentum and
    Nesterov, lr sqrt(n) / g_ref for Adam (docs/maths.md, "Time")."""
    X, Y = _problem()
    dims = [4, 4, 4]
    ref = reference(Stats.from_data(X, Y), dims)
    W = se.init_weights(dims, "gaussian", 0.1, seed=0)
    n = 32
    cases = {
        ("gd", ()): 0.01,
        ("sgd", (("batch_size", 8),)): 0.01,
        ("pgd", ()): 0.01,
        ("momentum", (("beta", 0.9),)): 0.1,
        ("nesterov", (("beta", 0.5),)): 0.02,
        ("adam", ()): 0.01 * np.sqrt(n) / ref.g_ref,
    }
    for (name, params), lr_eff in cases.items():
        r = se.train(X, Y, W, name, lr=0.01, max_steps=5, **dict(params))
        assert r.time_unit == pytest.approx(ref.lam_ref * lr_eff, rel=1e-12), name


def test_a_stall_open_when_the_run_diverges_is_kept_or_counted():
    """Depth 3 scalar chain near W = 0 at a huge learning rate: flat for many steps,
    then the weights blow up within two steps. The stall open at the blow-up ends
    at the step before it; it is recorded, or (the loss rose in its last steps)
    counted as unstable: never dropped."""
    X, Y = np.array([[1.0]]), np.array([[1.0]])
    W = [np.array([[1e-5]])] * 3
    r = se.train(X, Y, W, "gd", lr=300.0, max_steps=20000)
    assert r.status == "diverged"
    assert r.n_stalls + r.n_unstable >= 1
    held = sum(st.length for st in r.stalls) + r.unstable_steps
    assert held >= 0.5 * r.steps  # the plateau before the blow-up is accounted for
