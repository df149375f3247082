"""The independence model (Kawaguchi 2016, Section 3) and the ReLU-net measurements."""

import numpy as np
import pytest

import sweepengine as se
from sweepengine import independence as ind
from tests import naive
from tests.conftest import random_chain, random_data


@pytest.mark.parametrize("dims", [(3, 2), (3, 4, 2), (2, 3, 2, 2)])
def test_paths_with_all_active_reproduce_the_product(rng, dims):
    W = random_chain(rng, dims)
    X, _ = random_data(rng, dims[0], dims[-1], 5)
    P, w = ind.path_weights(W)
    assert P.shape == (np.prod(dims), len(dims))
    np.testing.assert_allclose(ind.path_output(W, X), naive.product(W) @ X, rtol=1e-12, atol=1e-12)
    A = np.ones((5, P.shape[0]))
    np.testing.assert_allclose(ind.path_output(W, X, A, q=2.0), 2 * naive.product(W) @ X)


def test_paths_with_the_real_patterns_reproduce_the_relu_net(rng):
    dims = (3, 4, 3, 2)
    W = random_chain(rng, dims)
    X, Y = random_data(rng, 3, 2, 6)
    pats = ind.activation_patterns(W, X)
    P, _ = ind.path_weights(W)
    A = np.ones((6, P.shape[0]))
    for k, p in enumerate(pats):
        A *= p[P[:, k + 1], :].T
    Zs, _ = naive.net_forward(W, X, "relu")
    np.testing.assert_allclose(ind.path_output(W, X, A), Zs[-1], atol=1e-12)
    # the measured rho is the mean of A
    assert ind.path_activation_rate(W, X) == pytest.approx(A.mean(), rel=1e-12)


def test_monte_carlo_agrees_with_the_closed_forms(rng):
    dims = (2, 3, 2, 2)
    W = random_chain(rng, dims)
    X, Y = random_data(rng, 2, 2, 3)
    q, rho = 1.7, 0.3
    mc = ind.monte_carlo(W, X, Y, q, rho, draws=400, seed=1)
    mean = ind.expected_output(W, X, q, rho)
    np.testing.assert_allclose(mean, q * rho * naive.product(W) @ X, rtol=1e-12)
    assert np.all(np.abs(mc.output - mean) <= 5 * mc.output_se)
    assert abs(mc.loss - ind.expected_loss(W, X, Y, q, rho)) <= 5 * mc.loss_se
    # the loss of the expected output is the deep linear loss with W_K scaled by q rho
    scaled = [*W[:-1], q * rho * W[-1]]
    assert ind.expected_output_loss(W, X, Y, q, rho) == pytest.approx(se.loss(scaled, X, Y))
    # and differs from the expected loss by the variance term, > 0 for 0 < rho < 1
    assert ind.expected_loss(W, X, Y, q, rho) > ind.expected_output_loss(W, X, Y, q, rho)
    assert ind.expected_loss(W, X, Y, q, 1.0) == pytest.approx(
        ind.expected_output_loss(W, X, Y, q, 1.0)
    )


def test_all_positive_preactivations_give_rho_one(rng):
    W = [np.abs(rng.standard_normal((3, 2))), np.abs(rng.standard_normal((2, 3))), np.ones((1, 2))]
    X = np.abs(rng.standard_normal((2, 7))) + 0.1
    assert ind.path_activation_rate(W, X) == 1.0
    d = ind.input_dependence(W, X)
    assert d.constant_units == 5 and np.isnan(d.mean_max_abs)


def _sign_design(m_rep=3):
    """x_0 = 1, (x_1, x_2) over all four sign pairs: independent, balanced signs."""
    s = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=float).T
    x = np.tile(s * np.array([[1.0], [2.0]]), m_rep)
    return np.vstack([np.ones(x.shape[1]), x])


def test_a_unit_active_iff_x1_positive_correlates_one_with_sign_x1():
    X = _sign_design()
    W = [np.eye(3), np.ones((1, 3))]  # units: x_0 (always on), x_1, x_2
    d = ind.input_dependence(W, X)
    assert d.corr[1, 1] == pytest.approx(1.0) and d.corr[2, 2] == pytest.approx(1.0)
    assert d.corr[1, 2] == pytest.approx(0.0, abs=1e-15)
    assert np.all(np.isnan(d.corr[0])) and np.isnan(d.max_abs[0]) and d.constant_units == 1
    assert d.mean_max_abs == pytest.approx(1.0)
    # rho: unit 0 always, units 1 and 2 each half the time -> (1 + 2 * 0.5) / 3
    assert ind.path_activation_rate(W, X) == pytest.approx(2 / 3)


def test_path_dependence_on_constructed_nets():
    X = _sign_design()
    # layer 1 = (x_0, x_1, x_2), layer 2 one unit always on: the paths through units 1 and 2
    # share it, and their indicators (signs of x_1, x_2) are independent: correlation 0
    W = [np.eye(3), np.array([[1.0, 0.0, 0.0]]), np.ones((1, 1))]
    pdep = ind.path_dependence(W, X)
    assert pdep.shared == pytest.approx(0.0, abs=1e-15) and pdep.n_shared == 1
    assert pdep.n_disjoint == 0 and np.isnan(pdep.disjoint) and pdep.independent == 0.0
    # layer 1 = (x_0, x_1), layer 2 = (u_0, u_1): every varying path is active iff x_1 > 0
    W = [np.eye(3)[:2], np.eye(2), np.ones((1, 2))]
    pdep = ind.path_dependence(W, X)
    assert pdep.shared == pytest.approx(1.0) and pdep.n_shared == 2
    assert pdep.disjoint == pytest.approx(1.0) and pdep.n_disjoint == 1


def test_bad_input():
    W = [np.ones((2, 3)), np.ones((1, 2))]
    X = np.ones((3, 4))
    with pytest.raises(ValueError, match="rho"):
        ind.expected_output(W, X, 1.0, 1.5)
    with pytest.raises(ValueError, match="A has shape"):
        ind.path_output(W, X, np.ones((4, 5)))
    with pytest.raises(ValueError, match="X"):
        ind.path_output(W, np.ones((2, 4)))
    with pytest.raises(ValueError, match="no hidden layer"):
        ind.input_dependence([np.ones((1, 3))], X)
