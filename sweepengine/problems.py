"""Data sets for the sweeps: each returns (X, Y) in float64, X (d_x, m), Y (d_y, m).

Every generator is deterministic given its parameters: random draws come
from ``numpy.random.Generator(PCG64(seed))`` in a fixed order, and the
orthogonal factors of QR decompositions are sign-fixed (diag(R) > 0), so the
result does not depend on the LAPACK build's sign convention.

- ``whitened``: Saxe, McClelland and Ganguli (ICLR 2014) data. Input
  correlation X X^T = I exactly (not m I: the loss and its curvature then do not
  grow with m, and the singular values are the mode strengths of their closed
  form), input-output correlation Y X^T = U diag(s) V^T exactly with Haar-random
  orthogonal U (d_y, d_y), V (d_x, d_x) and the given spectrum s (zeros beyond
  len(s)). Optional ``noise`` adds a component N with N X^T = 0, so
  tr(Y Y^T) = sum s_i^2 + ||N||^2 exceeds the explained part while Cxx and Cyx
  are unchanged.
- ``teacher``: X Gaussian, Y = W_K ... W_1 X + noise * E with a random deep linear
  teacher, W_k entries N(0, 1 / fan_in).
- ``gaussian``: X and Y independent standard Gaussian (no structure to learn
  beyond chance correlations).
- ``iris``: Fisher's Iris data (150 samples, 4 features, 3 classes), shipped as
  ``sweepengine/data/iris.csv``; X standardised features, Y one-hot targets.

``make_problem(name, params)`` validates and builds; ``problem_dims(name,
params)`` returns (d_x, d_y, m) without generating anything, so a sweep's
architectures can be checked before any compute.
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ._haar import haar_orthonormal

__all__ = [
    "IRIS_CLASSES",
    "IRIS_FEATURES",
    "PARAM_KINDS",
    "PROBLEMS",
    "coerce_param",
    "gaussian",
    "iris",
    "make_problem",
    "normalize_params",
    "param_errors",
    "problem_defaults",
    "problem_dims",
    "teacher",
    "whitened",
]

IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
IRIS_CLASSES = ("setosa", "versicolor", "virginica")
_IRIS_M = 150


# ----------------------------------------------------------------------------- public generators
# Each public function only validates (through make_problem) and then calls its private
# generator; its signature is the single source of the parameters' defaults.


def whitened(
    d_x: int,
    d_y: int,
    m: int,
    singular_values: Sequence[float],
    seed: int = 0,
    noise: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Whitened data: X X^T = I_{d_x} and Y X^T = U diag(s) V^T, both exact to rounding.

    X = Q^T for a random (m, d_x) matrix Q with orthonormal columns (so m >= d_x),
    Y = U_r diag(s) V_r^T X + N with N = noise * G (I - Q Q^T), G standard Gaussian
    (d_y, m); N X^T = 0, so only tr(Y Y^T) sees the noise (noise > 0 needs m > d_x).
    ``singular_values`` holds s_1..s_r >= 0, r <= min(d_x, d_y).
    """
    return make_problem(
        "whitened",
        dict(d_x=d_x, d_y=d_y, m=m, singular_values=singular_values, seed=seed, noise=noise),
    )


def teacher(
    d_x: int,
    d_y: int,
    m: int,
    teacher_widths: Sequence[int] = (),
    noise: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Teacher net: X ~ N(0, 1), Y = W_K ... W_1 X + noise * E, E ~ N(0, 1).

    The teacher has hidden widths ``teacher_widths`` (empty: a linear map), and
    W_k of shape (d_k, d_{k-1}) with entries N(0, 1 / d_{k-1}).
    """
    return make_problem(
        "teacher",
        dict(d_x=d_x, d_y=d_y, m=m, teacher_widths=teacher_widths, noise=noise, seed=seed),
    )


def gaussian(d_x: int, d_y: int, m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """X (d_x, m) and Y (d_y, m) with independent standard Gaussian entries."""
    return make_problem("gaussian", dict(d_x=d_x, d_y=d_y, m=m, seed=seed))


def iris(standardize: bool = True, center_targets: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Fisher's Iris data: X (4, 150) features, Y (3, 150) one-hot classes.

    ``standardize``: each feature (row of X) centred and scaled to unit variance
    over the 150 samples (population variance, ddof = 0, so diag(X X^T) = 150);
    otherwise the raw measurements in cm. ``center_targets``: subtract each
    class indicator's mean (1/3) so every row of Y sums to zero; the centred
    targets have rank 2. Rows of X follow IRIS_FEATURES, rows of Y IRIS_CLASSES.
    """
    return make_problem("iris", dict(standardize=standardize, center_targets=center_targets))


PROBLEMS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "whitened": whitened,
    "teacher": teacher,
    "gaussian": gaussian,
    "iris": iris,
}

