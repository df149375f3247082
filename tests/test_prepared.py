"""The prepared objective (``se.objective``) against the one-shot functions and differences."""

import numpy as np
import pytest

import sweepengine as se
from sweepengine._layout import flatten, unflatten
from tests.conftest import random_chain, random_data

DIMS = [(3, 5, 2), (4, 6, 6, 3), (8, 8, 8, 8, 8, 8)]


def _flat(parts):
    return np.concatenate([np.ravel(p) for p in parts])


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("m", [2, 40])  # m <= d_0 (data form) and m > d_0 (statistics)
def test_prepared_matches_one_shot(rng, dims, m):
    X, Y = random_data(rng, dims[0], dims[-1], m)
    obj = se.objective(X, Y, dims)
    assert obj.form == ("stats" if m > dims[0] else "data")
    for _ in range(3):  # the workspace is reused: later calls must not see earlier ones
        W, V = random_chain(rng, dims, 0.7), random_chain(rng, dims)
        ref_l, ref_g = se.loss_and_gradient(W, X, Y)
        ref_h = _flat(se.hvp(W, X, Y, V))
        scale = max(1.0, np.abs(_flat(ref_g)).max())
        theta, v = flatten(W), flatten(V)
        assert abs(obj.loss(W) - se.loss(W, X, Y)) <= 1e-14 * max(1.0, abs(ref_l))
        l, g = obj.loss_and_gradient(theta)  # flat in, flat out
        assert abs(l - ref_l) <= 1e-14 * max(1.0, abs(ref_l))
        assert np.abs(g - _flat(ref_g)).max() <= 1e-14 * scale
        gl = obj.gradient(W)  # list in, list out
        assert [a.shape for a in gl] == [w.shape for w in W]
        np.testing.assert_array_equal(_flat(gl), g)
        h = obj.hvp(theta, v)
        assert np.abs(h - ref_h).max() <= 1e-14 * max(1.0, np.abs(ref_h).max())
        np.testing.assert_array_equal(_flat(obj.hvp(W, V)), h)


def test_statistics_form_equals_the_one_shot_on_statistics_exactly(rng):
    dims = (4, 6, 6, 3)
    X, Y = random_data(rng, 4, 3, 30)
    W, V = random_chain(rng, dims), random_chain(rng, dims)
    obj = se.objective(X, Y, dims, form="stats")
    st = se.Stats(obj.Cxx, obj.Cyx, obj.yy)
    np.testing.assert_array_equal(_flat(obj.gradient(W)), _flat(se.gradient(W, stats=st)))
    np.testing.assert_array_equal(_flat(obj.hvp(W, V)), _flat(se.hvp(W, direction=V, stats=st)))
    assert obj.loss(W) == se.loss(W, stats=st)
    data = se.objective(X, Y, dims, form="data")
    ref = _flat(se.gradient(W, X, Y))
    assert np.abs(_flat(data.gradient(W)) - ref).max() <= 1e-14 * np.abs(ref).max()


def test_prepared_from_stats(rng):
    dims = (4, 6, 3)
    X, Y = random_data(rng, 4, 3, 50)
    st = se.Stats.from_data(X, Y)
    obj = se.objective(stats=st, dims=dims)
    W = random_chain(rng, dims)
    np.testing.assert_array_equal(_flat(obj.gradient(W)), _flat(se.gradient(W, stats=st)))


def test_prepared_gradient_and_hvp_vs_finite_differences(rng):
    dims = (3, 4, 4, 2)
    X, Y = random_data(rng, 3, 2, 20)
    obj = se.objective(X, Y, dims)
    theta = flatten(random_chain(rng, dims, 0.8))
    v = rng.standard_normal(theta.size)
    h = 1e-6
    fd = np.array([(obj.loss(theta + h * e) - obj.loss(theta - h * e)) / (2 * h)
                   for e in np.eye(theta.size)])  # fmt: skip
    g = obj.gradient(theta)
    assert np.abs(g - fd).max() <= 1e-6 * max(1.0, np.abs(g).max())
    fd_h = (obj.gradient(theta + h * v) - obj.gradient(theta - h * v)) / (2 * h)
    hv = obj.hvp(theta, v)
    assert np.abs(hv - fd_h).max() <= 1e-6 * max(1.0, np.abs(hv).max())


def test_prepared_returns_new_arrays_and_leaves_inputs(rng):
    dims = (3, 4, 2)
    X, Y = random_data(rng, 3, 2, 10)
    obj = se.objective(X, Y, dims)
    theta = flatten(random_chain(rng, dims))
    before = theta.copy()
    g1 = obj.gradient(theta)
    g2 = obj.gradient(2 * theta)
    assert g1 is not g2 and not np.shares_memory(g1, g2)
    np.testing.assert_array_equal(theta, before)
    np.testing.assert_array_equal(g1, obj.gradient(theta))


def test_prepared_input_checks(rng):
    dims = (3, 4, 2)
    X, Y = random_data(rng, 3, 2, 10)
    with pytest.raises(ValueError, match="dims"):
        se.objective(X, Y)
    with pytest.raises(ValueError, match="X has shape"):
        se.objective(X[:2], Y, dims)
    with pytest.raises(ValueError, match="form"):
        se.objective(X, Y, dims, form="fast")
    obj = se.objective(X, Y, dims)
    with pytest.raises(ValueError, match="entries, expected 20"):
        obj.gradient(np.zeros(7))
    with pytest.raises(ValueError, match="layer sizes"):
        obj.gradient(random_chain(rng, (3, 5, 2)))
    # other dtypes and read-only vectors are converted, not rejected
    theta = flatten(random_chain(rng, dims))
    ro = theta.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(obj.gradient(ro), obj.gradient(theta))
    np.testing.assert_array_equal(
        obj.gradient(theta.astype(np.float32)), obj.gradient(theta.astype(np.float32) * 1.0)
    )
    assert "form=" in repr(obj)
    assert [w.shape for w in unflatten(theta, obj.dims)] == [(4, 3), (2, 4)]
