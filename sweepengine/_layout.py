"""Parameter layout: a list of weight matrices <-> one flat float64 vector.

Kernels never see a Python list of arrays (its type would change with depth
and force a recompile per depth). They see ``theta``, the concatenation of
W_1..W_K each flattened row-major, and ``dims`` = (d_0, ..., d_K) as int64.
W_k has shape (d_k, d_{k-1}) and starts at ``offsets[k-1]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def dims_of(weights: Sequence[np.ndarray]) -> np.ndarray:
    """(d_0, ..., d_K) of a chain of weight matrices (assumed to chain)."""
    dims = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    return np.asarray(dims, dtype=np.int64)


def n_params(dims: np.ndarray) -> int:
    return int(np.sum(np.asarray(dims[1:]) * np.asarray(dims[:-1])))


def flatten(weights: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate W_1..W_K, each row-major, into one float64 vector."""
    return np.concatenate([np.ascontiguousarray(w, dtype=np.float64).ravel() for w in weights])


def unflatten(theta: np.ndarray, dims, copy: bool = True) -> list[np.ndarray]:
    """Split a flat vector back into [W_1, ..., W_K]; views of ``theta`` if not ``copy``."""
    out, o = [], 0
    for k in range(len(dims) - 1):
        r, c = int(dims[k + 1]), int(dims[k])
        w = theta[o : o + r * c].reshape(r, c)
        out.append(w.copy() if copy else w)
        o += r * c
    return out