# Parameter kinds: "size" int >= 1, "seed" int >= 0, "nonneg" float >= 0,
# "spectrum" non-empty list of floats >= 0, "widths" list of ints >= 1 (may be empty),
# "flag" bool. List kinds are the ones whose single value is itself a list.
PARAM_KINDS: dict[str, dict[str, str]] = {
    "whitened": {
        "d_x": "size",
        "d_y": "size",
        "m": "size",
        "singular_values": "spectrum",
        "seed": "seed",
        "noise": "nonneg",
    },
    "teacher": {
        "d_x": "size",
        "d_y": "size",
        "m": "size",
        "teacher_widths": "widths",
        "noise": "nonneg",
        "seed": "seed",
    },
    "gaussian": {"d_x": "size", "d_y": "size", "m": "size", "seed": "seed"},
    "iris": {"standardize": "flag", "center_targets": "flag"},
}
LIST_KINDS = frozenset({"spectrum", "widths"})

_REQUIRED = inspect.Parameter.empty


# ----------------------------------------------------------------------------- validation


@functools.cache
def problem_defaults(name: str) -> dict[str, Any]:
    """{parameter: default} of a problem; required parameters map to ``inspect.Parameter.empty``."""
    _check_name(name)
    sig = inspect.signature(PROBLEMS[name])
    return {k: p.default for k, p in sig.parameters.items()}


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; valid: {sorted(PROBLEMS)}")


def coerce_param(kind: str, value: Any) -> Any:
    """One parameter value coerced to its kind (int, float, tuple, bool); else ValueError."""
    if kind in ("size", "seed"):
        lo = 1 if kind == "size" else 0
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
            raise ValueError(f"must be an integer >= {lo}, got {value!r}")
        if value < lo:
            raise ValueError(f"must be an integer >= {lo}, got {value!r}")
        return int(value)
    if kind == "nonneg":
        return _nonneg(value)
    if kind == "flag":
        if not isinstance(value, bool | np.bool_):
            raise ValueError(f"must be true or false, got {value!r}")
        return bool(value)
    if kind in LIST_KINDS:
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence | np.ndarray):
            raise ValueError(f"must be a list, got {value!r}")
        items = list(np.asarray(value).ravel()) if isinstance(value, np.ndarray) else list(value)
        if kind == "spectrum":
            if not items:
                raise ValueError("must be a non-empty list of numbers >= 0, got []")
            try:
                return tuple(_nonneg(v) for v in items)
            except ValueError:
                raise ValueError(f"must be a list of finite numbers >= 0, got {value!r}") from None
        try:
            return tuple(coerce_param("size", v) for v in items)
        except ValueError:
            raise ValueError(f"must be a list of integers >= 1, got {value!r}") from None
    raise AssertionError(f"unknown parameter kind {kind!r}")


def _nonneg(value: Any) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        raise ValueError(f"must be a number >= 0, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"must be a finite number >= 0, got {value!r}")
    return v


def param_errors(name: str, params: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple]]:
    """Normalised parameters (defaults filled in) and a list of (key or None, message) errors.

    The spec loader uses this to report every problem at once with its key path;
    ``normalize_params`` raises instead.
    """
    _check_name(name)
    if not isinstance(params, Mapping):
        return {}, [(None, f"parameters must be a mapping, got {type(params).__name__}")]
    defaults = problem_defaults(name)
    kinds = PARAM_KINDS[name]
    errors: list[tuple] = []
    out: dict[str, Any] = {}
    for key in params:
        if key not in defaults:
            errors.append(
                (key, f"unknown parameter {key!r} = {params[key]!r}; valid: {list(defaults)}")
            )
    for key, default in defaults.items():
        if key not in params:
            if default is _REQUIRED:
                errors.append((key, f"missing required parameter {key!r}"))
            else:
                out[key] = coerce_param(kinds[key], default)
            continue
        try:
            out[key] = coerce_param(kinds[key], params[key])
        except ValueError as e:
            errors.append((key, f"{key} = {params[key]!r}: {e}"))
    if not errors:
        errors.extend(_cross_check(name, out))
    return out, errors


