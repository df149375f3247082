"""Data sets: exact whitening, spectra, determinism, the shipped Iris data, validation."""

from __future__ import annotations

import csv
import importlib.resources

import numpy as np
import pytest

from sweepengine import problems
from sweepengine.problems import (
    PROBLEMS,
    gaussian,
    iris,
    make_problem,
    normalize_params,
    problem_dims,
    teacher,
    whitened,
)

SMALL = {
    "whitened": dict(d_x=5, d_y=3, m=12, singular_values=[3.0, 1.0], seed=2, noise=0.1),
    "teacher": dict(d_x=4, d_y=3, m=20, teacher_widths=[6, 2], noise=0.05, seed=1),
    "gaussian": dict(d_x=3, d_y=2, m=7, seed=5),
    "iris": dict(),
}


# ----------------------------------------------------------------------------- all problems


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_shapes_dtype_and_dims_without_generating(name, monkeypatch):
    X, Y = make_problem(name, SMALL[name])
    assert X.dtype == Y.dtype == np.float64
    assert X.flags.c_contiguous and Y.flags.c_contiguous
    d_x, d_y, m = problem_dims(name, SMALL[name])
    assert X.shape == (d_x, m) and Y.shape == (d_y, m)
    assert np.isfinite(X).all() and np.isfinite(Y).all()

    def boom(**kwargs):
        raise AssertionError("problem_dims must not generate data")

    monkeypatch.setitem(problems._GENERATORS, name, boom)
    assert problem_dims(name, SMALL[name]) == (d_x, d_y, m)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_deterministic_and_public_function_matches_registry(name):
    X1, Y1 = make_problem(name, SMALL[name])
    X2, Y2 = PROBLEMS[name](**SMALL[name])
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(Y1, Y2)


@pytest.mark.parametrize("name", ["whitened", "teacher", "gaussian"])
def test_seed_matters(name):
    X1, Y1 = make_problem(name, SMALL[name])
    X2, Y2 = make_problem(name, {**SMALL[name], "seed": SMALL[name]["seed"] + 1})
    assert not np.allclose(X1, X2) and not np.allclose(Y1, Y2)


def test_numpy_integer_parameters_are_accepted():
    X, _ = gaussian(np.int64(3), np.int32(2), np.int64(5), seed=np.int64(1))
    assert X.shape == (3, 5)


def test_defaults_are_filled_in():
    p = normalize_params("whitened", dict(d_x=4, d_y=4, m=4, singular_values=[1, 2]))
    assert p == dict(d_x=4, d_y=4, m=4, singular_values=(1.0, 2.0), seed=0, noise=0.0)
    assert normalize_params("iris", {}) == dict(standardize=True, center_targets=True)
    assert normalize_params("teacher", dict(d_x=1, d_y=1, m=1))["teacher_widths"] == ()


# ----------------------------------------------------------------------------- whitened


@pytest.mark.parametrize(
    "d_x, d_y, m, s",
    [
        (4, 4, 4, [2.0, 1.0]),
        (6, 3, 40, [5.0, 0.5, 0.1]),
        (3, 5, 9, [1.0, 1.0, 1.0]),
        (1, 1, 1, [2]),
    ],
)
def test_whitened_is_exact(d_x, d_y, m, s):
    X, Y = whitened(d_x, d_y, m, s, seed=3)
    np.testing.assert_allclose(X @ X.T, np.eye(d_x), atol=1e-13)
    C = Y @ X.T
    sv = np.linalg.svd(C, compute_uv=False)
    want = np.zeros(min(d_x, d_y))
    want[: len(s)] = sorted(s, reverse=True)
    np.testing.assert_allclose(sv, want, atol=1e-12)
    # without noise all of Y is explained: tr(Y Y^T) = sum s^2
    np.testing.assert_allclose(np.sum(Y * Y), np.sum(np.square(s)), rtol=1e-12)


