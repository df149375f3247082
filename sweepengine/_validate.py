"""Input checks shared by the public wrappers: fail before compiled code runs.

Every error is a ValueError that names the argument, what was given and what
would be valid. Integer and float32 input is converted to float64, not rejected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _finite(arr: np.ndarray) -> bool:
    # One BLAS dot: finite unless an entry is NaN/inf, or the squares overflow
    # (|x| > 1e154), in which case look entry by entry. Raises no warnings.
    v = arr.reshape(-1)
    return math.isfinite(float(np.dot(v, v))) or bool(np.isfinite(arr).all())


def as_matrix(a, name: str, rows: int | None = None, cols: int | None = None) -> np.ndarray:
    """A finite, C-contiguous float64 2-D array, optionally with ``rows`` x ``cols``."""
    if not (
        type(a) is np.ndarray and a.dtype == np.float64 and a.ndim == 2 and a.flags.c_contiguous
    ):
        a = _coerce(a, name)
    if not a.flags.writeable:  # a read-only array is another Numba type: one more compile
        a = a.copy()
    r, c = a.shape
    if (rows is not None and r != rows) or (cols is not None and c != cols):
        want = ("*" if rows is None else rows, "*" if cols is None else cols)
        raise ValueError(f"{name} has shape {a.shape}, expected {want}")
    if a.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {a.shape}")
    if not _finite(a):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return a


def _coerce(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real, got complex dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got {arr.ndim}-D with shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def as_dims(dims) -> np.ndarray:
    """Layer sizes (d_0, ..., d_K): at least two positive integers, as int64."""
    d = np.asarray(dims)
    if d.ndim != 1 or d.size < 2 or not np.issubdtype(d.dtype, np.integer) or (d < 1).any():
        raise ValueError(
            "dims must be a sequence (d_0, ..., d_K) of at least two positive integers, "
            f"got {dims!r}"
        )
    return d.astype(np.int64)


def as_weights(weights, name: str = "weights") -> list[np.ndarray]:
    """A chain [W_1..W_K] with W_k of shape (d_k, d_{k-1}), each float64."""
    if isinstance(weights, np.ndarray) or not isinstance(weights, Sequence):
        raise ValueError(
            f"{name} must be a list of 2-D arrays [W_1, ..., W_K], got {type(weights).__name__}"
        )
    if len(weights) == 0:
        raise ValueError(f"{name} must hold at least one weight matrix, got an empty list")
    out = []
    for k, w in enumerate(weights):
        prev = None if k == 0 else out[-1].shape[0]
        out.append(as_matrix(w, f"{name}[{k}]", None, prev))
    return out


def as_data(X, Y, weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """X of shape (d_0, m) and Y of shape (d_K, m) matching the chain."""
    X = as_matrix(X, "X", weights[0].shape[1])
    Y = as_matrix(Y, "Y", weights[-1].shape[0], X.shape[1])
    return X, Y


def as_direction(direction, weights: list[np.ndarray]) -> np.ndarray:
    """A direction in parameter space, as a list like ``weights`` or a flat vector."""
    n = sum(w.size for w in weights)
    if isinstance(direction, np.ndarray) and direction.ndim == 1:
        if direction.size != n:
            raise ValueError(f"direction has {direction.size} entries, expected {n} (flat)")
        v = np.ascontiguousarray(direction, dtype=np.float64)
    else:
        if not isinstance(direction, Sequence) or len(direction) != len(weights):
            raise ValueError(
                f"direction must be a list of {len(weights)} arrays shaped like weights "
                f"{[w.shape for w in weights]}, or a flat vector of {n} entries"
            )
        parts = [
            as_matrix(d, f"direction[{k}]", *w.shape)
            for k, (d, w) in enumerate(zip(direction, weights, strict=True))
        ]
        v = np.concatenate([p.ravel() for p in parts])
    if not np.isfinite(v).all():
        raise ValueError("direction contains non-finite values (NaN or inf)")
    return v


def as_stats(stats, weights: list[np.ndarray]):
    """(Cxx (d_0, d_0), Cyx (d_K, d_0), yy) as float64, matching the chain."""
    try:
        Cxx, Cyx, yy = stats
    except (TypeError, ValueError):
        raise ValueError("stats must be a triple (Cxx, Cyx, yy), e.g. sweepengine.Stats") from None
    d0, dK = weights[0].shape[1], weights[-1].shape[0]
    Cxx = as_matrix(Cxx, "stats.Cxx", d0, d0)
    Cyx = as_matrix(Cyx, "stats.Cyx", dK, d0)
    yy = float(yy)
    if not np.isfinite(yy) or yy < 0:
        raise ValueError(f"stats.yy must be a finite, non-negative number (tr Y Y^T), got {yy}")
    return Cxx, Cyx, yy