def _cross_check(name: str, p: dict[str, Any]) -> list[tuple]:
    errors: list[tuple] = []
    if name == "whitened":
        if p["m"] < p["d_x"]:
            errors.append(
                ("m", f"m = {p['m']} must be >= d_x = {p['d_x']} (X X^T = I needs d_x samples)")
            )
        r_max = min(p["d_x"], p["d_y"])
        if len(p["singular_values"]) > r_max:
            errors.append(
                (
                    "singular_values",
                    f"singular_values has {len(p['singular_values'])} entries, more than "
                    f"min(d_x, d_y) = {r_max}",
                )
            )
        if p["noise"] > 0 and p["m"] <= p["d_x"]:
            errors.append(
                (
                    "noise",
                    f"noise = {p['noise']} needs m > d_x (noise lives in the {p['m'] - p['d_x']}"
                    "-dimensional complement of X's row space)",
                )
            )
    return errors


def normalize_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validated parameters with defaults filled in and values coerced (lists become tuples).

    Raises ValueError naming the problem, each bad key and value, and the valid keys.
    """
    out, errors = param_errors(name, params)
    if errors:
        raise ValueError(f"problem {name!r}: " + "; ".join(msg for _, msg in errors))
    return out


def problem_dims(name: str, params: Mapping[str, Any]) -> tuple[int, int, int]:
    """(d_x, d_y, m) of a problem, from its parameters alone (no data generated)."""
    p = normalize_params(name, params)
    if name == "iris":
        return len(IRIS_FEATURES), len(IRIS_CLASSES), _IRIS_M
    return p["d_x"], p["d_y"], p["m"]


def make_problem(
    name: str, params: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``params`` for problem ``name`` and build its (X, Y), float64, C-contiguous."""
    p = normalize_params(name, params or {})
    X, Y = _GENERATORS[name](**p)
    return np.ascontiguousarray(X, dtype=np.float64), np.ascontiguousarray(Y, dtype=np.float64)


# ----------------------------------------------------------------------------- generators


def _rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def _orthonormal(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """(n, k) with orthonormal columns, Haar-distributed."""
    return haar_orthonormal(rng.standard_normal((n, k)))


def _whitened(d_x, d_y, m, singular_values, seed, noise):
    rng = _rng(seed)
    Q = _orthonormal(rng, m, d_x)  # (m, d_x), Q^T Q = I
    U = _orthonormal(rng, d_y, d_y)
    V = _orthonormal(rng, d_x, d_x)
    s = np.asarray(singular_values, dtype=np.float64)
    r = s.size
    X = Q.T.copy()
    Y = ((U[:, :r] * s) @ V[:, :r].T) @ X
    if noise > 0:
        G = noise * rng.standard_normal((d_y, m))
        Y += G - (G @ Q) @ Q.T  # the part of G orthogonal to X's row space
    return X, Y


def _teacher(d_x, d_y, m, teacher_widths, noise, seed):
    rng = _rng(seed)
    X = rng.standard_normal((d_x, m))
    dims = (d_x, *teacher_widths, d_y)
    Y = X
    for fan_in, fan_out in zip(dims[:-1], dims[1:], strict=True):
        Y = (rng.standard_normal((fan_out, fan_in)) / math.sqrt(fan_in)) @ Y
    Y = Y + noise * rng.standard_normal((d_y, m))
    return X, Y


def _gaussian(d_x, d_y, m, seed):
    rng = _rng(seed)
    X = rng.standard_normal((d_x, m))
    Y = rng.standard_normal((d_y, m))
    return X, Y


@functools.cache
def _iris_raw() -> tuple[np.ndarray, np.ndarray]:
    """Features (150, 4) in cm and class indices (150,), from the shipped CSV."""
    text = importlib.resources.files("sweepengine").joinpath("data", "iris.csv").read_text()
    rows = list(csv.reader(text.splitlines()))
    header, body = rows[0], rows[1:]
    if tuple(header) != (*IRIS_FEATURES, "species") or len(body) != _IRIS_M:
        raise RuntimeError("sweepengine/data/iris.csv is damaged (header or row count)")
    feats = np.array([[float(v) for v in r[:4]] for r in body])
    labels = np.array([IRIS_CLASSES.index(r[4]) for r in body])
    feats.flags.writeable = False
    labels.flags.writeable = False
    return feats, labels


def _iris(standardize, center_targets):
    feats, labels = _iris_raw()
    X = feats.T.copy()
    if standardize:
        X -= X.mean(axis=1, keepdims=True)
        X /= X.std(axis=1, keepdims=True)
    Y = np.zeros((len(IRIS_CLASSES), _IRIS_M))
    Y[labels, np.arange(_IRIS_M)] = 1.0
    if center_targets:
        Y -= Y.mean(axis=1, keepdims=True)
    return X, Y


_GENERATORS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "whitened": _whitened,
    "teacher": _teacher,
    "gaussian": _gaussian,
    "iris": _iris,
}