def test_whitened_noise_is_orthogonal_to_x():
    base = dict(d_x=4, d_y=3, m=30, singular_values=[2.0, 1.0], seed=7)
    X0, Y0 = make_problem("whitened", base)
    X1, Y1 = make_problem("whitened", {**base, "noise": 0.5})
    np.testing.assert_array_equal(X0, X1)
    np.testing.assert_allclose(Y1 @ X1.T, Y0 @ X0.T, atol=1e-12)
    noise_energy = np.sum(Y1 * Y1) - np.sum(Y0 * Y0)
    # E||N||^2 = noise^2 d_y (m - d_x) = 0.25 * 3 * 26 = 19.5
    assert 10 < noise_energy < 30


def test_whitened_singular_vectors_are_random_orthogonal():
    X, Y = whitened(4, 4, 8, [4.0, 3.0, 2.0, 1.0], seed=0)
    U, s, Vt = np.linalg.svd(Y @ X.T)
    assert not np.allclose(np.abs(U), np.eye(4), atol=0.1)
    np.testing.assert_allclose(s, [4, 3, 2, 1], atol=1e-12)


@pytest.mark.parametrize(
    "params, key",
    [
        (dict(d_x=4, d_y=4, m=3, singular_values=[1.0]), "m"),
        (dict(d_x=4, d_y=2, m=8, singular_values=[1.0, 1.0, 1.0]), "singular_values"),
        (dict(d_x=4, d_y=4, m=4, singular_values=[1.0], noise=0.1), "noise"),
        (dict(d_x=4, d_y=4, m=4, singular_values=[]), "singular_values"),
        (dict(d_x=4, d_y=4, m=4, singular_values=[-1.0]), "singular_values"),
        (dict(d_x=4, d_y=4, m=4, singular_values=[float("nan")]), "singular_values"),
        (dict(d_x=4, d_y=4, m=4, singular_values=3.0), "singular_values"),
        (dict(d_x=4, d_y=4, m=4), "singular_values"),
    ],
)
def test_whitened_invalid(params, key):
    with pytest.raises(ValueError, match=key):
        make_problem("whitened", params)


# ----------------------------------------------------------------------------- teacher, gaussian


def test_teacher_without_noise_is_exactly_linear_in_x():
    X, Y = teacher(5, 3, 40, teacher_widths=[4, 4], noise=0.0, seed=2)
    B = np.linalg.lstsq(X.T, Y.T, rcond=None)[0].T
    np.testing.assert_allclose(B @ X, Y, atol=1e-10)
    # rank of the teacher map is capped by its narrowest layer
    X, Y = teacher(5, 3, 40, teacher_widths=[1], seed=2)
    B = np.linalg.lstsq(X.T, Y.T, rcond=None)[0].T
    assert np.linalg.matrix_rank(B, tol=1e-8) == 1


def test_teacher_noise_and_scaling():
    X, Y0 = teacher(20, 20, 4000, teacher_widths=[20], noise=0.0, seed=4)
    _, Y1 = teacher(20, 20, 4000, teacher_widths=[20], noise=0.3, seed=4)
    np.testing.assert_allclose(np.std(Y1 - Y0), 0.3, rtol=0.05)
    # weights N(0, 1/fan_in) keep the output variance of unit-variance input near 1
    assert 0.5 < np.var(Y0) < 2.0


def test_gaussian_statistics():
    X, Y = gaussian(3, 2, 20_000, seed=0)
    assert abs(X.mean()) < 0.05 and abs(X.std() - 1) < 0.05
    assert np.abs(X @ Y.T / 20_000).max() < 0.05


# ----------------------------------------------------------------------------- iris


def _iris_csv_rows():
    text = importlib.resources.files("sweepengine").joinpath("data", "iris.csv").read_text()
    return list(csv.reader(text.splitlines()))


def test_iris_csv_is_the_canonical_data():
    rows = _iris_csv_rows()
    assert rows[0] == ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    body = rows[1:]
    assert len(body) == 150
    assert body[0] == ["5.1", "3.5", "1.4", "0.2", "setosa"]
    # samples 35 and 38 as in Fisher (1936), not the erroneous UCI copies
    assert body[34] == ["4.9", "3.1", "1.5", "0.2", "setosa"]
    assert body[37] == ["4.9", "3.6", "1.4", "0.1", "setosa"]
    assert body[50] == ["7.0", "3.2", "4.7", "1.4", "versicolor"]
    assert body[100] == ["6.3", "3.3", "6.0", "2.5", "virginica"]
    assert body[149] == ["5.9", "3.0", "5.1", "1.8", "virginica"]
    species = [r[4] for r in body]
    assert [species.count(c) for c in problems.IRIS_CLASSES] == [50, 50, 50]
    assert species == sorted(species, key=problems.IRIS_CLASSES.index)


