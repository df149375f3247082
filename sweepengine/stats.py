"""Sufficient statistics of a least-squares problem."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._validate import as_matrix


class Stats(NamedTuple):
    """Cxx = X X^T (d_x, d_x), Cyx = Y X^T (d_y, d_x), yy = tr(Y Y^T).

    L(W) = 1/2 (tr(P Cxx P^T) - 2 tr(P Cyx^T) + yy) for the end-to-end product P,
    so a full-batch step costs nothing in the number of samples m.
    """

    Cxx: np.ndarray
    Cyx: np.ndarray
    yy: float

    @classmethod
    def from_data(cls, X, Y) -> Stats:
        """(X X^T, Y X^T, tr(Y Y^T)) in float64 from X (d_x, m) and Y (d_y, m)."""
        X = as_matrix(X, "X")
        Y = as_matrix(Y, "Y", None, X.shape[1])
        return cls(X @ X.T, Y @ X.T, float(np.sum(Y * Y)))
