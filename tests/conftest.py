import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def random_chain(rng, dims, scale=1.0):
    return [scale * rng.standard_normal((dims[k + 1], dims[k])) for k in range(len(dims) - 1)]


def random_data(rng, d_x, d_y, m):
    return rng.standard_normal((d_x, m)), rng.standard_normal((d_y, m))