def test_iris_raw_means_and_targets():
    X, Y = iris(standardize=False, center_targets=False)
    np.testing.assert_allclose(X.mean(axis=1), [5.843333, 3.057333, 3.758, 1.199333], atol=1e-6)
    assert X.shape == (4, 150) and Y.shape == (3, 150)
    np.testing.assert_array_equal(Y.sum(axis=0), np.ones(150))
    np.testing.assert_array_equal(Y.sum(axis=1), [50, 50, 50])
    assert set(np.unique(Y)) == {0.0, 1.0}


def test_iris_standardized_and_centred():
    X, Y = iris()
    np.testing.assert_allclose(X.mean(axis=1), 0, atol=1e-13)
    np.testing.assert_allclose(X.std(axis=1), 1, atol=1e-13)
    np.testing.assert_allclose(np.diag(X @ X.T), 150, rtol=1e-13)
    np.testing.assert_allclose(Y.sum(axis=1), 0, atol=1e-12)
    assert np.linalg.matrix_rank(Y) == 2
    # standardising and centring are affine: the raw data maps onto these exactly
    Xr, Yr = iris(standardize=False, center_targets=False)
    np.testing.assert_allclose(Yr - 1 / 3, Y, atol=1e-15)
    np.testing.assert_allclose((Xr - Xr.mean(1, keepdims=True)) / Xr.std(1, keepdims=True), X)


def test_iris_returns_fresh_arrays():
    X, Y = iris()
    X[:] = 0
    assert np.abs(iris()[0]).sum() > 0


# ----------------------------------------------------------------------------- validation


def test_unknown_problem_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown problem 'mnist'.*gaussian.*iris.*teacher"):
        make_problem("mnist", {})
    with pytest.raises(ValueError, match="unknown problem"):
        problem_dims("mnist", {})


@pytest.mark.parametrize(
    "name, params, pattern",
    [
        ("gaussian", dict(d_x=2, d_y=2, m=2, foo=3), r"unknown parameter 'foo' = 3; valid: .*d_x"),
        ("iris", dict(seed=0), r"unknown parameter 'seed'"),
        ("gaussian", dict(d_x=0, d_y=2, m=2), r"d_x = 0: must be an integer >= 1"),
        ("gaussian", dict(d_x=2.0, d_y=2, m=2), r"d_x = 2.0"),
        ("gaussian", dict(d_x=True, d_y=2, m=2), r"d_x = True"),
        ("gaussian", dict(d_x=2, d_y=2, m=2, seed=-1), r"seed = -1: must be an integer >= 0"),
        ("gaussian", dict(d_x=2, d_y=2), r"missing required parameter 'm'"),
        ("teacher", dict(d_x=2, d_y=2, m=2, noise=-0.1), r"noise = -0.1"),
        ("teacher", dict(d_x=2, d_y=2, m=2, noise="big"), r"noise = 'big'"),
        ("teacher", dict(d_x=2, d_y=2, m=2, teacher_widths=[2, 0]), r"teacher_widths = \[2, 0\]"),
        ("teacher", dict(d_x=2, d_y=2, m=2, teacher_widths=3), r"teacher_widths = 3"),
        ("iris", dict(standardize=1), r"standardize = 1: must be true or false"),
    ],
)
def test_invalid_parameters_name_key_and_value(name, params, pattern):
    with pytest.raises(ValueError, match=pattern):
        make_problem(name, params)


def test_all_errors_reported_together():
    with pytest.raises(ValueError) as e:
        make_problem("gaussian", dict(d_x=0, d_y=-1, m=2, bogus=1))
    msg = str(e.value)
    assert "d_x = 0" in msg and "d_y = -1" in msg and "bogus" in msg
