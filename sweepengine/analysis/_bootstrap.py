"""Compiled bootstrap sums: the replicate totals sum_i c_i x_i for resampled runs.

Replicate b draws n run indices uniformly with replacement from its own
splitmix64 stream, keyed by (seed, b) alone, so the replicates do not depend on
the thread that computes them or on how many there are. The draws of a
replicate become counts c_i (int32, one row per replicate, so the random
increments stay inside n x 4 bytes), and the totals are then sum_i c_i x_ik in
ascending i: a fixed order, bit-reproducible. Replicates are done 8 at a time
in one pass over the data (runs drawn 0 times skipped); blocks run in parallel.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._config import JIT, JIT_PARALLEL
from ..kernels.rng import mix64, next_uniform

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_STREAM = np.uint64(0xB5026F5AA96619E9)  # keeps bootstrap draws apart from other streams
_BLOCK = 8


@njit(**JIT)
def _block(rows, seed, b0, nb, out):
    n, m = rows.shape
    counts = np.zeros((nb, n), dtype=np.int32)
    state = np.empty(1, dtype=np.uint64)
    for r in range(nb):
        state[0] = mix64(seed ^ mix64((np.uint64(b0 + r) + np.uint64(1)) * _GOLDEN))
        c = counts[r]
        for _ in range(n):
            c[np.int64(next_uniform(state) * n)] += 1
    acc = np.zeros((nb, m))
    for i in range(n):  # one pass over the data for the whole block, ascending i
        for r in range(nb):
            c = counts[r, i]
            if c:
                for k in range(m):
                    acc[r, k] += c * rows[i, k]
    for r in range(nb):
        for k in range(m):
            out[b0 + r, k] = acc[r, k]


@njit(**JIT_PARALLEL)
def boot_sums(rows, seed, n_boot, out):
    """out[b, k] = sum over replicate b's resampled runs of rows[run, k] (rows is (n, m))."""
    s = mix64(np.uint64(seed) ^ _STREAM)
    n_blocks = (n_boot + _BLOCK - 1) // _BLOCK
    for blk in prange(n_blocks):
        b0 = blk * _BLOCK
        _block(rows, s, b0, min(_BLOCK, n_boot - b0), out)
