"""Counter-based random numbers that do not depend on threads or call order.

splitmix64 (Steele, Lea and Flood 2014): each run carries its own uint64
state in a 1-element array, so a run draws the same numbers whichever thread
or batch it lands in.
"""

import numpy as np
from numba import njit

from .._config import JIT

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0  # 2^-53


@njit(**JIT)
def mix64(z):
    """The splitmix64 finaliser: a bijective avalanche of a uint64."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(**JIT)
def next_uniform(state):
    """Uniform in [0, 1) from a 1-element uint64 state array (advanced in place)."""
    state[0] += _GOLDEN
    return np.float64(mix64(state[0]) >> _S11) * _INV53


@njit(**JIT)
def next_normal(state):
    """Standard normal (Box-Muller, one of the pair)."""
    u1 = next_uniform(state)
    u2 = next_uniform(state)
    return np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)


_INIT_STREAM = np.uint64(0x6A09E667F3BCC908)  # keeps init draws apart from a trainer seed's


@njit(**JIT)
def init_normals(seeds, out):
    """out[b] = standard normals from ``seeds[b]`` (the stream behind every init scheme)."""
    state = np.empty(1, dtype=np.uint64)
    for b in range(seeds.size):
        state[0] = mix64(seeds[b] ^ _INIT_STREAM)
        for i in range(out.shape[1]):
            out[b, i] = next_normal(state)
